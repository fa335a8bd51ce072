"""Shared facts about MCS CMOS-MEA HDF5 files (``.cmcr`` raw data, ``.cmtr`` spike sorting).

Both kinds are plain HDF5.  Every group and dataset carries the string attributes
``ID.Type``, ``ID.TypeID`` (a GUID naming the object's class), ``ID.Instance`` and
``ID.InstanceID``; the vendor's reader dispatches on ``ID.TypeID``.  The type ids
below that the vendor's package lists are the vendor's; objects it does not list
(the spike sorter's tables and per-unit datasets) get stable ids of our own,
derived from their names, which the vendor's reader treats as plain datasets.

The sensor grid is 65 x 65 with 1-based, column-major sensor ids:
``row = (id - 1) % 65 + 1``, ``col = (id - 1) // 65 + 1``, ``id = 65 * (col - 1) + row``.
"""

from __future__ import annotations

import contextlib
import os
import uuid
import warnings
from pathlib import Path
from typing import TypeVar

import h5py
import numpy as np

from h5stream.errors import FormatError, SourceNotFoundError
from h5stream.files import guard_read, open_validated, verify_files
from hdmea.errors import RecordingFormatError, VendorTextWarning

__all__ = [
    "GRID_SIZE",
    "N_SENSORS",
    "TYPE_IDS",
    "ROOT_TYPE_ID",
    "PROGRAM_RAW",
    "PROGRAM_SORTER",
    "sensor_id_to_row_col",
    "row_col_to_sensor_id",
    "attr_text",
    "informative_text",
    "attr_number",
    "check_mcs_root",
    "require_object",
    "open_mcs_file",
    "McsFile",
    "guard_mcs_read",
    "read_attr",
    "check_vendor_root",
    "vendor_acquisition_link",
    "mcs_link_rule",
    "verify_inputs",
    "verify_recordings",
    "VERIFY_TIMEOUT",
    "VERIFY_READ_BYTES",
]

GRID_SIZE = 65
N_SENSORS = GRID_SIZE * GRID_SIZE

PROGRAM_RAW = "CMOS-MEA-Control"
PROGRAM_SORTER = "CMOS-MEA-Tools"

_OWN_NAMESPACE = uuid.UUID("6f1c1d5e-3c55-4b52-9a55-8d3b0e0c2a10")


def _own_type_id(name: str) -> str:
    return str(uuid.uuid5(_OWN_NAMESPACE, name))


# ID.Type -> ID.TypeID.  The first block is the vendor's table (McsPy.McsHdf5Types);
# the second names objects the vendor's table does not list.
TYPE_IDS: dict[str, str] = {
    "CMOS-MEA-File": "cabb6cdd-47e0-417a-8e04-5664cbbc449b",
    "Acquisition": "650d88ce-9f24-4b20-ac2b-254defd12761",
    "ChannelStream": "9217aeb4-59a0-4d7f-bdcd-0371c9fd66eb",
    "ChannelMeta": "9e8ac9cd-5571-4ee5-bbfa-8e9d9c436daa",
    "ChannelData": "5efe7932-dcfe-49ff-ba53-25accff5d622",
    "SensorStream": "15e5a1fe-df2f-421b-8b60-23eeb2213c45",
    "SensorMeta": "ab2aa189-2e72-4148-a2ef-978119223412",
    "SensorData": "49da47df-f397-4121-b5da-35317a93e705",
    "SpikeSorter": "7263d1b7-f57a-42de-8f51-5d6326d22f2a",
    "SpikeSorterUnit": "0e5a97df-9de0-4a22-ab8c-54845c1ff3b9",
    "ProjectionMatrix": "3fa908a3-fac9-4a80-96a1-310d9bcdf617",
    "SettingsSorterGeneral": "62bc7b9f-7eea-4a88-a438-c618067d49f4",
    # not in the vendor's table
    "SpikeSorterUnits": _own_type_id("SpikeSorterUnits"),
    "Peaks": _own_type_id("Peaks"),
    "RoiSTAs": _own_type_id("RoiSTAs"),
    "Source": _own_type_id("Source"),
    "UnitInfo": _own_type_id("UnitInfo"),
    "Unmixing": _own_type_id("Unmixing"),
}
ROOT_TYPE_ID = TYPE_IDS["CMOS-MEA-File"]


def sensor_id_to_row_col(sensor_id):
    """1-based (row, col) of 1-based, column-major sensor ids (scalar or array)."""
    sid = np.asarray(sensor_id, dtype=np.int64) - 1
    row = sid % GRID_SIZE + 1
    col = sid // GRID_SIZE + 1
    if np.ndim(sensor_id) == 0:
        return int(row), int(col)
    return row, col


def row_col_to_sensor_id(row, col):
    """1-based, column-major sensor id of 1-based (row, col) (scalar or array)."""
    sid = GRID_SIZE * (np.asarray(col, dtype=np.int64) - 1) + np.asarray(row, dtype=np.int64)
    return int(sid) if np.ndim(sid) == 0 else sid


def _decoded_text(value) -> tuple[str | None, bool]:
    """(text, whether bytes did not decode) of an MCS string attribute; never lone surrogates.

    Fixed-length strings come from h5py as bytes; variable-length ones as
    ``str`` in which h5py keeps bytes that are not UTF-8 as lone surrogates
    (``surrogateescape``): both become U+FFFD where they do not decode.
    """
    if value is None:
        return None, False
    if isinstance(value, np.ndarray):
        if value.size != 1:
            return None, False
        value = value.reshape(-1)[0]
    if isinstance(value, (bytes, np.bytes_)):
        raw = bytes(value)
    else:
        text = str(value)
        if text.isascii():
            return text, False
        raw = text.encode("utf-8", errors="surrogateescape")
    try:
        text = raw.decode("utf-8")
        damaged = False
    except UnicodeDecodeError:
        text, damaged = raw.decode("utf-8", errors="replace"), True
    return text.rstrip("\x00").rstrip(), damaged


def attr_text(value) -> str | None:
    """An MCS string attribute (fixed-length bytes, vlen str or 1-element array) as ``str``; bytes that are
    not UTF-8 become U+FFFD (so an identity compared with this text fails and names what was found)."""
    return _decoded_text(value)[0]


def informative_text(value, path: str | os.PathLike, obj: str) -> str | None:
    """:func:`attr_text` of text that is only informative (a date, a program's name, a comment): bytes that are
    not UTF-8 are kept as U+FFFD with a :class:`~hdmea.errors.VendorTextWarning` naming the file and ``obj``."""
    text, damaged = _decoded_text(value)
    if damaged:
        warnings.warn(f"{os.fspath(path)} [{obj}]: the text is not valid UTF-8; kept as {text!r}, with U+FFFD "
                      "for the bytes that do not decode", VendorTextWarning, stacklevel=2)
    return text


def attr_number(value) -> float | None:
    """An MCS numeric attribute (scalar or 1-element array) as a python number."""
    if value is None:
        return None
    arr = np.asarray(value)
    if arr.size != 1 or arr.dtype.kind not in "iuf":
        return None
    item = arr.reshape(-1)[0].item()
    return item


def check_mcs_root(f: h5py.File, path: str | os.PathLike, *, program: str) -> None:
    """Refuse a file that is not an MCS CMOS-MEA file written by ``program``."""
    type_id = attr_text(f.attrs.get("ID.TypeID"))
    if type_id != ROOT_TYPE_ID:
        raise RecordingFormatError(
            "not an MCS CMOS-MEA file (the file was written by another tool)",
            path=path, obj="/@ID.TypeID", expected=ROOT_TYPE_ID, found=repr(type_id),
        )
    found_program = attr_text(f.attrs.get("ProgramName"))
    if found_program != program:
        raise RecordingFormatError(
            f"not a {program} file",
            path=path, obj="/@ProgramName", expected=repr(program), found=repr(found_program),
            hint="pass the .cmcr as the raw file and the .cmtr as the spike-sorting file",
        )
    if attr_number(f.attrs.get("FileVersion")) is None:
        raise RecordingFormatError(
            "file version attribute is missing", path=path, obj="/@FileVersion",
            expected="an integer version", found=repr(f.attrs.get("FileVersion")),
        )


def require_object(parent: h5py.Group, name: str, path: str | os.PathLike, *, kind: type = h5py.Group):
    """``parent[name]`` as ``kind`` or a :class:`RecordingFormatError` naming what is missing."""
    full = (parent.name.rstrip("/") + "/" + name) if parent.name != "/" else "/" + name
    try:
        link = parent.get(name, getlink=True)
    except (KeyError, OSError, RuntimeError, ValueError) as exc:
        raise RecordingFormatError(
            f"cannot read the object ({exc})", path=path, obj=full,
            hint="the file may be damaged",
        ) from exc
    if link is None:
        raise RecordingFormatError(
            "object is missing", path=path, obj=full,
            expected=f"an HDF5 {kind.__name__.lower()}", found="nothing",
            hint="the file is incomplete or was not written by the MCS software",
        )
    if isinstance(link, h5py.ExternalLink):
        raise RecordingFormatError(
            "object is an external link, which is not followed", path=path, obj=full,
            found=f"link to {link.filename}:{link.path}",
        )
    try:
        obj = parent[name]
    except (KeyError, OSError, RuntimeError, ValueError) as exc:
        raise RecordingFormatError(
            f"cannot open the object ({exc})", path=path, obj=full,
            hint="the file may be damaged",
        ) from exc
    if not isinstance(obj, kind):
        raise RecordingFormatError(
            "object has the wrong kind", path=path, obj=full,
            expected=f"an HDF5 {kind.__name__.lower()}", found=type(obj).__name__,
        )
    return obj


def open_mcs_file(path: str | os.PathLike, *, check, scan: bool = True, allow_link=None) -> h5py.File:
    """``open_validated`` whose format failures are :class:`RecordingFormatError` (a missing file stays
    :class:`~h5stream.errors.SourceNotFoundError`)."""
    try:
        return open_validated(path, check=check, scan=scan, allow_link=allow_link)
    except (RecordingFormatError, SourceNotFoundError):
        raise
    except FormatError as exc:
        reason = str(exc)
        prefix = os.fspath(path)
        if reason.startswith(prefix):
            reason = reason[len(prefix):].lstrip(": ")
            if exc.obj is not None and reason.startswith(f"[{exc.obj}]: "):
                reason = reason[len(exc.obj) + 4:]
        raise RecordingFormatError(reason, path=path, obj=exc.obj or "/") from exc


_Open = TypeVar("_Open", bound="McsFile")


class McsFile:
    """What an open ``.cmcr`` and an open ``.cmtr`` share: its ``path``, its h5py file (:attr:`h5`), being
    closed (:meth:`close`, or the end of a ``with`` block) and :meth:`guard` for its reads."""

    path: Path
    _f: h5py.File

    def guard(self, obj: str):
        """A context in which a failed read of ``obj`` becomes a :class:`RecordingFormatError` naming it."""
        return guard_mcs_read(self.path, obj)

    def close(self) -> None:
        if self._f:  # an h5py file is false once closed
            self._f.close()

    def __enter__(self: _Open) -> _Open:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def h5(self) -> h5py.File:
        return self._f


def read_attr(obj: h5py.HLObject, key: str, path: str | os.PathLike):
    """``obj.attrs.get(key)``; an attribute libhdf5 cannot read is a :class:`RecordingFormatError` naming it."""
    with guard_mcs_read(path, f"{obj.name.rstrip('/')}/@{key}"):
        return obj.attrs.get(key)


@contextlib.contextmanager
def guard_mcs_read(path: str | os.PathLike, obj: str | None = None):
    """Any low-level read failure inside the block leaves as :class:`RecordingFormatError`."""
    try:
        with guard_read(path, obj):
            yield
    except RecordingFormatError:
        raise
    except FormatError as exc:
        reason = str(exc).split("]: ", 1)[-1]
        raise RecordingFormatError(reason, path=path, obj=obj) from exc


# --------------------------------------------------------------------------- crash isolation

#: Seconds one input may take to read in the checking process before it is reported as hanging.
VERIFY_TIMEOUT = 120.0
#: Raw data read per dataset when checking an input (its first and last rows; every object header,
#: attribute and chunk index is read whole): a recording's ~1 GB of fixed-size tables and sensor data
#: would take the checking process as long to read as the job itself, for no crash they could cause.
VERIFY_READ_BYTES = 256 * 1024


def check_vendor_root(f: h5py.File) -> None:
    """The root check of an MCS input in a checking process: ``.cmtr`` from the sorter, else raw data."""
    program = PROGRAM_SORTER if str(f.filename).lower().endswith(".cmtr") else PROGRAM_RAW
    check_mcs_root(f, f.filename, program=program)


def vendor_acquisition_link(path: str | os.PathLike):
    """The one external link an MCS ``.cmtr`` may hold: ``/Acquisition`` to ``/Acquisition`` of a sibling ``.cmcr``.

    The spike sorter links its file's ``Acquisition`` to the raw recording it
    sorted.  Accepted only at the root, only to ``/Acquisition``, and only to a
    ``.cmcr`` file named without a directory or in the ``.cmtr``'s own
    directory; the link is never followed.
    """
    directory = os.path.dirname(os.path.abspath(os.fspath(path)))

    def allow(name: str, target_file: str, target_obj: str) -> bool:
        if name != "/Acquisition" or target_obj != "/Acquisition":
            return False
        if not target_file.lower().endswith(".cmcr"):
            return False
        folder, base = os.path.split(target_file)
        if not base or base in (".", ".."):
            return False
        return folder == "" or os.path.normpath(folder) == directory

    return allow


def mcs_link_rule(path: str | os.PathLike):
    """The external links an MCS file may hold, by suffix: :func:`vendor_acquisition_link` for a ``.cmtr``,
    none for anything else (the rule :func:`h5stream.files.verify_files` is given)."""
    return vendor_acquisition_link(path) if os.fspath(path).lower().endswith(".cmtr") else None


def verify_inputs(paths, *, timeout: float = VERIFY_TIMEOUT,
                  max_read_bytes: int | None = VERIFY_READ_BYTES) -> list[RecordingFormatError | None]:
    """Open and read each ``.cmcr``/``.cmtr`` in a separate process first; one result per path.

    A file that makes libhdf5 crash or hang, or that a read refuses, becomes a
    :class:`RecordingFormatError` naming it (a missing file a
    :class:`~h5stream.errors.SourceNotFoundError`), and this process is never
    affected.  A ``.cmtr``'s own ``/Acquisition`` link to its sibling ``.cmcr`` is
    accepted (:func:`vendor_acquisition_link`); every attribute,
    object header, chunk index and variable-length value is read, and each
    dataset's first and last rows (``max_read_bytes`` in all per dataset).
    """
    paths = [os.fspath(p) for p in paths]
    results = verify_files(paths, check=check_vendor_root, timeout=timeout, max_read_bytes=max_read_bytes,
                           link_rule=mcs_link_rule)
    out: list[RecordingFormatError | None] = []
    for path, error in zip(paths, results):
        if error is None or isinstance(error, (RecordingFormatError, SourceNotFoundError)):
            out.append(error)
            continue
        # The reader's own message (a crash or hang says so), as the recording face's error.
        out.append(RecordingFormatError(
            str(error), path=path, obj=error.obj, expected=error.expected, found=error.found,
            hint=error.hint, composed=True,
        ))
    return out


def verify_recordings(recordings, *, timeout: float = VERIFY_TIMEOUT) -> dict[str, RecordingFormatError]:
    """``{recording name: error}`` for the recordings whose ``.cmcr`` or ``.cmtr`` fails :func:`verify_inputs`.

    ``recordings`` have ``name``, ``cmcr`` and ``cmtr``.  All files are checked
    in one separate process (restarted after a crash), so a file that makes
    libhdf5 crash or hang fails only its own recording.  Files that do not
    exist are left to the caller's own checks.
    """
    recordings = list(recordings)
    paths = [os.fspath(p) for r in recordings for p in (r.cmcr, r.cmtr) if os.path.isfile(p)]
    if not paths:
        return {}
    errors = dict(zip(paths, verify_inputs(paths, timeout=timeout)))
    out: dict[str, RecordingFormatError] = {}
    for r in recordings:
        for p in (os.fspath(r.cmcr), os.fspath(r.cmtr)):
            error = errors.get(p)
            if isinstance(error, RecordingFormatError) and r.name not in out:
                out[r.name] = error
    return out

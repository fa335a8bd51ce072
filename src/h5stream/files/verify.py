"""Out-of-process verification: read a whole file in a child process, so a crash or a hang stays there."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable

import h5py
import numpy as np

from h5stream import stops
from h5stream.cores import quiet_waits
from h5stream.errors import FormatError, H5StreamError
from h5stream.files import validated
from h5stream.files.header_checks import check_stored_type
from h5stream.files.validated import LinkRule, ObjectVisitor, guard_read, open_validated

__all__ = ["verify_file", "verify_files", "LinkRuleFor"]

_VERIFY_CHILD = "from h5stream.files.verify import _verify_child; _verify_child()"
_CHILD_START_SECONDS = 60.0


#: ``link_rule(path)``: the external links the file at ``path`` may hold (a :data:`LinkRule`), or None
#: for none; a module-level function, so the reading process can import it (the formats that know
#: such links, e.g. ``hdmea.io.mcs.mcs_link_rule``, pass theirs)
LinkRuleFor = Callable[[str], "LinkRule | None"]


def _read_everything(path: str, check: Callable[[h5py.File], None] | None,
                     max_read_bytes: int | None = None, link_rule: LinkRuleFor | None = None) -> None:
    """Open ``path`` with :func:`open_validated` and read every attribute and dataset, in one walk.

    The open's safety scan opens each object once; each is read right there,
    from the identifier the scan opened, under :func:`guard_read` naming it
    (:func:`_object_reader`); ``check`` runs after the scan, as in any open.
    Datasets are read in full, or, past ``max_read_bytes``, their first and last
    rows up to that many bytes (every object header, attribute, chunk index and
    variable-length value is still read; fixed-size raw data in between is left
    for the reader).
    """
    with open_validated(path, check=check, allow_link=link_rule(path) if link_rule is not None else None,
                        visit=_object_reader(path, max_read_bytes)) as f, guard_read(path, "/@"):
        _read_attributes(f.id, path, "/")


def _object_reader(path: str, max_read_bytes: int | None) -> ObjectVisitor:
    """A visitor of the safety scan that reads each object's attributes and, for a dataset, its values."""
    dataset_id = h5py.h5d.DatasetID

    def read(full: bytes, oid) -> bool:
        if oid is None:  # a soft or accepted external link, or an object reached again
            return False
        with guard_read(path, "/" + full.decode("utf-8", errors="replace")):
            _read_attributes(oid, path, "/" + full.decode("utf-8", errors="replace"))
            if isinstance(oid, dataset_id):
                _read_dataset(oid, max_read_bytes)
        return False

    return read


# The check reads values through h5py's low-level calls, each in the type the file stores
# (no conversion): libhdf5 still decodes every header, heap, chunk index and filter, which is
# what can crash or hang, and skips the conversion to numpy's types, which cannot; for a
# compound of 43 members (an MCS spike table) a converted read of one row costs 0.5 ms.
# Values that point elsewhere in the file (variable-length data, references) are converted,
# so that libhdf5 follows the pointers and its memory is given back.
_VLEN, _REFERENCE, _STRING = h5py.h5t.VLEN, h5py.h5t.REFERENCE, h5py.h5t.STRING
_COMPOUND, _ARRAY = h5py.h5t.COMPOUND, h5py.h5t.ARRAY
_NULL, _SCALAR = h5py.h5s.NULL, h5py.h5s.SCALAR


def _type_points_elsewhere(tid: h5py.h5t.TypeID) -> bool:
    """Whether values of the HDF5 type ``tid`` point into other parts of the file (variable-length data,
    references), in any member."""
    if not (tid.detect_class(_VLEN) or tid.detect_class(_REFERENCE) or tid.detect_class(_STRING)):
        return False  # numbers, enums, opaque bytes and compounds or arrays of them: the common case
    kind = tid.get_class()
    if kind in (_VLEN, _REFERENCE):
        return True
    if kind == _STRING:
        return tid.is_variable_str()
    if kind == _COMPOUND:
        return any(_type_points_elsewhere(tid.get_member_type(i)) for i in range(tid.get_nmembers()))
    if kind == _ARRAY:
        return _type_points_elsewhere(tid.get_super())
    return False


def _points_elsewhere(dtype) -> bool:
    """:func:`_type_points_elsewhere` of a numpy dtype (h5py's mapping of it to an HDF5 type)."""
    return _type_points_elsewhere(h5py.h5t.py_create(dtype, logical=True))


_RAW_ITEMS: dict[int, np.dtype] = {}


def _raw_buffer(shape: tuple[int, ...], tid: h5py.h5t.TypeID) -> np.ndarray:
    """An array of ``shape`` whose items are ``tid``'s bytes, to read into without conversion."""
    size = max(1, tid.get_size())
    item = _RAW_ITEMS.get(size)
    if item is None:
        item = _RAW_ITEMS.setdefault(size, np.dtype((np.void, size)))
    return np.empty(shape, dtype=item)


def _stored(oid) -> tuple[h5py.h5t.TypeID, tuple[int, ...]] | None:
    """(type, shape) of the values of an attribute or dataset, None when its dataspace is null (nothing stored)."""
    space = oid.get_space()
    kind = space.get_simple_extent_type()
    if kind == _NULL:
        return None
    return oid.get_type(), (() if kind == _SCALAR else space.shape)


def _whole_buffer(oid, tid: h5py.h5t.TypeID, shape: tuple[int, ...]) -> tuple[np.ndarray, h5py.h5t.TypeID | None]:
    """(array, memory type) to read all values of an attribute or dataset into: the file's bytes, or h5py's
    conversion (memory type None) when they point elsewhere in the file."""
    if _type_points_elsewhere(tid):
        return np.empty(shape, dtype=oid.dtype), None
    return _raw_buffer(shape, tid), tid


def _read_attributes(oid, path: str = "", where: str = "") -> None:
    """Read every attribute of the object ``oid`` (in the file's own types; see above; a table's also as a
    reader converts it)."""
    names: list[bytes] = []
    h5py.h5a.iterate(oid, names.append)
    for name in names:
        aid = h5py.h5a.open(oid, name)
        stored = _stored(aid)
        if stored is not None:
            if stored[0].get_class() == _COMPOUND:
                at = f"{where.rstrip('/')}/@{name.decode('utf-8', errors='backslashreplace')}"
                check_stored_type(stored[0], path, at)
                aid.read(np.empty(stored[1], dtype=aid.dtype))  # h5py's conversion, as a reader reads it
            out, mtype = _whole_buffer(aid, *stored)
            aid.read(out, mtype=mtype)


def _walk_chunk_index(dsid: h5py.h5d.DatasetID) -> None:
    """Visit every entry of a chunked dataset's chunk index (its B-tree or other index), reading no data."""
    if dsid.get_create_plist().get_layout() != h5py.h5d.CHUNKED:
        return
    iterate = getattr(dsid, "chunk_iter", None)  # HDF5 >= 1.14
    if iterate is not None:
        iterate(_ignore_chunk)
    else:
        for i in range(dsid.get_num_chunks()):
            dsid.get_chunk_info(i)


def _ignore_chunk(info) -> None:
    return None


def _read_rows(dsid: h5py.h5d.DatasetID, tid: h5py.h5t.TypeID, shape: tuple[int, ...], start: int,
               count: int) -> np.ndarray:
    """Rows ``start`` to ``start + count`` of the dataset, as the file stores them (items of ``tid``'s bytes)."""
    rows = (count, *shape[1:])
    fspace = dsid.get_space()
    fspace.select_hyperslab((start,) + (0,) * (len(shape) - 1), rows)
    out = _raw_buffer(rows, tid)
    dsid.read(h5py.h5s.create_simple(rows), fspace, out, mtype=tid)
    return out


def _read_whole(dsid: h5py.h5d.DatasetID, tid: h5py.h5t.TypeID, shape: tuple[int, ...]) -> np.ndarray:
    """The whole dataset: as the file stores it, or converted by h5py when its values point elsewhere."""
    out, mtype = _whole_buffer(dsid, tid, shape)
    dsid.read(h5py.h5s.ALL, h5py.h5s.ALL, out, mtype=mtype)
    return out


def _read_first_row_converted(dsid: h5py.h5d.DatasetID, shape: tuple[int, ...]) -> None:
    """The first row of a table converted to numpy's types, the way the readers read it (h5py's memory type
    of the dataset's dtype): libhdf5's conversion of a damaged compound type is what crashes a reader, and
    then it crashes this process first.  (The scan already refused layouts that do not fit, see
    :func:`~h5stream.files.header_checks.check_stored_type`.)"""
    if not shape:
        dsid.read(h5py.h5s.ALL, h5py.h5s.ALL, np.empty((), dtype=dsid.dtype))
        return
    if shape[0] == 0:
        return
    rows = (1, *shape[1:])
    fspace = dsid.get_space()
    fspace.select_hyperslab((0,) * len(shape), rows)
    dsid.read(h5py.h5s.create_simple(rows), fspace, np.empty(rows, dtype=dsid.dtype))


def _read_dataset(dsid: h5py.h5d.DatasetID, max_read_bytes: int | None) -> None:
    """Read the dataset ``dsid``: whole when small, of a type that points elsewhere in the file, or without a
    byte limit; otherwise its whole chunk index and its first and last rows up to ``max_read_bytes``.

    What can make libhdf5 crash or loop lies in the file's structure (object
    headers, heaps, chunk indexes, variable-length data), all of which is read;
    fixed-size values in between are plain bytes, which a reader only copies.
    Fixed-size values are read in the file's own type (see above).
    """
    stored = _stored(dsid)
    if stored is None:
        return
    tid, shape = stored
    if tid.get_class() == _COMPOUND:
        _read_first_row_converted(dsid, shape)
    whole = max_read_bytes is None or not shape or shape[0] <= 2 or _type_points_elsewhere(tid)
    if not whole:
        row_bytes = tid.get_size()
        for extent in shape[1:]:
            row_bytes *= extent
        whole = row_bytes * shape[0] <= max_read_bytes
    if whole:
        _read_whole(dsid, tid, shape)
        return
    _walk_chunk_index(dsid)
    rows = max(1, max_read_bytes // 2 // max(1, row_bytes))
    _read_rows(dsid, tid, shape, 0, rows)
    last = max(rows, shape[0] - rows)
    _read_rows(dsid, tid, shape, last, shape[0] - last)


def _check_reference(check: Callable | None) -> str | None:
    if check is None:
        return None
    module = getattr(check, "__module__", None)
    qualname = getattr(check, "__qualname__", "")
    if not module or "<" in qualname:
        raise TypeError(
            "check must be a module-level function so that a separate process can import it, "
            f"got {check!r}"
        )
    return f"{module}:{qualname}"


def _resolve_check(reference: str | None) -> Callable | None:
    if reference is None:
        return None
    import importlib

    module_name, qualname = reference.split(":", 1)
    obj = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def _verify_child() -> None:
    """Child side of :func:`verify_files`: one JSON line per file on stdout."""
    import sys

    request = json.loads(sys.stdin.readline())
    check = _resolve_check(request["check"])
    link_rule = _resolve_check(request.get("link_rule"))
    out = sys.stdout
    out.write(json.dumps({"ready": True}) + "\n")  # the clock of the first file starts now
    out.flush()
    max_read_bytes = request.get("max_read_bytes")
    for p in request["paths"]:
        result: dict = {"path": p, "error": None}
        try:
            _read_everything(p, check, max_read_bytes, link_rule)
        except H5StreamError as exc:
            result["error"] = type(exc).__name__
            result["message"] = str(exc)
            result.update(obj=exc.obj, expected=exc.expected, found=exc.found, hint=exc.hint)
        except Exception as exc:  # noqa: BLE001 - reported as an untyped failure to the parent
            result["error"] = "untyped:" + type(exc).__name__
            result["message"] = str(exc)
        out.write(json.dumps(result) + "\n")
        out.flush()


def _error_class(name: str) -> type[H5StreamError]:
    from h5stream import errors

    cls = getattr(errors, name, None)
    return cls if isinstance(cls, type) and issubclass(cls, H5StreamError) else FormatError


def verify_files(
    paths: list[str | os.PathLike],
    *,
    check: Callable[[h5py.File], None] | None = None,
    timeout: float = 10.0,
    max_read_bytes: int | None = None,
    link_rule: LinkRuleFor | None = None,
) -> list[H5StreamError | None]:
    """Open and read every object of each file in a separate process; return one result per file.

    Each result is None (the file opened with :func:`open_validated` and every
    attribute and dataset read in full) or the typed error reading raised: a
    :class:`FormatError` (subclass), or :class:`SourceNotFoundError` for a
    missing file.  External links are refused, except those ``link_rule(path)``
    accepts (a module-level function the reading process imports; never followed).  A file whose reading does not finish within
    ``timeout`` seconds (some corrupted objects make libhdf5 loop) or that makes
    libhdf5 crash is reported as a :class:`FormatError` saying so, and the
    caller's process is never affected.  Use it before trusting a file of
    unknown origin; ``check`` must be a module-level function (it is imported
    by the child process).  ``max_read_bytes`` bounds the raw data read per
    dataset (its first and last rows; for inputs of many gigabytes); None reads all.

    A stop noted in this process (:mod:`h5stream.stops`; its process group's Ctrl-C ends the reading process
    too) raises here, never reported as a file that crashed or hung the reader.
    """
    import select
    import subprocess
    import sys

    reference = _check_reference(check)
    link_reference = _check_reference(link_rule)
    pending = [os.fspath(p) for p in paths]
    results: dict[str, H5StreamError | None] = {}
    # The reading process's idle library threads (numpy's OpenBLAS starts one per core) sleep rather than
    # spin on the cores the caller's work uses (h5stream.cores.QUIET_WAITS; a value the caller set stays).
    env = {**os.environ, **quiet_waits(), "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    while pending:
        stops.raise_if_noted()  # a stop ended the last reading process (its process group's signal): no other
        child = subprocess.Popen(
            [sys.executable, "-c", _VERIFY_CHILD],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        try:
            child.stdin.write((json.dumps({"paths": pending, "check": reference, "link_rule": link_reference,
                                           "max_read_bytes": max_read_bytes}) + "\n").encode())
            child.stdin.close()
            fd = child.stdout.fileno()
            buffer = b""
            # Starting the child (imports) has its own allowance; each file then gets ``timeout``.
            deadline = time.monotonic() + _CHILD_START_SECONDS
            started = False
            while pending:
                ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
                chunk = os.read(fd, 65536) if ready else None
                if not chunk:
                    stops.raise_if_noted()  # not a crash or a hang of the file: the same stop ended the reader
                if not chunk and not started:
                    raise H5StreamError(
                        "the reader process did not start",
                        found=f"exit code {child.poll()}" if chunk is not None else "no answer in time",
                        hint=f"check that `{sys.executable} -c 'import h5stream'` works"
                        + (f" and that {reference} can be imported" if reference else ""),
                    )
                if chunk is None:
                    stuck = pending.pop(0)
                    results[stuck] = FormatError(
                        f"reading did not finish within {timeout:g} s",
                        path=stuck,
                        expected="a file that reads in bounded time",
                        found="a read that does not end (corrupted object)",
                        hint="the file is corrupted; restore it from a good copy",
                    )
                    break
                if not chunk:
                    code = child.wait()
                    crashed = pending.pop(0)
                    results[crashed] = FormatError(
                        "the HDF5 library crashed reading this file",
                        path=crashed,
                        found=f"reader process ended with code {code}",
                        hint="the file is corrupted or crafted; do not open it in-process",
                    )
                    break
                buffer += chunk
                while b"\n" in buffer and pending:
                    line, buffer = buffer.split(b"\n", 1)
                    done = json.loads(line)
                    deadline = time.monotonic() + timeout
                    if done.get("ready"):
                        started = True
                        continue
                    pending.remove(done["path"])
                    results[done["path"]] = _child_result(done)
        finally:
            if child.poll() is None:
                child.kill()
            child.wait()
            child.stdout.close()
    return [results[os.fspath(p)] for p in paths]


def _child_result(done: dict) -> H5StreamError | None:
    if done["error"] is None:
        return None
    if done["error"].startswith("untyped:"):
        return FormatError(
            f"reading raised an untyped {done['error'][8:]} ({done['message']})", path=done["path"]
        )
    cls = _error_class(done["error"])
    return cls(
        done["message"], path=done["path"], obj=done.get("obj"), expected=done.get("expected"),
        found=done.get("found"), hint=done.get("hint"), composed=True,
    )


def verify_file(
    path: str | os.PathLike,
    *,
    check: Callable[[h5py.File], None] | None = None,
    timeout: float = 10.0,
    max_read_bytes: int | None = None,
    link_rule: LinkRuleFor | None = None,
) -> None:
    """Raise the :class:`FormatError` reading ``path`` in full would raise; see :func:`verify_files`."""
    error = verify_files([path], check=check, timeout=timeout, max_read_bytes=max_read_bytes,
                         link_rule=link_rule)[0]
    if error is not None:
        raise error


validated._whole_file_check = verify_file  # open_validated(verify_timeout=...) runs this check

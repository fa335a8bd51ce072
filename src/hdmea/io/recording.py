"""The one reader of recording files: typed views of units, features, stimulus and metadata.

Every consumer of a finished recording (the report, the viewer, NWB export, the
SpikeInterface adapter, migrate, a session that resumes from a checkpoint) opens
it here, through :func:`open_recording`: the file is opened by
:func:`hdmea.io.hdf5_store.open_recording_hdf5` (HDF5 signature, recording
format, the unsafe-object scan, the checksum manifest attached) inside
:func:`h5stream.files.guard_read`, and every value a view returns is checked:
whole datasets against their digest in the file's manifest (chunks with
Fletcher32 by HDF5 as they are read), attributes with their object's set, text
as UTF-8.  A damaged value is a typed error naming the file and the object,
never numbers drawn as data.

The recording's figures are worked out here, once:

* the sampling rate (:attr:`Recording.sampling_rate`): ``/metadata/sampling_rate``,
  else the original pipeline's ``/metadata/acquisition_rate``, else the vendor
  metadata's ``/metadata/acquisition/sampling_rate``; the first one present must
  be one positive finite number (anything else is a :class:`RecordingFormatError`
  naming it).  A recording that states none is read at :data:`DEFAULT_SAMPLING_RATE`
  (the MCS systems' 20 kHz), :attr:`Recording.sampling_rate_stated` is False and
  :attr:`Recording.warnings` says so; exports that must not guess call
  :meth:`Recording.require_sampling_rate`.
* trials per movie occurrence (:meth:`Recording.stimulus_repeats`): from the stored
  stimulus configuration; a configuration that cannot be read is an error, never
  an empty answer.
* the display's frame period, the recording's duration, spike times in seconds
  and trials relative to their start.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np

from h5stream import checksums
from h5stream.errors import ChecksumError, FormatError, H5StreamError, OpenInThisProcessError
from h5stream.files import guard_read, open_validated
from h5stream.files.validated import Descriptions
from h5stream.tree import Group, decode_node, is_hidden, node_from_h5
from h5stream.tree.read import EAGER_LIMIT, Described, checked_text, describe_dataset
from hdmea.errors import RecordingFormatError, UnknownUnitError
from hdmea.io import _files
from hdmea.io.hdf5_store import check_recording_format, open_recording_hdf5

__all__ = ["open_recording", "Recording", "UnitView", "FeatureView", "SectionedSpikes", "DEFAULT_SAMPLING_RATE",
           "NO_POSITION", "visible_members", "read_whole", "read_selection", "SourceFile", "read_lazy_tree",
           "marked_as_recording"]

#: The rate a recording that states none is read at (Hz): the MCS CMOS-MEA systems' 20 kHz.
DEFAULT_SAMPLING_RATE = 20000.0
#: A unit's ``row``/``col`` when the file does not store it (stored positions are the vendor's 1..65).
NO_POSITION = 0
#: Where the sampling rate may be stated, in the order they are asked.
RATE_NODES = ("metadata/sampling_rate", "metadata/acquisition_rate", "metadata/acquisition/sampling_rate")
#: Feature attributes that describe the extraction, not the unit (left out of a feature's values and of the
#: exporters' columns).
BOOKKEEPING_ATTRS = frozenset({"name", "version", "params", "params_hash", "extracted_at", "extractor"})


def visible_members(group) -> list[str]:
    """The members of ``group`` a reader lists (the tree's internal members left out)."""
    return [name for name in group if not is_hidden(name)]


def read_whole(ds: h5py.Dataset) -> np.ndarray:
    """All of ``ds``, a dataset of an open recording, checked against its digest in the file's manifest
    (a mismatch is a :class:`~h5stream.errors.ChecksumError` naming it); low-level failures are typed."""
    with guard_read(ds.file.filename, ds.name):
        return np.asarray(checksums.check_dataset(ds, ds[()]))


def read_selection(ds: h5py.Dataset, selection) -> np.ndarray:
    """Part of ``ds`` (what streams and views of large arrays read).  A part cannot be checked against the
    whole dataset's digest; chunks with Fletcher32 are checked by HDF5 as they are read."""
    with guard_read(ds.file.filename, ds.name):
        return np.asarray(ds[selection])


def _damaged(message: str, path, obj: str, expected: str, found) -> RecordingFormatError:
    return RecordingFormatError(message, path=path, obj=obj, expected=expected, found=str(found)[:200],
                                hint="the file is damaged; restore it from a good copy or write it again")


def _scalar(value, path, obj: str):
    """A Python scalar for a stored value (1-element arrays unwrapped); text checked as UTF-8."""
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.reshape(()).item()
    if isinstance(value, (bytes, str)):
        return checked_text(value, path, obj)
    if isinstance(value, np.generic):
        return value.item()
    return value


class _Node:
    """An object of the open recording; its attributes and datasets come back checked."""

    def __init__(self, recording: Recording, group: h5py.Group):
        self._recording = recording
        self._group = group

    @property
    def name(self) -> str:
        """The object's path inside the file."""
        return self._group.name

    def __contains__(self, member: str) -> bool:
        return member in self._group

    def members(self) -> list[str]:
        return visible_members(self._group)

    def attr(self, key: str, default=None):
        """Attribute ``key`` as a Python value (``default`` when absent), checked; unreadable is a typed error."""
        return self._recording.attr(self._group, key, default)

    def attr_int(self, key: str, default: int) -> int:
        """Integer attribute ``key``; ``default`` when absent, a typed error when it is no integer."""
        value = self.attr(key)
        if value is None:
            return default
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise _damaged("attribute is not an integer", self._recording.path, f"{self.name.rstrip('/')}/@{key}",
                           "an integer", repr(value))
        return value

    def attrs(self) -> dict[str, object]:
        """Every attribute but the tree's own bookkeeping, checked."""
        return {key: self.attr(key) for key in self._group.attrs
                if not key.startswith("h5stream") and key != checksums.MANIFEST_ATTR}

    def array(self, member: str, dtype=None) -> np.ndarray:
        """All of dataset ``member``, checked against its digest."""
        return self._recording.read(f"{self.name.rstrip('/')}/{member}", dtype)


class FeatureView(_Node):
    """One feature group of a unit: its arrays (datasets) and scalars (attributes)."""

    def scalars(self) -> dict[str, object]:
        """The feature's numeric and boolean values (bookkeeping, text and arrays left out)."""
        return {key: value for key, value in self.attrs().items()
                if key not in BOOKKEEPING_ATTRS and not isinstance(value, (str, np.ndarray))}


class SectionedSpikes:
    """A unit's spikes of one movie cut into trials: ``spike_times`` (samples), ``trial_offsets``
    (``n_trials + 1`` positions into them) and ``trial_bounds`` (``n_trials`` x 2 samples)."""

    def __init__(self, movie: str, spike_times: np.ndarray, trial_offsets: np.ndarray, trial_bounds: np.ndarray,
                 sampling_rate: float):
        self.movie = movie
        self.spike_times = spike_times
        self.trial_offsets = trial_offsets
        self.trial_bounds = trial_bounds
        self.sampling_rate = sampling_rate

    @property
    def n_trials(self) -> int:
        return int(self.trial_bounds.shape[0])

    @property
    def trial_duration_s(self) -> float:
        """The median trial length in seconds (0 without trials)."""
        if not self.trial_bounds.size:
            return 0.0
        return float(np.median(self.trial_bounds[:, 1] - self.trial_bounds[:, 0]) / self.sampling_rate)

    def trials_s(self) -> list[np.ndarray]:
        """Per trial, the spike times in seconds from the trial's start."""
        o, b = self.trial_offsets, self.trial_bounds
        return [(self.spike_times[o[i]:o[i + 1]] - b[i, 0]) / self.sampling_rate for i in range(self.n_trials)]


class UnitView(_Node):
    """One unit: its electrode, spike train, features and sectioned spikes."""

    @property
    def uid(self) -> str:
        return self.name.rsplit("/", 1)[-1]

    def position(self) -> tuple[int, int]:
        """The unit's electrode (row, col), 1..65; :data:`NO_POSITION` for what the file does not store.

        A value that is no integer or lies off the chip is a typed error naming the attribute.
        """
        out = []
        for key in ("row", "col"):
            value = self.attr(key)
            if value is None:
                out.append(NO_POSITION)
                continue
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65:
                raise _damaged(f"unit {key} is not an electrode {key}", self._recording.path, f"{self.name}/@{key}",
                               "an integer in 1..65", repr(value)[:80])
            out.append(int(value))
        return out[0], out[1]

    @property
    def spike_count(self) -> int:
        """How many spikes the unit has (the dataset's length; nothing is read)."""
        return int(self._group["spike_times"].shape[0]) if "spike_times" in self._group else 0

    def spike_times(self) -> np.ndarray:
        """The spike train in samples (int64), checked; empty when the unit stores none."""
        if "spike_times" not in self._group:
            return np.zeros(0, dtype=np.int64)
        return self.array("spike_times", np.int64).ravel()

    def spike_times_s(self) -> np.ndarray:
        """The spike train in seconds from the recording's start."""
        return self.spike_times() / self._recording.sampling_rate

    def feature_names(self) -> list[str]:
        return visible_members(self._group["features"]) if "features" in self._group else []

    def has_feature(self, name: str) -> bool:
        return "features" in self._group and name in self._group["features"]

    def feature(self, name: str) -> FeatureView:
        if not self.has_feature(name):
            raise KeyError(f"{self._recording.path}: unit {self.uid} has no feature {name!r}")
        return FeatureView(self._recording, self._group["features"][name])

    def sectioned_movies(self) -> list[str]:
        return visible_members(self._group["spike_times_sectioned"]) if "spike_times_sectioned" in self._group else []

    def sectioned(self, movie: str) -> SectionedSpikes:
        """The unit's spikes of ``movie`` by trial, checked; inconsistent offsets are a typed error."""
        base = f"spike_times_sectioned/{movie}"
        values = self.array(f"{base}/spike_times", np.int64).ravel()
        offsets = self.array(f"{base}/trial_offsets", np.int64).ravel()
        bounds = self.array(f"{base}/trial_bounds", np.int64)
        if bounds.size % 2:
            raise _damaged("trial bounds are not pairs", self._recording.path, f"{self.name}/{base}/trial_bounds",
                           "an (n, 2) array", f"shape {bounds.shape}")
        bounds = bounds.reshape(-1, 2)
        if (offsets.size != bounds.shape[0] + 1 or (offsets.size and (offsets[0] != 0 or offsets[-1] != values.size))
                or np.any(np.diff(offsets) < 0)):
            raise _damaged("trial offsets do not cut the spike times into the trials", self._recording.path,
                           f"{self.name}/{base}/trial_offsets",
                           f"{bounds.shape[0] + 1} non-decreasing offsets from 0 to {values.size}",
                           offsets[:8].tolist())
        return SectionedSpikes(movie, values, offsets, bounds, self._recording.sampling_rate)


class Recording:
    """A recording file open for reading (see the module's description); made by :func:`open_recording`."""

    def __init__(self, f: h5py.File, path: Path):
        self.file = f
        self.path = path
        self._rate: tuple[float, bool] | None = None
        self._metadata: dict | None = None

    @classmethod
    def open(cls, path: str | os.PathLike, *, verify: bool = True, visit=None) -> Recording:
        """The recording at ``path`` open for reading (validated, checksummed) until :meth:`close`; a reader
        that outlives one block (the SpikeInterface sorting) uses this, every other one :func:`open_recording`."""
        path = Path(path)
        return cls(open_recording_hdf5(path, "r", verify=verify, visit=visit), path)

    def close(self) -> None:
        if self.file.id.valid:
            self.file.close()

    @classmethod
    def of(cls, f: h5py.File | Recording) -> Recording:
        """The reader of a recording file the caller already has open (read through :func:`open_recording`,
        or :func:`~hdmea.io.hdf5_store.open_recording_hdf5`, its values are checked against the manifest)."""
        return f if isinstance(f, Recording) else cls(f, Path(f.filename))

    def dataset(self, node: str) -> h5py.Dataset:
        """The dataset at ``node`` for its shape, type and layout (read its values with :meth:`read` or
        :meth:`read_part`); ``KeyError`` when there is none."""
        ds = self.file.get(node) if node not in ("", "/") else None
        if not isinstance(ds, h5py.Dataset):
            raise KeyError(f"{self.path}: no dataset {node}")
        return ds

    # ----------------------------------------------------------------- checked values

    def read(self, node: str, dtype=None) -> np.ndarray:
        """All of the dataset at ``node``, checked against its digest (a mismatch is a
        :class:`~h5stream.errors.ChecksumError` naming it)."""
        values = read_whole(self.dataset(node))
        return values if dtype is None else np.asarray(values, dtype=dtype)

    def read_part(self, node: str, selection) -> np.ndarray:
        """Part of the dataset at ``node`` (what the viewer draws of large arrays).  A partial read cannot be
        checked against the whole dataset's digest; chunks with Fletcher32 are checked by HDF5."""
        return read_selection(self.dataset(node), selection)

    def attr(self, obj, key: str, default=None):
        """Attribute ``key`` of ``obj`` (a group, dataset or path), checked; ``default`` when absent."""
        if isinstance(obj, str):
            obj = self.file[obj]
        where = f"{obj.name.rstrip('/')}/@{key}"
        try:
            raw = checksums.attr_value(obj, key)
        except H5StreamError:
            raise
        except (OSError, RuntimeError, KeyError, TypeError, ValueError) as exc:
            raise _damaged("attribute cannot be read", self.path, where, "a readable value",
                           f"{type(exc).__name__}: {exc}") from exc
        return default if raw is None else _scalar(raw, self.path, where)

    def node(self, node: str):
        """The decoded value of the group or dataset at ``node`` (the tree's reader, checked)."""
        with guard_read(self.path, node):
            return decode_node(node_from_h5(self.file[node]))

    # ----------------------------------------------------------------- root and metadata

    @property
    def dataset_id(self) -> str:
        value = self.attr(self.file, "dataset_id")
        return str(value) if value is not None else self.path.stem

    def metadata(self) -> dict:
        """``/metadata`` decoded (empty when the file has none)."""
        if self._metadata is None:
            value = self.node("metadata") if "metadata" in self.file else {}
            self._metadata = value if isinstance(value, dict) else {}
        return self._metadata

    @property
    def sampling_rate(self) -> float:
        """The acquisition rate in Hz (see the module's description for the rule)."""
        return self._sampling_rate()[0]

    @property
    def sampling_rate_stated(self) -> bool:
        """False when the file states no rate and :data:`DEFAULT_SAMPLING_RATE` is assumed."""
        return self._sampling_rate()[1]

    def require_sampling_rate(self) -> float:
        """The rate the file states; a :class:`RecordingFormatError` when it states none."""
        rate, stated = self._sampling_rate()
        if not stated:
            raise RecordingFormatError("the recording has no sampling rate", path=self.path,
                                       obj="/" + RATE_NODES[0], expected="a positive number of samples per second",
                                       found="none of " + ", ".join("/" + n for n in RATE_NODES),
                                       hint="write the rate with write_metadata(f, {'sampling_rate': ...})")
        return rate

    def _sampling_rate(self) -> tuple[float, bool]:
        if self._rate is None:
            self._rate = (DEFAULT_SAMPLING_RATE, False)
            for node in RATE_NODES:
                if node in self.file:
                    self._rate = (self._checked_rate(node), True)
                    break
        return self._rate

    def _checked_rate(self, node: str) -> float:
        obj = self.file[node]
        value = np.asarray(self.read(node) if isinstance(obj, h5py.Dataset) else np.nan).ravel()
        if value.size != 1 or value.dtype.kind not in "iuf" or not np.isfinite(value[0]) or value[0] <= 0:
            raise _damaged("the sampling rate is not a positive number", self.path, "/" + node,
                           "one positive number (Hz)",
                           f"{value.size} value(s) of {value.dtype}: {value[:3].tolist()!r}")
        return float(value[0])

    @property
    def warnings(self) -> list[str]:
        """What the reader assumed about this file (empty for a complete recording)."""
        out = []
        if not self.sampling_rate_stated:
            out.append(f"{self.path.name}: no sampling rate stored; read at {DEFAULT_SAMPLING_RATE:g} Hz")
        return out

    # ----------------------------------------------------------------- units

    @property
    def unit_ids(self) -> list[str]:
        return visible_members(self.file["units"]) if "units" in self.file else []

    def unit(self, uid: str) -> UnitView:
        group = self.file["units"].get(uid) if "units" in self.file and uid and "/" not in uid else None
        if not isinstance(group, h5py.Group):
            raise UnknownUnitError(f"Unit {uid!r} not found", path=self.path, obj=f"/units/{uid}",
                                   expected="a unit of /units", found="no such unit")
        return UnitView(self, group)

    def units(self) -> Iterator[UnitView]:
        for uid in self.unit_ids:
            yield self.unit(uid)

    # ----------------------------------------------------------------- stimulus and derived figures

    def frame_times(self, name: str = "default") -> np.ndarray | None:
        """``/stimulus/frame_time/<name>`` in samples (None when absent), checked."""
        node = f"stimulus/frame_time/{name}"
        return self.read(node, np.float64).ravel() if node in self.file else None

    @property
    def frame_period_ms(self) -> float:
        """The display's frame period in ms (median interval of the default frame times), NaN if unknown."""
        times = self.frame_times()
        if times is None or times.size < 2:
            return float("nan")
        period = float(np.median(np.diff(times)))
        return period / self.sampling_rate * 1000.0 if period > 0 else float("nan")

    def section_times(self) -> dict[str, np.ndarray]:
        """Movie -> its (n, 2) section times in samples, checked."""
        if "stimulus/section_time" not in self.file:
            return {}
        return {movie: self.read(f"stimulus/section_time/{movie}", np.int64).reshape(-1, 2)
                for movie in visible_members(self.file["stimulus/section_time"])}

    def stimulus_repeats(self) -> dict[str, int]:
        """Movie -> trials per occurrence, from the stored stimulus configuration (empty when none is stored).

        A configuration that cannot be read, or whose repeats are not positive integers, is a
        :class:`RecordingFormatError` naming ``/stimulus/config/@config_json``.
        """
        if "stimulus/config" not in self.file:
            return {}
        raw = self.attr(self.file["stimulus/config"], "config_json")
        if raw is None:
            return {}
        obj = "/stimulus/config/@config_json"
        try:
            configs = json.loads(raw).get("trial_configs") or {}
            repeats = {str(name): tc.get("repeat", 1) for name, tc in configs.items()}
        except (TypeError, ValueError, AttributeError) as exc:
            raise _damaged("the stored stimulus configuration cannot be read", self.path, obj,
                           "JSON with trial_configs of integer repeats", f"{type(exc).__name__}: {exc}") from exc
        for name, repeat in repeats.items():
            if isinstance(repeat, bool) or not isinstance(repeat, int) or repeat < 1:
                raise _damaged("a movie's repeat is not a positive integer", self.path, obj,
                               "trial_configs of integer repeats >= 1", f"{name}: {repeat!r}")
        return repeats

    def duration_s(self) -> float:
        """The recording's length in seconds: the vendor's ``recording_duration_us``, else the last spike's
        time; NaN when neither is known."""
        node = "metadata/acquisition/recording_duration_us"
        if node in self.file and isinstance(self.file[node], h5py.Dataset):
            value = self.read(node, np.float64).ravel()
            if value.size and np.isfinite(value[0]) and value[0] > 0:
                return float(value[0]) / 1e6
        last = 0
        for unit in self.units():
            count = unit.spike_count
            if count:
                last = max(last, int(self.read_part(f"{unit.name}/spike_times", count - 1)))
        return last / self.sampling_rate if last > 0 else float("nan")


@contextlib.contextmanager
def open_recording(path: str | os.PathLike, *, verify: bool = True, visit=None) -> Iterator[Recording]:
    """The recording at ``path`` open for reading, validated and checksummed; closed on leaving the block.

    Low-level read failures inside the block become typed :class:`~h5stream.errors.FormatError`
    naming the file.  ``verify=False`` reads values as stored (no digest checks).  ``visit`` sees
    every object of the open-time scan (:class:`hdmea.io._unit_scan.UnitObjects` keeps the units').
    """
    recording = Recording.open(path, verify=verify, visit=visit)
    with recording.file, guard_read(recording.path, "/"):
        yield recording


def _identity(path: Path) -> tuple[int, int, int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns


class SourceFile:
    """A recording opened read-only on first access, shared by the lazy arrays of a tree read from it."""

    def __init__(self, path: Path, file: h5py.File | None = None) -> None:
        self.path = Path(path)
        self._file: h5py.File | None = file  # already open read-only (the checks' handle), else on first access
        self._loaded = _identity(self.path)  # the file the tree is read from, as it was then

    def replaced_since_loaded(self) -> bool:
        """Whether the file at :attr:`path` is now another one than when the tree was read (another inode,
        size or modification time): a value that differs from its digest then says the source was replaced,
        not that it is damaged."""
        return self._loaded is not None and _identity(self.path) != self._loaded

    def unchanged_descriptor(self) -> int | None:
        """The descriptor of the file the tree was read from, still open (the handle the open-time checks
        opened) and still the file loaded (device, inode, size, modification time); else None."""
        f = self._file
        if f is None or self._loaded is None or not f.id.valid or f.driver != "sec2":
            return None
        try:
            fd = f.id.get_vfd_handle()
            stat = os.fstat(fd)
        except (OSError, RuntimeError, ValueError, TypeError):
            return None
        if (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns) != self._loaded:
            return None
        return fd

    def __call__(self) -> h5py.File:
        if self._file is None or not self._file.id.valid:
            try:
                self._file = h5py.File(self.path, "r", locking=False)
            except (OSError, RuntimeError, ValueError) as exc:
                _files.refuse_if_open_here(self.path, exc)  # a handle of this process, not damage
                raise FormatError(f"cannot open the HDF5 file ({exc})", path=self.path,
                                  hint="the file may have been replaced or removed since it was checked") from exc
        return self._file

    def close(self) -> None:
        if self._file is not None and self._file.id.valid:
            self._file.close()
        self._file = None


#: At most this many objects the open-time scan opened stay open for the lazy tree's walk, and at most
#: :data:`KEPT_FACTS` datasets' type and shape are kept from it: libhdf5 holds about 15 kB per open object
#: (a session of 224 units x 200 trials has about 50,000), so keeping them all made a reopen's memory grow
#: with the file's object count (774 MB) instead of staying within a session's memory budget; the rest are
#: opened and asked again by the walk.
KEPT_OBJECTS = 1024
KEPT_FACTS = 16384


class _BoundedFacts(dict):
    """The scan's ``facts`` (full name -> (type id, shape)), keeping only the first :data:`KEPT_FACTS`."""

    def __setitem__(self, key, value) -> None:
        if len(self) < KEPT_FACTS or key in self:
            super().__setitem__(key, value)


def _under_hidden(full: bytes) -> bool:
    """Whether the object named ``full`` is, or lies below, one of the tree's internal members (never read)."""
    return b"__" in full and any(is_hidden(part.decode("utf-8", "replace")) for part in full.split(b"/"))


def read_lazy_tree(path: str | os.PathLike, *, verify: bool = True) -> tuple[Group, SourceFile]:
    """The recording at ``path`` as the engine's node tree, its arrays left on disk (what a session resumes
    from), and the source they are read from (close it when done).

    The file is checked the way every read checks it (signature, recording format, unsafe objects); with
    ``verify`` every value is checked against the file's checksum manifest when it is read (a mismatch is
    :class:`~h5stream.errors.ChecksumError` naming the object).  Errors are the engine's typed errors.
    """
    path = Path(path)
    opened: dict = {}  # the first objects the scan opened, kept for the tree's walk (not opened twice)
    facts: dict = _BoundedFacts()  # the first datasets' type and shape, as the scan asked them
    described: dict = {}  # datasets of numbers without attributes, built by the walk without opening them

    def keep(full: bytes, oid) -> bool:
        if isinstance(oid, h5py.h5d.DatasetID) and not _under_hidden(full):
            known = describe_dataset(oid, facts.get(full))
            if known is not None:
                described[full] = known
                facts.pop(full, None)
                return False
        if oid is None or len(opened) >= KEPT_OBJECTS:
            return False  # the walk opens it again: libhdf5 holds about 15 kB per open object
        opened[full] = oid
        return True

    checked = Descriptions(EAGER_LIMIT)  # the plain datasets the scan checked in compiled code, described there
    try:
        f = open_validated(path, check=lambda f: check_recording_format(f, path), visit=keep, facts=facts,
                           describe=checked, locking=False)
    except OpenInThisProcessError as exc:
        raise _files.open_here_recording_error(path, exc) from exc
    described.update((item[0], Described._make(item[1:])) for item in checked if not _under_hidden(item[0]))
    source = SourceFile(path, f)
    try:
        with guard_read(path, "/"):
            manifest = checksums.attach(f, verify=verify, path=path)
            return node_from_h5(f, lazy=True, opener=source, manifest=manifest, opened=opened,
                                facts=facts, described=described, listings=checked.listings), source
    except (H5StreamError, ChecksumError):
        source.close()
        raise
    finally:
        for oid in opened.values():  # not reached by the walk (hidden objects): closed now
            oid.close()


def marked_as_recording(path: str | os.PathLike) -> bool:
    """Whether the HDF5 file at ``path`` says it is a recording: ours (root ``h5stream_format``) or the
    original pipeline's (root ``dataset_id``); ``hdmea verify`` tells them from other programs' files."""
    with h5py.File(path, "r") as f:
        return "h5stream_format" in f.attrs or "dataset_id" in f.attrs

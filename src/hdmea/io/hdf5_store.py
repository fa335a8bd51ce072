"""The recording store: one HDF5 file per recording in the layout downstream code relies on.

Layout (root attributes ``dataset_id``, ``hdmea_pipeline_version``, ``created_at``,
``updated_at``, ``stage1_completed``, ``stage1_params_hash``, ``features_extracted``,
``h5stream_format``, ``h5stream_format_version``)::

    /units/{unit_id}/spike_times      uint64 samples
    /units/{unit_id}/waveform         float32
    /units/{unit_id}/features/{name}/ arrays as datasets, scalars as attributes
    /stimulus/light_reference/{rate}  float32
    /stimulus/frame_time/{name}       uint64
    /stimulus/section_time/{movie}    uint64 (n, 2)
    /metadata/...                     nested dicts as groups, scalars as 1-element datasets
    /pipeline/session_info/           completed_steps, warnings (+ saved_at, checkpoint_name)

Every write, in immediate mode (functions below on an open file) and in a
deferred :class:`hdmea.pipeline.PipelineSession` (staged in memory, saved once),
goes through the same two stages, which is why both modes produce the same
file: *builders* turn user values into a small node tree (:class:`Group`,
:class:`Dataset`), and one *writer* (:func:`write_node`) turns nodes into HDF5
objects.  Readers turn HDF5 objects back into nodes (:func:`node_from_h5`) and
one decoder (:func:`decode_node`) turns nodes into values, so a value read from
a session and the same value read from a file are identical.

Exact types: values that HDF5 cannot tell apart carry a small type tag
(attribute ``h5stream_type`` on datasets and groups, ``h5stream_attr_types`` for
attributes), so ints stay ``int``, bools ``bool``, text ``str`` (never bytes),
lists stay lists, tuples tuples, ``None`` stays ``None`` and integer dict keys
stay integers.  Attribute values too large for an HDF5 attribute (over
:data:`ATTR_LIMIT` bytes) are stored as hidden objects, written by the same
writer as any value, and read back as attributes (tag ``dataset`` in
``h5stream_attr_types``): a group's large attribute ``a`` is its child
``__attr__a``; a dataset's large attribute ``a`` of dataset ``parent/d`` is
``parent/__dsattr__d/a`` (a dataset cannot have children).  Hidden names never
appear in listings, and a dataset is always replaced or removed together with
its hidden sibling.
"""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import json
import logging
import os
import posixpath
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
from h5py._objects import phil as _h5py_lock
import numpy as np

from h5stream import __version__ as _h5stream_version
from h5stream.errors import (
    EncodingError,
    WriteError,
    FormatError,
    H5StreamWarning,
    SourceNotFoundError,
    TargetExistsError,
    UnsafeNameError,
    WriterClaimError,
)
from h5stream.files import (
    AtomicFile,
    check_hdf5_signature,
    create_atomic,
    scan_unsafe_objects,
    update_atomic,
)
from h5stream.names import check_name as _check_link_name
from h5stream import staging as _staging
from h5stream.staging import LIBVER, FileArray, copy_dataset, native_hdf5, store_array
from hdmea.errors import HdmeaError, RecordingFormatError

__all__ = [
    "create_recording_hdf5",
    "open_recording_hdf5",
    "write_units",
    "write_stimulus",
    "write_metadata",
    "write_feature_to_unit",
    "mark_stage1_complete",
    "get_stage1_status",
    "list_units",
    "list_features",
    "write_source_files",
    "params_hash",
    "RecordingFile",
    "RecordingExistsError",
    "RecordingNotFoundError",
    "RecordingLockedError",
    "CorruptRecordingError",
    "UnknownUnitError",
    "SuffixWarning",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "PIPELINE_VERSION",
]

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

FORMAT_NAME = "hdmea-recording"
FORMAT_VERSION = "1"
SUPPORTED_VERSIONS = ("1",)
PIPELINE_VERSION = _h5stream_version

TYPE_ATTR = "h5stream_type"
KEYS_ATTR = "h5stream_keys"
ATTR_TYPES_ATTR = "h5stream_attr_types"
INTERNAL_ATTRS = frozenset({TYPE_ATTR, KEYS_ATTR, ATTR_TYPES_ATTR})
HIDDEN_PREFIX = "__attr__"
#: Prefix of the hidden group ``__dsattr__<dataset name>`` beside a dataset, holding one
#: object per attribute of that dataset too large for an HDF5 attribute.
DATASET_ATTRS_PREFIX = "__dsattr__"
STAGING_PREFIX = "__h5stream_"
HIDDEN_PREFIXES = (HIDDEN_PREFIX, DATASET_ATTRS_PREFIX, STAGING_PREFIX)
#: Attribute payloads above this many bytes go to a hidden dataset (HDF5's
#: default object header holds at most 64 KiB of attributes).
ATTR_LIMIT = 60_000

TIMESTAMP_ATTRS = frozenset({"created_at", "updated_at", "saved_at", "extracted_at"})


# =========================================================================== errors


class RecordingExistsError(TargetExistsError, HdmeaError):
    """The recording file exists and ``overwrite`` was not requested."""


class RecordingNotFoundError(SourceNotFoundError, HdmeaError):
    """The recording file does not exist."""


class RecordingLockedError(WriterClaimError, HdmeaError):
    """Another writer holds the recording file."""


class CorruptRecordingError(RecordingFormatError):
    """The recording file cannot be read."""


class UnknownUnitError(HdmeaError, KeyError):
    """A unit id that the recording does not hold."""

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0] if self.args else ""


class SuffixWarning(H5StreamWarning):
    """A recording file name does not end with ``.h5``."""


def _locked_error(path) -> RecordingLockedError:
    err = RecordingLockedError(
        f"File is already open for writing: {path}. "
        "HDF5 supports single-writer access only. "
        "Close the file in other processes before writing."
    )
    err.path = os.fspath(path)
    return err


def _corrupt_error(path) -> CorruptRecordingError:
    err = CorruptRecordingError(
        f"Cannot read HDF5 file: {path}. The file may be corrupted or incomplete."
    )
    err.path = os.fspath(path)
    return err


# =========================================================================== names


def check_name(name, *, what: str = "name", path=None) -> str:
    """A safe HDF5 link or attribute name (see :func:`h5stream.names.check_name`) that is valid UTF-8."""
    _check_link_name(name, what=what, path=path)
    if not _utf8_ok(name):
        raise UnsafeNameError(f"{what} {name!r} is not valid UTF-8 text", path=path,
                              expected="text without lone surrogates", found=repr(name), hint="rename it")
    return name


def check_member_name(name, *, what: str = "name", path=None) -> str:
    """A safe name (see :func:`check_name`) for a group or dataset, outside the store's reserved names."""
    check_name(name, what=what, path=path)
    if is_hidden(name):
        raise UnsafeNameError(f"{what} {name!r} is reserved for internal use", path=path,
                              expected="a name not starting with " + " or ".join(map(repr, HIDDEN_PREFIXES)),
                              found=repr(name), hint="rename it")
    return name


def check_attr_name(name, *, what: str = "attribute name", path=None) -> str:
    check_name(name, what=what, path=path)
    if name in INTERNAL_ATTRS:
        raise UnsafeNameError(f"{what} {name!r} is reserved for type information", path=path,
                              expected="another name", found=repr(name), hint="rename it")
    return name


def _utf8_ok(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _plain_text(text: str) -> bool:
    """True when HDF5 can hold ``text`` as a variable-length UTF-8 string (no NUL, valid UTF-8)."""
    return "\x00" not in text and _utf8_ok(text)


# =========================================================================== nodes


class Group:
    """A group to be written: attributes (decoded values) and children by name."""

    __slots__ = ("attrs", "children", "tag", "keys")

    def __init__(self, attrs=None, children=None, tag: str | None = None, keys: list | None = None):
        self.attrs: dict[str, Any] = attrs if attrs is not None else {}
        self.children: dict[str, Group | Dataset] = children if children is not None else {}
        self.tag = tag
        self.keys = keys

    def __repr__(self) -> str:
        return f"Group({len(self.children)} children, {len(self.attrs)} attrs, tag={self.tag!r})"


class Dataset:
    """A dataset to be written: an array (in memory or a :class:`FileArray`) and attributes."""

    __slots__ = ("data", "attrs", "tag")

    def __init__(self, data, attrs=None, tag: str | None = None):
        self.data = data
        self.attrs: dict[str, Any] = attrs if attrs is not None else {}
        self.tag = tag

    def __repr__(self) -> str:
        return f"Dataset(shape={getattr(self.data, 'shape', None)}, dtype={getattr(self.data, 'dtype', None)})"


Node = Group | Dataset


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="microseconds")


# =========================================================================== typed JSON


def _tj_encode(value):
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value
    if isinstance(value, np.ndarray):
        return {"__ndarray__": value.dtype.str, "shape": list(value.shape), "v": value.tolist()}
    if isinstance(value, np.generic):
        return {"__np__": value.dtype.str, "v": value.item()}
    if isinstance(value, list):
        return [_tj_encode(v) for v in value]
    if isinstance(value, tuple):
        return {"__tuple__": [_tj_encode(v) for v in value]}
    if isinstance(value, Mapping):
        return {"__dict__": [[_tj_encode(k), _tj_encode(v)] for k, v in value.items()]}
    if isinstance(value, bytes):
        return {"__bytes__": base64.b64encode(value).decode("ascii")}
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise EncodingError(
        f"cannot store a value of type {type(value).__name__}",
        expected="None, bool, int, float, str, bytes, list, tuple, dict or a numpy array/scalar",
        found=type(value).__name__,
        hint="convert it to one of those types first",
    )


def _tj_decode(value):
    if isinstance(value, list):
        return [_tj_decode(v) for v in value]
    if isinstance(value, dict):
        if "__tuple__" in value:
            return tuple(_tj_decode(v) for v in value["__tuple__"])
        if "__dict__" in value:
            return {_freeze(_tj_decode(k)): _tj_decode(v) for k, v in value["__dict__"]}
        if "__np__" in value:
            return np.dtype(value["__np__"]).type(value["v"])
        if "__ndarray__" in value:
            return np.array(value["v"], dtype=np.dtype(value["__ndarray__"])).reshape(value["shape"])
        if "__bytes__" in value:
            return base64.b64decode(value["__bytes__"])
    return value


def _freeze(key):
    return tuple(_freeze(k) for k in key) if isinstance(key, (list, tuple)) else key


def typed_json_dumps(value) -> str:
    # ASCII escapes keep NUL characters and lone surrogates storable as HDF5 text.
    return json.dumps(_tj_encode(value), ensure_ascii=True, allow_nan=True)


def typed_json_loads(text: str):
    return _tj_decode(json.loads(text))


# =========================================================================== attribute values


def _homogeneous_kind(items) -> str | None:
    """'bool', 'int', 'float' or 'str' when every item is of that Python type, else None."""
    if not items:
        return "str"
    first = type(items[0])
    if first not in (bool, int, float, str):
        return None
    if any(type(v) is not first for v in items):
        return None
    if first is int and any(not (-(2**63) <= v < 2**63) for v in items):
        return None
    if first is str and not all(_plain_text(v) for v in items):
        return None
    return first.__name__


_KIND_DTYPES = {"bool": np.bool_, "int": np.int64, "float": np.float64, "str": h5py.string_dtype("utf-8")}


def encode_attr(value) -> tuple[Any, str | None]:
    """(value as stored in an HDF5 attribute, type tag or None)."""
    if isinstance(value, str):
        return (value, None) if _plain_text(value) else (typed_json_dumps(value), "json")
    if isinstance(value, (bool, np.bool_)):
        return np.bool_(value), None
    if isinstance(value, int):
        if -(2**63) <= value < 2**63:
            return np.int64(value), None
        return typed_json_dumps(value), "json"
    if isinstance(value, float):
        return np.float64(value), None
    if value is None:
        return "", "none"
    if isinstance(value, np.generic):
        if value.dtype.kind in "biufc":
            return value, "npscalar"
        return typed_json_dumps(value), "json"
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "biuf" and value.ndim >= 1:
            return value, None
        if value.dtype.kind == "U":
            return value.astype(object), "ndarray:U"
        return typed_json_dumps(value), "json"
    if isinstance(value, (list, tuple)):
        kind = _homogeneous_kind(value)
        if kind is not None:
            tag = "list" if isinstance(value, list) else "tuple"
            return np.array(list(value), dtype=_KIND_DTYPES[kind]).reshape(len(value)), f"{tag}:{kind}"
        return typed_json_dumps(value), "json"
    if isinstance(value, os.PathLike):
        return os.fspath(value), None
    return typed_json_dumps(value), "json"


def _text(value) -> str:
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else str(value)


def decode_attr(value, tag: str | None):
    """The Python value of a stored attribute (inverse of :func:`encode_attr`)."""
    if tag is None:
        if isinstance(value, bytes):
            return value.decode("utf-8", "surrogateescape")
        if isinstance(value, np.bool_):
            return bool(value)
        if isinstance(value, np.int64):
            return int(value)
        if isinstance(value, np.float64):
            return float(value)
        if isinstance(value, np.ndarray) and value.dtype.kind == "O":
            return np.array([_text(v) for v in value.ravel()], dtype=object).reshape(value.shape)
        return value
    if tag == "none":
        return None
    if tag == "json":
        return typed_json_loads(_text(value))
    if tag == "npscalar":
        return value
    if tag == "ndarray:U":
        return np.array([_text(v) for v in np.asarray(value).ravel()]).reshape(np.shape(value))
    container, _, kind = tag.partition(":")
    if container in ("list", "tuple"):
        items = np.asarray(value).ravel().tolist()
        if kind == "str":
            items = [_text(v) for v in items]
        return items if container == "list" else tuple(items)
    raise FormatError("unknown attribute type tag", expected="a tag this version writes", found=repr(tag),
                      hint="upgrade h5stream")


def _stored_nbytes(stored) -> int:
    if isinstance(stored, str):
        return len(stored.encode("utf-8", "surrogatepass"))
    if isinstance(stored, np.ndarray) and stored.dtype.kind == "O":
        return sum(len(_text(v).encode("utf-8", "surrogatepass")) + 16 for v in stored.ravel())
    return int(getattr(stored, "nbytes", 8))


def normalize_attr(value):
    """The value as it will read back from a file (what a session stages)."""
    stored, tag = encode_attr(value)
    return decode_attr(stored, tag)


# =========================================================================== builders


def _tag_dataset(array: np.ndarray, tag: str) -> Dataset:
    return Dataset(array, tag=tag)


def _is_safe_key(key) -> bool:
    """True when a mapping key can be a link or attribute name as it is."""
    if not isinstance(key, str):
        return False
    try:
        check_attr_name(key)
    except UnsafeNameError:
        return False
    return not is_hidden(key)


def value_node(value) -> Node:
    """A node for any JSON-like value under the metadata rules.

    Nested mappings become groups, arrays datasets, and scalars 1-element
    datasets (text as variable-length UTF-8); the type tag restores the exact
    Python type on read.
    """
    if isinstance(value, (np.ndarray, FileArray)):
        return array_node(value)
    if isinstance(value, Mapping):
        return _mapping_node(value, value_node, scalars_as_attrs=False)
    if isinstance(value, str):
        if not _plain_text(value):
            return _tag_dataset(np.array([typed_json_dumps(value)], dtype=h5py.string_dtype("utf-8")), "json")
        return _tag_dataset(np.array([value], dtype=h5py.string_dtype("utf-8")), "str")
    if type(value) is bool:
        return _tag_dataset(np.array([value], dtype=np.bool_), "bool")
    if isinstance(value, int):
        if -(2**63) <= value < 2**63:
            return _tag_dataset(np.array([value], dtype=np.int64), "int")
        return _tag_dataset(np.array([str(value)], dtype=h5py.string_dtype("utf-8")), "bigint")
    if isinstance(value, float):
        return _tag_dataset(np.array([value], dtype=np.float64), "float")
    if value is None:
        return _tag_dataset(np.zeros((0,), dtype=np.float64), "none")
    if isinstance(value, np.generic):
        if value.dtype.kind in "biufc":
            return _tag_dataset(np.array([value], dtype=value.dtype), "npscalar")
        return _tag_dataset(np.array([typed_json_dumps(value)], dtype=h5py.string_dtype("utf-8")), "json")
    if isinstance(value, bytes):
        return _tag_dataset(np.frombuffer(value, dtype=np.uint8).copy(), "bytes")
    if isinstance(value, os.PathLike):
        return value_node(os.fspath(value))
    if isinstance(value, (list, tuple)):
        container = "list" if isinstance(value, list) else "tuple"
        kind = _homogeneous_kind(value)
        if kind is not None:
            return _tag_dataset(np.array(list(value), dtype=_KIND_DTYPES[kind]).reshape(len(value)),
                                f"{container}:{kind}")
        return Group(children={str(i): value_node(v) for i, v in enumerate(value)}, tag=container)
    raise EncodingError(
        f"cannot store a value of type {type(value).__name__}",
        expected="None, bool, int, float, str, bytes, list, tuple, dict or a numpy array/scalar",
        found=type(value).__name__,
        hint="convert it to one of those types first",
    )


def array_node(value) -> Dataset:
    """A dataset node for an array; text arrays keep their numpy kind through a tag."""
    if isinstance(value, FileArray):
        return Dataset(value)
    array = np.asarray(value)
    if array.dtype.kind in "UO":
        if array.dtype.kind == "O" and not all(isinstance(v, str) for v in array.ravel()):
            raise EncodingError("object arrays may hold only str", found="other objects",
                                hint="convert the array to a numeric or text dtype")
        if not all(_plain_text(str(v)) for v in array.ravel()):
            raise EncodingError("text arrays cannot hold NUL characters or lone surrogates",
                                found="such text", hint="store the text as a list, which is encoded exactly")
        return Dataset(array.astype(object), tag="ndarray:U" if array.dtype.kind == "U" else "ndarray:O")
    if array.dtype.kind == "S":
        return Dataset(array)
    if array.dtype.kind not in "biufc" and not array.dtype.names:
        raise EncodingError(f"cannot store an array of dtype {array.dtype}",
                            expected="bool, integer, float, complex, text or structured",
                            found=str(array.dtype))
    return Dataset(array)


def put_node(value) -> Node:
    """A node under the feature rules: arrays are datasets, dicts groups, everything else attributes."""
    if isinstance(value, (np.ndarray, FileArray)):
        return array_node(value)
    if isinstance(value, Mapping):
        return _mapping_node(value, put_node, scalars_as_attrs=True)
    return value_node(value)


def _mapping_node(mapping: Mapping, child_builder, *, scalars_as_attrs: bool) -> Group:
    keys = list(mapping.keys())
    plain = all(_is_safe_key(k) for k in keys)
    group = Group()
    if not plain:
        group.tag = "dict"
        group.keys = keys
    for index, key in enumerate(keys):
        value = mapping[key]
        name = key if plain else str(index)
        if scalars_as_attrs and not isinstance(value, (np.ndarray, FileArray, Mapping)):
            group.attrs[name] = normalize_attr(value)
        else:
            group.children[name] = child_builder(value)
    return group


def params_hash(config: Mapping | None) -> str:
    """A stable hash of a configuration (sha256 of its typed, key-sorted JSON); '' for None."""
    if config is None:
        return ""
    encoded = _tj_encode(_sorted_mapping(config))
    return hashlib.sha256(json.dumps(encoded, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def _sorted_mapping(value):
    if isinstance(value, Mapping):
        return {k: _sorted_mapping(value[k]) for k in sorted(value, key=repr)}
    return value


def recording_root(dataset_id: str, config: Mapping | None = None) -> Group:
    """The node tree of a new, empty recording (root attributes and the standard groups)."""
    check_dataset_id(dataset_id)
    stamp = now_iso()
    root = Group(attrs={
        "dataset_id": dataset_id,
        "hdmea_pipeline_version": PIPELINE_VERSION,
        "created_at": stamp,
        "updated_at": stamp,
        "stage1_completed": False,
        "stage1_params_hash": params_hash(config),
        "features_extracted": [],
        "h5stream_format": FORMAT_NAME,
        "h5stream_format_version": FORMAT_VERSION,
    })
    root.children["units"] = Group()
    root.children["stimulus"] = Group()
    root.children["metadata"] = Group()
    root.children["pipeline"] = Group(children={"session_info": session_info_node([], [])})
    return root


def session_info_node(completed_steps, warnings_list, checkpoint_name: str | None = None) -> Group:
    info = Group(children={
        "completed_steps": value_node(list(completed_steps)),
        "warnings": value_node(list(warnings_list)),
    })
    info.attrs["saved_at"] = now_iso()
    if checkpoint_name is not None:
        info.attrs["checkpoint_name"] = checkpoint_name
    return info


def check_dataset_id(dataset_id) -> str:
    if not isinstance(dataset_id, str) or not dataset_id.strip():
        raise UnsafeNameError("dataset_id must be a non-empty string", expected="e.g. '2024.03.01-12.00.00-Rec'",
                              found=repr(dataset_id))
    if not _plain_text(dataset_id):
        raise UnsafeNameError("dataset_id contains a NUL character or is not valid UTF-8", found=repr(dataset_id))
    return dataset_id


def _uint64_samples(values, what: str, unit_id: str) -> np.ndarray:
    if isinstance(values, FileArray):
        if values.dtype != np.uint64:
            raise EncodingError(f"{what} must be uint64 samples", obj=f"/units/{unit_id}",
                                found=str(values.dtype))
        return values
    array = np.asarray(values)
    if array.dtype == np.uint64:
        return array
    if array.size and array.dtype.kind in "iu" and array.min() < 0:
        raise EncodingError(f"{what} holds negative sample indices", obj=f"/units/{unit_id}",
                            expected="sample indices >= 0", found=f"minimum {array.min()}")
    if array.dtype.kind == "f":
        if array.size and (not np.all(np.isfinite(array)) or array.min() < 0
                           or np.any(array != np.floor(array))):
            raise EncodingError(f"{what} must hold whole, non-negative sample indices", obj=f"/units/{unit_id}",
                                found="fractional, negative or non-finite values")
    elif array.dtype.kind not in "iu" and array.size:
        raise EncodingError(f"{what} must be integer sample indices", obj=f"/units/{unit_id}",
                            found=str(array.dtype))
    return array.astype(np.uint64)


def _float32(values) -> np.ndarray:
    if isinstance(values, FileArray):
        return values
    return np.asarray(values, dtype=np.float32)


_UNIT_ARRAYS = {
    "spike_times": lambda v, uid: _uint64_samples(v, "spike_times", uid),
    "waveform": lambda v, uid: _float32(v),
    "firing_rate_10hz": lambda v, uid: _float32(v),
}


def unit_node(unit_id: str, data: Mapping) -> Group:
    """The node of one unit: spike_times (uint64), waveform (float32), attributes, empty features."""
    if not isinstance(data, Mapping):
        raise EncodingError("unit data must be a mapping", obj=f"/units/{unit_id}",
                            expected="a dict with spike_times, waveform, row, col, global_id",
                            found=type(data).__name__)
    if "spike_times" not in data:
        raise EncodingError("unit data has no spike_times", obj=f"/units/{unit_id}",
                            expected="a 'spike_times' array", found=", ".join(map(str, data)) or "no keys")
    group = Group(children={"features": Group()})
    for key, value in data.items():
        if key in _UNIT_ARRAYS:
            array = _UNIT_ARRAYS[key](value, unit_id)
            group.children[key] = Dataset(array)
        elif key == "features":
            if not isinstance(value, Mapping):
                raise EncodingError("unit features must be a mapping of feature name -> values",
                                    obj=f"/units/{unit_id}/features", found=type(value).__name__)
            for name, feature in value.items():
                check_member_name(name, what="feature name")
                group.children["features"].children[name] = put_node(feature)
        elif isinstance(value, (np.ndarray, FileArray)):
            check_member_name(key, what="unit field name")
            group.children[key] = array_node(value)
        elif isinstance(value, Mapping):
            check_member_name(key, what="unit field name")
            group.children[key] = put_node(value)
        else:
            check_attr_name(key, what="unit attribute name")
            group.attrs[key] = normalize_attr(value)
    spikes = group.children["spike_times"].data
    group.attrs["spike_count"] = int(spikes.shape[0]) if spikes.ndim else 1
    return group


def units_nodes(units_data: Mapping[str, Mapping]) -> dict[str, Group]:
    if not isinstance(units_data, Mapping):
        raise EncodingError("units_data must be a mapping of unit id -> unit data", found=type(units_data).__name__)
    return {check_member_name(uid, what="unit id"): unit_node(uid, data) for uid, data in units_data.items()}


def _section_times(values, movie: str):
    if isinstance(values, FileArray):
        return values
    array = _uint64_samples(values, "section_times", movie)
    if array.ndim == 1 and array.size == 2:
        array = array.reshape(1, 2)
    if array.ndim != 2 or array.shape[1] != 2:
        raise EncodingError("section times must be (n, 2) start/end samples", obj=f"/stimulus/section_time/{movie}",
                            expected="shape (n, 2)", found=f"shape {array.shape}")
    return array


_STIMULUS_KINDS = {
    "light_reference": _float32,
    "frame_time": lambda v: _uint64_samples(v, "frame_times", "stimulus") if not isinstance(v, FileArray) else v,
}


def stimulus_nodes(light_reference=None, frame_times=None, section_times=None) -> dict[str, dict[str, Dataset]]:
    """{subgroup: {name: dataset}} for ``/stimulus``; names are checked."""
    out: dict[str, dict[str, Dataset]] = {}
    for group, mapping, convert in (
        ("light_reference", light_reference, _STIMULUS_KINDS["light_reference"]),
        ("frame_time", frame_times, _STIMULUS_KINDS["frame_time"]),
        ("section_time", section_times, None),
    ):
        if mapping is None:
            continue
        if not isinstance(mapping, Mapping):
            raise EncodingError(f"{group} must be a mapping of name -> array", found=type(mapping).__name__)
        nodes = {}
        for name, values in mapping.items():
            check_member_name(name, what="movie name" if group == "section_time" else f"{group} name")
            array = _section_times(values, name) if convert is None else convert(values)
            nodes[name] = Dataset(array)
        out[group] = nodes
    return out


def feature_node(feature_name: str, feature_data: Mapping, metadata: Mapping | None) -> Group:
    check_member_name(feature_name, what="feature name")
    if not isinstance(feature_data, Mapping):
        raise EncodingError("feature data must be a mapping", obj=feature_name, found=type(feature_data).__name__)
    node = put_node(dict(feature_data))
    for key, value in (metadata or {}).items():
        check_attr_name(key, what="feature metadata name")
        node.attrs[key] = normalize_attr(value)
    node.attrs.setdefault("name", feature_name)
    return node


def metadata_nodes(metadata: Mapping) -> dict[str, Node]:
    if not isinstance(metadata, Mapping):
        raise EncodingError("metadata must be a mapping", found=type(metadata).__name__)
    group = _mapping_node(metadata, value_node, scalars_as_attrs=False)
    if group.tag == "dict":
        raise UnsafeNameError(
            "top-level metadata keys must be safe names",
            expected="non-empty str without '/' or NUL, other than '.' and '..'",
            found=", ".join(repr(k) for k in metadata if not _is_safe_key(k)),
            hint="nest such keys one level down, where any key is stored exactly",
        )
    return group.children


# =========================================================================== writer


class WriteContext:
    """What the writer needs to know about the file it writes: spilled arrays it may move."""

    __slots__ = ("file", "movable")

    def __init__(self, file: h5py.File | None = None, movable=None):
        self.file = file
        self.movable = movable  # callable(FileArray) -> bool: True when the array lives in ``file``


class _LowLevel:
    """Types, dataspaces and property lists reused across the thousands of objects of a save."""

    def __init__(self) -> None:
        from h5stream.staging import _plists

        self.lcpl = _plists()[2]
        self.gcpl = h5py.h5p.create(h5py.h5p.GROUP_CREATE)
        # No modification times: one header message and one update less per group, and
        # files whose bytes do not depend on the clock.
        self.gcpl.set_obj_track_times(False)
        # Variable-length text refuses FILL_TIME_NEVER (HDF5 must be able to free unwritten elements).
        self.text_dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        self.text_dcpl.set_obj_track_times(False)
        self.scalar = h5py.h5s.create(h5py.h5s.SCALAR)
        self.text_type = h5py.h5t.py_create(h5py.string_dtype("utf-8"), logical=True)
        self.text_dtype = h5py.string_dtype("utf-8")
        self.types: dict[np.dtype, h5py.h5t.TypeID] = {}
        self.spaces: dict[tuple, h5py.h5s.SpaceID] = {}

    def type_of(self, dtype: np.dtype) -> h5py.h5t.TypeID:
        tid = self.types.get(dtype)
        if tid is None:
            tid = h5py.h5t.py_create(dtype, logical=True)
            self.types[dtype] = tid
        return tid

    def space_of(self, shape: tuple) -> h5py.h5s.SpaceID:
        if shape == ():
            return self.scalar
        space = self.spaces.get(shape)
        if space is None:
            space = h5py.h5s.create_simple(shape)
            self.spaces[shape] = space
        return space


_low_level = None


def _ll() -> _LowLevel:
    global _low_level
    if _low_level is None:
        _low_level = _LowLevel()
    return _low_level


def _create_attr(oid, name: str, stored) -> None:
    """One attribute through the low-level API (h5py's high-level path costs twice as much)."""
    ll = _ll()
    key = name.encode("utf-8")
    if isinstance(stored, str):
        attr = h5py.h5a.create(oid, key, ll.text_type, ll.scalar)
        attr.write(np.array(stored, dtype=ll.text_dtype))
        return
    if isinstance(stored, np.ndarray) and stored.dtype.kind == "O":
        attr = h5py.h5a.create(oid, key, ll.text_type, ll.space_of(stored.shape))
        attr.write(np.asarray(stored, dtype=ll.text_dtype))
        return
    data = np.asarray(stored)
    if not data.flags.c_contiguous:
        data = np.ascontiguousarray(data)
    attr = h5py.h5a.create(oid, key, ll.type_of(data.dtype), ll.space_of(data.shape))
    attr.write(data)


def _dataset_attrs_home(parent: h5py.Group, dataset_name: str) -> h5py.Group:
    """The hidden group beside ``parent[dataset_name]`` that holds its large attributes, created if needed."""
    name = DATASET_ATTRS_PREFIX + dataset_name
    if name in parent:
        return parent[name]
    ll = _ll()
    return h5py.Group(h5py.h5g.create(parent.id, name.encode("utf-8"), lcpl=ll.lcpl, gcpl=ll.gcpl))


def _existing_dataset_attrs_home(dataset: h5py.Dataset) -> h5py.Group | None:
    parent = dataset.parent
    name = DATASET_ATTRS_PREFIX + posixpath.basename(dataset.name)
    return parent[name] if name in parent else None


def _write_attrs_id(oid, node: Node, ctx: WriteContext) -> None:
    tags: dict[str, str] = {}
    for name, value in node.attrs.items():
        stored, tag = encode_attr(value)
        if _stored_nbytes(stored) > ATTR_LIMIT:
            if isinstance(oid, h5py.h5g.GroupID):
                _write_node_id(oid, HIDDEN_PREFIX + name, value_node(value), ctx)
            else:
                # A dataset has no children: its large attributes live in a hidden sibling group.
                dataset = h5py.Dataset(oid)
                home = _dataset_attrs_home(dataset.parent, posixpath.basename(dataset.name))
                _write_node_id(home.id, name, value_node(value), ctx)
            tags[name] = "dataset"
            continue
        _create_attr(oid, name, stored)
        if tag is not None:
            tags[name] = tag
    if node.tag is not None:
        _create_attr(oid, TYPE_ATTR, node.tag)
    if isinstance(node, Group) and node.keys is not None:
        _create_attr(oid, KEYS_ATTR, typed_json_dumps(node.keys))
    if tags:
        _create_attr(oid, ATTR_TYPES_ATTR, json.dumps(tags, sort_keys=True))


def _write_attrs(obj, node: Node, ctx: WriteContext) -> None:
    ctx = _context(ctx, obj)
    with _h5py_lock:
        native = native_hdf5()
        if native is not None:
            _native_attrs(native, obj.id.id, obj.name, node, ctx, is_group=isinstance(obj, h5py.Group))
        else:
            _write_attrs_id(obj.id, node, ctx)


def _write_node_id(pid, name: str, node: Node, ctx: WriteContext) -> None:
    """The writer through h5py's low-level wrappers (used when direct library calls are unavailable)."""
    if isinstance(node, Group):
        ll = _ll()
        gid = h5py.h5g.create(pid, name.encode("utf-8"), lcpl=ll.lcpl, gcpl=ll.gcpl)
        for child_name, child in node.children.items():
            _write_node_id(gid, child_name, child, ctx)
        if node.attrs or node.tag is not None:
            _write_attrs_id(gid, node, ctx)
        return
    data = node.data
    if isinstance(data, FileArray):
        dsid = _place_file_array(h5py.Group(pid), name, data, ctx).id
    else:
        dsid = store_array(pid, name, data)
    if node.attrs or node.tag is not None:
        _write_attrs_id(dsid, node, ctx)


def _place_file_array(parent: h5py.Group, name: str, data: FileArray, ctx: WriteContext) -> h5py.Dataset:
    """Put an on-disk array at ``parent[name]``: a link rename inside the same file, else a library copy."""
    if ctx.movable is not None and ctx.movable(data):
        parent.file.move(data.name, f"{parent.name.rstrip('/')}/{name}")
    else:
        copy_dataset(data.dataset, parent, name)
    return parent[name]


# --------------------------------------------------------------------------- direct library calls


def _native_failed(action: str, ctx: WriteContext, path: str) -> WriteError:
    filename = ctx.file.filename if ctx.file is not None else None
    return WriteError(f"{action} failed inside the HDF5 library", path=filename, obj=path,
                      hint="check free disk space; an object of that name may already exist")


def _native_node(native, pid: int, parent_path: str, name: str, node: Node, ctx: WriteContext) -> None:
    path = f"{parent_path.rstrip('/')}/{name}"
    key = name.encode("utf-8")
    ll = _ll()
    if isinstance(node, Group):
        gid = native.H5Gcreate2(pid, key, ll.lcpl.id, ll.gcpl.id, 0)
        if gid < 0:
            raise _native_failed("creating the group", ctx, path)
        try:
            for child_name, child in node.children.items():
                _native_node(native, gid, path, child_name, child, ctx)
            if node.attrs or node.tag is not None:
                _native_attrs(native, gid, path, node, ctx, is_group=True)
        finally:
            native.H5Gclose(gid)
        return
    data = node.data
    if isinstance(data, FileArray):
        dataset = _place_file_array(ctx.file[parent_path], name, data, ctx)
        if node.attrs or node.tag is not None:
            _native_attrs(native, dataset.id.id, path, node, ctx, is_group=False)
        return
    did = _native_dataset(native, pid, key, data, ctx, path)
    try:
        if node.attrs or node.tag is not None:
            _native_attrs(native, did, path, node, ctx, is_group=False)
    finally:
        native.H5Dclose(did)


def _native_dataset(native, pid: int, key: bytes, data, ctx: WriteContext, path: str) -> int:
    """Create and fill one dataset (same layout policy as :func:`h5stream.staging.store_array`)."""
    array = np.asarray(data)
    compact, contiguous, lcpl = _staging._plists()
    if array.dtype.kind in "OUT":
        ll = _ll()
        tid, space = ll.text_type, ll.space_of(array.shape)
        did = native.H5Dcreate2(pid, key, tid.id, space.id, lcpl.id, ll.text_dcpl.id, 0)
        if did < 0:
            raise _native_failed("creating the dataset", ctx, path)
        buffer = native.text_buffer([v if isinstance(v, str) else _text(v) for v in array.ravel().tolist()])
    else:
        if not array.flags.c_contiguous:
            array = np.ascontiguousarray(array)
        dcpl = compact if 0 < array.nbytes <= _staging.COMPACT_LIMIT else contiguous
        tid, space = _staging._file_type(array.dtype), _staging._space(array.shape)
        did = native.H5Dcreate2(pid, key, tid.id, space.id, lcpl.id, dcpl.id, 0)
        if did < 0:
            raise _native_failed("creating the dataset", ctx, path)
        buffer = array.ctypes.data
    if array.size and native.H5Dwrite(did, tid.id, native.H5S_ALL, native.H5S_ALL, 0, buffer) < 0:
        native.H5Dclose(did)
        raise _native_failed("writing the dataset", ctx, path)
    return did


def _native_attr(native, oid: int, name: str, stored, ctx: WriteContext, path: str) -> None:
    ll = _ll()
    if isinstance(stored, str):
        tid, space, buffer, size = ll.text_type, ll.scalar, native.text_buffer([stored]), 1
    elif isinstance(stored, np.ndarray) and stored.dtype.kind == "O":
        tid, space, size = ll.text_type, ll.space_of(stored.shape), stored.size
        buffer = native.text_buffer([_text(v) for v in stored.ravel().tolist()])
    else:
        data = np.asarray(stored)
        if not data.flags.c_contiguous:
            data = np.ascontiguousarray(data)
        tid, space, buffer, size = ll.type_of(data.dtype), ll.space_of(data.shape), data.ctypes.data, data.size
    aid = native.H5Acreate2(oid, name.encode("utf-8"), tid.id, space.id, 0, 0)
    if aid < 0:
        raise _native_failed(f"creating attribute {name!r}", ctx, path)
    try:
        if size and native.H5Awrite(aid, tid.id, buffer) < 0:
            raise _native_failed(f"writing attribute {name!r}", ctx, path)
    finally:
        native.H5Aclose(aid)


def _native_attrs(native, oid: int, path: str, node: Node, ctx: WriteContext, *, is_group: bool) -> None:
    tags: dict[str, str] = {}
    for name, value in node.attrs.items():
        stored, tag = encode_attr(value)
        if _stored_nbytes(stored) > ATTR_LIMIT:
            if is_group:
                _native_node(native, oid, path, HIDDEN_PREFIX + name, value_node(value), ctx)
            else:
                # A dataset has no children: its large attributes live in a hidden sibling group.
                parent_path, _, dataset_name = path.rpartition("/")
                home = _dataset_attrs_home(ctx.file[parent_path or "/"], dataset_name)
                _native_node(native, home.id.id, home.name, name, value_node(value), ctx)
            tags[name] = "dataset"
            continue
        _native_attr(native, oid, name, stored, ctx, path)
        if tag is not None:
            tags[name] = tag
    if node.tag is not None:
        _native_attr(native, oid, TYPE_ATTR, node.tag, ctx, path)
    if isinstance(node, Group) and node.keys is not None:
        _native_attr(native, oid, KEYS_ATTR, typed_json_dumps(node.keys), ctx, path)
    if tags:
        _native_attr(native, oid, ATTR_TYPES_ATTR, json.dumps(tags, sort_keys=True), ctx, path)


# --------------------------------------------------------------------------- entry points


def _context(ctx: WriteContext | None, obj) -> WriteContext:
    if ctx is None:
        return WriteContext(obj.file)
    if ctx.file is None:
        ctx.file = obj.file
    return ctx


def write_node(parent: h5py.Group, name: str, node: Node, ctx: WriteContext | None = None) -> None:
    """Write ``node`` as ``parent[name]`` (which must not exist); the one writer of the store."""
    ctx = _context(ctx, parent)
    with _h5py_lock:
        native = native_hdf5()
        if native is not None:
            _native_node(native, parent.id.id, parent.name, name, node, ctx)
        else:
            _write_node_id(parent.id, name, node, ctx)


def write_children(group: h5py.Group, children: Mapping[str, Node], ctx: WriteContext | None = None) -> None:
    ctx = _context(ctx, group)
    for child_name, child in children.items():
        write_node(group, child_name, child, ctx)


def write_root(f: h5py.File, root: Group, ctx: WriteContext | None = None) -> None:
    """Write a whole tree into an empty file (its root attributes and children)."""
    ctx = _context(ctx, f)
    write_children(f, root.children, ctx)
    _write_attrs(f, root, ctx)


def remove_child(group: h5py.Group, name: str) -> None:
    """Remove ``group[name]`` and the hidden group of its large attributes, if any."""
    if name in group:
        del group[name]
    hidden = DATASET_ATTRS_PREFIX + name
    if hidden in group:
        del group[hidden]


def replace_child(group: h5py.Group, name: str, node: Node, ctx: WriteContext | None = None) -> None:
    """Write ``node`` as ``group[name]``, removing whatever was there (with its hidden large attributes)."""
    remove_child(group, name)
    write_node(group, name, node, ctx)


def require_h5_group(f: h5py.Group, path: str) -> h5py.Group:
    group = f
    for part in [p for p in path.split("/") if p]:
        if part in group:
            child = group[part]
            if not isinstance(child, h5py.Group):
                raise EncodingError("a dataset stands where a group is needed", path=f.file.filename,
                                    obj=child.name, expected="a group", found="a dataset")
            group = child
        else:
            ll = _ll()
            group = h5py.Group(h5py.h5g.create(group.id, part.encode("utf-8"), lcpl=ll.lcpl, gcpl=ll.gcpl))
    return group


def set_h5_attrs(obj: h5py.Group | h5py.Dataset, mapping: Mapping[str, Any]) -> None:
    """Set decoded attribute values on an existing object, keeping its type tags right."""
    existing_tags = json.loads(_text(obj.attrs[ATTR_TYPES_ATTR])) if ATTR_TYPES_ATTR in obj.attrs else {}
    is_dataset = isinstance(obj, h5py.Dataset)
    node = Dataset(None) if is_dataset else Group()
    for name in mapping:
        check_attr_name(name, path=obj.file.filename)
    home = _existing_dataset_attrs_home(obj) if is_dataset else None
    for name, value in mapping.items():
        if name in obj.attrs:
            del obj.attrs[name]
        if not is_dataset and HIDDEN_PREFIX + name in obj:
            del obj[HIDDEN_PREFIX + name]
        if home is not None and name in home:
            del home[name]
        existing_tags.pop(name, None)
        node.attrs[name] = value
    if ATTR_TYPES_ATTR in obj.attrs:
        del obj.attrs[ATTR_TYPES_ATTR]
    # Write the new values, then merge the tags of the untouched attributes back in.
    _write_attrs(obj, node, WriteContext())
    if is_dataset:
        home = _existing_dataset_attrs_home(obj)
        if home is not None and len(home) == 0:
            del obj.parent[home.name.rpartition("/")[2]]
    if existing_tags:
        new_tags = json.loads(_text(obj.attrs[ATTR_TYPES_ATTR])) if ATTR_TYPES_ATTR in obj.attrs else {}
        new_tags.update(existing_tags)
        if ATTR_TYPES_ATTR in obj.attrs:
            del obj.attrs[ATTR_TYPES_ATTR]
        obj.attrs.create(ATTR_TYPES_ATTR, json.dumps(new_tags, sort_keys=True))


# =========================================================================== reader


def _read_raw_attrs(obj) -> tuple[dict[str, Any], str | None, list | None]:
    raw = {}
    for name in obj.attrs:
        try:
            raw[name] = obj.attrs[name]
        except (OSError, TypeError, ValueError) as exc:
            raise FormatError(f"cannot read attribute {name!r} ({exc})", path=obj.file.filename, obj=obj.name) from exc
    tags = json.loads(_text(raw.pop(ATTR_TYPES_ATTR))) if ATTR_TYPES_ATTR in raw else {}
    tag = _text(raw.pop(TYPE_ATTR)) if TYPE_ATTR in raw else None
    keys = typed_json_loads(_text(raw.pop(KEYS_ATTR))) if KEYS_ATTR in raw else None
    attrs = {}
    for name, value in raw.items():
        attrs[name] = decode_attr(value, tags.get(name))
    for name, tag_value in tags.items():
        if tag_value == "dataset":
            attrs[name] = decode_node(node_from_h5(_large_attr_object(obj, name), lazy=False))
    return attrs, tag, keys


def _large_attr_object(obj, name: str):
    """The hidden object holding attribute ``name`` of ``obj`` (see the module docstring)."""
    if isinstance(obj, h5py.Group):
        container, member = obj, HIDDEN_PREFIX + name
    else:
        container = obj.parent
        member = f"{DATASET_ATTRS_PREFIX}{posixpath.basename(obj.name)}/{name}"
    if member not in container:
        raise FormatError(f"attribute {name!r} is stored as an object that is missing", path=obj.file.filename,
                          obj=obj.name, expected=f"{container.name.rstrip('/')}/{member}", found="nothing",
                          hint="the file was damaged or edited by another tool")
    return container[member]


def is_hidden(name: str) -> bool:
    """True for the store's internal members (large attributes, staging), which listings skip."""
    return name.startswith(HIDDEN_PREFIXES)


def node_from_h5(obj, *, lazy: bool = False, opener=None) -> Node:
    """The node of an HDF5 object; datasets become :class:`FileArray` references when ``lazy``."""
    attrs, tag, keys = _read_raw_attrs(obj)
    if isinstance(obj, h5py.Group):
        children = {}
        for name in obj:
            if is_hidden(name):
                continue
            children[name] = node_from_h5(obj[name], lazy=lazy, opener=opener)
        return Group(attrs, children, tag, keys)
    if obj.shape is None:
        data = np.empty((0,), dtype=obj.dtype)
    elif lazy and tag is None and obj.dtype.kind in "biufc":
        data = FileArray(opener, obj.name, obj.shape, obj.dtype)
    else:
        data = obj[()]
    return Dataset(data, attrs, tag)


def _text_items(data: np.ndarray) -> list[str]:
    return [_text(v) for v in data.tolist()]


#: How a tagged dataset turns back into its Python value (tag -> decoder of the stored array).
_DATASET_DECODERS = {
    "int": lambda data: int(data[0]),
    "float": lambda data: float(data[0]),
    "bool": lambda data: bool(data[0]),
    "str": lambda data: _text(data[0]),
    "none": lambda data: None,
    "bytes": lambda data: data.astype(np.uint8).tobytes(),
    "npscalar": lambda data: data[0],
    "bigint": lambda data: int(_text(data[0])),
    "json": lambda data: typed_json_loads(_text(data[0])),
    "ndarray:U": lambda data: np.array([_text(v) for v in data.ravel()]).reshape(data.shape),
    "ndarray:O": lambda data: np.array([_text(v) for v in data.ravel()], dtype=object).reshape(data.shape),
    "list:str": _text_items,
    "tuple:str": lambda data: tuple(_text_items(data)),
    **{f"list:{kind}": (lambda data: data.tolist()) for kind in ("bool", "int", "float")},
    **{f"tuple:{kind}": (lambda data: tuple(data.tolist())) for kind in ("bool", "int", "float")},
}


def _dataset_value(node: Dataset):
    data = node.data
    if node.tag is None:
        if isinstance(data, FileArray):
            return data.read()
        if isinstance(data, np.ndarray) and data.dtype.kind == "O":
            return np.array([_text(v) for v in data.ravel()], dtype=object).reshape(data.shape)
        return data
    decoder = _DATASET_DECODERS.get(node.tag)
    if decoder is None:
        raise FormatError("unknown dataset type tag", expected="a tag this version writes", found=repr(node.tag),
                          hint="upgrade h5stream")
    return decoder(np.asarray(data))


def decode_node(node: Node):
    """The Python value of a node: arrays for datasets, values for tagged data, dicts for groups."""
    if isinstance(node, Dataset):
        return _dataset_value(node)
    if node.tag in ("list", "tuple"):
        items = [decode_node(node.children[str(i)]) for i in range(len(node.children))]
        return items if node.tag == "list" else tuple(items)
    if node.tag == "dict":
        out = {}
        for index, key in enumerate(node.keys or []):
            name = str(index)
            out[key] = decode_node(node.children[name]) if name in node.children else node.attrs[name]
        return out
    out = dict(node.attrs)
    for name, child in node.children.items():
        out[name] = decode_node(child)
    # Name order, as HDF5 lists a group's members, so a staged group and a saved one agree.
    return {name: out[name] for name in sorted(out)}


# =========================================================================== file handles


def _check_suffix(path: Path) -> None:
    if path.suffix != ".h5":
        warnings.warn(
            f"{path}: recording files are expected to end with .h5 (found {path.suffix or 'no suffix'!r})",
            SuffixWarning,
            stacklevel=3,
        )


class RecordingFile(h5py.File):
    """An ``h5py.File`` open on a partial file that becomes the recording on :meth:`close`.

    Writes go to ``<target>.partial-<pid>-<n>``; ``close()`` (or a clean exit of
    a ``with`` block) flushes, fsyncs and renames it over the target, so the
    target is never seen half-written.  An exception inside ``with`` discards
    the partial file and leaves the target as it was; :meth:`abort` does the
    same explicitly.
    """

    _atomic: AtomicFile | None = None

    @classmethod
    def _adopt(cls, atomic: AtomicFile) -> RecordingFile:
        opened = atomic.open()
        handle = cls(opened.id)
        handle._atomic = atomic
        atomic.file = handle
        return handle

    @property
    def target(self) -> Path:
        return self._atomic.target

    def close(self) -> None:
        atomic = self._atomic
        if atomic is None or atomic.committed:
            super().close()
            return
        if self.id.valid:
            _stamp_updated(self)
            self.flush()
            super().close()
        atomic.commit()

    def abort(self) -> None:
        if self._atomic is not None and not self._atomic.committed:
            self._atomic.abort()

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self.abort()
            return False
        self.close()
        return False


def _stamp_updated(f: h5py.File) -> None:
    if "updated_at" in f.attrs:
        f.attrs["updated_at"] = now_iso()


def _claim_or_locked(path: Path, atomic: AtomicFile) -> RecordingFile:
    try:
        return RecordingFile._adopt(atomic)
    except WriterClaimError as exc:
        raise _locked_error(path) from exc


def create_recording_hdf5(
    hdf5_path: str | os.PathLike,
    dataset_id: str,
    config: Mapping[str, Any] | None = None,
    overwrite: bool = False,
) -> RecordingFile:
    """Create a recording file and return it open for writing.

    Parameters
    ----------
    hdf5_path
        Where the recording goes (should end with ``.h5``; another suffix warns).
    dataset_id
        The recording's identifier.
    config
        Stage-1 configuration; its hash is stored as ``stage1_params_hash``.
    overwrite
        Replace an existing file.  The old file stays intact until the new one
        is complete (on ``close()``).

    Returns
    -------
    RecordingFile
        An ``h5py.File`` with ``/units``, ``/stimulus``, ``/metadata``,
        ``/pipeline/session_info`` and the root attributes; the file appears at
        ``hdf5_path`` when it is closed.

    Raises
    ------
    FileExistsError
        (:class:`RecordingExistsError`) the file exists and ``overwrite`` is False.
    OSError
        (:class:`RecordingLockedError`) another writer holds the file.
    """
    path = Path(hdf5_path)
    _check_suffix(path)
    root = recording_root(dataset_id, config)
    if path.exists() and not overwrite:
        err = RecordingExistsError(
            "file already exists", path=path,
            hint="pass overwrite=True to replace it (the old file stays intact until the new one is complete)",
        )
        raise err
    handle = _claim_or_locked(path, create_atomic(path, overwrite=overwrite, libver=LIBVER))
    try:
        write_root(handle, root)
    except BaseException:
        handle.abort()
        raise
    logger.info("created recording %s (%s)", path, dataset_id)
    return handle


def _check_recording_format(f: h5py.File, path: Path) -> None:
    name = f.attrs.get("h5stream_format")
    if name is None:
        if "dataset_id" not in f.attrs:
            raise RecordingFormatError("not a recording file", path=path, obj="/@h5stream_format",
                                       expected=repr(FORMAT_NAME), found="no format attribute and no dataset_id")
        return
    if _text(name) != FORMAT_NAME:
        raise RecordingFormatError("file was written by another tool or in another format", path=path,
                                   obj="/@h5stream_format", expected=repr(FORMAT_NAME), found=repr(_text(name)))
    version = _text(f.attrs.get("h5stream_format_version", ""))
    if version not in SUPPORTED_VERSIONS:
        raise RecordingFormatError("unsupported recording format version", path=path,
                                   obj="/@h5stream_format_version",
                                   expected="one of " + ", ".join(SUPPORTED_VERSIONS), found=repr(version),
                                   hint="upgrade h5stream to read newer files")


def open_recording_hdf5(hdf5_path: str | os.PathLike, mode: str = "r") -> h5py.File:
    """Open an existing recording file.

    ``mode="r"`` returns a read-only, lazy ``h5py.File`` after checking the file
    (HDF5 signature, format attributes, no external links, external storage or
    virtual datasets).  ``"r+"`` and ``"a"`` return a :class:`RecordingFile`:
    a copy-on-write handle whose changes replace the file atomically on
    ``close()``, held by a single-writer claim.

    Raises
    ------
    FileNotFoundError
        (:class:`RecordingNotFoundError`) no such file.
    OSError
        (:class:`RecordingLockedError`) another writer holds the file (write modes);
        (:class:`CorruptRecordingError`) the file cannot be read.
    """
    path = Path(hdf5_path)
    if mode not in ("r", "r+", "a"):
        raise ValueError(f"mode must be 'r', 'r+' or 'a' (found {mode!r}); new files come from create_recording_hdf5")
    if not path.exists():
        err = RecordingNotFoundError(f"HDF5 file not found: {path}")
        err.path = os.fspath(path)
        raise err
    try:
        check_hdf5_signature(path)
    except FormatError as exc:
        raise _corrupt_error(path) from exc
    if mode == "r":
        try:
            f = h5py.File(path, "r", locking=False)
        except (OSError, RuntimeError, ValueError) as exc:
            raise _corrupt_error(path) from exc
        try:
            scan_unsafe_objects(f, path)
            _check_recording_format(f, path)
        except FormatError:
            f.close()
            raise
        except (OSError, RuntimeError, KeyError, ValueError, TypeError) as exc:
            f.close()
            raise _corrupt_error(path) from exc
        return f
    try:
        with h5py.File(path, "r", locking=False) as probe:
            _check_recording_format(probe, path)
    except FormatError:
        raise
    except (OSError, RuntimeError, ValueError) as exc:
        raise _corrupt_error(path) from exc
    return _claim_or_locked(path, update_atomic(path))


# =========================================================================== immediate-mode writers


def _root_file(root) -> h5py.File:
    if not isinstance(root, (h5py.File, h5py.Group)):
        raise TypeError(f"root must be an open h5py.File (found {type(root).__name__})")
    return root.file


def write_units(root: h5py.File, units_data: Mapping[str, Mapping[str, Any]]) -> None:
    """Write units as ``/units/{unit_id}/`` groups in one batched pass.

    Each unit gets ``spike_times`` (uint64), ``waveform`` (float32) when given,
    attributes ``row``, ``col``, ``global_id`` (and any other scalar field),
    ``spike_count`` and an empty ``features`` group.  A unit already present
    is replaced.
    """
    nodes = units_nodes(units_data)
    f = _root_file(root)
    units = require_h5_group(f, "units")
    for unit_id, node in nodes.items():
        replace_child(units, unit_id, node)


def write_stimulus(
    root: h5py.File,
    light_reference: Mapping[str, np.ndarray] | None = None,
    frame_times: Mapping[str, np.ndarray] | None = None,
    section_times: Mapping[str, np.ndarray] | None = None,
) -> None:
    """Write stimulus arrays: light_reference float32, frame_time uint64, section_time uint64 (n, 2).

    Each named array replaces an array of the same name; others stay.
    """
    groups = stimulus_nodes(light_reference, frame_times, section_times)
    f = _root_file(root)
    for group_name, nodes in groups.items():
        group = require_h5_group(f, f"stimulus/{group_name}")
        for name, node in nodes.items():
            replace_child(group, name, node)


def write_metadata(root: h5py.File, metadata: Mapping[str, Any]) -> None:
    """Write metadata under ``/metadata``: dicts as groups, scalars as 1-element datasets, text as UTF-8.

    Top-level keys replace what was stored under the same key.
    """
    nodes = metadata_nodes(metadata)
    group = require_h5_group(_root_file(root), "metadata")
    for name, node in nodes.items():
        replace_child(group, name, node)


def features_after(current, feature_name: str) -> list[str]:
    names = list(current or [])
    if feature_name not in names:
        names.append(feature_name)
    return sorted(names)


def write_feature_to_unit(
    root: h5py.File,
    unit_id: str,
    feature_name: str,
    feature_data: Mapping[str, Any],
    metadata: Mapping[str, Any] | None = None,
) -> None:
    """Write ``/units/{unit_id}/features/{feature_name}/`` and record the name in ``features_extracted``.

    Arrays become datasets, scalars attributes of the feature group, nested dicts
    subgroups; ``metadata`` (version, params_hash, extracted_at) become attributes.

    Raises
    ------
    KeyError
        (:class:`UnknownUnitError`) the recording has no such unit.
    """
    check_member_name(unit_id, what="unit id")
    node = feature_node(feature_name, feature_data, metadata)
    f = _root_file(root)
    unit_path = f"units/{unit_id}"
    if unit_path not in f:
        raise UnknownUnitError(f"{f.filename} [/{unit_path}]: no such unit; write the units first")
    features = require_h5_group(f, f"{unit_path}/features")
    replace_child(features, feature_name, node)
    set_h5_attrs(f, {"features_extracted": features_after(
        decode_attr(f.attrs["features_extracted"], "list:str") if "features_extracted" in f.attrs else [],
        feature_name)})


def mark_stage1_complete(root: h5py.File) -> None:
    """Set ``stage1_completed`` to True and stamp ``updated_at``."""
    f = _root_file(root)
    set_h5_attrs(f, {"stage1_completed": True, "updated_at": now_iso()})


def get_stage1_status(root: h5py.File) -> dict[str, Any]:
    """``{"completed", "params_hash", "created_at", "updated_at"}`` of the recording."""
    attrs, _, _ = _read_raw_attrs(_root_file(root))
    return {
        "completed": bool(attrs.get("stage1_completed", False)),
        "params_hash": attrs.get("stage1_params_hash", ""),
        "created_at": attrs.get("created_at"),
        "updated_at": attrs.get("updated_at"),
    }


def _visible_children(group) -> list[str]:
    return [name for name in group if not is_hidden(name)]


def list_units(root: h5py.File) -> list[str]:
    """Unit ids in the file (sorted); empty when there are none."""
    f = _root_file(root)
    if "units" not in f:
        return []
    return _visible_children(f["units"])


def list_features(root: h5py.File, unit_id: str) -> list[str]:
    """Feature names of a unit (sorted); empty when the unit or its features do not exist."""
    f = _root_file(root)
    path = f"units/{unit_id}/features"
    if not isinstance(unit_id, str) or "\x00" in unit_id or unit_id in ("", ".", "..") or "/" in unit_id:
        return []
    if path not in f:
        return []
    return _visible_children(f[path])


def source_files_attrs(cmcr_path, cmtr_path) -> dict[str, Any]:
    return {
        "source_files": [os.fspath(cmcr_path) if cmcr_path is not None else "",
                         os.fspath(cmtr_path) if cmtr_path is not None else ""],
        "cmcr_exists": cmcr_path is not None and Path(cmcr_path).exists(),
        "cmtr_exists": cmtr_path is not None and Path(cmtr_path).exists(),
    }


def write_source_files(root: h5py.File, cmcr_path: str | os.PathLike | None,
                       cmtr_path: str | os.PathLike | None) -> None:
    """Record the source paths as strings in ``source_files`` (cmcr, cmtr) with ``cmcr_exists``/``cmtr_exists``."""
    set_h5_attrs(_root_file(root), source_files_attrs(cmcr_path, cmtr_path))

"""The file's tree, one group at a time, as the browser shows it.

Each request lists the members of one group (sizes as ``hdmea inspect`` prints
them, from :mod:`hdmea.report.tree`): a group's member count and stored bytes,
a dataset's dtype, shape, stored and declared bytes, chunking and compression,
and every object's attributes as short text.  Nothing but metadata is read.
"""

from __future__ import annotations

import h5py
import numpy as np

from hdmea.io.recording import Recording, visible_members
from hdmea.report.tree import _stored_bytes, format_bytes
from hdmea.view.access import NodeMissing

__all__ = ["children", "node_info", "MAX_MEMBERS", "clean_node", "get_dataset", "text", "scalar", "attr_int",
           "sampling_rate", "stimulus_repeats"]

#: Members listed per group; the rest are counted ("N more").
MAX_MEMBERS = 2000
#: Attributes shown per object.
MAX_ATTRS = 100


def scalar(value) -> object:
    """A Python scalar for an attribute value (1-element arrays unwrapped, bytes decoded for display)."""
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.reshape(()).item()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.generic):
        return value.item()
    return value


def text(value) -> str:
    """An attribute or small dataset value as short display text."""
    value = scalar(value)
    if isinstance(value, np.ndarray):
        if value.size <= 8:
            return "[" + ", ".join(text(v) for v in value.ravel().tolist()) + "]"
        return f"<{value.dtype} array {value.shape}>"
    return str(value)


def attr_int(attrs, key: str, default: int) -> int:
    try:
        return int(scalar(attrs.get(key, default)))
    except (TypeError, ValueError):
        return default


def sampling_rate(f: h5py.File) -> float:
    """The recording's sampling rate in Hz (:attr:`hdmea.io.recording.Recording.sampling_rate`)."""
    return Recording.of(f).sampling_rate


def stimulus_repeats(f: h5py.File) -> dict[str, int]:
    """Movie -> trials per occurrence (:meth:`hdmea.io.recording.Recording.stimulus_repeats`)."""
    return Recording.of(f).stimulus_repeats()


def clean_node(node: str) -> str:
    """An object path inside the file: absolute, no empty, ``.`` or ``..`` components."""
    parts = [p for p in str(node).split("/") if p]
    if any(p in (".", "..") for p in parts):
        raise NodeMissing(f"{node!r} is not an object path")
    return "/" + "/".join(parts)


def _attrs(obj) -> dict[str, str]:
    out: dict[str, str] = {}
    for i, key in enumerate(obj.attrs):
        if i >= MAX_ATTRS:
            out["..."] = f"{len(obj.attrs) - MAX_ATTRS} more"
            break
        if key.startswith("h5stream_attr"):
            continue
        try:
            shown = text(obj.attrs[key])
        except (OSError, TypeError, ValueError) as exc:
            shown = f"<unreadable: {exc}>"
        out[key] = shown if len(shown) <= 300 else shown[:297] + "..."
    return out


_visible = visible_members


def dataset_kind(ds: h5py.Dataset) -> str:
    """How the viewer draws ``ds``: raster, line, image, stack, text."""
    name = ds.name.rsplit("/", 1)[-1]
    numeric = ds.dtype.kind in "biuf"
    if not numeric or ds.shape == () or ds.size == 0:
        return "text"
    if name == "spike_times" and ds.ndim == 1:
        return "raster"
    if ds.ndim == 1 or (ds.ndim == 2 and 1 in ds.shape):
        return "line"
    if ds.ndim == 2:
        return "image"
    return "stack"


def node_info(obj, name: str) -> dict:
    """What the tree shows of one member."""
    info: dict = {"name": name, "path": obj.name, "attrs": _attrs(obj)}
    if isinstance(obj, h5py.Dataset):
        declared = int(np.prod(obj.shape, dtype=np.float64) * obj.dtype.itemsize) if obj.shape else obj.dtype.itemsize
        stored = int(obj.id.get_storage_size())
        info.update(
            type="dataset", dtype=str(obj.dtype), shape=list(obj.shape), kind=dataset_kind(obj),
            stored=stored, stored_text=format_bytes(stored), declared=declared, declared_text=format_bytes(declared),
            chunks=list(obj.chunks) if obj.chunks else None, compression=obj.compression,
        )
    else:
        members = _visible(obj)
        stored = _stored_bytes(obj)
        info.update(type="group", members=len(members), stored=stored, stored_text=format_bytes(stored),
                    raster="spike_times" in obj and "trial_offsets" in obj and "trial_bounds" in obj)
    return info


def children(f: h5py.File, node: str) -> dict:
    """The group ``node`` of ``f`` and its members (at most :data:`MAX_MEMBERS`)."""
    node = clean_node(node)
    group = f if node == "/" else f[node] if node in f else None
    if not isinstance(group, h5py.Group):
        raise NodeMissing(f"no group {node} in the file")
    names = _visible(group)
    members = []
    for name in names[:MAX_MEMBERS]:
        obj = group.get(name, getlink=False)
        if isinstance(obj, (h5py.Group, h5py.Dataset)):
            members.append(node_info(obj, name))
    out = node_info(group, node.rsplit("/", 1)[-1] or "/")
    out["children"] = members
    out["more"] = max(0, len(names) - MAX_MEMBERS)
    return out


def get_dataset(f: h5py.File, node: str) -> h5py.Dataset:
    """The dataset at ``node``, or :class:`NodeMissing`."""
    node = clean_node(node)
    ds = f[node] if node != "/" and node in f else None
    if not isinstance(ds, h5py.Dataset):
        raise NodeMissing(f"no dataset {node} in the file")
    return ds

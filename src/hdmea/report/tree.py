"""A text description of a recording file: summary, steps completed and a tree with sizes.

What ``hdmea inspect FILE`` prints.  Groups with many members (hundreds of
units) are elided after ``max_children`` members so the output stays readable;
the file's top level (``metadata``, ``pipeline``, ``stimulus``, ``units``, ...)
is always shown whole, as the outline of the file.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np

from hdmea.io.recording import Recording, open_recording
from hdmea.session.names import canonical_step_names
from hdmea.progress import counted

__all__ = ["describe_recording", "format_bytes", "recording_overview"]


def format_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000.0
    return f"{n:.1f} TB"  # pragma: no cover


def _text(value, path, obj: str) -> str:
    """An attribute value as display text; text that is not valid UTF-8 is a typed error naming ``obj``."""
    from h5stream.tree.read import checked_text

    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.reshape(()).item()
    if isinstance(value, (bytes, str)):
        return checked_text(value, path, obj)
    if isinstance(value, np.ndarray) and value.size <= 8:
        return "[" + ", ".join(_text(v, path, obj) for v in value.tolist()) + "]"
    if isinstance(value, np.ndarray):
        return f"<{value.dtype} array {value.shape}>"
    return str(value)


def _stored_bytes(obj) -> int:
    if isinstance(obj, h5py.Dataset):
        return int(obj.id.get_storage_size())
    total = 0
    for name in obj:
        total += _stored_bytes(obj[name])
    return total


def _visible(group: h5py.Group) -> list[str]:
    from hdmea.io.hdf5_store import is_hidden

    return [name for name in group if not is_hidden(name)]


def recording_overview(f: h5py.File) -> dict:
    """Counts and lists a reader wants first: units, spikes, steps, features, movies."""
    from h5stream import checksums

    # checked against the file's checksum manifest (when it has one): the summary shows these values
    info: dict = {"attrs": {k: _text(checksums.attr_value(f, k), f.filename, f"/@{k}") for k in f.attrs
                            if not k.startswith("h5stream_attr") and k != checksums.MANIFEST_ATTR}}
    steps: list[str] = []
    warnings: list[str] = []
    if "pipeline/session_info" in f:
        decoded = Recording.of(f).node("pipeline/session_info")
        steps = canonical_step_names(decoded.get("completed_steps", []) or [])
        warnings = list(decoded.get("warnings", []) or [])
    info["completed_steps"] = steps
    info["warnings"] = warnings
    info["frame_order"] = _frame_order_text(f)
    units = _visible(f["units"]) if "units" in f else []
    info["n_units"] = len(units)
    spikes = 0
    features: dict[str, int] = {}
    for name in units:
        group = f["units"][name]
        if "spike_times" in group:
            spikes += int(group["spike_times"].shape[0])
        if "features" in group:
            for feature in _visible(group["features"]):
                features[feature] = features.get(feature, 0) + 1
    info["n_spikes"] = spikes
    info["features"] = features
    info["section_time"] = (
        {m: tuple(f["stimulus/section_time"][m].shape) for m in _visible(f["stimulus/section_time"])}
        if "stimulus/section_time" in f else {}
    )
    return info


def _frame_order_text(f: h5py.File) -> str:
    """One line on how the raw frames were read and why (empty when the file holds no decision)."""
    from hdmea.io.frame_order import FRAME_ORDER_METADATA, FrameOrderDecision

    if FRAME_ORDER_METADATA not in f:
        return ""
    record = Recording.of(f).node(FRAME_ORDER_METADATA)
    return FrameOrderDecision.from_record(record).words() if isinstance(record, dict) else ""


def _dataset_line(name: str, ds: h5py.Dataset) -> str:
    shape = "scalar" if ds.shape == () else "x".join(str(s) for s in ds.shape)
    extra = []
    if ds.compression:
        extra.append(ds.compression)
    if ds.chunks:
        extra.append("chunked")
    suffix = f"  ({', '.join(extra)})" if extra else ""
    return f"{name}  {ds.dtype} [{shape}]  {format_bytes(_stored_bytes(ds))}{suffix}"


def _group_line(name: str, group: h5py.Group) -> str:
    attrs = []
    for key in ("row", "col", "spike_count", "version", "n_spikes_used"):
        if key in group.attrs:
            attrs.append(f"{key}={_text(group.attrs[key], group.file.filename, f'{group.name}/@{key}')}")
    members = len(_visible(group))
    text = f"{name}/  {members} member{'s' if members != 1 else ''}, {format_bytes(_stored_bytes(group))}"
    return text + (f"  {' '.join(attrs)}" if attrs else "")


def _tree_lines(group: h5py.Group, prefix: str, max_children: int | None, *, whole: bool = False) -> list[str]:
    """The tree below ``group``; every member of it when ``whole``, else ``max_children`` of each group."""
    names = _visible(group)
    shown = names if whole or max_children is None or len(names) <= max_children else names[:max_children]
    lines = []
    for i, name in enumerate(shown):
        last = i == len(shown) - 1 and len(shown) == len(names)
        branch, indent = ("└── ", "    ") if last else ("├── ", "│   ")
        obj = group.get(name, getlink=False)
        if isinstance(obj, h5py.Group):
            lines.append(prefix + branch + _group_line(name, obj))
            lines.extend(_tree_lines(obj, prefix + indent, max_children))
        elif isinstance(obj, h5py.Dataset):
            lines.append(prefix + branch + _dataset_line(name, obj))
    if len(shown) < len(names):
        hidden = names[len(shown):]
        size = sum(_stored_bytes(group[n]) for n in hidden)
        lines.append(prefix + f"└── ... {len(hidden)} more ({format_bytes(size)}; --all shows them)")
    return lines


def describe_recording(path: str | os.PathLike, *, max_children: int | None = 4) -> str:
    """The text ``hdmea inspect`` prints for the recording file ``path``.

    Raises
    ------
    hdmea.errors.RecordingFormatError, h5stream.errors.FormatError
        The file is not a readable recording file.
    """
    path = Path(path)
    with open_recording(path) as recording:
        f = recording.file
        info = recording_overview(f)
        attrs = info["attrs"]
        lines = [
            f"{path}  ({format_bytes(path.stat().st_size)} on disk, "
            f"{attrs.get('h5stream_format', '?')} v{attrs.get('h5stream_format_version', '?')})",
            f"dataset_id: {attrs.get('dataset_id', '?')}   created {attrs.get('created_at', '?')}   "
            f"updated {attrs.get('updated_at', '?')}",
            "steps completed: " + (", ".join(info["completed_steps"]) or "none"),
            f"units: {info['n_units']}   spikes: {info['n_spikes']}",
        ]
        if info["section_time"]:
            lines.append("movies: " + ", ".join(
                f"{m} ({shape[0]} occurrence{'s' if shape[0] != 1 else ''})"
                for m, shape in info["section_time"].items()))
        if info["features"]:
            lines.append("features: " + ", ".join(f"{k} ({counted(v, 'unit')})" for k, v in sorted(info["features"].items())))
        if info["frame_order"]:
            lines.append(f"raw frames: {info['frame_order']}")
        for text in info["warnings"]:
            lines.append(f"warning: {text}")
        lines.append("/")
        lines.extend(_tree_lines(f, "", max_children, whole=True))  # the top level: the file's outline
    return "\n".join(lines)

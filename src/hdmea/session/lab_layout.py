"""The file a session saves, laid out as the original pipeline's session mode writes it.

The lab's analysis code reads the files of hdmea_processing's ``PipelineSession.save`` (measured at
fe13de2: ``tests/data/lab_layout/unified_session_*.json``), whose rules differ from its immediate mode:

- every scalar under ``/metadata``, ``/stimulus`` and a unit's dicts is a 0-d dataset (``float(f[p][()])``
  works on it; a 1-element array raises under numpy 2), lists are 1-d datasets; a list (or tuple) of
  one type directly under a unit is an attribute of the unit, as its other scalars are;
- root attributes ``dataset_id``, ``created_at``, ``hdmea_version``;
- ``/source_files`` holds the source paths as text attributes ``cmcr_path``, ``cmtr_path``;
- ``/pipeline`` carries ``stage1_completed`` (True) and ``stage1_timestamp`` (when saved);
- the frame times are ``/stimulus/frame_times/default`` (the immediate mode's ``frame_time/default`` is
  kept beside them: our steps and readers use it);
- the playlist the section times came from is ``/metadata/section_time_playlist`` and
  ``/metadata/section_time_repeats`` (root attributes in immediate mode, kept there too).

A session keeps its tree in the engine's typed form (a scalar is a tagged 1-element dataset, the tag
restores its exact type); :func:`lab_session_tree` rewrites a copy of that tree at save and checkpoint,
leaving the session's own nodes untouched.  Our additions (tags, checksums, provenance) stay beside the
original's paths; the root attributes ``source_files`` and ``features_extracted`` are JSON text, as the
original's immediate mode writes them.
"""

from __future__ import annotations

import numpy as np

from h5stream.checksums import array_digest
from h5stream.staging import FileArray
from h5stream.tree import Dataset, Group, decode_node, normalize_attr, value_node

__all__ = ["lab_session_tree", "carry_written", "SCALAR_TAGS", "HDMEA_VERSION_ATTR"]

#: Tags of scalars stored as one value (h5stream.tree): written 0-d in a session's file.
SCALAR_TAGS = frozenset({"int", "float", "bool", "str", "npscalar", "bigint", "json"})
#: The root attribute the original's session mode writes with its package version.
HDMEA_VERSION_ATTR = "hdmea_version"


def _zero_d(node, replaced: dict):
    """``node`` with every 1-element scalar dataset below it made 0-d (copies only what changes);
    ``replaced`` receives ``id(new dataset) -> the session's dataset``."""
    if isinstance(node, Dataset):
        data = node.data
        if node.tag in SCALAR_TAGS and isinstance(data, np.ndarray) and data.shape == (1,):
            new = Dataset(data.reshape(()), node.attrs, node.tag)
            replaced[id(new)] = node
            return new
        return node
    children = None  # a copy of the group's children once one of them changes
    for name, child in node.children.items():
        if isinstance(child, Dataset) and child.tag not in SCALAR_TAGS:
            continue  # (most datasets: a unit's trials, untagged)
        new = _zero_d(child, replaced)
        if new is not child:
            children = dict(node.children) if children is None else children
            children[name] = new
    return node if children is None else Group(node.attrs, children, node.tag, node.keys)


def lab_session_tree(root: Group, *, version: str, saved_at: str, source_files: dict[str, str],
                     replaced: dict | None = None) -> Group:
    """The tree a session writes: ``root`` with the original's session-mode rules applied (see the module).

    ``replaced`` (when given) receives ``id(dataset written) -> the session's own dataset`` of each scalar
    written in its 0-d form (see :func:`carry_written`)."""
    replaced = {} if replaced is None else replaced
    out = _zero_d(root, replaced)
    out = Group(dict(out.attrs), dict(out.children), out.tag, out.keys)
    _unit_lists_as_attributes(out, replaced)
    out.attrs[HDMEA_VERSION_ATTR] = version
    _json_root_records(out.attrs)
    pipeline = out.children.get("pipeline")
    if isinstance(pipeline, Group):
        pipeline = Group(dict(pipeline.attrs), dict(pipeline.children), pipeline.tag, pipeline.keys)
        pipeline.attrs["stage1_completed"] = True
        pipeline.attrs["stage1_timestamp"] = saved_at
        out.children["pipeline"] = pipeline
    _session_stimulus_and_metadata(out)
    paths = {key: value for key, value in source_files.items() if value}
    if paths:
        out.children["source_files"] = Group(attrs=paths)
    else:
        out.children.pop("source_files", None)
    return out


def _is_flat_list(node) -> bool:
    """A list (or tuple) of numbers, texts or bools of one type, as a session stores it (a tagged 1-d
    dataset): the original stores such a value directly under a unit as an attribute."""
    return isinstance(node, Dataset) and bool(node.tag) and node.tag.startswith(("list:", "tuple:")) \
        and node.data.ndim == 1


def _unit_lists_as_attributes(out: Group, replaced: dict) -> None:
    """A list a script assigned directly under a unit (``session.units[u]["x"] = [1, 2]``) written as an
    attribute of the unit, as the original's session writes every value of a unit that is neither an
    array nor a dict.  The session itself keeps it as a child, so a later change to the caller's list is
    followed; ``replaced`` receives ``("attribute", id(node)) -> node`` of each (see :func:`carry_written`)."""
    units = out.children.get("units")
    if not isinstance(units, Group):
        return
    children = dict(units.children)
    for uid, unit in units.children.items():
        if not isinstance(unit, Group) or unit.tag is not None:
            continue
        lists = {name: child for name, child in unit.children.items() if _is_flat_list(child)}
        if not lists:
            continue
        unit = children[uid] = Group(dict(unit.attrs), dict(unit.children), unit.tag, unit.keys)
        for name, child in lists.items():
            del unit.children[name]
            unit.attrs[name] = normalize_attr(decode_node(child))
            replaced[("attribute", id(child))] = child
    if any(children[uid] is not units.children[uid] for uid in children):
        out.children["units"] = Group(units.attrs, children, units.tag, units.keys)


def _json_root_records(attrs: dict) -> None:
    """Root ``source_files`` and ``features_extracted`` as the original's JSON text (earlier files of ours,
    loaded into a session, held them as lists)."""
    from hdmea.io import hdf5_store as store

    if "source_files" in attrs and not isinstance(attrs["source_files"], str):
        attrs["source_files"] = store.source_files_attrs(*store.source_paths(attrs["source_files"]))["source_files"]
    if "features_extracted" in attrs and not isinstance(attrs["features_extracted"], str):
        attrs["features_extracted"] = store.features_text(store.feature_names(attrs["features_extracted"]))


def _session_stimulus_and_metadata(out: Group) -> None:
    stimulus = out.children.get("stimulus")
    frames = stimulus.children.get("frame_time") if isinstance(stimulus, Group) else None
    if isinstance(frames, Group) and isinstance(frames.children.get("default"), Dataset):
        stimulus = out.children["stimulus"] = Group(stimulus.attrs, dict(stimulus.children), stimulus.tag,
                                                    stimulus.keys)
        data = frames.children["default"].data  # a copy of its own: a spilled array is moved, once, at save
        data = data.read() if isinstance(data, FileArray) else np.array(data)
        stimulus.children["frame_times"] = Group(children={"default": Dataset(data)})
    metadata = out.children.get("metadata")
    if isinstance(metadata, Group):
        extra = {name: out.attrs[name] for name in ("section_time_playlist", "section_time_repeats")
                 if name in out.attrs and name not in metadata.children}
        if extra:
            children = dict(metadata.children)
            for name, value in extra.items():
                node = value_node(value)
                children[name] = Dataset(node.data.reshape(()), node.attrs, node.tag)
            out.children["metadata"] = Group(metadata.attrs, children, metadata.tag, metadata.keys)


def carry_written(written: dict[int, str], replaced: dict) -> dict[int, str]:
    """The writer's ``id(node) -> digest`` record, told of the session's own datasets: a scalar written
    0-d in place of the session's 1-element dataset counts as that dataset written (its digest as staged),
    so a session saved and unchanged stays saved."""
    for new_id, node in replaced.items():
        if isinstance(new_id, tuple):  # a list written as an attribute: it counts as written, as staged
            if node.data.dtype.kind != "O":
                written[id(node)] = array_digest(node.data)
            continue
        if written.pop(new_id, None) is not None and node.data.dtype.kind != "O":
            written[id(node)] = array_digest(node.data)  # (text is not digested: a str cannot change in place)
    return written

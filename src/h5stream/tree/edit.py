"""In-place edits of an existing file's objects through the tree's writer: a group path created where
missing, and attributes set on an existing object with their type tags kept right."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import h5py

from h5stream import checksums
from h5stream.errors import EncodingError
from h5stream.lowlevel import create_group
from h5stream.tree.nodes import ATTR_TYPES_ATTR, HIDDEN_PREFIX, Dataset, Group, check_attr_name, text
from h5stream.tree.write import WriteContext, _existing_dataset_attrs_home, _record_existing_attrs, write_attrs

__all__ = ["require_h5_group", "set_h5_attrs"]


def require_h5_group(f: h5py.Group, path: str) -> h5py.Group:
    """The group at ``path`` under ``f``, created with the tree's property lists where missing."""
    group = f
    for part in [p for p in path.split("/") if p]:
        if part in group:
            child = group[part]
            if not isinstance(child, h5py.Group):
                raise EncodingError("a dataset stands where a group is needed", path=f.file.filename,
                                    obj=child.name, expected="a group", found="a dataset")
            group = child
        else:
            group = h5py.Group(create_group(group.id, part))
    return group


def _stored_tags(obj) -> dict[str, str]:
    return json.loads(text(obj.attrs[ATTR_TYPES_ATTR])) if ATTR_TYPES_ATTR in obj.attrs else {}


def set_h5_attrs(obj: h5py.Group | h5py.Dataset, mapping: Mapping[str, Any]) -> None:
    """Set decoded attribute values on an existing object, keeping its type tags right."""
    existing_tags = _stored_tags(obj)
    is_dataset = isinstance(obj, h5py.Dataset)
    node = Dataset(None) if is_dataset else Group()
    for name in mapping:
        check_attr_name(name, path=obj.file.filename)
    home = _existing_dataset_attrs_home(obj) if is_dataset else None
    recorder = checksums.recorder_for(obj)
    where = obj.name
    for name, value in mapping.items():
        if name in obj.attrs:
            del obj.attrs[name]
        if not is_dataset and HIDDEN_PREFIX + name in obj:
            del obj[HIDDEN_PREFIX + name]
            if recorder is not None:
                recorder.removed(f"{where.rstrip('/')}/{HIDDEN_PREFIX}{name}")
        if home is not None and name in home:
            del home[name]
            if recorder is not None:
                recorder.removed(f"{home.name}/{name}")
        existing_tags.pop(name, None)
        node.attrs[name] = value
    if ATTR_TYPES_ATTR in obj.attrs:
        del obj.attrs[ATTR_TYPES_ATTR]
    # Write the new values, then merge the tags of the untouched attributes back in.
    write_attrs(obj, node, WriteContext())
    if is_dataset:
        home = _existing_dataset_attrs_home(obj)
        if home is not None and len(home) == 0:
            del obj.parent[home.name.rpartition("/")[2]]
    if existing_tags:
        new_tags = _stored_tags(obj)
        new_tags.update(existing_tags)
        if ATTR_TYPES_ATTR in obj.attrs:
            del obj.attrs[ATTR_TYPES_ATTR]
        obj.attrs.create(ATTR_TYPES_ATTR, json.dumps(new_tags, sort_keys=True))
    if recorder is not None:
        _record_existing_attrs(recorder, obj)

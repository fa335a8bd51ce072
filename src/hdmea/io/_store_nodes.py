"""The store's layout builders for what a recording holds: units, stimulus arrays, features, metadata.

Each builder checks its input (names, dtypes, shapes) and returns the engine's typed nodes
(:mod:`h5stream.tree`) that :mod:`hdmea.io.hdf5_store` writes in immediate mode and
:class:`hdmea.pipeline.PipelineSession` writes when deferred; the store re-exports them.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from h5stream.errors import EncodingError, UnsafeNameError
from h5stream.staging import FileArray
from h5stream.tree import (
    Dataset, Group, Node, array_node, check_attr_name, check_member_name, is_safe_key, mapping_node, normalize_attr,
    put_node, value_node,
)

__all__ = ["unit_node", "units_nodes", "stimulus_nodes", "feature_node", "feature_row_nodes", "metadata_nodes"]


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


def unit_node(unit_id: str, data: Mapping, *, require_spikes: bool = False) -> Group:
    """The node of one unit: spike_times (uint64), waveform (float32), attributes, empty features.

    A unit may come without spike times (the lab's scripts assign ``{"auto_label": {...}}`` or a unit's
    geometry alone, and the original's session stores any dict); the steps that need them say so, naming
    the unit.  ``require_spikes``: refuse such a unit (the store's ``write_units``, as its contract says).
    """
    if not isinstance(data, Mapping):
        raise EncodingError("unit data must be a mapping", obj=f"/units/{unit_id}",
                            expected="a dict with spike_times, waveform, row, col, global_id",
                            found=type(data).__name__)
    if require_spikes and "spike_times" not in data:
        raise EncodingError("unit data has no spike_times", obj=f"/units/{unit_id}",
                            expected="a 'spike_times' array", found=", ".join(map(str, data)) or "no keys")
    group = Group(children={"features": Group()})
    for key, value in data.items():
        if key in _UNIT_ARRAYS:
            array = _UNIT_ARRAYS[key](value, unit_id)
            # spike times say their unit, as the original's store writes them
            group.children[key] = Dataset(array, {"unit": "sample_index"} if key == "spike_times" else None)
        elif key == "features":
            if not isinstance(value, Mapping):
                raise EncodingError("unit features must be a mapping of feature name -> values",
                                    obj=f"/units/{unit_id}/features", found=type(value).__name__)
            for name, feature in value.items():
                check_member_name(name, what="feature name")
                # a feature's dict: every value a dataset, as the original's session writes it
                group.children["features"].children[name] = (value_node(feature) if isinstance(feature, Mapping)
                                                              else put_node(feature))
        elif isinstance(value, (np.ndarray, FileArray)):
            check_member_name(key, what="unit field name")
            group.children[key] = array_node(value)
        elif isinstance(value, Mapping):
            # a dict of the unit's (auto_label, unit_meta, ...) stores every value as a dataset, as the
            # original's session writes it and as a later write through the session's live dicts does
            check_member_name(key, what="unit field name")
            group.children[key] = value_node(value)
        else:
            check_attr_name(key, what="unit attribute name")
            group.attrs[key] = normalize_attr(value)
    if "spike_times" in group.children:
        spikes = group.children["spike_times"].data
        group.attrs["spike_count"] = int(spikes.shape[0]) if spikes.ndim else 1
    return group


def units_nodes(units_data: Mapping[str, Mapping]) -> dict[str, Group]:
    if not isinstance(units_data, Mapping):
        raise EncodingError("units_data must be a mapping of unit id -> unit data", found=type(units_data).__name__)
    return {check_member_name(uid, what="unit id"): unit_node(uid, data, require_spikes=True)
            for uid, data in units_data.items()}


def _section_times(values, movie: str):
    if isinstance(values, FileArray):
        return values
    array = _uint64_samples(values, "section_times", movie)
    if array.ndim == 1 and array.size == 2:
        array = array.reshape(1, 2)
    if array.ndim != 2 or array.shape[1] != 2:
        raise EncodingError("section times must be (n, 2) start/end samples", obj=f"/stimulus/section_time/{movie}",
                            expected="shape (n, 2)", found=f"shape {array.shape}")
    if array.size and int(array.max()) >= 2**63:
        raise EncodingError("section times past the int64 range", obj=f"/stimulus/section_time/{movie}",
                            expected="samples below 2**63", found=str(int(array.max())))
    # int64, as the original stores them: the lab's scripts subtract margins from them (uint64 would wrap)
    return array.astype(np.int64)


def stimulus_nodes(light_reference=None, frame_times=None, section_times=None) -> dict[str, dict[str, Dataset]]:
    """{subgroup: {name: dataset}} for ``/stimulus``; names are checked."""
    out: dict[str, dict[str, Dataset]] = {}
    for group, mapping, convert in (
        ("light_reference", light_reference, _float32),
        ("frame_time", frame_times,
         lambda v: v if isinstance(v, FileArray) else _uint64_samples(v, "frame_times", "stimulus")),
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


def feature_node(feature_name: str, feature_data: Mapping, metadata: Mapping | None, *,
                 _seen: dict | None = None) -> Group:
    """The group of one unit's feature: arrays datasets, dicts groups, everything else attributes, and
    ``metadata`` attributes of the group.  ``_seen`` (one dict over many calls, :meth:`add_features`): the
    checks and conversions already done for one unit's keys and text are not done again for the next."""
    check_member_name(feature_name, what="feature name")
    if not isinstance(feature_data, Mapping):
        raise EncodingError("feature data must be a mapping", obj=feature_name, found=type(feature_data).__name__)
    seen = _seen if _seen is not None else {}
    if not seen:
        seen.update(keys={}, names=set(), text={})
    data = dict(feature_data)
    if _plain_keys(tuple(data), seen) and all(type(v) is float or type(v) is bool for v in data.values()):
        node = Group(data)  # what put_node makes of it: each a plain attribute, read back as it is
    else:
        node = put_node(data)
    node.attrs.update(_metadata_attrs(metadata, seen))
    node.attrs.setdefault("name", feature_name)
    return node


def _plain_keys(keys: tuple, seen: dict) -> bool:
    """Whether every key is a name as it is (then a feature's scalars are its group's attributes), found once
    per set of keys (``seen``)."""
    plain = seen["keys"].get(keys)
    if plain is None:
        plain = seen["keys"][keys] = all(type(k) is str and is_safe_key(k) for k in keys)
    return plain


def _metadata_attrs(metadata: Mapping | None, seen: dict) -> dict:
    """``metadata`` as a feature group's attributes: names checked, values as they read back (each name and
    text checked and converted once over the calls that share ``seen``)."""
    attrs = {}
    for key, value in (metadata or {}).items():
        if key not in seen["names"]:
            check_attr_name(key, what="feature metadata name")
            seen["names"].add(key)
        if type(value) is str:
            text = seen["text"].get(value)
            if text is None:
                text = seen["text"][value] = normalize_attr(value)
            attrs[key] = text
        else:
            attrs[key] = normalize_attr(value)
    return attrs


def feature_row_nodes(feature_name: str, names: tuple, rows, metadata: Mapping | None) -> list[Group]:
    """:func:`feature_node` of ``dict(zip(names, row))`` with ``metadata``, for each of ``rows`` (the features of
    many units that share their keys, :class:`hdmea.features.base.FeatureRows`): the names and the metadata are
    checked and converted once, and a row of floats and bools (Python's) becomes its group's attributes at once."""
    check_member_name(feature_name, what="feature name")
    seen: dict = {"keys": {}, "names": set(), "text": {}}
    names = tuple(names)
    meta = _metadata_attrs(metadata, seen)
    plain = _plain_keys(names, seen) and len(set(names)) == len(names)
    scalars = {float, bool}
    nodes = []
    for row in rows:
        if plain and len(row) == len(names) and set(map(type, row)) <= scalars:
            attrs = dict(zip(names, row))
            attrs.update(meta)
            attrs.setdefault("name", feature_name)
            nodes.append(Group(attrs))
        else:
            nodes.append(feature_node(feature_name, dict(zip(names, row)), metadata, _seen=seen))
    return nodes


def metadata_nodes(metadata: Mapping) -> dict[str, Node]:
    if not isinstance(metadata, Mapping):
        raise EncodingError("metadata must be a mapping", found=type(metadata).__name__)
    group = mapping_node(metadata, value_node, scalars_as_attrs=False)
    if group.tag == "dict":
        raise UnsafeNameError(
            "top-level metadata keys must be safe names",
            expected="non-empty str without '/' or NUL, other than '.' and '..'",
            found=", ".join(repr(k) for k in metadata if not is_safe_key(k)),
            hint="nest such keys one level down, where any key is stored exactly",
        )
    return group.children

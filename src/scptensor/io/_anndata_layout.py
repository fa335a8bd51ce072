"""One assay as an AnnData group, shared by the ``.h5mu`` and ``.h5ad`` formats.

An assay becomes an AnnData group: ``obs`` (the samples), ``var`` (the
features, row index = feature ids), ``X`` (the first layer, or the one asked
for), ``layers`` (the other layers), and ``uns/scptensor`` with what AnnData has
no place for: masks, matrix metadata, the layer order and the id column names.
Everything is written with the element codecs, so ``anndata`` and ``mudata``
read the group and scptensor reads back exactly what it wrote; frame columns
AnnData cannot read are written as stand-ins with an exact copy under
``uns/scptensor/exact_columns`` (see :mod:`scptensor.io._anndata_columns`).
"""

from __future__ import annotations

import io
from typing import Any

import h5py
import numpy as np
import polars as pl

from h5stream import checksums
from h5stream.elements import read_elem, write_elem
from h5stream.elements.mapping import member_name
from scptensor.core.structures import AggregationLink, Assay, ScpContainer, ScpMatrix
from scptensor.io._anndata_columns import EXACT_COLUMNS_KEY, restore_frame, split_frame
from scptensor.io import json_values
from scptensor.io.exceptions import IOFormatError
from scptensor.io.partial_hdf5 import read_obs_part, read_rows
from scptensor.io.serializers import (
    compression_options,
    matrix_options,
    provenance_from_element,
    provenance_to_element,
)

__all__ = [
    "ANNDATA_ENCODING",
    "write_assay_group",
    "read_assay_group",
    "container_extras",
    "apply_container_extras",
    "SCPTENSOR_KEY",
    "write_anndata_frame",
    "read_anndata_frame",
    "read_anndata_obs",
    "read_info",
    "layer_order",
]

ANNDATA_ENCODING = ("anndata", "0.1.0")
SCPTENSOR_KEY = "scptensor"
_EMPTY_MAPPINGS = ("obsm", "varm", "obsp", "varp")
# Encodings AnnData's reader registry knows (anndata 0.10 - 0.12); an element
# holding anything else makes anndata.read_h5ad and mudata.read_h5mu fail whole.
_ANNDATA_ENCODINGS = frozenset({
    "array", "categorical", "csc_matrix", "csr_matrix", "dataframe", "dict", "null",
    "nullable-boolean", "nullable-integer", "nullable-string-array", "numeric-scalar",
    "string", "string-array",
})


def _text_attr(obj, name: str):
    value = checksums.attr_value(obj, name)
    return value.decode() if isinstance(value, bytes) else value


def anndata_readable(obj: h5py.Group | h5py.Dataset) -> bool:
    """True when every element in ``obj`` (itself included) has an encoding AnnData reads."""
    found = []

    def visit(_name, member):
        etype = _text_attr(member, "encoding-type")
        if etype is not None and etype not in _ANNDATA_ENCODINGS:
            found.append(etype)
            return True  # stop at the first one
        return None

    if visit(obj.name, obj):
        return False
    if isinstance(obj, h5py.Group):
        obj.visititems(visit)
    return not found


def _write_metadata(parent: h5py.Group, metadata: dict[str, dict], options: dict) -> None:
    """Matrix metadata per layer; a layer's mapping AnnData cannot read becomes exact JSON text."""
    group = write_elem_group(parent, "metadata", metadata, options)
    for layer, value in metadata.items():
        member = member_name(layer)
        if not anndata_readable(group[member]):
            del group[member]
            write_elem(group, member, json_values.dumps(value))


def _read_metadata(value: dict[str, Any]) -> dict[str, dict]:
    return {k: json_values.loads(v) if isinstance(v, str) else v for k, v in value.items()}


def stamp_anndata(group: h5py.Group) -> None:
    """Mark a group as an AnnData object (the group itself is no element of the codecs)."""
    group.attrs["encoding-type"], group.attrs["encoding-version"] = ANNDATA_ENCODING


def write_anndata_frame(
    parent: h5py.Group, key: str, frame: pl.DataFrame, index: str, options: dict, exact: dict[str, Any]
) -> None:
    """Write ``frame`` as element ``key`` readable by AnnData; exact copies go to ``exact[key]``."""
    visible, exact_bytes = split_frame(frame)
    write_elem(parent, key, visible, index=index, **options)
    if exact_bytes is not None:
        exact[key] = exact_bytes


def read_anndata_frame(group: h5py.Group, key: str, info: dict[str, Any], path) -> pl.DataFrame:
    """Read frame ``key`` of ``group`` with its stand-ins replaced by the exact columns in ``info``."""
    frame = read_elem(group[key])
    exact = info.get(EXACT_COLUMNS_KEY, {}).get(key)
    return restore_frame(frame, exact, path=path, obj=f"{group.name.rstrip('/')}/{key}")


def write_assay_group(
    group: h5py.Group,
    sample_ids: pl.DataFrame,
    obs_id_col: str,
    assay: Assay,
    *,
    x_layer: str | None,
    compression: str | None,
    level: int | None,
    uns_extra: dict[str, Any] | None = None,
    skip_empty_mappings: tuple[str, ...] = (),
) -> None:
    """Fill ``group`` (an empty group) with ``assay`` in the AnnData layout."""
    options = compression_options(compression, level)
    stamp_anndata(group)
    exact: dict[str, Any] = {}
    write_anndata_frame(group, "obs", sample_ids, obs_id_col, options, exact)
    write_anndata_frame(group, "var", assay.var, assay.feature_id_col, options, exact)
    if x_layer is None and assay.layers:
        x_layer = next(iter(assay.layers))
    if x_layer is not None:
        X = assay.layers[x_layer].X
        write_elem(group, "X", X, **matrix_options(X, compression, level))
    others = {k: m.X for k, m in assay.layers.items() if k != x_layer}
    write_elem(group, "layers", others, **matrix_options(others, compression, level))
    for name in _EMPTY_MAPPINGS:
        if name not in skip_empty_mappings:
            write_elem(group, name, {})
    info: dict[str, Any] = {
        "feature_id_col": assay.feature_id_col,
        # a string array even when empty (an empty list has no spec encoding)
        "layer_order": np.array(list(assay.layers), dtype=np.dtypes.StringDType()),
        "x_layer": x_layer if x_layer is not None else "",
        "masks": {k: m.M for k, m in assay.layers.items() if m.M is not None},
    }
    metadata = {k: dict(m.metadata) for k, m in assay.layers.items() if m.metadata}
    if exact:
        info[EXACT_COLUMNS_KEY] = exact
    info.update(uns_extra or {})
    masks = info.pop("masks")
    uns = write_elem_group(group, "uns", {SCPTENSOR_KEY: info}, options)
    _write_metadata(uns[SCPTENSOR_KEY], metadata, options)
    # masks: int8 codes (shuffle is a no-op on them) with sparse index arrays that it shrinks
    write_elem(uns[SCPTENSOR_KEY], "masks", masks, **matrix_options(masks, compression, level))


def write_elem_group(parent: h5py.Group, key: str, value: dict, options: dict) -> h5py.Group:
    """Write a mapping element and return its group (to add members to it)."""
    write_elem(parent, key, value, **options)
    return parent[key]


def read_info(group: h5py.Group, path) -> dict[str, Any]:
    """The ``uns/scptensor`` annotations of an AnnData group, without the masks (read per layer)."""
    if "uns" not in group or SCPTENSOR_KEY not in group["uns"]:
        raise IOFormatError(
            "AnnData group was not written by scptensor", path=path, obj=f"{group.name}/uns/{SCPTENSOR_KEY}",
            expected="the scptensor annotations (masks, layer order, id columns)", found="nothing",
            hint="only files saved by scptensor load back into a container",
        )
    # the keys are plain names (no escaping): member name == key
    stored = group["uns"][SCPTENSOR_KEY]
    return {key: read_elem(stored[key]) for key in stored if key != "masks"}


def layer_order(info: dict[str, Any]) -> list[str]:
    return [str(v) for v in info.get("layer_order", [])]


def read_anndata_obs(selection, group: h5py.Group, info: dict[str, Any], path, request: dict):
    """The requested obs columns and rows of an AnnData group or MuData root, and the positions."""
    restore = None
    exact = info.get(EXACT_COLUMNS_KEY, {}).get("obs")
    if exact is not None:
        try:
            names = list(pl.read_ipc_schema(io.BytesIO(np.asarray(exact).tobytes())))
        except Exception:  # a damaged copy: restore_frame names what is wrong
            names = ()

        def finish(frame: pl.DataFrame) -> pl.DataFrame:
            # stand-ins not read are given as null placeholders, replaced, then left out
            unread = [pl.lit(None).alias(n) for n in names if n not in frame.columns]
            return restore_frame(frame.with_columns(unread), exact, path=path, obj=f"{group.name.rstrip('/')}/obs")

        restore = finish
    return read_obs_part(
        selection, group["obs"], info["sample_id_col"], request.get("obs_columns"), request.get("samples"),
        lambda: read_anndata_frame(group, "obs", info, path), restore,
    )


def read_assay_group(
    group: h5py.Group, path, info: dict[str, Any] | None = None, *, layers=None, positions=None
) -> tuple[Assay, dict[str, Any]]:
    """The assay stored in an AnnData group (only ``layers``, only rows ``positions``) and its annotations."""
    info = read_info(group, path) if info is None else info
    var = read_anndata_frame(group, "var", info, path)
    x_layer = info.get("x_layer") or None
    order = layer_order(info)
    stored = group["layers"] if "layers" in group else {}
    present = ([x_layer] if x_layer is not None and "X" in group else []) + [
        name for name in order if name != x_layer and member_name(name) in stored
    ]
    if sorted(order) != sorted(present) or len(stored) != len(order) - (x_layer is not None):
        raise IOFormatError(
            "layers differ from the recorded layer order", path=path, obj=group.name,
            expected=f"layers {order}", found=f"{len(stored)} members of layers besides X {x_layer!r}",
        )
    uns = group["uns"][SCPTENSOR_KEY]
    masks = uns["masks"] if "masks" in uns else {}
    metadata = _read_metadata(info.get("metadata", {}))
    result = {}
    for name in order:
        if layers is not None and name not in layers:
            continue
        values = group["X"] if name == x_layer else stored[member_name(name)]
        mask = masks[member_name(name)] if member_name(name) in masks else None
        result[name] = ScpMatrix(
            read_rows(values, positions), None if mask is None else read_rows(mask, positions),
            metadata.get(name),
        )
    return Assay(var, result, feature_id_col=info["feature_id_col"]), info


def container_extras(container: ScpContainer) -> dict[str, Any]:
    """History and links as values for ``uns/scptensor``."""
    links = {}
    for i, link in enumerate(container.links):
        linkage, exact = split_frame(link.linkage)
        entry = {"source_assay": link.source_assay, "target_assay": link.target_assay, "linkage": linkage}
        if exact is not None:
            entry[EXACT_COLUMNS_KEY] = exact
        links[str(i)] = entry
    return {
        "sample_id_col": container.sample_id_col,
        "history": provenance_to_element(container.history, params_as_json=True),
        "links": links,
    }


def _without_synthetic_index(frame: pl.DataFrame) -> pl.DataFrame:
    """A link frame without the row numbers AnnData adds as its index when it re-saves our file.

    Link frames are written without an index ("0", "1", ... as row labels); our
    reader drops those, but a file anndata re-saved lost the attributes that say
    so, and the labels come back as a leading ``_index`` column.
    """
    if frame.width and frame.columns[0] == "_index" and frame.schema["_index"] == pl.String:
        labels = pl.int_range(0, frame.height, eager=True).cast(pl.String)
        if frame.get_column("_index").equals(labels.alias("_index")):
            return frame.drop("_index")
    return frame


def apply_container_extras(info: dict[str, Any], path=None) -> tuple[list, list]:
    """History and links back from ``uns/scptensor``."""
    history = provenance_from_element(info["history"]) if "history" in info else []
    links_value = info.get("links", {})
    links = []
    for key, v in sorted(links_value.items(), key=lambda kv: int(kv[0])):
        linkage = _without_synthetic_index(v["linkage"])
        linkage = restore_frame(
            linkage, v.get(EXACT_COLUMNS_KEY), path=path, obj=f"uns/{SCPTENSOR_KEY}/links/{key}/linkage"
        )
        links.append(AggregationLink(v["source_assay"], v["target_assay"], linkage))
    return history, links


#: Root attribute that marks an AnnData or MuData file written by scptensor.
MARK_ATTR = "scptensor:format_version"


def written_by_scptensor(group: h5py.Group) -> bool:
    """True when ``group`` (an AnnData group or a MuData root) holds our annotations.

    The root mark is lost when anndata or mudata re-save one of our files, but
    ``uns/scptensor`` is kept, so the annotations decide.
    """
    return "uns" in group and SCPTENSOR_KEY in group["uns"]


def interop_format_check(path, *, encoding_type: str, label: str, version: str, required: tuple[str, ...]):
    """A ``check`` for :func:`h5stream.files.open_validated` of AnnData/MuData files.

    It verifies the root ``encoding-type``, our format version when the file
    carries our mark (files of other tools have none and are imported), and the
    required top-level groups, raising :class:`IOFormatError` naming what is wrong.
    """
    from scptensor.io._files import root_attr

    def check(f: h5py.File) -> None:
        kind = root_attr(f, "encoding-type")
        if kind != encoding_type:
            raise IOFormatError(
                f"not a {label} file", path=path, obj="/@encoding-type",
                expected=repr(encoding_type), found=repr(kind),
            )
        found_version = root_attr(f, MARK_ATTR)
        if found_version is not None and str(found_version) != version:
            raise IOFormatError(
                "unsupported scptensor format version", path=path, obj=f"/@{MARK_ATTR}",
                expected=repr(version), found=repr(found_version),
            )
        for group in required:
            if group not in f:
                raise IOFormatError(
                    "required group is missing", path=path, obj=f"/{group}",
                    expected=f"a group /{group}", found="nothing",
                )

    return check

"""One assay as an AnnData group, shared by the ``.h5mu`` and ``.h5ad`` formats.

An assay becomes an AnnData group: ``obs`` (the samples), ``var`` (the
features, row index = feature ids), ``X`` (the first layer, or the one asked
for), ``layers`` (the other layers), and ``uns/scptensor`` with what AnnData has
no place for: masks, matrix metadata (exact JSON text), the layer order, the
id column names and a record of each frame (``frames``, see
:mod:`h5scp.io._anndata_columns`).  Everything is written with the element
codecs in forms anndata and mudata read and write back under their defaults.

Reading takes the group as it is now and applies the recorded annotations
only where they still describe it (:func:`read_assay_group`): another tool may
have subset or reordered samples and features, added or removed layers and
columns, or replaced values; each difference is named for the history.
"""

from __future__ import annotations

import logging
from typing import Any

import h5py
import numpy as np
import polars as pl
from scipy import sparse

from h5stream import checksums
from h5stream.elements import read_elem, write_elem
from h5stream.elements.mapping import member_name
from h5scp.core.structures import AggregationLink, Assay, ScpContainer, ScpMatrix
from h5scp.io._anndata_columns import (
    EXACT_COLUMNS_KEY,
    FINGERPRINTS_KEY,
    FRAMES_KEY,
    SCHEMAS_KEY,
    FrameNotes,
    anndata_visible,
    frame_schema,
    read_record,
    read_schema,
    reconcile_frame,
    reconcile_schema,
    record_frame,
    restore_frame,
)
from h5scp.io import json_values
from h5scp.io.exceptions import IOFormatError
from h5scp.io._anndata_group import SCPTENSOR_KEY, GroupView
from h5scp.io.partial_hdf5 import read_obs_part, read_part, stored_shape
from h5scp.io.selection import metadata_part
from h5scp.io.serializers import normalize_sparse
from h5scp.io.serializers import (
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
    "present_layers",
    "recorded_frame",
    "recorded_schema",
    "new_records",
    "reconcile",
]

logger = logging.getLogger(__name__)

ANNDATA_ENCODING = ("anndata", "0.1.0")
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
    """Matrix metadata per layer as exact tagged JSON text (anndata re-saves text as it is;
    a mapping would come back with its keys sorted)."""
    for layer, value in metadata.items():
        json_values.check_metadata(value, obj=f"layers/{layer}/metadata")
    texts = {layer: json_values.dumps(value, obj=f"layers/{layer}/metadata") for layer, value in metadata.items()}
    write_elem(parent, "metadata", texts, **options)


def _read_metadata(value: dict[str, Any]) -> dict[str, dict]:
    return {k: json_values.loads(v) if isinstance(v, str) else v for k, v in value.items()}


def stamp_anndata(group: h5py.Group) -> None:
    """Mark a group as an AnnData object (the group itself is no element of the codecs)."""
    group.attrs["encoding-type"], group.attrs["encoding-version"] = ANNDATA_ENCODING


def new_records() -> dict[str, dict]:
    """Where :func:`write_anndata_frame` puts each frame's schema, fingerprints and part kept exactly."""
    return {SCHEMAS_KEY: {}, FINGERPRINTS_KEY: {}, FRAMES_KEY: {}}


def frame_records(frame: pl.DataFrame, id_col: str | None, key: str, records: dict[str, dict]) -> None:
    """The schema of ``frame`` into ``records[SCHEMAS_KEY][key]``, its value fingerprints into
    ``FINGERPRINTS_KEY`` and its part kept exactly into ``FRAMES_KEY``."""
    schema, kept, prints = frame_schema(frame, id_col)
    records[SCHEMAS_KEY][key] = schema
    records[FINGERPRINTS_KEY][key] = prints
    if kept is not None:
        records[FRAMES_KEY][key] = record_frame(kept)


def write_anndata_frame(
    parent: h5py.Group, key: str, frame: pl.DataFrame, index: str, options: dict, records: dict[str, dict]
) -> None:
    """Write ``frame`` as element ``key`` in the form AnnData reads; its schema goes to ``records``."""
    write_elem(parent, key, anndata_visible(frame), index=index, **options)
    frame_records(frame, index, key, records)


def recorded_frame(info: dict[str, Any], key: str, path, obj: str) -> pl.DataFrame | None:
    """The record of frame ``key`` in ``info`` (None: the file holds none).

    With a schema, the record is the part of the frame kept exactly: its ids and
    the columns a schema cannot restore.
    """
    raw = info.get(FRAMES_KEY, {}).get(key)
    return None if raw is None else read_record(raw, path=path, obj=obj)


def recorded_schema(info: dict[str, Any], key: str, path, obj: str) -> dict | None:
    """The schema of frame ``key`` in ``info`` (None: a file written before schemas)."""
    raw = info.get(SCHEMAS_KEY, {}).get(key)
    return None if raw is None else read_schema(raw, path=path, obj=obj)


def reconcile(found: pl.DataFrame, info: dict[str, Any], key: str, path, uns: str, *, id_col: str | None,
              label: str, notes: FrameNotes, complete: bool = True) -> pl.DataFrame:
    """``found`` reconciled with what ``info`` recorded of frame ``key`` (schema, or a whole-frame record)."""
    schema = recorded_schema(info, key, path, f"{uns}/{SCHEMAS_KEY}/{key}")
    kept = recorded_frame(info, key, path, f"{uns}/{FRAMES_KEY}/{key}")
    if schema is not None:
        prints = info.get(FINGERPRINTS_KEY, {}).get(key)
        prints = None if prints is None else np.asarray(prints)
        return reconcile_schema(found, schema, kept, prints, id_col=id_col, label=label, notes=notes,
                                complete=complete)
    return reconcile_frame(found, kept, id_col=id_col, label=label, notes=notes, complete=complete)


def read_anndata_frame(
    group: h5py.Group, key: str, info: dict[str, Any], path, *, id_col: str | None, notes: FrameNotes,
    label: str,
) -> pl.DataFrame:
    """Frame ``key`` of ``group`` reconciled with its schema or record (see :mod:`h5scp.io._anndata_columns`)."""
    found = read_elem(group[key])
    obj = f"{group.name.rstrip('/')}/{key}"
    if SCHEMAS_KEY in info or FRAMES_KEY in info:
        return reconcile(found, info, key, path, f"{group.name.rstrip('/')}/uns/{SCPTENSOR_KEY}", id_col=id_col,
                         label=label, notes=notes)
    exact = info.get(EXACT_COLUMNS_KEY, {}).get(key)
    if exact is not None and _exact_height(exact) not in (None, found.height):
        notes.add(f"{label}: rows changed; the exact copies of its columns no longer fit and are not applied")
        return found
    return restore_frame(found, exact, path=path, obj=obj)


def _exact_height(exact) -> int | None:
    import io

    try:
        return pl.read_ipc(io.BytesIO(np.asarray(exact).tobytes())).height
    except (Exception, pl.exceptions.PanicException):  # restore_frame names what is wrong
        return None


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
    records = new_records()
    write_anndata_frame(group, "obs", sample_ids, obs_id_col, options, records)
    write_anndata_frame(group, "var", assay.var, assay.feature_id_col, options, records)
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
        # one digest per layer, in layer order: a later load names the layers whose values changed
        "layer_digests": np.array([values_digest(m.X) for m in assay.layers.values()],
                                  dtype=np.dtypes.StringDType()),
        "x_layer": x_layer if x_layer is not None else "",
        "obs_id_col": obs_id_col,
        "masks": {k: m.M for k, m in assay.layers.items() if m.M is not None},
    }
    metadata = {k: dict(m.metadata) for k, m in assay.layers.items() if m.metadata}
    extra = dict(uns_extra or {})
    for kind in (SCHEMAS_KEY, FINGERPRINTS_KEY, FRAMES_KEY):
        records[kind].update(extra.pop(kind, {}))
        if records[kind]:
            info[kind] = records[kind]
    info.update(extra)
    masks = info.pop("masks")
    uns = write_elem_group(group, "uns", {SCPTENSOR_KEY: info}, options)
    _write_metadata(uns[SCPTENSOR_KEY], metadata, options)
    # masks: int8 codes (shuffle is a no-op on them) with sparse index arrays that it shrinks
    write_elem(uns[SCPTENSOR_KEY], "masks", masks, **matrix_options(masks, compression, level))


def values_digest(X) -> str:
    """CRC-32 of a matrix's values (dense: the values in row order; sparse: data, indices and indptr,
    indices as int64 since anndata may store them narrower), as 8 hex digits."""
    if sparse.issparse(X):
        parts = [X.format.encode(), np.ascontiguousarray(X.data).tobytes(),
                 np.asarray(X.indices, dtype=np.int64).tobytes(), np.asarray(X.indptr, dtype=np.int64).tobytes()]
    else:
        parts = [str(np.shape(X)).encode(), np.ascontiguousarray(X).tobytes()]
    return checksums.parts_digest(parts)


def write_elem_group(parent: h5py.Group, key: str, value: dict, options: dict) -> h5py.Group:
    """Write a mapping element and return its group (to add members to it)."""
    write_elem(parent, key, value, **options)
    return parent[key]


def read_info(view: GroupView, path) -> dict[str, Any]:
    """The ``uns/scptensor`` annotations of an AnnData group, without the masks (read per layer)."""
    if view.annotations is None:
        raise IOFormatError(
            "AnnData group was not written by scptensor", path=path, obj=f"{view.where}/uns/{SCPTENSOR_KEY}",
            expected="the scptensor annotations (masks, layer order, id columns)", found="nothing",
            hint="only files saved by scptensor load back into a container",
        )
    # the keys are plain names (no escaping): member name == key
    stored = view.annotations
    return {key: read_elem(stored[key]) for key in stored if key != "masks"}


def layer_order(info: dict[str, Any]) -> list[str]:
    return [str(v) for v in info.get("layer_order", [])]


def present_layers(view: GroupView, info: dict[str, Any], notes: FrameNotes | None = None,
                   label: str = "") -> dict[str, h5py.Dataset | h5py.Group]:
    """Layer name -> element of the layers the group of ``view`` holds now, in the recorded order, new ones last.

    ``X`` is the recorded ``x_layer``; a layer anndata or another tool added is
    named by its key (``X`` when the file had none).  Layers added or removed
    are named in ``notes``.
    """
    x_layer = info.get("x_layer") or None
    order = layer_order(info)
    stored = view.members
    by_member = {member_name(name): name for name in order if name != x_layer}
    found: dict[str, Any] = {}
    added = []
    if view.x is not None:
        if x_layer is not None:
            found[x_layer] = view.x
        else:
            added.append("X")
    for member in stored:
        name = by_member.get(member)
        if name is None:
            added.append(member)
        else:
            found[name] = stored[member]
    layers = {name: found[name] for name in order if name in found}
    for name in added:
        key = name
        while key in layers:  # a new layer named like a recorded one that moved: keep both
            key = f"{key}_new"
        layers[key] = view.x if name == "X" and member_name("X") not in stored else stored[name]
    removed = [name for name in order if name not in found]
    if notes is not None:
        if added:
            notes.add(f"{label}layers added {added}")
        if removed:
            notes.add(f"{label}layers removed {removed}")
    return layers


def read_anndata_obs(selection, view: GroupView, info: dict[str, Any], path, request: dict,
                     notes: FrameNotes | None = None, label: str = "obs"):
    """The requested obs columns and rows of an AnnData group or MuData root, and the positions."""
    notes = FrameNotes() if notes is None else notes
    group = view.group
    id_col = info["sample_id_col"]
    uns = f"{group.name.rstrip('/')}/uns/{SCPTENSOR_KEY}"
    if SCHEMAS_KEY in info or FRAMES_KEY in info:

        def finish(frame: pl.DataFrame) -> pl.DataFrame:
            return reconcile(frame, info, "obs", path, uns, id_col=id_col, label=label, notes=notes, complete=False)

        def whole() -> pl.DataFrame:
            return reconcile(read_elem(group["obs"]), info, "obs", path, uns, id_col=id_col, label=label,
                             notes=notes)

        return read_obs_part(selection, group["obs"], id_col, request.get("obs_columns"), request.get("samples"),
                             whole, finish, frame_of=lambda: view.obs_node)
    # files written before frame records: the stand-ins' exact copies, by position
    restore = None
    exact = info.get(EXACT_COLUMNS_KEY, {}).get("obs")
    if exact is not None:
        import io

        try:
            names = list(pl.read_ipc_schema(io.BytesIO(np.asarray(exact).tobytes())))
        except Exception:  # a damaged copy: restore_frame names what is wrong
            names = ()

        def restore(frame: pl.DataFrame) -> pl.DataFrame:
            # stand-ins not read are given as null placeholders, replaced, then left out
            unread = [pl.lit(None).alias(n) for n in names if n not in frame.columns]
            return restore_frame(frame.with_columns(unread), exact, path=path, obj=f"{group.name.rstrip('/')}/obs")

    return read_obs_part(
        selection, group["obs"], id_col, request.get("obs_columns"), request.get("samples"),
        lambda: read_anndata_frame(group, "obs", info, path, id_col=id_col, notes=notes, label=label), restore,
        frame_of=lambda: view.obs_node,
    )


def _positions_in(ids: list, recorded: list) -> np.ndarray:
    """Position of each of ``ids`` in ``recorded`` (-1 where absent)."""
    where = {v: i for i, v in enumerate(recorded)}
    return np.array([where.get(v, -1) for v in ids], dtype=np.int64)


def describe_ids(kind: str, ids: list, recorded: list) -> str | None:
    """Words for how the ids of an axis changed since they were recorded (None: unchanged)."""
    if ids == recorded:
        return None
    recorded_set = set(recorded)
    kept = sum(1 for v in ids if v in recorded_set)
    new = len(ids) - kept
    if new == 0 and kept == len(recorded):
        return f"{kind} reordered ({kept})"
    text = f"{kind} subset: {kept} of {len(recorded)} recorded kept"
    if kept and [v for v in ids if v in recorded_set] != [v for v in recorded if v in set(ids)]:
        text += ", reordered"
    return text + (f", {new} new" if new else "")


def _aligned_mask(mask, rows: np.ndarray | None, cols: np.ndarray | None):
    """``mask`` at ``rows`` and ``cols`` (recorded positions; None: all, in order), cut as the data model cuts."""
    from h5scp.core._rules import _take

    return normalize_sparse(_take(mask, rows, cols, copy_data=False))


def read_assay_group(
    view: GroupView, path, info: dict[str, Any] | None = None, *, layers=None, positions=None,
    sample_ids: list | None = None, notes: FrameNotes | None = None, label: str = "", features=None,
) -> tuple[Assay, dict[str, Any]]:
    """The assay stored in an AnnData group (only ``layers``, only rows ``positions``) and its annotations.

    ``features``, when given, takes the feature ids (the var id column as found) and gives the
    positions of the features to read (None: all); var, values, masks and metadata are cut to them.

    The group may have been edited by another tool since scptensor wrote it:
    its var, layers and rows are taken as they are now, and each recorded mask
    follows its rows and columns by id (``sample_ids``: the ids of the rows
    read, in order; None: the group's obs ids at ``positions``).  A mask whose
    rows or columns are gone is dropped.  Differences are added to ``notes``.
    """
    notes = FrameNotes() if notes is None else notes
    group = view.group
    info = read_info(view, path) if info is None else info
    feature_id_col = info["feature_id_col"]
    var = read_anndata_frame(group, "var", info, path, id_col=feature_id_col, notes=notes, label=f"{label}var")
    fpos = None
    if features is not None:
        if feature_id_col not in var.columns:
            raise IOFormatError("var lacks its feature id column", path=path, obj=f"{group.name.rstrip('/')}/var",
                                expected=f"a column {feature_id_col!r}", found=f"columns {var.columns}")
        fpos = features(var.get_column(feature_id_col))
    stored = present_layers(view, info, notes, label)
    uns = view.annotations
    masks = uns["masks"] if uns is not None and "masks" in uns else {}
    metadata = _read_metadata(info.get("metadata", {}))
    rows = cols = None
    rows_ok = cols_ok = True
    recorded_obs = recorded_frame(info, "obs", path, f"{group.name}/uns/{SCPTENSOR_KEY}/{FRAMES_KEY}/obs")
    recorded_var = recorded_frame(info, "var", path, f"{group.name}/uns/{SCPTENSOR_KEY}/{FRAMES_KEY}/var")
    if recorded_var is not None and feature_id_col in var.columns and feature_id_col in recorded_var.columns:
        now, then = var.get_column(feature_id_col).to_list(), recorded_var.get_column(feature_id_col).to_list()
        if now != then:
            notes.add(f"{label}{describe_ids('features', now, then)}")
            cols = _positions_in(now, then)
            cols_ok = bool((cols >= 0).all())
    obs_id_col = info.get("obs_id_col", info.get("sample_id_col"))
    if recorded_obs is not None and obs_id_col in recorded_obs.columns:
        if sample_ids is None:
            found = read_elem(group["obs"])
            sample_ids = found.get_column(obs_id_col if obs_id_col in found.columns else found.columns[0]).to_list()
            if positions is not None:
                sample_ids = [sample_ids[i] for i in positions]
        then = recorded_obs.get_column(obs_id_col).to_list()
        if sample_ids != then:
            rows = _positions_in(sample_ids, then)
            rows_ok = bool((rows >= 0).all())
    result = {}
    dropped, replaced = [], []
    digests = dict(zip(layer_order(info), (str(d) for d in info.get("layer_digests", []))))
    same_cells = rows is None and cols is None and positions is None and fpos is None
    mask_cols = fpos if cols is None else (cols if fpos is None else cols[fpos])
    wanted = {name: values for name, values in stored.items() if layers is None or name in layers}
    for name, values in view.describe_layers(wanted).items():
        X = read_part(values, positions, fpos)
        if same_cells and name in digests and values_digest(X) != digests[name]:
            replaced.append(name)
        mask = None
        member = member_name(name)
        if member in masks:
            if not (rows_ok and cols_ok):
                dropped.append(name)
            elif rows is None and cols is None:
                mask = read_part(masks[member], positions, fpos)
            else:
                mask = _aligned_mask(read_part(masks[member]), rows, mask_cols)
            if mask is not None and mask.shape != X.shape:
                dropped.append(name)
                mask = None
        result[name] = ScpMatrix(X, mask, metadata_part(metadata.get(name), positions, fpos, stored_shape(values),
                                                        path=path, obj=f"layers/{name}"))
    if replaced:
        notes.add(f"{label}values replaced in layers {replaced}")
    if dropped:
        notes.add(f"{label}masks dropped (their rows or columns are gone): {dropped}")
        logger.warning("%s: masks of layers %s dropped: their samples or features are no longer in %s",
                       path, dropped, group.name)
    return Assay(var if fpos is None else var[fpos], result, feature_id_col=feature_id_col), info


def container_extras(container: ScpContainer) -> dict[str, Any]:
    """History and links as values for ``uns/scptensor``, in forms anndata writes back unchanged."""
    links = {}
    for i, link in enumerate(container.links):
        records = new_records()
        frame_records(link.linkage, None, "linkage", records)
        links[str(i)] = {
            "source_assay": link.source_assay, "target_assay": link.target_assay,
            "linkage": anndata_visible(link.linkage), **{kind: v for kind, v in records.items() if v},
        }
    history = provenance_to_element(container.history, params_as_json=True)
    history["records"] = anndata_visible(history["records"])
    return {
        "sample_id_col": container.sample_id_col,
        "history": history,
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


def apply_container_extras(info: dict[str, Any], path=None, notes: FrameNotes | None = None) -> tuple[list, list]:
    """History and links back from ``uns/scptensor``."""
    notes = FrameNotes() if notes is None else notes
    history = provenance_from_element(info["history"]) if "history" in info else []
    links_value = info.get("links", {})
    links = []
    for key, v in sorted(links_value.items(), key=lambda kv: int(kv[0])):
        linkage = _without_synthetic_index(v["linkage"])
        obj = f"uns/{SCPTENSOR_KEY}/links/{key}/linkage"
        if SCHEMAS_KEY in v or FRAMES_KEY in v:
            linkage = reconcile(linkage, v, "linkage", path, f"uns/{SCPTENSOR_KEY}/links/{key}", id_col=None,
                                label=f"link {key}", notes=notes)
        else:
            linkage = restore_frame(linkage, v.get(EXACT_COLUMNS_KEY), path=path, obj=obj)
        links.append(AggregationLink(v["source_assay"], v["target_assay"], linkage))
    return history, links


#: Root attribute that marks an AnnData or MuData file written by scptensor.
MARK_ATTR = "scptensor:format_version"


def interop_format_check(path, *, encoding_type: str, label: str, version: str, required: tuple[str, ...]):
    """A ``check`` for :func:`h5stream.files.open_validated` of AnnData/MuData files.

    It verifies the root ``encoding-type``, our format version when the file
    carries our mark (files of other tools have none and are imported), and the
    required top-level groups, raising :class:`IOFormatError` naming what is wrong.
    """
    from h5scp.io._files import root_attr

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

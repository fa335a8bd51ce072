"""AnnData and MuData files written by other tools (anndata, scanpy, mudata), imported into containers.

A file scptensor did not write has no masks, id-column names or history of
ours, so it is mapped as far as the data model allows:

=====================================  ==============================================
AnnData / MuData                       container
=====================================  ==============================================
``obs`` (row labels = index)           ``obs``; the index becomes the id column, named
                                       after the index (``_index`` when unnamed)
``var``                                the assay's ``var``, id column likewise
``X``                                  layer ``"X"`` (dense, CSR or CSC as stored;
                                       float32 kept, other numbers as float64)
``layers/<name>``                      layer ``<name>``, likewise
``uns`` values with a JSON-like form   ``params["uns"]`` of an ``import`` history entry
                                       (a mapping keeps those of its values)
``obsm``, ``varm``, ``obsp``,          not imported: listed in the history entry's
``varp``, ``raw``, other ``uns``       ``params["not_imported"]`` with their shapes
(frames, awkward and record arrays)    and logged
=====================================  ==============================================

An ``.h5ad`` holds one assay (named by ``assay=``, default ``"main"``); an
``.h5mu`` one assay per modality, each modality's samples matched to the global
``obs`` by id; a modality lacking some samples gets NaN rows with mask code
UNCERTAIN for them (said in the history entry).  Categories no row uses are
listed too (a polars Categorical keeps only the values present).  Every column
kind anndata writes loads: categories of text as a Categorical, categories of
numbers or booleans (cluster or batch numbers) as a column of their dtype,
nullable integers and booleans, text arrays; a column no polars dtype holds
(compound values, object references) is refused by name, and ``obs_columns=``
loads the others; so is a layer whose values float64 cannot hold exactly (integers
beyond 2**53, complex numbers), and ``layers=`` loads the others.
"""

from __future__ import annotations

import datetime as _dt
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import polars as pl
from scipy import sparse

from h5stream.elements import read_elem
from h5stream.elements.dataframe import categories_read
from h5stream.elements.mapping import KEYS_ATTR, member_name
from h5stream.elements.snapshot import Node, describe_members
from h5scp.core.structures import Assay, ProvenanceLog, ScpContainer, ScpMatrix
from h5scp.io._anndata_group import X_LAYER, GroupView, element_shape, mod_order, scan
from h5scp.io._files import guarded, root_attr
from h5scp.io._modality_rows import NOT_MEASURED, spread_rows
from h5scp.io.exceptions import IOFormatError
from h5scp.io.partial_hdf5 import read_frame_columns, read_obs_part, read_part, samples_part
from h5scp.io.selection import selection_from

__all__ = [
    "import_anndata", "import_mudata", "import_modality", "edits_entry", "frame_ids", "unused_categories",
    "DEFAULT_ASSAY", "X_LAYER",
]

logger = logging.getLogger(__name__)

DEFAULT_ASSAY = "main"


def _require_frame(group: h5py.Group, key: str, path: Path) -> None:
    if key not in group:
        raise IOFormatError(
            "required element is missing", path=path, obj=f"{group.name.rstrip('/')}/{key}",
            expected="an AnnData dataframe", found="nothing",
        )


def _frame_ids(view: GroupView, path: Path) -> tuple[pl.Series, list[str]]:
    """The row labels of the group's obs and its other column names, reading only the labels when it can."""
    group = view.group
    _require_frame(group, "obs", path)
    with guarded(path, f"{view.where}/obs"):
        members = view.obs_members
        if members is not None:
            names = list(members)
            return read_frame_columns(view.obs_node, names[:1], members).to_series(0), names[1:]
    obs, id_col = _frame(group, "obs", path, view.obs_node)
    return obs.get_column(id_col), obs.columns[1:]


def _frame(group: h5py.Group, key: str, path: Path, node: Node | None = None) -> tuple[pl.DataFrame, str]:
    """A foreign data frame and the name of its id column (the AnnData index, first column); ``node``: the
    frame's description, when the caller has it."""
    _require_frame(group, key, path)
    with guarded(path, f"{group.name.rstrip('/')}/{key}"):
        frame = read_elem(group[key] if node is None else node)
    if not isinstance(frame, pl.DataFrame) or not frame.columns:
        raise IOFormatError(
            "element is not a data frame with row labels", path=path, obj=f"{group.name.rstrip('/')}/{key}",
            expected="an AnnData dataframe", found=type(frame).__name__,
        )
    return frame, frame.columns[0]


def _jsonable(value: Any) -> bool:
    if value is None or isinstance(value, (bool, int, float, str, np.generic)):
        return True
    if isinstance(value, np.ndarray):
        return value.dtype.kind in "biufcUS"
    if isinstance(value, (list, tuple)):
        return all(_jsonable(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _jsonable(v) for k, v in value.items())
    return False


#: Encodings anndata writes that no part of a container holds: listed by name and shape, never read.
_UNMAPPED_ENCODINGS = frozenset({"awkward-array", "rec-array"})


def _members(group: h5py.Group, keys: list[str], where: str, path: Path, label: str, skipped: list[str]
             ) -> list[tuple[str, Node]]:
    """The members ``keys`` of ``group`` (at ``where``) described in one pass; where that fails, each alone, and
    one that cannot be described is named in ``skipped`` (as ``label/key``)."""
    try:
        with guarded(path, where):
            return list(zip(keys, describe_members(group, keys, where)))
    except IOFormatError:
        pass
    out = []
    for key in keys:
        try:
            with guarded(path, f"{where}/{key}"):
                out.append((key, describe_members(group, [key], where)[0]))
        except IOFormatError as exc:
            skipped.append(f"{label}/{key} (unreadable: {exc.args[0] if exc.args else exc})")
    return out


def _uns_value(node: Node, path: Path, where: str, skipped: list[str]) -> tuple[bool, Any]:
    """``(True, value)`` for the ``uns`` element ``node`` describes when it has a JSON-like form; else
    ``(False, None)``, named in ``skipped``.

    A mapping holding some elements without one (an awkward array, a record array, a frame)
    keeps the others, each left out named by its path.
    """
    etype = node.checked(complete=False).attrs.get("encoding-type")
    if etype in _UNMAPPED_ENCODINGS:
        skipped.append(f"{where} ({element_shape(node)})")
        return False, None
    try:
        with guarded(path, node.name):
            value = read_elem(node)
    except IOFormatError as exc:
        if isinstance(node.obj, h5py.Group) and etype == "dict" and KEYS_ATTR not in node.attrs:
            kept = {}
            for key, member in _members(node.obj, list(node.obj), node.name, path, where, skipped):
                ok, inner = _uns_value(member, path, f"{where}/{key}", skipped)
                if ok:
                    kept[key] = inner
            return True, kept
        skipped.append(f"{where} (unreadable: {exc.args[0] if exc.args else exc})")
        return False, None
    if _jsonable(value):
        return True, value
    skipped.append(f"{where} ({element_shape(node)})")
    return False, None


def _uns(group: h5py.Group, path: Path, prefix: str, skipped: list[str], ignore=()) -> dict[str, Any]:
    """The ``uns`` entries that map to history parameters (each described once, all in one pass); the others
    go to ``skipped``."""
    if "uns" not in group:
        return {}
    uns = group["uns"]
    kept = {}
    for key, node in _members(uns, [key for key in uns if key not in ignore], f"/{prefix}uns", path,
                              f"{prefix}uns", skipped):
        ok, value = _uns_value(node, path, f"{prefix}uns/{key}", skipped)
        if ok:
            kept[key] = value
    return kept


def _assay(view: GroupView, path: Path, skipped: list[str], layers=None, positions=None,
           features=None) -> Assay:
    """One foreign AnnData group as an assay: only ``layers`` (None: all), only the rows at ``positions``, only
    the features ``features`` (``ids -> positions``; None: all) gives."""
    group = view.group
    var, feature_id_col = _frame(group, "var", path)
    cols = None if features is None else features(var.get_column(feature_id_col))
    if cols is not None:
        var = var[cols]
    kept: dict[str, ScpMatrix] = {}
    with guarded(path, f"{view.where}/X"):
        wanted = {name: obj for name, obj in view.foreign_layers.items() if layers is None or name in layers}
        for name, node in view.describe_layers(wanted).items():
            kept[name] = ScpMatrix(_exact_in_float(read_part(node, positions, cols), path, node.name))
        if view.x is not None and X_LAYER in view.layers:
            skipped.append(f"{view.prefix}layers/{X_LAYER} (name taken by X)")
    skipped.extend(view.unmapped)
    with guarded(path, group.name):
        return Assay(var, kept, feature_id_col=feature_id_col)


#: Integers beyond this size are not all exact in float64, the data model's dtype of values other than float32.
_FLOAT_EXACT = 2 ** 53
_LAYER_HINT = "load the other layers with layers=[...], or store this one as real floats or smaller integers in anndata"


def _exact_in_float(X, path: Path, obj: str):
    """``X`` when the data model (float32, else float64) holds each of its values exactly; else
    :class:`IOFormatError` naming the layer."""
    values = X.data if sparse.issparse(X) else np.asarray(X)
    if values.dtype.kind == "c":
        raise IOFormatError("layer holds complex numbers", path=path, obj=obj,
                            expected="real numbers (a container holds values as float32 or float64)",
                            found=str(values.dtype), hint=_LAYER_HINT)
    if values.dtype.kind not in "iu" or values.dtype.itemsize < 8 or not values.size:
        return X
    low, high = int(values.min()), int(values.max())
    if -_FLOAT_EXACT <= low and high <= _FLOAT_EXACT:
        return X
    raise IOFormatError(
        "layer holds integers float64 cannot hold exactly", path=path, obj=obj,
        expected="integers within +-2**53 (a container holds values as float32 or float64)",
        found=f"{values.dtype} values from {low} to {high}", hint=_LAYER_HINT,
    )


def unused_categories(seen: Mapping[str, list[str]], key: str, frame: pl.DataFrame, prefix: str = "") -> list[str]:
    """Categories of frame ``key`` (under group ``prefix``) that no row uses and that its column cannot keep.

    pandas keeps every category of a column through a subset; polars'
    Categorical holds only the values present (and categories of numbers or booleans
    become a plain column of their dtype), so these are named for the history.  ``seen``: what the
    frame's read handed back (:func:`h5stream.elements.dataframe.categories_read`); nothing is read again.
    """
    out = []
    for name, dtype in frame.schema.items():
        if dtype == pl.String or isinstance(dtype, pl.Enum):
            continue  # (text stored as categories keeps no categories; an Enum keeps all of them)
        unused = seen.get(f"/{prefix}{key}/{name}")
        if unused:
            out.append(f"{prefix}{key}/{name} unused categories {unused}")
    return out


def import_modality(view: GroupView, path: Path, layers=None, positions=None, features=None) -> Assay:
    """A modality another tool added to a MuData file of ours, as an assay (rows at ``positions``)."""
    return _assay(view, path, [], layers, positions, features)


def frame_ids(view: GroupView, path: Path) -> list:
    """The row labels of a foreign AnnData group's obs."""
    return _frame_ids(view, path)[0].to_list()


def _history(kind: str, path: Path, uns: dict[str, Any], skipped: list[str]) -> list[ProvenanceLog]:
    if skipped:
        logger.warning("%s: imported from a %s file not written by scptensor; not imported: %s",
                       path, kind, ", ".join(skipped))
    params: dict[str, Any] = {"source": str(path), "format": kind, "not_imported": list(skipped)}
    if uns:
        params["uns"] = uns
    stamp = _dt.datetime.now(_dt.timezone.utc).isoformat()
    from h5scp._version import __version__

    return [ProvenanceLog(stamp, f"import_{kind.lower()}", params, __version__,
                          f"imported from {path.name}; {len(skipped)} element(s) not imported")]


def edits_entry(kind: str, path: Path, view: GroupView, changes: list[str], *, mods=None) -> list[ProvenanceLog]:
    """The history entry of a file of ours another tool changed: one entry naming every difference.

    ``changes`` holds the differences found between the file and what scptensor
    recorded in it; the elements a container has no place for (obsm, varm, obsp,
    varp, raw; ``uns`` entries besides ours, of the root and of the modalities
    ``mods``, name -> view) are listed with their shapes, and ``uns`` values with a JSON-like
    form are kept in ``params["uns"]``.  Nothing changed: no entry.
    """
    # MuData keeps one membership entry per modality in its own obsm/varm: not user data
    mods = mods or {}
    skipped = [m for m in view.unmapped if m.rsplit(" (", 1)[0] not in
               {f"{axis}/{key}" for axis in ("obsm", "varm") for name in mods for key in (name, member_name(name))}]
    uns = _uns(view.group, path, "", skipped, ignore=("scptensor",))
    for name, mod in mods.items():
        skipped.extend(mod.unmapped)
        mod_uns = _uns(mod.group, path, f"mod/{name}/", skipped, ignore=("scptensor",))
        uns.update({f"mod/{name}/{k}": v for k, v in mod_uns.items()})
    if not changes and not skipped and not uns:
        return []
    logger.warning("%s: changed by another tool since scptensor saved it: %s; not imported: %s", path,
                   "; ".join(changes) or "nothing", ", ".join(skipped) or "nothing")
    params: dict[str, Any] = {"source": str(path), "format": kind, "changes": list(changes),
                              "not_imported": list(skipped)}
    if uns:
        params["uns"] = uns
    stamp = _dt.datetime.now(_dt.timezone.utc).isoformat()
    from h5scp._version import __version__

    return [ProvenanceLog(stamp, f"load_edited_{kind.lower()}", params, __version__,
                          f"{path.name} was changed by another tool: {len(changes)} difference(s), "
                          f"{len(skipped)} element(s) not imported")]


def _obs(selection, view: GroupView, path: Path, request: dict):
    """The requested columns and rows of the root's obs, its id column, the sample positions (None: all) and
    the row labels of every sample of the file (read once, with the columns)."""
    f = view.group
    with guarded(path, "/obs"):
        _require_frame(f, "obs", path)
        obs, _ = read_obs_part(selection, f["obs"], None, request.get("obs_columns"), None,
                               lambda: _frame(f, "obs", path, view.obs_node)[0], frame_of=lambda: view.obs_node)
        labels = obs.get_column(obs.columns[0])
        obs, positions = samples_part(selection, obs, obs.columns[0], request.get("samples"))
    return obs, obs.columns[0], positions, labels


def import_anndata(f: h5py.File, path: Path, *, assay: str | None = None, request: dict | None = None,
                   view: GroupView | None = None) -> ScpContainer:
    """A one-assay container from an AnnData file of another tool (see the module docstring).

    ``request`` holds the partial options of :func:`h5scp.io.load`: only the
    requested layers and obs columns, and the selected rows of dense and CSR
    matrices, are read.  ``view``: the :func:`h5scp.io._anndata_group.scan` of ``f``, when the caller made it.
    """
    request = request or {}
    skipped: list[str] = []
    name = assay or DEFAULT_ASSAY
    if view is None:
        with guarded(path, "/"):
            view = scan(f)
    selection = selection_from([name], {name: list(view.foreign_layers)}, assays=request.get("assays"),
                               layers=request.get("layers"), features=request.get("features"), path=path)
    with categories_read() as seen:
        obs, sample_id_col, positions, _ = _obs(selection, view, path, request)
        data = _assay(view, path, skipped, selection.layers, positions, selection.features_of(name))
    skipped.extend(unused_categories(seen, "obs", obs) + unused_categories(seen, "var", data.var))
    uns = _uns(f, path, "", skipped)
    with guarded(path, "/"):
        return ScpContainer(obs, {name: data}, history=_history("AnnData", path, uns, skipped),
                            sample_id_col=sample_id_col)


def _mod_rows(own: pl.Series, ids: pl.Series) -> np.ndarray:
    """Row of a modality (row labels ``own``) for each of the global sample ids (-1: not held)."""
    position = {v: i for i, v in enumerate(own.to_list())}
    return np.array([position.get(v, -1) for v in ids.to_list()], dtype=np.int64)


def import_mudata(f: h5py.File, path: Path, *, request: dict | None = None,
                  view: GroupView | None = None) -> ScpContainer:
    """A container from a MuData file of another tool: one assay per modality, in ``mod-order``.

    With ``request`` only the requested modalities, layers, obs columns and rows are read.
    """
    request = request or {}
    if root_attr(f, "axis", 0) not in (0, None):
        raise IOFormatError(
            "MuData file shares features instead of samples", path=path, obj="/@axis",
            expected="axis 0 (modalities share samples)", found=repr(root_attr(f, "axis")),
        )
    skipped: list[str] = []
    if "mod" not in f:
        raise IOFormatError("MuData file has no modalities", path=path, obj="/mod",
                            expected="a group /mod", found="nothing")
    mods = f["mod"]
    order = mod_order(f)
    if view is None:
        with guarded(path, "/"):
            view = scan(f)
    views = {}
    for n in order:
        with guarded(path, f"/mod/{n}"):
            views[n] = scan(mods[n], f"mod/{n}/")
    selection = selection_from(order, {n: list(views[n].foreign_layers) for n in order}, assays=request.get("assays"),
                               layers=request.get("layers"), features=request.get("features"), path=path)
    with categories_read() as seen:
        obs, sample_id_col, positions, ids = _obs(selection, view, path, request)
        assays = {}
        for name in order:
            own, columns = _frame_ids(views[name], path)
            skipped.extend(f"mod/{name}/obs/{c}" for c in columns)
            if not selection.wants_assay(name):
                continue
            rows = _mod_rows(own, ids)
            lacks = bool((rows < 0).any())  # of the file's samples: then every layer gets a mask, whatever is read
            if positions is not None:
                rows = rows[positions]
            held = rows >= 0
            read = None if held.all() and np.array_equal(rows, np.arange(own.len())) else rows[held]
            assay = _assay(views[name], path, skipped, selection.layers, read, selection.features_of(name))
            if not held.all():
                lacking = int((~held).sum())
                skipped.append(f"mod/{name}: {lacking} of {held.size} samples not measured "
                               f"(NaN, mask code {NOT_MEASURED.name})")
            if lacks:
                assay = Assay(assay.var, {k: spread_rows(m, held) for k, m in assay.layers.items()},
                              feature_id_col=assay.feature_id_col)
            skipped.extend(unused_categories(seen, "var", assay.var, f"mod/{name}/"))
            assays[name] = assay
        skipped.extend(unused_categories(seen, "obs", obs))
    skipped.extend(view.unmapped)  # obsmap/varmap are MuData's own bookkeeping
    uns = _uns(f, path, "", skipped)
    with guarded(path, "/"):
        return ScpContainer(obs, assays, history=_history("MuData", path, uns, skipped), sample_id_col=sample_id_col)

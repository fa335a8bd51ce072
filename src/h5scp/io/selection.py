"""What a partial load reads: ``load(path, assays=, layers=, obs_columns=, samples=, features=)``, every format.

A :class:`Selection` is built from the names a file holds and the caller's
request; a request naming parts the file lacks raises :class:`SelectionError`
(a ``ValueError``) naming the file, what it holds and what was asked.

* ``samples``: a sequence of sample ids (read in the order given) or a boolean
  mask over the saved samples (read in the saved order).
* ``features``: per assay, the same kinds of selection over its features:
  ``{"proteins": ["P1", "P7"], "peptides": mask}``; assays not named keep every
  feature.  A bare sequence or mask (not a mapping) is allowed when the load
  reads exactly one assay (an ``.h5ad`` file, or ``assays=["proteins"]``).

Both cut every array with that axis the same way (:func:`matrix_part`): ``X``,
``M``, ``var`` and each matrix metadata value whose axes are the samples
and/or the features (:func:`metadata_part`: the data model's one rule, which
``filter_samples`` and ``filter_features`` apply too); links keep the rows whose
ids are kept in the assays they name (:func:`links_part`).  A partial load gives
the container that the whole load cut by ``filter_samples`` and
``filter_features`` gives (its history aside: a load records no filter).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence

import numpy as np
import polars as pl

from h5scp.core.exceptions import ScpTensorError

__all__ = ["Selection", "SelectionError", "selection_from", "select_loaded", "metadata_part", "matrix_part",
           "links_part", "metadata_rows", "matrix_rows"]


class SelectionError(ScpTensorError, ValueError):
    """A partial load asks for assays, layers, columns, samples or features the file does not hold."""


def _as_list(value, what: str) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    try:
        return list(value)
    except TypeError:
        raise TypeError(f"{what} must be a list of names, not {type(value).__name__}") from None


@dataclasses.dataclass
class Selection:
    """The parts of a container file a load reads (None: all of that kind)."""

    path: str
    assays: list[str] | None = None
    layers: list[str] | None = None
    #: assay name -> the caller's selection of its features (ids or a boolean mask)
    features: dict = dataclasses.field(default_factory=dict)

    @property
    def everything(self) -> bool:
        return self.assays is None and self.layers is None and not self.features

    def wants_assay(self, name: str) -> bool:
        return self.assays is None or name in self.assays

    def wants_layer(self, assay: str, layer: str) -> bool:
        return self.layers is None or layer in self.layers

    def check_obs_columns(self, available: Sequence[str], requested: Sequence[str], id_col: str) -> None:
        unknown = [c for c in requested if c not in available]
        if unknown:
            raise SelectionError(
                "obs_columns names columns obs lacks", path=self.path or None, obj="obs",
                expected=f"some of {list(available)} (id column {id_col!r} is always read)",
                found=f"{unknown}",
            )

    def sample_positions(self, samples, ids: pl.Series) -> np.ndarray | None:
        """Positions of the requested samples among ``ids`` (None: every sample)."""
        return _positions(samples, ids, self.path, "samples", "sample ids of the file")

    def feature_positions(self, assay: str, ids: pl.Series) -> np.ndarray | None:
        """Positions of the requested features of ``assay`` among its feature ``ids`` (None: every feature)."""
        if assay not in self.features:
            return None
        return _positions(self.features[assay], ids, self.path, f"features[{assay!r}]",
                          f"feature ids of assay {assay!r}")

    def features_of(self, assay: str):
        """``ids -> positions`` of the features to read of ``assay`` (None: every feature is read)."""
        if assay not in self.features:
            return None
        return lambda ids: self.feature_positions(assay, ids)


def _positions(request, ids: pl.Series, path: str, what: str, holder: str) -> np.ndarray | None:
    """Positions among ``ids`` of the ids ``request`` names, in its order, or of its boolean mask's True entries."""
    if request is None:
        return None
    where = path or None
    if isinstance(request, pl.Series) and request.dtype == pl.Boolean:
        request = request.to_numpy()
    if isinstance(request, np.ndarray) and request.dtype == bool or (
        isinstance(request, (list, tuple)) and request and all(isinstance(v, (bool, np.bool_)) for v in request)
    ):
        mask = np.asarray(request, dtype=bool)
        if mask.ndim != 1 or mask.size != ids.len():
            raise SelectionError(
                f"the {what} mask does not match the {holder}", path=where, obj=what,
                expected=f"{ids.len()} booleans", found=f"{mask.size} entries",
            )
        return np.flatnonzero(mask)
    wanted = pl.Series("id", [request] if isinstance(request, (str, bytes)) else list(request))
    if wanted.len() == 0:
        return np.zeros(0, dtype=np.int64)
    if wanted.n_unique() != wanted.len():
        dupes = wanted.filter(wanted.is_duplicated()).unique(maintain_order=True).head(5).to_list()
        raise SelectionError(f"{what} names ids more than once", path=where, obj=what,
                             expected="each id once", found=f"repeated {dupes}")
    if wanted.dtype != ids.dtype:
        try:
            wanted = wanted.cast(ids.dtype)
        except pl.exceptions.PolarsError:
            raise SelectionError(
                f"{what} are of another type than the {holder}", path=where, obj=what,
                expected=str(ids.dtype), found=str(wanted.dtype),
            ) from None
    table = pl.DataFrame({"id": ids, "pos": np.arange(ids.len(), dtype=np.int64)})
    found = pl.DataFrame({"id": wanted}).join(table, on="id", how="left", maintain_order="left")
    pos = found.get_column("pos")
    if pos.null_count():
        missing = wanted.filter(pos.is_null()).head(5).to_list()
        raise SelectionError(f"{what} names ids the file lacks", path=where, obj=what,
                             expected=holder, found=f"{missing}")
    return pos.to_numpy()


def _features_request(features, read: list[str], path: str) -> dict:
    """The ``features`` request as assay name -> selection, checked against the assays a load reads."""
    if features is None:
        return {}
    if not isinstance(features, Mapping):
        if len(read) != 1:
            raise SelectionError(
                "features without assay names needs a load of one assay", path=path or None, obj="features",
                expected=f"a mapping of assay name to ids or mask, e.g. {{{(read or ['proteins'])[0]!r}: [...]}}",
                found=f"a {type(features).__name__} for the {len(read)} assays read {read}",
            )
        return {read[0]: features}
    unknown = [a for a in features if a not in read]
    if unknown:
        raise SelectionError("features names assays the load does not read", path=path or None, obj="features",
                             expected=f"some of {read}", found=f"{unknown}")
    return {a: v for a, v in features.items() if v is not None}


def selection_from(
    assay_names: Sequence[str],
    layers_by_assay: Mapping[str, Sequence[str]],
    *,
    assays=None,
    layers=None,
    features=None,
    path: str | os.PathLike = "",
) -> Selection:
    """Check a request against what a file holds and return the :class:`Selection`."""
    where = os.fspath(path)
    assays, layers = _as_list(assays, "assays"), _as_list(layers, "layers")
    if assays is not None:
        unknown = [a for a in assays if a not in assay_names]
        if unknown:
            raise SelectionError("assays names assays the file lacks", path=where or None, obj="assays",
                                 expected=f"some of {list(assay_names)}", found=f"{unknown}")
    if layers is not None:
        kept = [a for a in assay_names if assays is None or a in assays]
        present = {layer for a in kept for layer in layers_by_assay.get(a, [])}
        unknown = [layer for layer in layers if layer not in present]
        if unknown:
            raise SelectionError("layers names layers no selected assay holds", path=where or None,
                                 obj="layers", expected=f"some of {sorted(present)}", found=f"{unknown}")
    read = [a for a in assay_names if assays is None or a in assays]
    return Selection(where, assays, layers, _features_request(features, read, where))


def _identity(positions: np.ndarray | None, n: int) -> bool:
    return positions is None or (len(positions) == n and np.array_equal(positions, np.arange(n)))


def _take(value, rows, cols):
    """``value`` at ``rows`` of its first axis and ``cols`` of its second (None: all), as the data model cuts it."""
    from h5scp.core._rules import _take as model_take

    return model_take(value, rows, cols, copy_data=False)


def metadata_part(metadata, rows: np.ndarray | None, cols: np.ndarray | None, shape: tuple[int, int], *,
                  path="", obj: str = ""):
    """A matrix's metadata for the samples at ``rows`` and features at ``cols`` of a matrix of ``shape``, by
    the data model's one rule (:func:`h5scp.core.parts.metadata_part`, which ``filter_samples`` and
    ``filter_features`` apply too); a value kept whole is named with the file and object."""
    from h5scp.core.parts import metadata_part as model_rule

    if not metadata:
        return metadata
    where = f"{os.fspath(path)} [{obj}]" if path else obj
    return model_rule(metadata, shape, rows, cols, copy_data=False, where=where)


def metadata_rows(metadata, positions: np.ndarray | None, shape: tuple[int, int], *, path="", obj: str = ""):
    """:func:`metadata_part` of the samples at ``positions`` (every feature)."""
    return metadata_part(metadata, positions, None, shape, path=path, obj=obj)


def matrix_part(matrix, rows: np.ndarray | None, cols: np.ndarray | None, *, path="", obj: str = ""):
    """An in-memory ScpMatrix's ``X``, ``M`` and metadata at the samples ``rows`` and features ``cols``."""
    from h5scp.core.structures import ScpMatrix

    X = matrix.X
    M = None if matrix.M is None else _take(matrix.M, rows, cols)
    return ScpMatrix(_take(X, rows, cols), M, metadata_part(matrix.metadata, rows, cols, X.shape, path=path, obj=obj))


def matrix_rows(matrix, positions: np.ndarray, *, path="", obj: str = ""):
    """:func:`matrix_part` of the samples at ``positions``."""
    return matrix_part(matrix, positions, None, path=path, obj=obj)


def links_part(links: list, assays: Mapping, cut: Sequence[str]) -> list:
    """The links between the assays read; for each assay in ``cut`` (its features selected), only the rows
    whose id in that assay (``source_id`` of its source, ``target_id`` of its target) is one it kept."""
    from h5scp.core.structures import AggregationLink

    out = []
    for link in links:
        if link.source_assay not in assays or link.target_assay not in assays:
            continue
        linkage = link.linkage
        for assay, column in ((link.source_assay, "source_id"), (link.target_assay, "target_id")):
            if assay in cut:
                kept = set(assays[assay].feature_ids.to_list())
                keep = [v in kept for v in linkage.get_column(column).to_list()]
                linkage = linkage.filter(pl.Series(keep, dtype=pl.Boolean))
        out.append(link if linkage is link.linkage else AggregationLink(link.source_assay, link.target_assay, linkage))
    return out




def select_loaded(container, *, assays=None, layers=None, obs_columns=None, samples=None, features=None, path=""):
    """The requested part of a container already read whole (formats that cannot read less)."""
    from h5scp.core.structures import Assay, ScpContainer

    sel = selection_from(
        list(container.assays), {a: list(v.layers) for a, v in container.assays.items()},
        assays=assays, layers=layers, features=features, path=path,
    )
    obs = container.obs
    if obs_columns is not None:
        sel.check_obs_columns(obs.columns, list(obs_columns), container.sample_id_col)
        keep = {container.sample_id_col, *obs_columns}
        obs = obs.select([c for c in obs.columns if c in keep])
    positions = sel.sample_positions(samples, container.sample_ids)
    if positions is not None:
        obs = obs[positions]
    kept = {}
    for name, assay in container.assays.items():
        if not sel.wants_assay(name):
            continue
        cols = sel.feature_positions(name, assay.feature_ids)
        layer_map = {}
        for layer, matrix in assay.layers.items():
            if not sel.wants_layer(name, layer):
                continue
            if positions is not None or cols is not None:
                matrix = matrix_part(matrix, positions, cols, path=path, obj=f"/assays/{name}/layers/{layer}")
            layer_map[layer] = matrix
        var = assay.var if cols is None else assay.var[cols]
        kept[name] = Assay(var, layer_map, feature_id_col=assay.feature_id_col)
    links = links_part(container.links, kept, list(sel.features))
    return ScpContainer(obs, kept, history=container.history, links=links, sample_id_col=container.sample_id_col)

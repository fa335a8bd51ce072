"""What a partial load reads: ``load(path, assays=, layers=, obs_columns=, samples=)`` for every format.

A :class:`Selection` is built from the names a file holds and the caller's
request; unknown names raise ``ValueError`` naming the file and what it holds.
``samples`` is a sequence of sample ids (read in the order given) or a boolean
mask over the saved samples (read in the saved order).  A request naming parts
the file lacks raises :class:`SelectionError` (a ``ValueError``).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence

import numpy as np
import polars as pl

from h5scp.core.exceptions import ScpTensorError

__all__ = ["Selection", "SelectionError", "selection_from", "select_loaded", "metadata_rows", "matrix_rows"]


class SelectionError(ScpTensorError, ValueError):
    """A partial load asks for assays, layers, columns or samples the file does not hold."""


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

    @property
    def everything(self) -> bool:
        return self.assays is None and self.layers is None

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
        if samples is None:
            return None
        if isinstance(samples, pl.Series) and samples.dtype == pl.Boolean:
            samples = samples.to_numpy()
        if isinstance(samples, np.ndarray) and samples.dtype == bool or (
            isinstance(samples, (list, tuple)) and samples and all(isinstance(v, (bool, np.bool_)) for v in samples)
        ):
            mask = np.asarray(samples, dtype=bool)
            if mask.ndim != 1 or mask.size != ids.len():
                raise SelectionError(
                    "the samples mask does not match the samples", path=self.path or None, obj="samples",
                    expected=f"{ids.len()} booleans", found=f"{mask.size} entries",
                )
            return np.flatnonzero(mask)
        wanted = pl.Series("id", [samples] if isinstance(samples, (str, bytes)) else list(samples))
        if wanted.len() == 0:
            return np.zeros(0, dtype=np.int64)
        if wanted.n_unique() != wanted.len():
            dupes = wanted.filter(wanted.is_duplicated()).unique(maintain_order=True).head(5).to_list()
            raise SelectionError("samples names ids more than once", path=self.path or None,
                                 obj="samples", expected="each id once", found=f"repeated {dupes}")
        if wanted.dtype != ids.dtype:
            try:
                wanted = wanted.cast(ids.dtype)
            except pl.exceptions.PolarsError:
                raise SelectionError(
                    "samples are of another type than the sample ids", path=self.path or None,
                    obj="samples", expected=str(ids.dtype), found=str(wanted.dtype),
                ) from None
        table = pl.DataFrame({"id": ids, "pos": np.arange(ids.len(), dtype=np.int64)})
        found = pl.DataFrame({"id": wanted}).join(table, on="id", how="left", maintain_order="left")
        pos = found.get_column("pos")
        if pos.null_count():
            missing = wanted.filter(pos.is_null()).head(5).to_list()
            raise SelectionError("samples names ids the file lacks", path=self.path or None,
                                 obj="samples", expected="sample ids of the file", found=f"{missing}")
        return pos.to_numpy()


def selection_from(
    assay_names: Sequence[str],
    layers_by_assay: Mapping[str, Sequence[str]],
    *,
    assays=None,
    layers=None,
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
    return Selection(where, assays, layers)


def metadata_rows(metadata, positions: np.ndarray | None, shape: tuple[int, int], *, path="", obj: str = ""):
    """A matrix's metadata for the samples at ``positions`` of a matrix of ``shape`` (samples x features).

    Values whose first axis is the samples are cut like ``X``; values of one entry per feature and values
    without axes are kept; any other array is kept whole and named in a :class:`MetadataKeptWholeWarning`.
    """
    if positions is None or not metadata:
        return metadata
    import warnings

    from h5scp.io.exceptions import MetadataKeptWholeWarning

    n_samples, n_features = shape
    if len(positions) == n_samples and np.array_equal(positions, np.arange(n_samples)):
        return metadata  # every sample in the saved order: nothing to cut
    out, unknown = {}, []
    for key, value in metadata.items():
        axes = getattr(value, "shape", None)
        if axes is None or len(axes) == 0:
            out[key] = value
        elif axes[0] == n_samples and ((len(axes) >= 2 and axes[1] == n_features) or n_samples != n_features):
            out[key] = value[positions].asformat(value.format) if hasattr(value, "asformat") else value[positions]
        elif len(axes) == 1 and axes[0] == n_features and n_features != n_samples:
            out[key] = value
        else:
            out[key] = value
            unknown.append(key)
    if unknown:
        where = f"{os.fspath(path)} [{obj}]" if path else obj
        warnings.warn(
            f"{where}: metadata {unknown} kept whole in a load of {len(positions)} of {n_samples} samples: "
            f"their shapes {[tuple(metadata[k].shape) for k in unknown]} do not say which axis is the samples "
            f"(matrix {n_samples} x {n_features}); cut them yourself if they hold one entry per sample",
            MetadataKeptWholeWarning, stacklevel=3,
        )
    return type(metadata)(out) if isinstance(metadata, dict) and type(metadata) is not dict else out


def matrix_rows(matrix, positions: np.ndarray, *, path="", obj: str = ""):
    """An in-memory ScpMatrix's ``X``, ``M`` and per-sample metadata at the samples ``positions``."""
    from h5scp.core.structures import ScpMatrix

    X = matrix.X
    return ScpMatrix(X[positions], None if matrix.M is None else matrix.M[positions],
                     metadata_rows(matrix.metadata, positions, X.shape, path=path, obj=obj))


def select_loaded(container, *, assays=None, layers=None, obs_columns=None, samples=None, path=""):
    """The requested part of a container already read whole (formats that cannot read less)."""
    from h5scp.core.structures import Assay, ScpContainer

    sel = selection_from(
        list(container.assays), {a: list(v.layers) for a, v in container.assays.items()},
        assays=assays, layers=layers, path=path,
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
        layer_map = {}
        for layer, matrix in assay.layers.items():
            if not sel.wants_layer(name, layer):
                continue
            if positions is not None:
                matrix = matrix_rows(matrix, positions, path=path, obj=f"/assays/{name}/layers/{layer}")
            layer_map[layer] = matrix
        kept[name] = Assay(assay.var, layer_map, feature_id_col=assay.feature_id_col)
    links = [l for l in container.links if l.source_assay in kept and l.target_assay in kept]
    return ScpContainer(obs, kept, history=container.history, links=links, sample_id_col=container.sample_id_col)

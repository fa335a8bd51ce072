"""The container of the data model: samples (``obs``), assays, links between them and history.

:class:`ScpContainer` lives here, built of its parts (:mod:`h5scp.core.parts`);
:mod:`h5scp.core.structures` gathers both and lists the rules the constructor enforces.

The model imports none of its file formats: ``save`` and ``load`` call the functions
:func:`connect_files` was given, which the package above the formats (:mod:`h5scp`, run before
any of its modules) gives on import.
"""

from __future__ import annotations

import copy as _copy
import datetime as _dt
import html
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from h5scp.core._rules import _check_frame, _positions, _safe_name
from h5scp.core.exceptions import AssayNotFoundError, DimensionError, ScpTensorError, StructureError, ValidationError
from h5scp.core.parts import AggregationLink, Assay, ProvenanceLog

__all__ = ["ScpContainer", "connect_files"]

#: ``save(container, path, **options)`` and ``load(path, **options)`` of the file formats, as
#: :func:`connect_files` was given them.
_FILES: dict[str, Any] = {}


def connect_files(save, load) -> None:
    """Give the container its file functions: ``save(container, path, **options) -> Path`` and
    ``load(path, **options) -> ScpContainer`` (the layer above the formats calls this on import)."""
    _FILES.update(save=save, load=load)


def _not_connected(what: str) -> ScpTensorError:
    return ScpTensorError(
        f"ScpContainer.{what}: no file formats are connected to the data model in this interpreter; "
        "import h5scp (its import connects them) before saving or loading")


def _software_version() -> str:
    from h5scp._version import __version__

    return __version__



def _series_list(values) -> list:
    if isinstance(values, pl.Series):
        return values.to_list()
    if isinstance(values, np.ndarray):
        return values.tolist()
    if isinstance(values, str):
        return [values]
    return list(values)


class ScpContainer:
    """Samples, assays, links and history of one single-cell proteomics analysis.

    Parameters
    ----------
    obs : polars.DataFrame
        One row per sample; ``sample_id_col`` holds unique ids.
    assays : mapping of str to Assay, optional
    links : list of AggregationLink, optional
        Each link's assays must be in ``assays``.
    history : list of ProvenanceLog, optional
    sample_id_col : str, default "_index"

    The argument order is the original ScpTensor's (``links`` before ``history``).
    """

    def __init__(
        self,
        obs: pl.DataFrame,
        assays: Mapping[str, Assay] | None = None,
        links: list[AggregationLink] | None = None,
        history: list[ProvenanceLog] | None = None,
        sample_id_col: str = "_index",
    ) -> None:
        self.sample_id_col = sample_id_col
        self.obs = _check_frame(obs, sample_id_col, "Sample ID", "obs", "ScpContainer.obs")
        self.assays: dict[str, Assay] = {}
        for name, assay in (assays or {}).items():
            _safe_name(name, "assay name")
            if not isinstance(assay, Assay):
                raise ValidationError(
                    f"assay {name!r} must be an Assay", field=name, obj=f"assay {name!r}",
                    found=type(assay).__name__,
                )
            self.assays[name] = assay
        self.links: list[AggregationLink] = list(links or [])
        for link in self.links:
            if not isinstance(link, AggregationLink):
                raise ValidationError(
                    "links must be AggregationLink", field="links", obj="ScpContainer.links",
                    found=type(link).__name__,
                )
        self.history: list[ProvenanceLog] = list(history or [])
        for entry in self.history:
            if not isinstance(entry, ProvenanceLog):
                raise ValidationError(
                    "history entries must be ProvenanceLog", field="history", obj="ScpContainer.history",
                    found=type(entry).__name__,
                )
        self._validate()
        self._check_link_assays()

    # -- validation
    def _check_sample_count(self, name: str, assay: Assay, prefix: str) -> None:
        for layer_name, matrix in assay.layers.items():
            if matrix.shape[0] != self.n_samples:
                raise DimensionError(
                    f"{prefix}Assay '{name}', Layer '{layer_name}': Samples {matrix.shape[0]} != {self.n_samples}",
                    expected_shape=(self.n_samples, assay.n_features), actual_shape=matrix.shape,
                    obj=f"assay {name!r}", expected=f"{self.n_samples} samples (obs)",
                    found=f"{matrix.shape[0]} samples",
                )

    def _validate(self) -> None:
        """Every layer of every assay has the container's sample count."""
        for name, assay in self.assays.items():
            self._check_sample_count(name, assay, "")

    def _check_link_assays(self) -> None:
        for i, link in enumerate(self.links):
            for role, name in (("source", link.source_assay), ("target", link.target_assay)):
                if name not in self.assays:
                    raise StructureError(
                        f"Link {role} assay '{name}' not found.", obj=f"links[{i}]",
                        expected=f"one of {list(self.assays)}", found=repr(name),
                    )

    def validate_links(self) -> None:
        """Check that every link joins two assays of the container and that every id it names
        is a feature id of its assay (a StructureError, also a ValueError, names the first that is not)."""
        self._check_link_assays()
        for i, link in enumerate(self.links):
            for role, name, col in (("source", link.source_assay, "source_id"), ("target", link.target_assay, "target_id")):
                known = set(self.assays[name].feature_ids.to_list())
                unknown = [v for v in link.linkage.get_column(col).to_list() if v not in known]
                if unknown:
                    raise StructureError(
                        f"Link {role} ids not found in assay '{name}'", obj=f"links[{i}].{col}",
                        expected=f"feature ids of assay {name!r}",
                        found=f"{len(unknown)} unknown ids, e.g. {unknown[:5]}",
                    )

    # -- properties
    @property
    def n_samples(self) -> int:
        return self.obs.height

    @property
    def sample_ids(self) -> pl.Series:
        return self.obs.get_column(self.sample_id_col)

    @property
    def n_features(self) -> int:
        """Feature count of the first assay (0 without assays); other assays: ``assays[name].n_features``."""
        for assay in self.assays.values():
            return assay.n_features
        return 0

    @property
    def shape(self) -> tuple[int, int]:
        """``(n_samples, n_features)`` of the first assay, like ``AnnData.shape``."""
        return (self.n_samples, self.n_features)

    # -- assays
    def add_assay(self, name: str, assay: Assay) -> ScpContainer:
        """Register ``assay`` under ``name`` and return the container (for chaining)."""
        _safe_name(name, "assay name")
        if not isinstance(assay, Assay):
            raise ValidationError(
                f"assay {name!r} must be an Assay", field=name, obj=f"assay {name!r}", found=type(assay).__name__
            )
        if name in self.assays:
            raise ValidationError(
                f"Assay '{name}' already exists.", field=name, obj=f"assay {name!r}",
                hint="pick another name, or replace it with container.assays[name] = assay",
            )
        self._check_sample_count(name, assay, "New ")
        self.assays[name] = assay
        return self

    def list_assays(self) -> list[str]:
        """Names of the assays, in order."""
        return list(self.assays.keys())

    def list_layers(self, assay_name: str) -> list[str]:
        """Names of the layers of ``assay_name``; an unknown name raises AssayNotFoundError (a KeyError)
        suggesting the closest name."""
        if assay_name not in self.assays:
            from h5scp.core.exceptions import _find_closest_match

            available = list(self.assays)
            suggestion = _find_closest_match(assay_name, available)
            parts = [f"Assay '{assay_name}' not found."]
            if suggestion:
                parts.append(f"Did you mean '{suggestion}'?")
            else:
                parts.append("Available assays: " + ", ".join(f"'{a}'" for a in available) + ".")
                parts.append("Use list_assays() to see all available assays.")
            raise AssayNotFoundError(assay_name, available_assays=available, message=" ".join(parts))
        return list(self.assays[assay_name].layers.keys())

    def summary(self) -> str:
        """Several lines: the sample count, the assay count, and per assay its features and layers."""
        lines = [f"ScpContainer with {self.n_samples} samples", f"Assays: {len(self.assays)}"]
        for name, assay in self.assays.items():
            lines.append(f"  - {name}: {assay.n_features} features, {len(assay.layers)} layers")
        return "\n".join(lines)

    # -- history
    def log_operation(
        self,
        action: str,
        params: Mapping[str, Any] | None = None,
        description: str | None = None,
        software_version: str | None = None,
    ) -> ProvenanceLog:
        """Append a :class:`ProvenanceLog` stamped with the current UTC time and return it."""
        entry = self._new_entry(action, params, description, software_version)
        self.history.append(entry)
        return entry

    @staticmethod
    def _new_entry(action, params, description, software_version=None) -> ProvenanceLog:
        return ProvenanceLog(
            timestamp=_dt.datetime.now(_dt.timezone.utc).isoformat(),
            action=action,
            params=dict(params or {}),
            software_version=software_version if software_version is not None else _software_version(),
            description=description,
        )

    # -- copies
    def copy(self, deep: bool = True) -> ScpContainer:
        """``deepcopy()`` when ``deep`` (the default), else ``shallow_copy()``."""
        return self.deepcopy() if deep else self.shallow_copy()

    def shallow_copy(self) -> ScpContainer:
        """A new container sharing obs, the Assay objects, links and history entries
        (new dict and lists, so adding an assay or a history entry to one leaves the other alone)."""
        return ScpContainer(self.obs, dict(self.assays), list(self.links), list(self.history), self.sample_id_col)

    def deepcopy(self) -> ScpContainer:
        """A fully independent copy: obs, var, every layer's values, mask and metadata, links and history."""
        assays = {}
        for name, assay in self.assays.items():
            assays[name] = Assay(
                assay.var.clone(), {k: m.copy() for k, m in assay.layers.items()}, feature_id_col=assay.feature_id_col
            )
        links = [AggregationLink(l.source_assay, l.target_assay, l.linkage.clone()) for l in self.links]
        history = [_copy.deepcopy(entry) for entry in self.history]
        return ScpContainer(self.obs.clone(), assays, links, history, self.sample_id_col)

    def __copy__(self) -> ScpContainer:
        return self.shallow_copy()

    def __deepcopy__(self, memo) -> ScpContainer:
        return self.deepcopy()

    # -- filtering
    def _resolve(self, frame: pl.DataFrame, ids: pl.Series, n: int, what: str, values, indices, mask, expr):
        if isinstance(values, pl.Expr):
            expr, values = values, None
        if expr is not None:
            result = frame.select(expr).to_series()
            if result.dtype != pl.Boolean:
                raise ValidationError(
                    f"Expression must produce boolean, got {result.dtype}", field="polars_expression",
                    expected="a boolean expression", found=str(result.dtype),
                )
            return np.flatnonzero(result.fill_null(False).to_numpy())
        if mask is not None:
            arr = mask.to_numpy() if isinstance(mask, pl.Series) else np.asarray(mask)
            if arr.ndim != 1 or arr.shape[0] != n:
                raise DimensionError(
                    f"Mask length {arr.shape[0] if arr.ndim else 0} != {what} {n}", expected_shape=(n,),
                    actual_shape=tuple(arr.shape), obj="boolean_mask",
                )
            if arr.dtype != bool:
                raise ValidationError(
                    f"Mask must be boolean, got {arr.dtype}", field="boolean_mask", expected="bool",
                    found=str(arr.dtype),
                )
            return np.flatnonzero(arr)
        if indices is not None:
            return _positions(indices, n, f"{what[:-1]}_indices")
        if values is not None:
            wanted = _series_list(values)
            position = {v: i for i, v in enumerate(ids.to_list())}
            missing = [v for v in wanted if v not in position]
            if missing:
                label = "Sample IDs not found" if what == "samples" else "Feature IDs not found in assay"
                raise ValidationError(
                    f"{label}: {set(missing[:10])}", field=f"{what[:-1]}_ids",
                    found=f"{len(missing)} unknown ids",
                )
            return np.array([position[v] for v in wanted], dtype=np.intp)
        kind = what[:-1]
        raise ValidationError(
            f"Must specify: {kind}_ids, {kind}_indices, boolean_mask, or polars_expression",
            field=f"{kind}_ids",
        )

    def filter_samples(
        self,
        sample_ids=None,
        *,
        sample_indices=None,
        boolean_mask=None,
        polars_expression: pl.Expr | None = None,
        copy: bool = True,
    ) -> ScpContainer:
        """A new container with the chosen samples (ids, positions, a boolean mask or a polars
        expression on ``obs``; ids and positions in the order given) in obs and in every layer's
        values, mask and metadata of every assay.  Links and earlier history carry over and the
        operation is appended to the new container's history."""
        rows = self._resolve(self.obs, self.sample_ids, self.n_samples, "samples", sample_ids, sample_indices,
                             boolean_mask, polars_expression)
        obs = self.obs[rows]
        assays = {name: assay._take_samples(rows, copy) for name, assay in self.assays.items()}
        kept = self.sample_ids[rows].to_list()
        entry = self._new_entry(
            "filter_samples",
            {"n_samples_kept": len(rows), "n_samples_original": self.n_samples, "kept_sample_ids": kept},
            f"Filtered to {len(rows)}/{self.n_samples} samples",
        )
        links = [AggregationLink(l.source_assay, l.target_assay, l.linkage.clone() if copy else l.linkage)
                 for l in self.links]
        return ScpContainer(obs, assays, links, [*self.history, entry], self.sample_id_col)

    def filter_features(
        self,
        assay_name: str,
        feature_ids=None,
        *,
        feature_indices=None,
        boolean_mask=None,
        polars_expression: pl.Expr | None = None,
        copy: bool = True,
    ) -> ScpContainer:
        """A new container where assay ``assay_name`` keeps the chosen features (ids, positions, a
        boolean mask or a polars expression on its ``var``) in var and in every layer's values,
        mask and metadata; links from or to the assay keep only rows whose id is kept.  The
        operation is appended to the new container's history."""
        if assay_name not in self.assays:
            raise AssayNotFoundError(assay_name, available_assays=list(self.assays))
        assay = self.assays[assay_name]
        cols = self._resolve(assay.var, assay.feature_ids, assay.n_features, "features", feature_ids,
                             feature_indices, boolean_mask, polars_expression)
        assays = dict(self.assays)
        assays[assay_name] = assay.subset(cols, copy_data=copy)
        kept = assay.feature_ids[cols]
        kept_set = set(kept.to_list())
        links = []
        for link in self.links:
            linkage = link.linkage
            for role, col in (("source", "source_id"), ("target", "target_id")):
                if getattr(link, f"{role}_assay") == assay_name:
                    keep = [v in kept_set for v in linkage.get_column(col).to_list()]
                    linkage = linkage.filter(pl.Series(keep, dtype=pl.Boolean))
            links.append(AggregationLink(link.source_assay, link.target_assay, linkage.clone() if copy else linkage))
        entry = self._new_entry(
            "filter_features",
            {"assay_name": assay_name, "n_features_kept": len(cols), "n_features_original": assay.n_features,
             "kept_feature_ids": kept.to_list()},
            f"Filtered assay '{assay_name}' to {len(cols)}/{assay.n_features} features",
        )
        return ScpContainer(self.obs.clone() if copy else self.obs, assays, links, [*self.history, entry],
                            self.sample_id_col)

    # -- files
    def save(self, path: str | os.PathLike, **options) -> Path:
        """Save to ``path`` in the format its extension names (``.h5``/``.hdf5``, ``.h5mu``, ``.h5ad``, ``.parquet``).

        ``options`` go to the format's writer (see :func:`h5scp.io.save`), e.g. the original's
        ``compression``, ``compression_level`` and ``overwrite``.
        """
        try:
            save = _FILES["save"]
        except KeyError:
            raise _not_connected("save") from None
        return save(self, path, **options)

    @classmethod
    def load(cls, path: str | os.PathLike, **options) -> ScpContainer:
        """Load a container from any format h5scp writes (.h5, .h5mu, .h5ad, .parquet, .zarr), chosen by content.

        ``options`` go to :func:`h5scp.io.load`; every format takes the partial-load
        options ``assays``, ``layers``, ``obs_columns``, ``samples`` (ids or a boolean mask) and
        ``features`` (per assay: ids or a boolean mask, ``{"proteins": ["P1", "P7"]}``).
        """
        try:
            load = _FILES["load"]
        except KeyError:
            raise _not_connected("load") from None
        return load(path, **options)

    # -- display
    def __repr__(self) -> str:
        assays = ", ".join(f"{k}({v.n_features})" for k, v in self.assays.items())
        return f"<ScpContainer n_samples={self.n_samples}, assays=[{assays}]>"

    def _repr_html_(self) -> str:
        """One ``<div>`` in a monospace font, for Jupyter."""
        parts = [
            "<div style='font-family: monospace;'>",
            f"<strong>ScpContainer</strong> with {self.n_samples} samples<br>",
            f"<strong>Assays:</strong> {len(self.assays)}<br>",
        ]
        for name, assay in self.assays.items():
            parts.append(
                f"&nbsp;&nbsp;* {html.escape(name)}: {assay.n_features} features, {len(assay.layers)} layers<br>"
            )
        parts.append("</div>")
        return "".join(parts)

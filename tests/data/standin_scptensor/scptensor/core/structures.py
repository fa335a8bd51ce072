"""The stand-in's data model, shaped as upstream's current one (see README.md beside the package)."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp


class MaskCode(IntEnum):
    VALID = 0
    MBR = 1
    LOD = 2
    FILTERED = 3
    OUTLIER = 4
    IMPUTED = 5
    UNCERTAIN = 6


@dataclass
class ProvenanceLog:
    timestamp: str
    action: str
    params: dict[str, Any]
    software_version: str | None = None
    description: str | None = None


@dataclass
class MatrixMetadata:
    confidence_scores: Any = None
    detection_limits: Any = None
    imputation_quality: Any = None
    outlier_scores: Any = None
    creation_info: dict | None = None


@dataclass(slots=True)
class ScpMatrix:
    X: Any
    M: Any = None
    metadata: MatrixMetadata | None = None

    def __post_init__(self) -> None:
        if not np.issubdtype(self.X.dtype, np.floating):
            self.X = self.X.astype(np.float64)
        if self.M is not None:
            if self.M.shape != self.X.shape:
                raise ValueError(f"mask shape {self.M.shape} != values shape {self.X.shape}")
            codes = self.M.data if sp.issparse(self.M) else self.M
            if codes.size and (codes.min() < 0 or codes.max() > 6):
                raise ValueError("mask codes must lie in 0..6")
            if self.M.dtype != np.int8:
                self.M = self.M.astype(np.int8)

    def get_m(self):
        if self.M is not None:
            return self.M
        return sp.csr_matrix(self.X.shape, dtype=np.int8) if sp.issparse(self.X) else np.zeros(self.X.shape, np.int8)


@dataclass
class AggregationLink:
    source_assay: str
    target_assay: str
    linkage: pl.DataFrame

    def __post_init__(self) -> None:
        if not {"source_id", "target_id"} <= set(self.linkage.columns):
            raise ValueError("linkage needs columns source_id and target_id")


def _unique_ids(frame: pl.DataFrame, col: str, what: str) -> None:
    if col not in frame.columns:
        raise ValueError(f"{what} id column {col!r} not found")
    if frame[col].n_unique() != frame.height:
        raise ValueError(f"{what} id column {col!r} is not unique")


class Assay:
    def __init__(self, var: pl.DataFrame, layers: dict | None = None, feature_id_col: str = "_index",
                 validate_on_init: bool = True) -> None:
        _unique_ids(var, feature_id_col, "feature")
        self.var = var
        self.layers = layers if layers is not None else {}
        self.feature_id_col = feature_id_col
        if validate_on_init:
            self.validate()

    @property
    def n_features(self) -> int:
        return self.var.height

    def validate(self) -> None:
        for name, matrix in self.layers.items():
            if matrix.X.shape[1] != self.n_features:
                raise ValueError(f"layer {name!r} has {matrix.X.shape[1]} features, the assay {self.n_features}")


class ScpContainer:
    def __init__(self, obs: pl.DataFrame, assays: dict | None = None, links: list | None = None,
                 history: list | None = None, sample_id_col: str = "_index", validate_on_init: bool = True) -> None:
        _unique_ids(obs, sample_id_col, "sample")
        self.obs = obs
        self.assays = assays if assays is not None else {}
        self.links = links if links is not None else []
        self.history = history if history is not None else []
        self.sample_id_col = sample_id_col
        if validate_on_init:
            self.validate()

    @property
    def n_samples(self) -> int:
        return self.obs.height

    def assay_shape(self, name: str) -> tuple[int, int]:
        return (self.n_samples, self.assays[name].n_features)

    def validate(self) -> None:
        for name, assay in self.assays.items():
            assay.validate()
            for layer, matrix in assay.layers.items():
                if matrix.X.shape[0] != self.n_samples:
                    raise ValueError(f"{name}/{layer} has {matrix.X.shape[0]} samples, obs {self.n_samples}")
        for link in self.links:
            if link.source_assay not in self.assays or link.target_assay not in self.assays:
                raise ValueError(f"link {link.source_assay} -> {link.target_assay} names a missing assay")

    def log_operation(self, action: str, params: dict, description: str | None = None) -> None:
        now = datetime.datetime.now(datetime.timezone.utc).isoformat()
        self.history.append(ProvenanceLog(now, action, params, "0.1.0", description))

    def filter_samples(self, criteria) -> ScpContainer:
        rows = criteria.positions(self.obs, self.sample_id_col)
        assays = {
            name: Assay(a.var, {k: ScpMatrix(m.X[rows], None if m.M is None else m.M[rows], m.metadata)
                                for k, m in a.layers.items()}, a.feature_id_col)
            for name, a in self.assays.items()
        }
        out = ScpContainer(self.obs[rows], assays, list(self.links), list(self.history), self.sample_id_col)
        out.log_operation("filter_samples", {"n_kept": len(rows)})
        return out

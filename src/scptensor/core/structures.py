"""The single-cell proteomics data model.

``ScpContainer`` holds the samples (``obs``), one :class:`Assay` per feature
level (``proteins``, ``peptides``), the operation history and the links between
assays.  An :class:`Assay` holds its features (``var``) and named layers, each a
:class:`ScpMatrix` of values ``X`` and mask codes ``M`` (samples x features).

Rules enforced on construction (a :class:`~scptensor.core.exceptions.ValidationError`
names the object and what is wrong):

* ``X`` is a 2-D numpy array or a SciPy CSR/CSC matrix (the format is kept);
  float32 stays float32, any other real dtype becomes float64.
* ``M`` is ``None`` (every value VALID) or an array/CSR/CSC of the same shape
  with codes 0..6 (:class:`MaskCode`), stored as int8.
* id columns of ``obs`` and ``var`` exist, hold no nulls and are unique.
* every layer of an assay has the assay's feature count and the container's
  sample count; assay and layer names are safe HDF5 link names.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import enum
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from scipy import sparse

from h5stream.errors import UnsafeNameError
from h5stream.names import check_name
from scptensor.core.exceptions import ValidationError

__all__ = [
    "MaskCode",
    "ScpMatrix",
    "Assay",
    "ProvenanceLog",
    "AggregationLink",
    "ScpContainer",
    "values_equal",
]


class MaskCode(enum.IntEnum):
    """Why a value is what it is; one int8 code per matrix cell."""

    VALID = 0
    MBR = 1
    LOD = 2
    FILTERED = 3
    OUTLIER = 4
    IMPUTED = 5
    UNCERTAIN = 6


_MASK_MIN = int(min(MaskCode))
_MASK_MAX = int(max(MaskCode))


# --------------------------------------------------------------------------- helpers


def _software_version() -> str:
    from scptensor import __version__

    return __version__


def _as_sparse_format(matrix, what: str):
    """Keep CSR and CSC (as ``*_matrix``); turn other sparse formats into CSR."""
    fmt = matrix.format
    if fmt == "csr":
        return matrix if isinstance(matrix, sparse.csr_matrix) else sparse.csr_matrix(matrix)
    if fmt == "csc":
        return matrix if isinstance(matrix, sparse.csc_matrix) else sparse.csc_matrix(matrix)
    return sparse.csr_matrix(matrix)


def _values_dtype(dtype: np.dtype, what: str) -> np.dtype:
    if dtype == np.float32:
        return np.dtype(np.float32)
    if dtype.kind in "biuf":
        return np.dtype(np.float64)
    raise ValidationError(
        f"{what} must hold real numbers", obj=what, expected="a numeric or boolean dtype",
        found=str(dtype),
    )


def _coerce_values(X, what: str):
    if sparse.issparse(X):
        X = _as_sparse_format(X, what)
        target = _values_dtype(X.dtype, what)
        return X if X.dtype == target else X.astype(target)
    arr = np.asarray(X)
    if arr.ndim != 2:
        raise ValidationError(
            f"{what} must be 2-D (samples x features)", obj=what, expected="2 dimensions",
            found=f"{arr.ndim} dimensions",
        )
    target = _values_dtype(arr.dtype, what)
    return arr if arr.dtype == target else arr.astype(target)


def _coerce_mask(M, shape: tuple[int, int], what: str):
    if M is None:
        return None
    if sparse.issparse(M):
        M = _as_sparse_format(M, what)
        codes = M.data
    else:
        M = np.asarray(M)
        codes = M
    if M.ndim != 2 or tuple(M.shape) != tuple(shape):
        raise ValidationError(
            "mask shape differs from the values", obj=what, expected=str(tuple(shape)),
            found=str(tuple(M.shape)),
        )
    if codes.dtype.kind not in "biu" and not (
        codes.dtype.kind == "f" and np.all(np.isfinite(codes)) and np.all(codes == np.round(codes))
    ):
        raise ValidationError(
            "mask codes must be integers", obj=what, expected="integer codes 0..6",
            found=str(codes.dtype),
        )
    if codes.size:
        low, high = codes.min(), codes.max()
        if low < _MASK_MIN or high > _MASK_MAX:
            bad = low if low < _MASK_MIN else high
            raise ValidationError(
                "mask holds an unknown code", obj=what,
                expected=f"codes {_MASK_MIN}..{_MASK_MAX} (MaskCode)", found=f"code {bad.item()!r}",
            )
    if M.dtype != np.int8:
        M = M.astype(np.int8)
    return M


def _check_frame(frame, id_col: str, what: str) -> pl.DataFrame:
    if not isinstance(frame, pl.DataFrame):
        raise ValidationError(
            f"{what} must be a polars DataFrame", obj=what, expected="polars.DataFrame",
            found=type(frame).__name__,
        )
    if not isinstance(id_col, str) or id_col not in frame.columns:
        raise ValidationError(
            f"{what} has no id column {id_col!r}", obj=what, expected=f"a column {id_col!r}",
            found=f"columns {frame.columns}",
            hint="add the column or pass the id column's name",
        )
    ids = frame.get_column(id_col)
    if ids.null_count():
        raise ValidationError(
            f"{what} id column {id_col!r} holds nulls", obj=what, expected="no nulls",
            found=f"{ids.null_count()} nulls",
        )
    if ids.n_unique() != frame.height:
        dupes = ids.filter(ids.is_duplicated()).unique(maintain_order=True).head(5).to_list()
        raise ValidationError(
            f"{what} id column {id_col!r} is not unique", obj=what, expected="unique ids",
            found=f"duplicates {dupes}",
        )
    return frame


def _safe_name(name, what: str) -> str:
    try:
        return check_name(name, what=what)
    except UnsafeNameError as exc:
        raise ValidationError(str(exc)) from None


def values_equal(a: Any, b: Any) -> bool:
    """Exact structural equality of JSON-like values holding numpy scalars and arrays.

    Types must agree (``np.int64(1)`` differs from ``1``), arrays must agree in
    dtype, shape and values (NaN equals NaN at the same place).
    """
    if type(a) is not type(b):
        return False
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and bool(
            np.array_equal(a, b, equal_nan=a.dtype.kind in "fc")
        )
    if isinstance(a, np.generic):
        if a.dtype != b.dtype:
            return False
        if a.dtype.kind in "fc":
            return bool(np.array_equal(a, b, equal_nan=True))
        return bool(a == b)
    if isinstance(a, float):
        return a == b or (a != a and b != b)
    if isinstance(a, Mapping):
        return list(a.keys()) == list(b.keys()) and all(values_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(values_equal(x, y) for x, y in zip(a, b))
    return bool(a == b)


# --------------------------------------------------------------------------- matrix


class ScpMatrix:
    """Values ``X`` (samples x features) with mask codes ``M`` and optional metadata.

    Parameters
    ----------
    X : numpy.ndarray or scipy.sparse.csr_matrix or scipy.sparse.csc_matrix
        Values.  float32 stays float32; other real dtypes become float64.  CSR
        and CSC are kept; other sparse formats become CSR.
    M : array-like, sparse matrix or None
        Mask codes (:class:`MaskCode`, 0..6) of the same shape, stored as int8;
        ``None`` means every value is VALID.
    metadata : mapping of str to JSON-like values or numpy arrays, optional
        Extra per-matrix information (e.g. detection limits per feature).
    """

    __slots__ = ("X", "M", "metadata")

    def __init__(self, X, M=None, metadata: Mapping[str, Any] | None = None) -> None:
        self.X = _coerce_values(X, "ScpMatrix.X")
        self.M = _coerce_mask(M, self.X.shape, "ScpMatrix.M")
        if metadata is None:
            metadata = {}
        if not isinstance(metadata, Mapping) or not all(isinstance(k, str) for k in metadata):
            raise ValidationError(
                "metadata must be a mapping with string keys", obj="ScpMatrix.metadata",
                found=type(metadata).__name__,
            )
        self.metadata = dict(metadata)

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.X.shape)

    @property
    def is_sparse(self) -> bool:
        return sparse.issparse(self.X)

    def mask_or_valid(self) -> np.ndarray:
        """The mask as a dense int8 array, all VALID when ``M`` is None."""
        if self.M is None:
            return np.zeros(self.shape, dtype=np.int8)
        return self.M.toarray() if sparse.issparse(self.M) else self.M

    def __repr__(self) -> str:
        kind = self.X.format.upper() if self.is_sparse else "dense"
        mask = "no mask" if self.M is None else "mask"
        return f"ScpMatrix({self.shape[0]} x {self.shape[1]} {kind} {self.X.dtype}, {mask})"


# --------------------------------------------------------------------------- assay


class Assay:
    """Features of one kind (``var``) and their layers of values.

    Parameters
    ----------
    var : polars.DataFrame
        One row per feature; ``feature_id_col`` holds unique ids.
    layers : mapping of str to ScpMatrix, optional
        Named layers (``raw``, ``log``, ``norm`` ...), each samples x features.
    feature_id_col : str, default "_index"
        Name of the id column of ``var``.
    """

    def __init__(
        self,
        var: pl.DataFrame,
        layers: Mapping[str, ScpMatrix] | None = None,
        feature_id_col: str = "_index",
    ) -> None:
        self.feature_id_col = feature_id_col
        self.var = _check_frame(var, feature_id_col, "Assay.var")
        self.layers: dict[str, ScpMatrix] = {}
        n_samples = None
        for name, matrix in (layers or {}).items():
            _safe_name(name, "layer name")
            if not isinstance(matrix, ScpMatrix):
                raise ValidationError(
                    f"layer {name!r} must be an ScpMatrix", obj=f"layer {name!r}",
                    found=type(matrix).__name__,
                )
            if matrix.shape[1] != self.var.height:
                raise ValidationError(
                    f"layer {name!r} has a feature count different from var", obj=f"layer {name!r}",
                    expected=f"{self.var.height} features", found=f"{matrix.shape[1]}",
                )
            if n_samples is not None and matrix.shape[0] != n_samples:
                raise ValidationError(
                    f"layer {name!r} has a sample count different from the other layers",
                    obj=f"layer {name!r}", expected=f"{n_samples} samples", found=f"{matrix.shape[0]}",
                )
            n_samples = matrix.shape[0]
            self.layers[name] = matrix

    @property
    def n_features(self) -> int:
        return self.var.height

    @property
    def feature_ids(self) -> pl.Series:
        return self.var.get_column(self.feature_id_col)

    @property
    def n_samples(self) -> int | None:
        """Sample count of the layers, or None for an assay without layers."""
        for matrix in self.layers.values():
            return matrix.shape[0]
        return None

    def __repr__(self) -> str:
        return f"Assay({self.n_features} features, layers {list(self.layers)})"


# --------------------------------------------------------------------------- history and links


@dataclasses.dataclass(eq=False)
class ProvenanceLog:
    """One operation applied to a container.

    Attributes
    ----------
    timestamp : str
        ISO 8601 time of the operation (UTC).
    action : str
        Name of the operation (``"normalize"``).
    params : dict
        Its parameters: JSON-like values, numpy scalars and arrays allowed.
    software_version : str or None
    description : str or None
    """

    timestamp: str
    action: str
    params: dict[str, Any] = dataclasses.field(default_factory=dict)
    software_version: str | None = None
    description: str | None = None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ProvenanceLog):
            return NotImplemented
        return (
            self.timestamp == other.timestamp
            and self.action == other.action
            and self.software_version == other.software_version
            and self.description == other.description
            and values_equal(self.params, other.params)
        )


@dataclasses.dataclass(eq=False)
class AggregationLink:
    """How features of ``source_assay`` aggregate into ``target_assay`` (peptide -> protein).

    ``linkage`` is a polars DataFrame with columns ``source_id`` and ``target_id``.
    """

    source_assay: str
    target_assay: str
    linkage: pl.DataFrame

    def __post_init__(self) -> None:
        if not isinstance(self.linkage, pl.DataFrame):
            raise ValidationError(
                "linkage must be a polars DataFrame", obj="AggregationLink.linkage",
                found=type(self.linkage).__name__,
            )
        missing = [c for c in ("source_id", "target_id") if c not in self.linkage.columns]
        if missing:
            raise ValidationError(
                "linkage lacks id columns", obj="AggregationLink.linkage",
                expected="columns 'source_id' and 'target_id'", found=f"columns {self.linkage.columns}",
            )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AggregationLink):
            return NotImplemented
        return (
            self.source_assay == other.source_assay
            and self.target_assay == other.target_assay
            and self.linkage.schema == other.linkage.schema
            and self.linkage.equals(other.linkage, null_equal=True)
        )


# --------------------------------------------------------------------------- container


class ScpContainer:
    """Samples, assays, history and links of one single-cell proteomics analysis.

    Parameters
    ----------
    obs : polars.DataFrame
        One row per sample; ``sample_id_col`` holds unique ids.
    assays : mapping of str to Assay, optional
    history : list of ProvenanceLog, optional
    links : list of AggregationLink, optional
    sample_id_col : str, default "_index"
    """

    def __init__(
        self,
        obs: pl.DataFrame,
        assays: Mapping[str, Assay] | None = None,
        history: list[ProvenanceLog] | None = None,
        links: list[AggregationLink] | None = None,
        sample_id_col: str = "_index",
    ) -> None:
        self.sample_id_col = sample_id_col
        self.obs = _check_frame(obs, sample_id_col, "ScpContainer.obs")
        self.assays: dict[str, Assay] = {}
        for name, assay in (assays or {}).items():
            _safe_name(name, "assay name")
            if not isinstance(assay, Assay):
                raise ValidationError(
                    f"assay {name!r} must be an Assay", obj=f"assay {name!r}", found=type(assay).__name__
                )
            if assay.n_samples is not None and assay.n_samples != self.obs.height:
                raise ValidationError(
                    f"assay {name!r} has a sample count different from obs", obj=f"assay {name!r}",
                    expected=f"{self.obs.height} samples", found=f"{assay.n_samples}",
                )
            self.assays[name] = assay
        self.history: list[ProvenanceLog] = list(history or [])
        for entry in self.history:
            if not isinstance(entry, ProvenanceLog):
                raise ValidationError(
                    "history entries must be ProvenanceLog", obj="ScpContainer.history",
                    found=type(entry).__name__,
                )
        self.links: list[AggregationLink] = list(links or [])
        for link in self.links:
            if not isinstance(link, AggregationLink):
                raise ValidationError(
                    "links must be AggregationLink", obj="ScpContainer.links", found=type(link).__name__
                )

    # -- properties
    @property
    def n_samples(self) -> int:
        return self.obs.height

    @property
    def sample_ids(self) -> pl.Series:
        return self.obs.get_column(self.sample_id_col)

    @property
    def n_features(self) -> dict[str, int]:
        """Feature count of each assay."""
        return {name: assay.n_features for name, assay in self.assays.items()}

    # -- history
    def log_operation(
        self,
        action: str,
        params: Mapping[str, Any] | None = None,
        description: str | None = None,
        software_version: str | None = None,
    ) -> ProvenanceLog:
        """Append a :class:`ProvenanceLog` stamped with the current UTC time and return it."""
        entry = ProvenanceLog(
            timestamp=_dt.datetime.now(_dt.timezone.utc).isoformat(),
            action=action,
            params=dict(params or {}),
            software_version=software_version if software_version is not None else _software_version(),
            description=description,
        )
        self.history.append(entry)
        return entry

    # -- files
    def save(self, path: str | os.PathLike, **options) -> Path:
        """Save to ``path`` in the format its extension names (``.h5``/``.hdf5``, ``.h5mu``, ``.h5ad``, ``.parquet``).

        ``options`` go to the format's writer (see :func:`scptensor.io.save`).
        """
        from scptensor.io.formats import save

        return save(self, path, **options)

    @classmethod
    def load(cls, path: str | os.PathLike, **options) -> ScpContainer:
        """Load a container from a scptensor HDF5, MuData, AnnData file or Parquet dataset, chosen by content.

        ``options`` go to :func:`scptensor.io.load`; every format takes the partial-load
        options ``assays``, ``layers``, ``obs_columns`` and ``samples`` (ids or a boolean mask).
        """
        from scptensor.io.formats import load

        return load(path, **options)

    def __repr__(self) -> str:
        assays = ", ".join(f"{k}: {v.n_features}" for k, v in self.assays.items())
        return (
            f"ScpContainer({self.n_samples} samples; assays {{{assays}}}; "
            f"{len(self.history)} history entries; {len(self.links)} links)"
        )

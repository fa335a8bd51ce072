"""The parts a container is built of: matrices, assays, history entries and links between assays.

An :class:`Assay` holds its features (``var``) and named layers, each a
:class:`ScpMatrix` of values ``X`` and mask codes ``M`` (samples x features);
:class:`ProvenanceLog` is one entry of a container's history and
:class:`AggregationLink` maps the features of one assay onto another's.  The
container itself (:mod:`h5scp.core.container`) is built of these; both are
gathered in :mod:`h5scp.core.structures`, the data model's one module.
"""

from __future__ import annotations

import copy as _copy
import dataclasses
import enum
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import polars as pl
from scipy import sparse

from h5scp.core._rules import (
    _check_frame,
    _coerce_mask,
    _coerce_values,
    _positions,
    _safe_name,
    _take,
    values_equal,
)
from h5scp.core.exceptions import DimensionError, MetadataKeptWholeWarning, ValidationError

__all__ = [
    "MaskCode",
    "MatrixMetadata",
    "ScpMatrix",
    "Assay",
    "ProvenanceLog",
    "AggregationLink",
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




# --------------------------------------------------------------------------- matrix metadata


_METADATA_FIELDS = ("confidence_scores", "detection_limits", "imputation_quality", "outlier_scores", "creation_info")


class MatrixMetadata(dict):
    """Extra information about one matrix: the original's five fields, and any other named value.

    It is a ``dict`` (what the file formats store) whose five known keys are
    also attributes, as in the original's dataclass::

        meta = MatrixMetadata(confidence_scores=scores, creation_info={"method": "knn"})
        meta.confidence_scores is meta["confidence_scores"]     # True
        meta.detection_limits                                   # None: not set
        meta["lod_per_feature"] = np.array([...])               # any other value

    A field set to None is absent from the mapping.  Values are JSON-like
    values, numpy scalars and arrays, or SciPy sparse matrices.
    """

    __slots__ = ()

    def __init__(
        self,
        confidence_scores=None,
        detection_limits=None,
        imputation_quality=None,
        outlier_scores=None,
        creation_info: dict[str, Any] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__()
        for name, value in zip(
            _METADATA_FIELDS, (confidence_scores, detection_limits, imputation_quality, outlier_scores, creation_info)
        ):
            if value is not None:
                self[name] = value
        self.update(extra)

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> MatrixMetadata:
        """A MatrixMetadata holding the items of ``mapping`` (keys must be strings)."""
        if not isinstance(mapping, Mapping) or not all(isinstance(k, str) for k in mapping):
            raise ValidationError(
                "metadata must be a mapping with string keys", field="metadata", obj="ScpMatrix.metadata",
                expected="MatrixMetadata or a dict with str keys", found=type(mapping).__name__,
            )
        out = cls()
        dict.update(out, mapping)
        return out

    def copy(self) -> MatrixMetadata:
        """A shallow copy (the values are shared)."""
        return MatrixMetadata.from_mapping(self)

    def __repr__(self) -> str:
        return f"MatrixMetadata({dict.__repr__(self)})"


def _metadata_field(name: str) -> property:
    def get(self):
        return self.get(name)

    def set(self, value):
        if value is None:
            self.pop(name, None)
        else:
            self[name] = value

    return property(get, set, doc=f"``self[{name!r}]``, None when absent.")


for _name in _METADATA_FIELDS:
    setattr(MatrixMetadata, _name, _metadata_field(_name))
del _name


def metadata_part(metadata: Mapping[str, Any] | None, shape: tuple[int, int], rows=None, cols=None, *,
                  copy_data: bool = True, where: str = ""):
    """The metadata of the sub-matrix at samples ``rows`` and features ``cols`` (positions; None: all) of a
    matrix of ``shape``: the one rule of every selection (``filter_samples``, ``filter_features``,
    ``Assay.subset`` and every partial load).  Each axis is cut in turn, the samples first (as
    ``filter_samples`` then ``filter_features``), each cut reading the shape the matrix has then:

    * an array (numpy or SciPy sparse) whose first two axes are the matrix's shape is cut on that axis;
    * where the samples and features differ in number, an array whose first axis is the axis cut is cut
      (one value, or one row, each), one whose first axis is the other axis is kept;
    * a value without axes (text, numbers, mappings) is kept;
    * any other array (a first axis that is neither, or one entry per sample or feature of a square
      matrix, whose axes cannot be told apart) is kept whole, and named in a
      :class:`~h5scp.core.exceptions.MetadataKeptWholeWarning`.

    Kept values are copied when ``copy_data``; ``where`` names the matrix in the warning.
    """
    n_rows, n_cols = shape
    rows = None if rows is None or _every(rows, n_rows) else rows
    cols = None if cols is None or _every(cols, n_cols) else cols
    if metadata is None:
        return None
    whole: list[str] = []
    out = _cut_axis(metadata, shape, rows, 0, copy_data, whole)
    out = _cut_axis(out, (n_rows if rows is None else len(rows), n_cols), cols, 1, False, whole)
    if whole:
        _warn_kept_whole(metadata, list(dict.fromkeys(whole)), shape, rows, cols, where)
    return out


def _cut_axis(metadata: Mapping[str, Any], shape: tuple[int, int], positions, axis: int, copy_data: bool,
              whole: list[str]) -> MatrixMetadata:
    """:func:`metadata_part` of one axis (0: samples, 1: features) cut at ``positions`` (None: kept)."""
    n_rows, n_cols = shape
    this, other = (n_rows, n_cols) if axis == 0 else (n_cols, n_rows)
    out = MatrixMetadata()
    for key, value in metadata.items():
        axes = tuple(value.shape) if sparse.issparse(value) or isinstance(value, np.ndarray) else ()
        cut = None
        if positions is None or not axes:
            pass
        elif len(axes) >= 2 and axes[:2] == (n_rows, n_cols):
            cut = (positions, None) if axis == 0 else (None, positions)
        elif n_rows != n_cols and axes[0] == this:
            cut = (positions, None)
        elif not (n_rows != n_cols and axes[0] == other):
            whole.append(key)
        if cut is not None:
            value = _cut(value, *cut)
        elif copy_data:
            value = value.copy() if axes else _copy.deepcopy(value)
        dict.__setitem__(out, key, value)
    return out


def _cut(value, first, second):
    """``value`` (numpy or SciPy sparse, any number of axes) at ``first`` of its first axis and ``second``
    of its second (None: all), sparse values kept in their format."""
    fmt = value.format if sparse.issparse(value) else None
    out = value.tocsr() if fmt not in (None, "csr", "csc") else value
    if first is not None:
        out = out[first]
    if second is not None:
        out = out[:, second]
    if fmt is None:
        return out
    out = out.asformat(fmt)
    if hasattr(out, "has_sorted_indices") and not out.has_sorted_indices:
        out.sort_indices()
    return out


def _every(positions, n: int) -> bool:
    positions = np.asarray(positions)
    return positions.size == n and np.array_equal(positions, np.arange(n))


def _warn_kept_whole(metadata, keys: list[str], shape, rows, cols, where: str) -> None:
    n_rows, n_cols = shape
    cut = [f"{len(rows)} of {n_rows} samples" if rows is not None else "",
           f"{len(cols)} of {n_cols} features" if cols is not None else ""]
    warnings.warn(
        f"{where + ': ' if where else ''}metadata {keys} kept whole in a selection of "
        f"{' and '.join(c for c in cut if c)}: their shapes {[tuple(metadata[k].shape) for k in keys]} do not "
        f"say which axis is the samples or the features (matrix {n_rows} x {n_cols}); cut them yourself if they "
        "hold one entry per sample or feature",
        MetadataKeptWholeWarning, stacklevel=4,
    )


# --------------------------------------------------------------------------- matrix


class ScpMatrix:
    """Values ``X`` (samples x features) with mask codes ``M`` and metadata.

    Parameters
    ----------
    X : numpy.ndarray or scipy.sparse.csr_matrix or scipy.sparse.csc_matrix
        Values.  float32 stays float32; other real dtypes become float64.  CSR
        and CSC are kept; other sparse formats become CSR.
    M : array-like, sparse matrix or None
        Mask codes (:class:`MaskCode`, 0..6) of the same shape, stored as int8;
        ``None`` means every value is VALID.
    metadata : MatrixMetadata, mapping of str to values, or None
        Extra per-matrix information (confidence scores, detection limits ...).
        Always held as a :class:`MatrixMetadata`, empty when none is given.
    """

    __slots__ = ("X", "M", "_metadata")

    def __init__(self, X, M=None, metadata: Mapping[str, Any] | None = None) -> None:
        self.X = _coerce_values(X, "ScpMatrix.X")
        self.M = _coerce_mask(M, self.X.shape, "ScpMatrix.M")
        self.metadata = metadata

    @property
    def metadata(self) -> MatrixMetadata:
        return self._metadata

    @metadata.setter
    def metadata(self, value: Mapping[str, Any] | None) -> None:
        if value is None:
            value = MatrixMetadata()
        elif not isinstance(value, MatrixMetadata):
            value = MatrixMetadata.from_mapping(value)
        self._metadata = value

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.X.shape)

    @property
    def is_sparse(self) -> bool:
        return sparse.issparse(self.X)

    def get_m(self):
        """The mask; when ``M`` is None, all-VALID zeros (sparse in X's format when X is sparse)."""
        if self.M is not None:
            return self.M
        if sparse.issparse(self.X):
            empty = sparse.csc_matrix if self.X.format == "csc" else sparse.csr_matrix
            return empty(self.X.shape, dtype=np.int8)
        return np.zeros(self.X.shape, dtype=np.int8)

    def mask_or_valid(self) -> np.ndarray:
        """The mask as a dense int8 array, all VALID when ``M`` is None."""
        if self.M is None:
            return np.zeros(self.shape, dtype=np.int8)
        return self.M.toarray() if sparse.issparse(self.M) else self.M

    def copy(self) -> ScpMatrix:
        """An independent copy: values, mask and metadata are copied."""
        new = ScpMatrix.__new__(ScpMatrix)
        new.X = self.X.copy()
        new.M = None if self.M is None else self.M.copy()
        new._metadata = _copy.deepcopy(self._metadata)
        return new

    def __copy__(self) -> ScpMatrix:
        new = ScpMatrix.__new__(ScpMatrix)
        new.X, new.M, new._metadata = self.X, self.M, self._metadata
        return new

    def __deepcopy__(self, memo) -> ScpMatrix:
        return self.copy()

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
        self.var = _check_frame(var, feature_id_col, "Feature ID", "var", "Assay.var")
        self.layers: dict[str, ScpMatrix] = {}
        for name, matrix in (layers or {}).items():
            self._check_layer(name, matrix, constructing=True)
            self.layers[name] = matrix

    def _check_layer(self, name, matrix, constructing: bool) -> None:
        _safe_name(name, "layer name")
        if not isinstance(matrix, ScpMatrix):
            raise ValidationError(
                f"layer {name!r} must be an ScpMatrix", field=name, obj=f"layer {name!r}",
                found=type(matrix).__name__,
            )
        n_feat = matrix.shape[1]
        if n_feat != self.n_features:
            text = (f"Layer '{name}': Features {n_feat} != Assay {self.n_features}" if constructing
                    else f"Layer has {n_feat} features, Assay has {self.n_features}")
            raise DimensionError(
                text, expected_shape=(self.n_samples, self.n_features) if self.n_samples is not None else None,
                actual_shape=matrix.shape, obj=f"layer {name!r}", expected=f"{self.n_features} features",
                found=f"{n_feat} features",
            )
        others = [m.shape[0] for k, m in self.layers.items() if k != name]
        if others and matrix.shape[0] != others[0]:
            raise DimensionError(
                f"Layer '{name}': Samples {matrix.shape[0]} != {others[0]} of the other layers",
                expected_shape=(others[0], self.n_features), actual_shape=matrix.shape, obj=f"layer {name!r}",
                expected=f"{others[0]} samples", found=f"{matrix.shape[0]} samples",
            )

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

    @property
    def X(self):
        """Values of the layer named ``"X"``, or None when there is none."""
        layer = self.layers.get("X")
        return None if layer is None else layer.X

    def add_layer(self, name: str, matrix: ScpMatrix) -> None:
        """Add (or replace) layer ``name``; it must have the assay's feature count and,
        when other layers exist, their sample count."""
        self._check_layer(name, matrix, constructing=False)
        self.layers[name] = matrix

    def subset(self, feature_indices: Sequence[int] | np.ndarray, copy_data: bool = True) -> Assay:
        """A new Assay with the features at ``feature_indices`` (in that order) in ``var`` and every
        layer's values, mask and metadata (see :func:`metadata_part`); ``copy_data=False`` lets
        the result share what numpy and polars share."""
        cols = _positions(feature_indices, self.n_features, "feature_indices")
        var = self.var[cols]
        layers = {}
        for name, matrix in self.layers.items():
            new = ScpMatrix.__new__(ScpMatrix)
            new.X = _take(matrix.X, cols=cols, copy_data=copy_data)
            new.M = _take(matrix.M, cols=cols, copy_data=copy_data)
            new._metadata = metadata_part(matrix.metadata, matrix.shape, cols=cols, copy_data=copy_data, where=f"layer {name!r}")
            layers[name] = new
        return Assay(var.clone() if copy_data else var, layers, feature_id_col=self.feature_id_col)

    def _take_samples(self, rows: np.ndarray, copy_data: bool) -> Assay:
        layers = {}
        for name, matrix in self.layers.items():
            new = ScpMatrix.__new__(ScpMatrix)
            new.X = _take(matrix.X, rows=rows, copy_data=copy_data)
            new.M = _take(matrix.M, rows=rows, copy_data=copy_data)
            new._metadata = metadata_part(matrix.metadata, matrix.shape, rows=rows, copy_data=copy_data, where=f"layer {name!r}")
            layers[name] = new
        return Assay(self.var.clone() if copy_data else self.var, layers, feature_id_col=self.feature_id_col)

    def __repr__(self) -> str:
        return f"<Assay n_features={self.n_features}, layers={list(self.layers.keys())}>"


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
                "linkage must be a polars DataFrame", field="linkage", obj="AggregationLink.linkage",
                found=type(self.linkage).__name__,
            )
        missing = [c for c in ("source_id", "target_id") if c not in self.linkage.columns]
        if missing:
            raise ValidationError(
                "Linkage DataFrame must contain columns: {'source_id', 'target_id'}", field="linkage",
                obj="AggregationLink.linkage", expected="columns 'source_id' and 'target_id'",
                found=f"columns {self.linkage.columns}",
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


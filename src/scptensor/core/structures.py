"""The single-cell proteomics data model.

``ScpContainer`` holds the samples (``obs``), one :class:`Assay` per feature
level (``proteins``, ``peptides``), the operation history and the links between
assays.  An :class:`Assay` holds its features (``var``) and named layers, each a
:class:`ScpMatrix` of values ``X`` and mask codes ``M`` (samples x features).

The classes offer the original ScpTensor's constructors, methods, properties,
reprs and messages (``add_assay``, ``filter_samples``, ``Assay.subset``,
``ScpMatrix.get_m`` ...).  Rules enforced on construction (a
:class:`~scptensor.core.exceptions.ValidationError`, also a ``ValueError``,
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

import copy as _copy
import dataclasses
import datetime as _dt
import enum
import html
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from scipy import sparse

from scptensor.core._rules import (
    _check_frame,
    _coerce_mask,
    _coerce_values,
    _positions,
    _safe_name,
    _take,
    values_equal,
)
from scptensor.core.exceptions import (
    AssayNotFoundError,
    DimensionError,
    StructureError,
    ValidationError,
)

__all__ = [
    "MaskCode",
    "MatrixMetadata",
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




# --------------------------------------------------------------------------- helpers

def _software_version() -> str:
    from scptensor import __version__

    return __version__


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


def _subset_metadata(metadata: MatrixMetadata, shape: tuple[int, int], rows=None, cols=None,
                     copy_data: bool = True) -> MatrixMetadata:
    """Metadata of a sub-matrix: cell-level arrays (the matrix's shape) are cut like the matrix,
    1-D arrays as long as the feature axis are cut by ``cols``, otherwise as long as the sample
    axis by ``rows``; every other value is kept (copied when ``copy_data``)."""
    n_rows, n_cols = shape
    out = MatrixMetadata()
    for key, value in metadata.items():
        if sparse.issparse(value) or isinstance(value, np.ndarray):
            vshape = tuple(value.shape)
            if vshape == (n_rows, n_cols):
                value = _take(value, rows, cols, copy_data)
            elif len(vshape) == 1 and vshape[0] == n_cols and cols is not None:
                value = value[cols]
            elif len(vshape) == 1 and vshape[0] == n_rows and rows is not None and vshape[0] != n_cols:
                value = value[rows]
            elif copy_data:
                value = value.copy()
        elif copy_data:
            value = _copy.deepcopy(value)
        dict.__setitem__(out, key, value)
    return out


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
        layer's values, mask and metadata (see :func:`_subset_metadata`); ``copy_data=False`` lets
        the result share what numpy and polars share."""
        cols = _positions(feature_indices, self.n_features, "feature_indices")
        var = self.var[cols]
        layers = {}
        for name, matrix in self.layers.items():
            new = ScpMatrix.__new__(ScpMatrix)
            new.X = _take(matrix.X, cols=cols, copy_data=copy_data)
            new.M = _take(matrix.M, cols=cols, copy_data=copy_data)
            new._metadata = _subset_metadata(matrix.metadata, matrix.shape, cols=cols, copy_data=copy_data)
            layers[name] = new
        return Assay(var.clone() if copy_data else var, layers, feature_id_col=self.feature_id_col)

    def _take_samples(self, rows: np.ndarray, copy_data: bool) -> Assay:
        layers = {}
        for name, matrix in self.layers.items():
            new = ScpMatrix.__new__(ScpMatrix)
            new.X = _take(matrix.X, rows=rows, copy_data=copy_data)
            new.M = _take(matrix.M, rows=rows, copy_data=copy_data)
            new._metadata = _subset_metadata(matrix.metadata, matrix.shape, rows=rows, copy_data=copy_data)
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


# --------------------------------------------------------------------------- container


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
            from scptensor.core.exceptions import _find_closest_match

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

        ``options`` go to the format's writer (see :func:`scptensor.io.save`), e.g. the original's
        ``compression``, ``compression_level`` and ``overwrite``.
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

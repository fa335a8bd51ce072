"""Whose classes a save takes and a load builds: any set with the ScpTensor data model's shape.

Every writer of :mod:`h5scp.io` takes a container by its public attributes, not
by its class: upstream ScpTensor's current classes (a slotted ``ScpMatrix``, a
dataclass ``MatrixMetadata``), those of its January 2026 API (7f8a443), and ours
(:mod:`h5scp.core.structures`) all save.  Every reader builds the classes the
caller uses: ``classes=`` names them (a :class:`ModelClasses`, or a module such
as ``scptensor.core.structures`` holding the six classes); by default those of
the installed ``scptensor`` when one imports, else ours.

What is read, by role (the names the data model gives them):

=========== ==================================================================
container   ``obs``, ``assays``, ``links``, ``history``, ``sample_id_col``
assay       ``var``, ``layers``, ``feature_id_col``
matrix      ``X``, ``M``, ``metadata`` (None, a mapping, or an object whose
            attributes are the metadata: a dataclass's fields and any others)
provenance  ``timestamp``, ``action``, ``params``, ``software_version``, ``description``
link        ``source_assay``, ``target_assay``, ``linkage``
=========== ==================================================================

Loading calls each class with these names as keywords (``MatrixMetadata`` with
its fields; a key that is not a field is set as an attribute).

Kept exactly, in every format: values ``X`` of float32 or float64, dense
(``numpy.ndarray``) or ``scipy.sparse.csr_matrix``/``csc_matrix``; masks ``M``
None or int8 of those kinds.  Refused by every writer with an
:class:`~h5scp.io.exceptions.IOWriteError` before anything is written (none of
them is ever changed silently): other value types (float16, longdouble: cast
to float32 or float64), other sparse kinds (COO, DOK, LIL, the ``*_array``
classes: ``.tocsr()``), masks of another type, and assay or layer names an HDF5
link cannot hold (``/``, ``.`` or empty; rename them).  A matrix whose metadata
is empty loads with ``metadata=None`` in classes whose metadata may be None
(upstream's: both mean "no metadata").
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
import os
import sys
import types
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from scipy import sparse

from h5scp.core import structures as _ours
from h5scp.core._rules import _safe_name
from h5scp.core.exceptions import ScpTensorError
from h5scp.io.exceptions import IOFormatError, IOWriteError

__all__ = ["ModelClasses", "OURS", "default_classes", "resolve_classes", "as_model", "from_model",
           "saves_any_container", "loads_into_classes"]


@dataclasses.dataclass(frozen=True)
class ModelClasses:
    """The six classes of one implementation of the data model."""

    container: type
    assay: type
    matrix: type
    metadata: type
    provenance: type
    link: type

    @classmethod
    def from_module(cls, module: types.ModuleType) -> ModelClasses:
        """The classes a module exports under the data model's names (``ScpContainer``, ``Assay`` ...)."""
        names = {"container": "ScpContainer", "assay": "Assay", "matrix": "ScpMatrix",
                 "metadata": "MatrixMetadata", "provenance": "ProvenanceLog", "link": "AggregationLink"}
        missing = [n for n in names.values() if not isinstance(getattr(module, n, None), type)]
        if missing:
            raise TypeError(f"module {module.__name__} lacks the data model's classes {missing}; "
                            "pass ModelClasses(container=..., assay=..., ...) instead")
        return cls(**{role: getattr(module, name) for role, name in names.items()})


#: This package's own classes (those of ScpTensor's January 2026 API).
OURS = ModelClasses.from_module(_ours)


#: the module of the installed ScpTensor's classes
_UPSTREAM = "scptensor.core.structures"
#: ``sys.path`` when importing :data:`_UPSTREAM` last failed (None: it has not): a failed import searches every
#: entry of the path again, which costs every load of a process without ScpTensor about 0.1 ms
_MISSING_ON: tuple | None = None


def default_classes() -> ModelClasses:
    """The installed ScpTensor's classes (``scptensor.core.structures``) when it imports, else :data:`OURS`.

    An import that failed is tried again once ``sys.path`` changed (or the module was imported meanwhile).
    """
    global _MISSING_ON
    module = sys.modules.get(_UPSTREAM)
    if module is None:
        path = tuple(sys.path)
        if path == _MISSING_ON:
            return OURS
        try:
            module = importlib.import_module(_UPSTREAM)
        except ImportError:
            _MISSING_ON = path
            return OURS
    return ModelClasses.from_module(module)


def resolve_classes(classes: ModelClasses | types.ModuleType | None) -> ModelClasses:
    """``classes`` as a :class:`ModelClasses` (None: :func:`default_classes`)."""
    if classes is None:
        return default_classes()
    if isinstance(classes, ModelClasses):
        return classes
    if isinstance(classes, types.ModuleType):
        return ModelClasses.from_module(classes)
    raise TypeError(f"classes must be a ModelClasses, a module holding the data model's classes, or None; "
                    f"not {type(classes).__name__}")


# --------------------------------------------------------------------------- saving: any container


def _attrs(obj: Any, names: tuple[str, ...], what: str, path) -> list[Any]:
    missing = [n for n in names if not hasattr(obj, n)]
    if missing:
        raise IOWriteError(
            f"{what} lacks the data model's attributes {missing}", path=path, obj=what,
            expected=f"an object with {', '.join(names)}", found=type(obj).__name__,
            hint="pass a container of ScpTensor's data model (ScpContainer, Assay, ScpMatrix)",
        )
    return [getattr(obj, n) for n in names]


def _of_kind(value: Any, kinds, obj: str, path, expected: str) -> None:
    """A container's part of the wrong type: a typed error naming it (not an AttributeError from deep inside)."""
    if not isinstance(value, kinds):
        raise IOWriteError(f"the container's {obj} is not {expected}", path=path, obj=obj, expected=expected,
                           found=type(value).__name__, hint="build the container with the data model's classes")


def _refuse(what: str, path, obj: str, expected: str, found: str, hint: str) -> IOWriteError:
    return IOWriteError(f"{what}: no file format keeps it exactly", path=path, obj=obj,
                        expected=expected, found=found, hint=hint)


def _refuse_masked(value, obj: str, path, role: str) -> None:
    """A numpy masked array would be saved without its mask: refused (which mask code it means is the caller's)."""
    if isinstance(value, np.ma.MaskedArray) and np.ma.count_masked(value):
        raise _refuse(f"{role} is a numpy masked array, whose mask no format keeps beside the values", path, obj,
                      "a plain numpy.ndarray (the data model's mask is the layer's M, int8 codes)",
                      f"numpy.ma.MaskedArray with {int(np.ma.count_masked(value))} masked cells",
                      "pass X.filled(np.nan) as X and np.where(np.ma.getmaskarray(X), code, 0).astype('int8') "
                      "as M, with the MaskCode the masked cells stand for")


def _check_array(value, obj: str, path, dtypes: tuple[str, ...], role: str) -> None:
    _refuse_masked(value, obj, path, role)
    if sparse.issparse(value):
        if not isinstance(value, (sparse.csr_matrix, sparse.csc_matrix)):
            raise _refuse(f"{role} of an unsupported sparse kind", path, obj,
                          "numpy.ndarray, scipy.sparse.csr_matrix or csc_matrix",
                          f"{type(value).__name__} ({value.format})",
                          "convert it first (.tocsr() gives a csr_matrix of the same values)")
    elif not isinstance(value, np.ndarray) or value.ndim != 2:
        raise _refuse(f"{role} is not a 2-D array", path, obj, "a 2-D numpy.ndarray or CSR/CSC matrix",
                      type(value).__name__, "store the values as a 2-D numpy array")
    if value.dtype.name not in dtypes:
        raise _refuse(f"{role} of dtype {value.dtype}", path, obj, f"dtype {' or '.join(dtypes)}",
                      f"dtype {value.dtype}", f"cast it first (.astype({dtypes[0]!r}) keeps every "
                      f"{value.dtype} value exactly)" if value.dtype == np.float16 else "cast it first")


def _metadata_mapping(metadata: Any, obj: str = "metadata", path=None) -> dict[str, Any]:
    if metadata is None:
        return {}
    if isinstance(metadata, Mapping):
        return dict(metadata)
    if not dataclasses.is_dataclass(metadata) and not hasattr(metadata, "__dict__"):
        raise IOWriteError(
            "a matrix's metadata is not a mapping of named values", path=path, obj=obj,
            expected="None, a MatrixMetadata or a dict with str keys", found=type(metadata).__name__,
            hint="put the value under a name: metadata={'note': value}",
        )
    fields = {f.name: getattr(metadata, f.name) for f in dataclasses.fields(metadata)} \
        if dataclasses.is_dataclass(metadata) else {}
    fields.update(getattr(metadata, "__dict__", {}))
    return {k: v for k, v in fields.items() if v is not None}


def _matrix(matrix: Any, obj: str, path) -> _ours.ScpMatrix:
    X, M, metadata = _attrs(matrix, ("X", "M", "metadata"), obj, path)
    _check_array(X, f"{obj}/X", path, ("float32", "float64"), "values")
    if M is not None:
        _check_array(M, f"{obj}/M", path, ("int8",), "mask")
    return _ours.ScpMatrix(X, M, _metadata_mapping(metadata, f"{obj}/metadata", path))


def as_model(container: Any, path: str | os.PathLike | None = None) -> _ours.ScpContainer:
    """``container`` as this package's classes, sharing its arrays and frames (itself when it is ours).

    Raises :class:`~h5scp.io.exceptions.IOWriteError`, naming ``path`` and the
    part, for what no format keeps exactly (see the module's notes) or what the
    data model refuses.
    """
    if isinstance(container, _ours.ScpContainer):
        for name, assay in container.assays.items():
            for layer, matrix in assay.layers.items():
                for role, value in (("values", matrix.X), ("mask", matrix.M)):
                    _refuse_masked(value, f"assays/{name}/layers/{layer}/{'X' if role == 'values' else 'M'}",
                                   path, role)
        return container
    obs, assays, links, history, id_col = _attrs(
        container, ("obs", "assays", "links", "history", "sample_id_col"), "container", path)
    _of_kind(assays, Mapping, "assays", path, "a dict of assay name -> Assay")
    _of_kind(links, (list, tuple, type(None)), "links", path, "a list of AggregationLink")
    _of_kind(history, (list, tuple, type(None)), "history", path, "a list of ProvenanceLog")
    try:
        model_assays = {}
        for name, assay in assays.items():
            _safe_name(name, "assay name")
            var, layers, feature_id_col = _attrs(assay, ("var", "layers", "feature_id_col"), f"assays/{name}", path)
            _of_kind(layers, Mapping, f"assays/{name}/layers", path, "a dict of layer name -> ScpMatrix")
            model_layers = {}
            for layer, matrix in layers.items():
                _safe_name(layer, "layer name")
                model_layers[layer] = _matrix(matrix, f"assays/{name}/layers/{layer}", path)
            model_assays[name] = _ours.Assay(var, model_layers, feature_id_col=feature_id_col)
        model_links = [_ours.AggregationLink(*_attrs(link, ("source_assay", "target_assay", "linkage"),
                                                     f"links[{i}]", path)) for i, link in enumerate(links or [])]
        model_history = [
            _ours.ProvenanceLog(*_attrs(entry, ("timestamp", "action", "params", "software_version", "description"),
                                        f"history[{i}]", path))
            for i, entry in enumerate(history or [])
        ]
        return _ours.ScpContainer(obs, model_assays, model_links, model_history, id_col)
    except IOWriteError:
        raise
    except ScpTensorError as exc:
        raise IOWriteError(
            f"the container breaks the data model: {exc}", path=path, obj=getattr(exc, "obj", None) or "container",
            hint="nothing was written; correct the container first",
        ) from exc


# --------------------------------------------------------------------------- loading: the caller's classes


def _metadata_into(cls: type, metadata: Mapping[str, Any], path, obj: str):
    if not metadata:
        return None if cls is not _ours.MatrixMetadata else cls()
    if hasattr(cls, "from_mapping"):
        return cls.from_mapping(metadata)
    if issubclass(cls, Mapping):
        return cls(metadata)
    fields = {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()
    value = cls(**{k: v for k, v in metadata.items() if k in fields})
    for key in (k for k in metadata if k not in fields):
        try:
            setattr(value, key, metadata[key])
        except AttributeError:
            raise IOFormatError(
                f"matrix metadata {key!r} has no place in {cls.__module__}.{cls.__qualname__}", path=path,
                obj=f"{obj}/metadata/{key}", expected=f"one of its fields {sorted(fields)}", found=repr(key),
                hint="load with classes= naming classes whose metadata takes any key (h5scp.io.classes.OURS)",
            ) from None
    return value


def _build(cls: type, path, obj: str, **kwargs):
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise IOFormatError(
            f"{cls.__module__}.{cls.__qualname__} refuses what the file holds: {exc}", path=path, obj=obj,
            hint="load with classes=h5scp.io.classes.OURS to see it as stored",
        ) from exc


def from_model(container: Any, classes: ModelClasses | types.ModuleType | None = None,
               path: str | os.PathLike | None = None) -> Any:
    """``container`` in ``classes`` (see :func:`resolve_classes`), sharing its arrays and frames.

    A container already of those classes is returned as it is.  What the
    classes' constructors refuse is an :class:`~h5scp.io.exceptions.IOFormatError`.
    """
    c = resolve_classes(classes)
    if type(container) is c.container:
        return container
    model = as_model(container, path)
    assays = {}
    for name, assay in model.assays.items():
        layers = {}
        for layer, m in assay.layers.items():
            obj = f"assays/{name}/layers/{layer}"
            meta = _metadata_into(c.metadata, m.metadata, path, obj)
            layers[layer] = _build(c.matrix, path, obj, X=m.X, M=m.M, metadata=meta)
        assays[name] = _build(c.assay, path, f"assays/{name}", var=assay.var, layers=layers,
                              feature_id_col=assay.feature_id_col)
    links = [_build(c.link, path, f"links[{i}]", source_assay=l.source_assay, target_assay=l.target_assay,
                    linkage=l.linkage) for i, l in enumerate(model.links)]
    history = [_build(c.provenance, path, f"history[{i}]", timestamp=h.timestamp, action=h.action, params=h.params,
                      software_version=h.software_version, description=h.description)
               for i, h in enumerate(model.history)]
    return _build(c.container, path, "container", obs=model.obs, assays=assays, links=links, history=history,
                  sample_id_col=model.sample_id_col)


# --------------------------------------------------------------------------- the public functions' wrappers


def saves_any_container(save: Callable[..., Any]) -> Callable[..., Any]:
    """``save(container, path, ...)`` taking any container of the data model (see :func:`as_model`)."""

    @functools.wraps(save)
    def wrapper(container, path, *args, **kwargs):
        return save(as_model(container, path), path, *args, **kwargs)

    return wrapper


_CLASSES = inspect.Parameter("classes", inspect.Parameter.KEYWORD_ONLY, default=None)


def loads_into_classes(load: Callable[..., Any]) -> Callable[..., Any]:
    """``load(path, ..., classes=None)`` building the caller's classes (see :func:`from_model`)."""

    @functools.wraps(load)
    def wrapper(path, *args, classes=None, **kwargs):
        return from_model(load(path, *args, **kwargs), classes, path)

    signature = inspect.signature(load)
    params = list(signature.parameters.values())
    at = next((i for i, p in enumerate(params) if p.kind is inspect.Parameter.VAR_KEYWORD), len(params))
    wrapper.__signature__ = signature.replace(parameters=[*params[:at], _CLASSES, *params[at:]])
    return wrapper

"""ScpTensor's January 2026 API (7f8a443): every import path, the names imported there, and where each
object lives here.

``JANUARY_API[path]`` maps each module of h5scp that holds objects of the January ``path`` to their
names.  The table is plain data, read without running anything; it is the one place that ties the
January paths (``scptensor.core``, ``scptensor.core.io``, ...) to h5scp's own modules, so that those can
move or split with one edit here:

- the opt-in distribution ``scptensor-january`` serves ``scptensor.<path>`` from it: a path of
  :data:`SERVED_WHOLE` *is* the module of h5scp named there (``scptensor.core.structures`` is
  ``h5scp.core.structures``: one set of classes, one module to patch); every other path is a module
  made from the table, whose names are imported from their homes on first use (:func:`serve`);
- the modules of h5scp served whole hand on the January names they do not hold themselves
  (:func:`hand_on`): ``h5scp.core``, the data model, gives ``load_csv`` and the other January helpers,
  which live above the formats (:mod:`h5scp.january`), on first use, without importing them;
- the tests read it for the list of names (``tests/unit/test_january_table.py``).

This module imports nothing of h5scp, so any module may read it.
"""

from __future__ import annotations

import importlib
import sys
import types

__all__ = ["JANUARY_API", "SERVED_WHOLE", "names_at", "home_of", "january_attribute", "hand_on", "serve",
           "is_package"]

_CLASSES = ("MaskCode", "ProvenanceLog", "MatrixMetadata", "ScpMatrix", "AggregationLink", "Assay", "ScpContainer")
_ERRORS = ("ScpTensorError", "StructureError", "ValidationError", "LayerNotFoundError", "AssayNotFoundError",
           "MissingDependencyError", "DimensionError", "ScpValueError", "MaskCodeError", "VisualizationError",
           "LegacyFormatWarning")
_CSV_NPZ = ("save_csv", "load_csv", "save_npz", "load_npz")
_SCANPY = ("save_h5ad", "load_h5ad", "from_scanpy", "to_scanpy", "read_h5ad", "write_h5ad")
_SPARSE = ("is_sparse_matrix", "get_sparsity_ratio", "to_sparse_if_beneficial", "ensure_sparse_format",
           "sparse_copy", "cleanup_layers", "get_memory_usage", "optimal_format_for_operation",
           "auto_convert_for_operation", "sparse_row_operation", "sparse_col_operation", "sparse_multiply_rowwise",
           "sparse_multiply_colwise", "sparse_center_rows", "sparse_safe_log1p", "get_format_recommendation")
_JIT = ("NUMBA_AVAILABLE", "count_mask_codes", "find_missing_indices", "compute_euclidean_distance",
        "apply_mask_threshold", "fill_missing_with_value")

#: What ``scptensor.core`` exported (and, as the January package re-exported it, ``scptensor``).
_CORE = {
    "h5scp.core.structures": _CLASSES,
    "h5scp.january.matrix_ops": ("MatrixOps",),
    "h5scp.january.reader": ("reader",),
    "h5scp.january.csv_npz": _CSV_NPZ,
    "h5scp.january.scanpy_h5ad": _SCANPY,
    "h5scp.january.sparse_utils": _SPARSE,
    "h5scp.january.jit_ops": _JIT,
    "h5scp.core.exceptions": _ERRORS,
}

JANUARY_API: dict[str, dict[str, tuple[str, ...]]] = {
    "scptensor": _CORE,
    "scptensor.__main__": {"h5scp.__main__": ()},
    "scptensor.core": _CORE,
    "scptensor.core.structures": {"h5scp.core.structures": (*_CLASSES, "values_equal")},
    "scptensor.core.exceptions": {"h5scp.core.exceptions": _ERRORS},
    "scptensor.core.io": {"h5scp.january.csv_npz": _CSV_NPZ, "h5scp.january.scanpy_h5ad": _SCANPY},
    "scptensor.core.utils": {"h5scp.january.utils": ("_find_closest_match", "compute_pca", "compute_umap",
                                                     "requires_dependency")},
    "scptensor.core.jit_ops": {"h5scp.january.jit_ops": (*_JIT, "count_above_threshold", "filter_by_threshold_count",
                                                         "fill_nan_with_value")},
    "scptensor.core.matrix_ops": {"h5scp.january.matrix_ops": ("MatrixOps", "sparse_filter_mask")},
    "scptensor.core.reader": {"h5scp.january.reader": ("reader",)},
    "scptensor.core.sparse_utils": {"h5scp.january.sparse_utils": (*_SPARSE, "sparse_safe_operation",
                                                                   "sparse_safe_log1p_with_scale")},
    "scptensor.io": {"h5scp.io": ("IOFormatError", "IOPasswordError", "IOWriteError", "save_hdf5", "load_hdf5",
                                  "deserialize_dataframe", "serialize_dataframe", "serialize_dense_matrix",
                                  "serialize_sparse_matrix")},
    "scptensor.io.exceptions": {"h5scp.io.exceptions": ("IOPasswordError", "IOFormatError", "IOWriteError")},
    "scptensor.io.exporters": {"h5scp.io.exporters": ("save_hdf5",)},
    "scptensor.io.importers": {"h5scp.io.importers": ("load_hdf5",)},
    "scptensor.io.serializers": {"h5scp.io.serializers": ("serialize_dataframe", "deserialize_dataframe",
                                                          "serialize_dense_matrix", "serialize_sparse_matrix",
                                                          "serialize_provenance", "deserialize_provenance")},
}

#: The January paths served as a module of h5scp itself (``scptensor`` *is* ``h5scp``).  Such a module holds
#: the names the table gives its path, or hands them on (:func:`hand_on`).  Every other path of
#: :data:`JANUARY_API` is a module made from the table (:func:`serve`).
SERVED_WHOLE: dict[str, str] = {
    "scptensor": "h5scp",
    "scptensor.__main__": "h5scp.__main__",
    "scptensor.core": "h5scp.core",
    "scptensor.core.structures": "h5scp.core.structures",
    "scptensor.core.exceptions": "h5scp.core.exceptions",
    "scptensor.core.utils": "h5scp.january.utils",
    "scptensor.core.jit_ops": "h5scp.january.jit_ops",
    "scptensor.core.matrix_ops": "h5scp.january.matrix_ops",
    "scptensor.core.reader": "h5scp.january.reader",
    "scptensor.core.sparse_utils": "h5scp.january.sparse_utils",
    "scptensor.io": "h5scp.io",
    "scptensor.io.exceptions": "h5scp.io.exceptions",
    "scptensor.io.exporters": "h5scp.io.exporters",
    "scptensor.io.importers": "h5scp.io.importers",
    "scptensor.io.serializers": "h5scp.io.serializers",
}

_HOMES = {path: {name: home for home, names in homes.items() for name in names}
          for path, homes in JANUARY_API.items()}


def names_at(path: str) -> list[str]:
    """The names the January API exported at ``path``, in the table's order."""
    return list(_HOMES[path])


def home_of(path: str, name: str) -> str:
    """The module of h5scp where the January ``path.name`` lives; KeyError for a name the January API did
    not have at ``path``."""
    return _HOMES[path][name]


def is_package(path: str) -> bool:
    """Whether the January ``path`` holds other paths (``scptensor.core`` does)."""
    return any(other.startswith(path + ".") for other in JANUARY_API)


def january_attribute(path: str, name: str):
    """The object the January ``path.name`` is (imported from its home); AttributeError for a name the
    January API did not have at ``path``."""
    try:
        home = home_of(path, name)
    except KeyError:
        raise AttributeError(f"module {path!r} has no attribute {name!r}") from None
    return getattr(importlib.import_module(home), name)


def hand_on(namespace: dict, path: str) -> None:
    """Give the module whose globals are ``namespace`` the January names of ``path`` that live elsewhere.

    Each name the module does not hold is imported from its home on first use (the module's ``__getattr__``) and listed in its
    ``__all__``; the module imports none of them.  Called once, at the end of a module of
    :data:`SERVED_WHOLE` that does not hold every name of its path (``h5scp.core``), and by :func:`serve`.
    """
    from h5stream.lazy_names import serve_lazily  # here: the opt-in's finder reads this table at every start

    own = namespace["__name__"]
    names = [name for name in names_at(path) if name not in namespace]
    serve_lazily(namespace, names, lambda name: january_attribute(path, name))
    namespace["_january_path"] = path
    module = sys.modules.get(own)
    if module is not None and module.__dict__ is namespace and type(module) is types.ModuleType:
        module.__class__ = _JanuaryNames


class _JanuaryNames(types.ModuleType):
    """A module that hands on January names: a submodule of the same name keeps the January name.

    Importing ``scptensor.core.reader`` binds the submodule as the attribute ``reader`` of ``scptensor.core``;
    in the January API that attribute is the function ``reader`` (its ``__init__`` imported it after the
    submodule), and so it stays here.
    """

    def __setattr__(self, name: str, value) -> None:
        path = self.__dict__.get("_january_path")
        if isinstance(value, types.ModuleType) and name in _HOMES.get(path, {}):
            value = january_attribute(path, name)
        super().__setattr__(name, value)


def serve(module: types.ModuleType) -> None:
    """Make ``module``, whose name is a January path not served whole, that path: its names from their homes
    on first use (the opt-in's finder calls this as the module is loaded)."""
    module.__all__ = []
    hand_on(module.__dict__, module.__name__)
    if type(module) is types.ModuleType:
        module.__class__ = _JanuaryNames


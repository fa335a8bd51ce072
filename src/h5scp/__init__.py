"""h5scp: exact, crash-safe files for containers of the ScpTensor data model, whoever made them.

``h5scp.save(container, path)`` takes a container of any implementation of the
data model (upstream ScpTensor's current classes, its January 2026 API, ours)
and writes the format the extension names: ``.h5``/``.hdf5`` (scptensor format
2.0), ``.h5mu`` (MuData, one modality per assay), ``.h5ad`` (AnnData, one
assay), ``.parquet`` (a folder).  ``h5scp.load(path)`` reads any of them, whole
or in part, into the classes of the installed ScpTensor (or those ``classes=``
names; :mod:`h5scp.io.classes`).

The package also holds its own implementation of the data model, with the
January 2026 API (7f8a443): :class:`ScpContainer`, :class:`Assay`,
:class:`ScpMatrix` ... and ``container.save(path)`` / ``ScpContainer.load(path)``.
The opt-in distribution ``scptensor-january`` serves it under the import name
``scptensor``, path by path as the table :mod:`h5scp._january_table` says; the
January API's helpers (CSV, NPZ, AnnData interchange, sparse and mask-code
helpers) live in :mod:`h5scp.january`, above the formats.  For an installed
upstream ScpTensor, :func:`enable_scptensor_io` gives ``scptensor.io`` the save
and load functions.
"""

import logging

from h5scp import _january_table
from h5scp._version import __version__
from h5scp.core import (
    AggregationLink,
    Assay,
    LegacyFormatWarning,
    MaskCode,
    ProvenanceLog,
    ScpContainer,
    ScpMatrix,
    ScpTensorError,
    ValidationError,
)
from h5scp.core.container import connect_files as _connect_files

logging.getLogger(__name__).addHandler(logging.NullHandler())

# The I/O layer (and with it the element codecs) loads on first use, so the
# data model imports without it.
_IO_NAMES = {"IOFormatError", "IOPasswordError", "IOWriteError", "load", "load_hdf5", "save", "save_hdf5"}
_LATER = {"ModelClasses": "h5scp.io.classes", "enable_scptensor_io": "h5scp.scptensor_io",
          "disable_scptensor_io": "h5scp.scptensor_io"}
_SUBMODULES = {"io", "january", "scptensor_io", "testing"}


def _connect_formats() -> None:
    """Give the container the formats' save and load themselves (on first use, as the formats load then)."""
    import functools

    from h5scp.io.classes import OURS
    from h5scp.io.formats import load, save

    _connect_files(save, functools.partial(load, classes=OURS))


def _save_first(container, path, **options):
    _connect_formats()
    return container.save(path, **options)


def _load_first(path, **options):
    _connect_formats()
    return ScpContainer.load(path, **options)


# The data model imports none of its formats: this package, above both, gives the container its save and
# load: ``ScpContainer.save`` is ``h5scp.io.save`` (by extension), ``ScpContainer.load`` is ``h5scp.io.load``
# (by content) into this package's classes.
_connect_files(_save_first, _load_first)


def __getattr__(name: str):
    if name in _IO_NAMES:
        import h5scp.io

        return getattr(h5scp.io, name)
    if name in _LATER:
        import importlib

        return getattr(importlib.import_module(_LATER[name]), name)
    if name in _JANUARY_NAMES:  # the January package also exported every scptensor.core name here
        return _january_table.january_attribute("scptensor", name)
    if name in _SUBMODULES:  # ``h5scp.io`` without importing it first, as after ``import h5scp.io``
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_JANUARY_NAMES = frozenset(_january_table.names_at("scptensor"))

__all__ = [
    "__version__",
    "AggregationLink",
    "Assay",
    "MaskCode",
    "ProvenanceLog",
    "ScpContainer",
    "ScpMatrix",
    "ScpTensorError",
    "ValidationError",
    "LegacyFormatWarning",
    "IOFormatError",
    "IOPasswordError",
    "IOWriteError",
    "save",
    "load",
    "save_hdf5",
    "load_hdf5",
    "ModelClasses",
    "enable_scptensor_io",
    "disable_scptensor_io",
]

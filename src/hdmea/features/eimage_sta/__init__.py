"""Electrical images: the ``eimage_sta`` extractor over pre-filtered sensor data, and the lab pipeline's
functions over the streaming step :func:`hdmea.pipeline.compute_eimage_sta` (see
:mod:`hdmea.features.eimage_sta.compute`)."""

from __future__ import annotations

import importlib

from hdmea.features.eimage_sta.compute import (
    VERSION,
    EImageSTAConfig,
    EImageSTAResult,
    STAAccumulator,
    compute_sta_for_unit_legacy,
    extract_windows_for_chunk,
    write_eimage_sta_to_hdf5,
)
from hdmea.features.eimage_sta.extractor import EImageSTAExtractor, compute_sta_for_unit

__all__ = [
    "VERSION", "EImageSTAConfig", "EImageSTAResult", "EImageSTAExtractor", "STAAccumulator", "compute_eimage_sta",
    "compute_eimage_sta_chunked", "compute_eimage_sta_legacy", "compute_eimage_sta_legacy_improved",
    "compute_sta_for_unit", "compute_sta_for_unit_legacy", "extract_windows_for_chunk", "write_eimage_sta_to_hdf5",
]


# The four functions that run the streaming step live with the steps, a layer above: handed on on first use
# (see tests/unit/test_import_graph.py).
_HANDED_ON = {name: "hdmea.steps.eimage_variants" for name in (
    "compute_eimage_sta", "compute_eimage_sta_chunked", "compute_eimage_sta_legacy",
    "compute_eimage_sta_legacy_improved")}


def __getattr__(name: str):
    module = _HANDED_ON.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value

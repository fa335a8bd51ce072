"""Electrical images: the ``eimage_sta`` extractor over pre-filtered sensor data, and the lab pipeline's
functions over the streaming step :func:`hdmea.pipeline.compute_eimage_sta` (see
:mod:`hdmea.features.eimage_sta.compute`)."""

from __future__ import annotations

from hdmea.features.eimage_sta.compute import (
    VERSION,
    EImageSTAConfig,
    EImageSTAResult,
    STAAccumulator,
    compute_eimage_sta,
    compute_eimage_sta_chunked,
    compute_eimage_sta_legacy,
    compute_eimage_sta_legacy_improved,
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

"""The original pipeline's ``hdmea.pipeline.runner``: its names, handed on from where they live.

Generated from :data:`hdmea._compat_table.ORIGINAL_API` by ``python -m hdmea._compat.surface``; do not
edit."""

from hdmea.steps.features import ExtractionResult, extract_features
from hdmea.steps.load import (
    DEFAULT_ACQUISITION_RATE, FlowResult, LoadResult, LoadWithEImageSTAResult, MAX_TYPICAL_ACQUISITION_RATE,
    MIN_TYPICAL_ACQUISITION_RATE, compute_frame_time, get_frame_timestamps, load_recording,
    load_recording_with_eimage_sta, validate_acquisition_rate
)

__all__ = [
    "DEFAULT_ACQUISITION_RATE", "MIN_TYPICAL_ACQUISITION_RATE", "MAX_TYPICAL_ACQUISITION_RATE",
    "validate_acquisition_rate", "compute_frame_time", "get_frame_timestamps", "LoadResult", "FlowResult",
    "load_recording", "LoadWithEImageSTAResult", "load_recording_with_eimage_sta", "ExtractionResult",
    "extract_features"
]

"""The original pipeline's ``hdmea.pipeline.runner``: its names, handed on from where they live.

Generated from :data:`hdmea._compat_table.ORIGINAL_API` by ``python -m hdmea._compat.surface``; do not
edit."""

import importlib

from hdmea._compat.flows import FlowResult
from hdmea._compat.load_with_eimage import LoadWithEImageSTAResult, load_recording_with_eimage_sta
from hdmea.steps.features import ExtractionResult, extract_features
from hdmea.steps.load import (
    DEFAULT_ACQUISITION_RATE, LoadResult, MAX_TYPICAL_ACQUISITION_RATE, MIN_TYPICAL_ACQUISITION_RATE,
    compute_frame_time, get_frame_timestamps, load_recording, validate_acquisition_rate
)

__all__ = [
    "DEFAULT_ACQUISITION_RATE", "MIN_TYPICAL_ACQUISITION_RATE", "MAX_TYPICAL_ACQUISITION_RATE",
    "validate_acquisition_rate", "compute_frame_time", "get_frame_timestamps", "LoadResult", "load_recording",
    "LoadWithEImageSTAResult", "load_recording_with_eimage_sta", "FlowResult", "ExtractionResult",
    "extract_features"
]

importlib.import_module("hdmea._compat_table").settings_reach_their_home(__name__)

"""The original pipeline's ``hdmea.preprocess.filtering``: its names, handed on from where they live.

Generated from :data:`hdmea._compat_table.ORIGINAL_API` by ``python -m hdmea._compat.surface``; do not
edit."""

import importlib

from hdmea._compat.filtering import (
    apply_highpass_filter_3d, apply_highpass_filter_3d_legacy, apply_highpass_filter_3d_simple, compute_firing_rate,
    filter_by_firing_rate, smooth_signal
)

__all__ = [
    "apply_highpass_filter_3d", "apply_highpass_filter_3d_simple", "apply_highpass_filter_3d_legacy",
    "compute_firing_rate", "smooth_signal", "filter_by_firing_rate"
]

importlib.import_module("hdmea._compat_table").settings_reach_their_home(__name__)

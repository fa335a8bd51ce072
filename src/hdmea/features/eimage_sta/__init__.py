"""Electrical images: the ``eimage_sta`` extractor over pre-filtered sensor data, and the step that streams a
``.cmcr`` file (:func:`compute_eimage_sta`, the same as :func:`hdmea.pipeline.compute_eimage_sta`)."""

from __future__ import annotations

from hdmea.features.eimage_sta.extractor import EImageSTAExtractor, compute_sta_for_unit

__all__ = ["EImageSTAExtractor", "compute_sta_for_unit", "compute_eimage_sta"]


def __getattr__(name: str):
    if name == "compute_eimage_sta":  # loads the readers only when asked for
        from hdmea.pipeline.eimage import compute_eimage_sta

        return compute_eimage_sta
    raise AttributeError(f"module 'hdmea.features.eimage_sta' has no attribute {name!r}")

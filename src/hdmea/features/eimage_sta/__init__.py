"""Electrical images: the ``eimage_sta`` extractor over pre-filtered sensor data.

The original pipeline's functions at this path (over the streaming step
:func:`hdmea.steps.eimage.compute_eimage_sta`) live in :mod:`hdmea._compat` and are handed on on first use by
:mod:`hdmea._compat_table`.
"""

import importlib

from hdmea.features.eimage_sta.extractor import EImageSTAExtractor, compute_sta_for_unit

__all__ = ["EImageSTAExtractor", "compute_sta_for_unit"]

importlib.import_module("hdmea._compat_table").hand_on(globals())

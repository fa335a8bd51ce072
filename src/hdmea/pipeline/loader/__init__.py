"""The original pipeline's ``hdmea.pipeline.loader``: its names, handed on from where they live.

Generated from :data:`hdmea._compat_table.ORIGINAL_API` by ``python -m hdmea._compat.surface``; do not
edit."""

import importlib

from hdmea.session.loader import load_hdf5_to_session, load_session_from_hdf5

__all__ = ["load_session_from_hdf5", "load_hdf5_to_session"]

importlib.import_module("hdmea._compat_table").settings_reach_their_home(__name__)

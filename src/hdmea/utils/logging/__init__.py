"""The original pipeline's ``hdmea.utils.logging``: its names, handed on from where they live.

Generated from :data:`hdmea._compat_table.ORIGINAL_API` by ``python -m hdmea._compat.surface``; do not
edit."""

import importlib

from hdmea._compat.log_setup import LoggerMixin, get_logger, setup_logging

__all__ = ["setup_logging", "get_logger", "LoggerMixin"]

importlib.import_module("hdmea._compat_table").settings_reach_their_home(__name__)

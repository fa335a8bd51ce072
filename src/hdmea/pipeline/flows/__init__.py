"""The original pipeline's ``hdmea.pipeline.flows``: its names, handed on from where they live.

Generated from :data:`hdmea._compat_table.ORIGINAL_API` by ``python -m hdmea._compat.surface``; do not
edit."""

import importlib

from hdmea._compat.flows import get_flow_info, list_available_flows, run_flow

__all__ = ["run_flow", "list_available_flows", "get_flow_info"]

importlib.import_module("hdmea._compat_table").settings_reach_their_home(__name__)

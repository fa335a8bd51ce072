"""The original pipeline's ``hdmea.pipeline.session``: its names, handed on from where they live.

Generated from :data:`hdmea._compat_table.ORIGINAL_API` by ``python -m hdmea._compat.surface``; do not
edit."""

import importlib

from hdmea.session.session import PipelineSession, SaveState, create_session

__all__ = ["SaveState", "PipelineSession", "create_session"]

importlib.import_module("hdmea._compat_table").settings_reach_their_home(__name__)

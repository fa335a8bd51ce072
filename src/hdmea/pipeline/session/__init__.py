"""The original pipeline's path of the deferred session (it lives in :mod:`hdmea.session.session`)."""

from hdmea.session.session import PipelineSession, SaveState, create_session

__all__ = ["SaveState", "PipelineSession", "create_session"]

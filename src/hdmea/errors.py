"""Typed errors of the HD-MEA face; all derive from :class:`h5stream.errors.H5StreamError`."""

from __future__ import annotations

from h5stream.errors import FormatError, H5StreamError

__all__ = [
    "HdmeaError",
    "SessionError",
    "CheckpointError",
    "MissingStepError",
    "RecordingFormatError",
    "ConfigError",
]


class HdmeaError(H5StreamError):
    """Base class of hdmea errors."""


class SessionError(HdmeaError, RuntimeError):
    """A PipelineSession operation is not possible in the session's state."""


class CheckpointError(SessionError):
    """A checkpoint cannot be written or resumed."""


class MissingStepError(HdmeaError, RuntimeError):
    """A pipeline step was called before the step that produces its inputs."""


class RecordingFormatError(HdmeaError, FormatError):
    """A .cmcr/.cmtr file (or a recording store) is not what it should be."""


class ConfigError(HdmeaError, ValueError):
    """A pipeline configuration is invalid; the message names the key and the reason."""

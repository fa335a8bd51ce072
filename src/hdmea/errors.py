"""Typed errors of the HD-MEA face; all derive from :class:`h5stream.errors.H5StreamError`."""

from __future__ import annotations

from h5stream.errors import (
    ChecksumError,
    FormatError,
    H5StreamError,
    H5StreamWarning,
    SourceNotFoundError,
    TargetExistsError,
    WriterClaimError,
)

__all__ = [
    "ChecksumError",
    "HdmeaError",
    "SessionError",
    "CheckpointError",
    "MissingStepError",
    "RecordingFormatError",
    "RecordingExistsError",
    "RecordingNotFoundError",
    "RecordingLockedError",
    "CorruptRecordingError",
    "UnknownUnitError",
    "SuffixWarning",
    "ConfigError",
    "DeprecatedStepNameWarning",
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


class RecordingExistsError(TargetExistsError, HdmeaError):
    """The recording file exists and ``overwrite`` was not requested."""


class RecordingNotFoundError(SourceNotFoundError, HdmeaError):
    """The recording file does not exist."""


class RecordingLockedError(WriterClaimError, HdmeaError):
    """Another writer holds the recording file."""


class CorruptRecordingError(RecordingFormatError):
    """The recording file cannot be read."""


class UnknownUnitError(HdmeaError, KeyError):
    """A unit id that the recording does not hold."""

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0] if self.args else ""


class SuffixWarning(H5StreamWarning):
    """A recording file name does not end with ``.h5``."""


class ConfigError(HdmeaError, ValueError):
    """A pipeline configuration is invalid; the message names the key and the reason."""


class DeprecatedStepNameWarning(FutureWarning):
    """A configuration names a pipeline step by its former name (``sta``, ``eimage``, ...).

    The step still runs as configured; the message names the key and the current name
    (see :data:`hdmea.pipeline.steps.STEPS`).
    """

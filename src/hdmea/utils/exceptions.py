"""Exception names at the import path of the original pipeline."""

from hdmea.errors import (  # noqa: F401
    CheckpointError,
    ConfigError,
    HdmeaError,
    MissingStepError,
    RecordingFormatError,
    SessionError,
)

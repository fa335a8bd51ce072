"""The exceptions at the original pipeline's import path ``hdmea.utils.exceptions``.

Every name is the class of :mod:`hdmea.errors` (aliases or subclasses of ours), so
``except ConfigurationError`` catches what our steps raise and ``except
ConfigError`` catches what a script written for the original raises.
"""

from hdmea.errors import (  # noqa: F401
    CacheConflictError,
    CheckpointError,
    ConfigError,
    ConfigurationError,
    DataLoadError,
    FeatureExtractionError,
    HDMEAError,
    HdmeaError,
    MismatchError,
    MissingInputError,
    MissingStepError,
    RecordingFormatError,
    SessionError,
    ValidationError,
)

__all__ = [
    "HDMEAError",
    "ConfigurationError",
    "DataLoadError",
    "FeatureExtractionError",
    "MissingInputError",
    "CacheConflictError",
    "ValidationError",
    "MismatchError",
    "SessionError",
    "CheckpointError",
    "HdmeaError",
    "ConfigError",
    "MissingStepError",
    "RecordingFormatError",
]

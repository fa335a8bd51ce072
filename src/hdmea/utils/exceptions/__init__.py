"""The original pipeline's ``hdmea.utils.exceptions``: its names, handed on from where they live.

Generated from :data:`hdmea._compat_table.ORIGINAL_API` by ``python -m hdmea._compat.surface``; do not
edit."""

import importlib

from hdmea.errors import (
    CacheConflictError, CheckpointError, ConfigurationError, DataLoadError, FeatureExtractionError, HDMEAError,
    MismatchError, MissingInputError, SessionError, ValidationError
)

__all__ = [
    "HDMEAError", "ConfigurationError", "DataLoadError", "FeatureExtractionError", "MissingInputError",
    "CacheConflictError", "ValidationError", "MismatchError", "SessionError", "CheckpointError"
]

importlib.import_module("hdmea._compat_table").settings_reach_their_home(__name__)

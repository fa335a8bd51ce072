"""Errors of the ``scptensor`` package.

Every error derives from :class:`ScpTensorError` and from the matching typed
error of the engine (:mod:`h5stream.errors`), so code catching either keeps
working, and every message names the file, the object, what was expected and
what was found.
"""

from __future__ import annotations

from h5stream.errors import H5StreamError, H5StreamWarning

__all__ = ["ScpTensorError", "ValidationError", "LegacyFormatWarning"]


class ScpTensorError(H5StreamError):
    """Base class of every error raised by ``scptensor``."""


class ValidationError(ScpTensorError, ValueError):
    """A container, assay or matrix breaks a rule of the data model (shape, ids, mask codes)."""


class LegacyFormatWarning(H5StreamWarning):
    """A file in an old ``scptensor`` layout was read; saving it again writes the current format."""

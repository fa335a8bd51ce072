"""Errors of the ``scptensor`` package.

Every error derives from :class:`ScpTensorError` and from the matching typed
error of the engine (:mod:`h5stream.errors`), so code catching either keeps
working, and every message names the object, what was expected and what was
found.

The classes, their constructor arguments and attributes are those of the
original ScpTensor (``ValidationError(message, field=None)``,
``AssayNotFoundError(assay_name, hint=None, available_assays=None)`` ...).
Where the original raised a built-in exception for the same condition, the
class also derives from that built-in, so both ``except ValueError`` and
``except ValidationError`` catch it:

======================  ======================  ==================================
class                   also a                  raised for
======================  ======================  ==================================
StructureError          ValueError              a container that breaks its own rules
ValidationError         ValueError              bad input (ids, shapes, names, codes)
DimensionError          ValidationError         a length or shape that does not fit
MaskCodeError           ValidationError         a mask code outside 0..6
ScpValueError           ValueError              a parameter value out of range
AssayNotFoundError      KeyError                an assay name that is not there
LayerNotFoundError      KeyError                a layer name that is not there
MissingDependencyError  ImportError             an optional package that is absent
VisualizationError      ValueError              plotting input (kept for imports)
======================  ======================  ==================================
"""

from __future__ import annotations

from collections.abc import Collection
from difflib import get_close_matches
from typing import Any

from h5stream.errors import H5StreamError, H5StreamWarning

__all__ = [
    "ScpTensorError",
    "StructureError",
    "ValidationError",
    "LayerNotFoundError",
    "AssayNotFoundError",
    "MissingDependencyError",
    "DimensionError",
    "ScpValueError",
    "MaskCodeError",
    "VisualizationError",
    "LegacyFormatWarning",
    "MetadataKeptWholeWarning",
]


class ScpTensorError(H5StreamError):
    """Base class of every error raised by ``scptensor``."""

    def __init__(self, message: str = "", **fields: Any) -> None:
        super().__init__(message, **fields)


class StructureError(ScpTensorError, ValueError):
    """A container, assay or matrix is inconsistent with itself (shapes, links)."""


class ValidationError(ScpTensorError, ValueError):
    """A container, assay or matrix breaks a rule of the data model (shape, ids, mask codes).

    ``field`` names the offending input, as in the original ScpTensor.
    """

    def __init__(self, message: str = "", field: str | None = None, **fields: Any) -> None:
        self.field = field
        super().__init__(message, **fields)


class DimensionError(ValidationError):
    """A length or shape does not fit (a boolean mask of the wrong length, a layer of the wrong size)."""

    def __init__(
        self,
        message: str = "",
        expected_shape: tuple[int, ...] | None = None,
        actual_shape: tuple[int, ...] | None = None,
        **fields: Any,
    ) -> None:
        self.expected_shape = expected_shape
        self.actual_shape = actual_shape
        if expected_shape is not None:
            fields.setdefault("expected", str(tuple(expected_shape)))
        if actual_shape is not None:
            fields.setdefault("found", str(tuple(actual_shape)))
        super().__init__(message, **fields)


class MaskCodeError(ValidationError):
    """A mask holds a code that is not a :class:`~h5scp.core.structures.MaskCode` (0..6)."""

    def __init__(self, message: str = "", invalid_code: int | None = None, **fields: Any) -> None:
        self.invalid_code = invalid_code
        super().__init__(message, **fields)


class ScpValueError(ScpTensorError, ValueError):
    """A parameter has a value out of its range (``parameter`` and ``value`` name it)."""

    def __init__(
        self,
        message: str = "",
        parameter: str | None = None,
        value: Any | None = None,
        **fields: Any,
    ) -> None:
        self.parameter = parameter
        self.value = value
        super().__init__(message, **fields)


def _find_closest_match(input_name: str, options: Collection[str]) -> str | None:
    """The option most similar to ``input_name`` (difflib ratio of at least 0.6), or None."""
    if not options:
        return None
    matches = get_close_matches(input_name, list(options), n=1, cutoff=0.6)
    return matches[0] if matches else None


def _closest(name: str, options: Collection[str] | None) -> str | None:
    return None if options is None else _find_closest_match(name, options)


def _not_found_text(head: str, kind: str, suggestion, hint, available) -> str:
    if suggestion:
        return f"{head}. Did you mean '{suggestion}'?"
    if hint:
        return f"{head}. {hint}"
    if available:
        listed = ", ".join(f"'{a}'" for a in sorted(available))
        return f"{head}. Available {kind}: {listed}"
    return head


class AssayNotFoundError(ScpTensorError, KeyError):
    """An assay asked for by name is not in the container.

    The message suggests the closest existing name (``suggestion``), else
    gives ``hint``, else lists ``available_assays``.
    """

    def __init__(
        self,
        assay_name: str,
        hint: str | None = None,
        available_assays: Collection[str] | None = None,
        *,
        message: str | None = None,
    ) -> None:
        self.assay_name = assay_name
        self.suggestion = _closest(assay_name, available_assays)
        if message is None:
            message = _not_found_text(
                f"Assay '{assay_name}' not found in container", "assays", self.suggestion, hint,
                available_assays,
            )
        super().__init__(message, composed=True)
        self.hint = hint


class LayerNotFoundError(ScpTensorError, KeyError):
    """A layer asked for by name is not in the assay (suggests the closest name, as above)."""

    def __init__(
        self,
        layer_name: str,
        assay_name: str | None = None,
        hint: str | None = None,
        available_layers: Collection[str] | None = None,
        *,
        message: str | None = None,
    ) -> None:
        self.layer_name = layer_name
        self.assay_name = assay_name
        self.suggestion = _closest(layer_name, available_layers)
        if message is None:
            head = f"Layer '{layer_name}' not found" + (f" in assay '{assay_name}'" if assay_name else "")
            message = _not_found_text(head, "layers", self.suggestion, hint, available_layers)
        super().__init__(message, composed=True)
        self.hint = hint


# The distribution's extra that brings each optional package.
_EXTRA_OF = {"anndata": "interop", "mudata": "interop", "pandas": "interop", "pyarrow": "interop",
             "scanpy": None, "umap": None, "umap-learn": None}


class MissingDependencyError(ScpTensorError, ImportError):
    """An optional package needed for the call is not installed; the message says how to install it."""

    def __init__(self, dependency_name: str) -> None:
        self.dependency_name = dependency_name
        extra = _EXTRA_OF.get(dependency_name)
        how = f"pip install {dependency_name}"
        if extra:
            how += f" (or the extra that brings it: pip install 'h5stream[{extra}]')"
        super().__init__(
            f"Required dependency '{dependency_name}' is not installed. Please install it using: {how}",
            composed=True,
        )


class VisualizationError(ScpTensorError, ValueError):
    """Plotting input is unusable; kept so code importing it from the original keeps working."""

    def __init__(self, message: str = "", parameter: str | None = None, **fields: Any) -> None:
        self.parameter = parameter
        super().__init__(message, **fields)


class LegacyFormatWarning(H5StreamWarning):
    """A file in an old ``scptensor`` layout was read; saving it again writes the current format."""


class MetadataKeptWholeWarning(H5StreamWarning):
    """A selection of samples or features (a partial load, ``filter_samples``, ``filter_features``) kept a
    matrix metadata value whole: its axes do not say which of them is the samples or the features.

    The rule (:func:`h5scp.core.parts.metadata_part`, the samples cut first, then the features): a
    value whose first two axes are ``X``'s shape is cut on both; where the samples and features differ
    in number, a value whose first axis is the samples is cut with the samples and one whose first axis
    is the features with the features; a value without axes (text, numbers, mappings) is kept.  Any
    other array (a first axis that is neither, or one entry per sample or feature of a square matrix)
    is kept whole and named here.
    """

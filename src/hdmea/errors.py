"""Typed errors of the HD-MEA face; all derive from :class:`h5stream.errors.H5StreamError`."""

from __future__ import annotations

import os

from h5stream.errors import (
    ChecksumError,
    FormatError,
    H5StreamError,
    H5StreamWarning,
    SourceNotFoundError,
    TargetExistsError,
    WriterClaimError,
    compose_message,
)

__all__ = [
    "UnusualVendorValueWarning",
    "ChecksumError",
    "HdmeaError",
    "SessionError",
    "CheckpointError",
    "AssignedValueChangedError",
    "MissingStepError",
    "RecordingFormatError",
    "RecordingExistsError",
    "RecordingNotFoundError",
    "RecordingLockedError",
    "CorruptRecordingError",
    "UnknownUnitError",
    "SuffixWarning",
    "ConfigError",
    "ConfigErrors",
    "DeprecatedStepNameWarning",
    # the names of the original pipeline (hdmea.utils.exceptions), caught by ours and theirs alike
    "HDMEAError",
    "ConfigurationError",
    "DataLoadError",
    "FeatureExtractionError",
    "MissingInputError",
    "CacheConflictError",
    "ValidationError",
    "MismatchError",
]


class HdmeaError(H5StreamError):
    """Base class of hdmea errors."""


#: The original pipeline's base class is ours under its spelling: ``except HDMEAError`` catches every error here.
HDMEAError = HdmeaError


class _OriginalFields:
    """Takes the original pipeline's keyword fields (``file_path=``, ``feature_name=`` ...) beside ours.

    The original's constructors took ``(message, <field>=None, ...)``; each field is
    kept as an attribute of that name, and a path among them also becomes the
    error's ``path`` so the message names the file.
    """

    _fields: tuple[str, ...] = ()
    _path_field: str | None = None

    def __init__(self, message: str = "", *args, **kwargs) -> None:
        values = dict(zip(self._fields, args))
        if len(args) > len(self._fields):
            raise TypeError(f"{type(self).__name__} takes at most {len(self._fields) + 1} positional arguments")
        for name in self._fields:
            if name in kwargs:
                values[name] = kwargs.pop(name)
        for name in self._fields:
            setattr(self, name, values.get(name))
        if self._path_field and values.get(self._path_field) is not None and kwargs.get("path") is None:
            kwargs["path"] = values[self._path_field]
        super().__init__(message, **kwargs)
        if self._path_field and getattr(self, self._path_field) is None:
            setattr(self, self._path_field, self.path)


class SessionError(_OriginalFields, HdmeaError, RuntimeError):
    """A PipelineSession operation is not possible in the session's state."""

    _fields = ("session_id", "operation")


class AssignedValueChangedError(SessionError):
    """A value assigned into a session was changed by the caller after the session itself wrote below it:
    the change cannot be merged, so the save refuses rather than drop it (see :mod:`hdmea.session._followed`)."""


class CheckpointError(SessionError):
    """A checkpoint cannot be written or resumed."""

    _fields = ("checkpoint_path", "original_error")
    _path_field = "checkpoint_path"


class MissingInputError(_OriginalFields, HdmeaError):
    """An input a step or feature needs is not in the recording (the original pipeline's name)."""

    _fields = ("feature_name", "missing_input")


class MissingStepError(MissingInputError, RuntimeError):
    """A pipeline step was called before the step that produces its inputs."""


class DataLoadError(_OriginalFields, HdmeaError):
    """A source file cannot be read (the original pipeline's name; our readers raise its subclasses)."""

    _fields = ("file_path", "original_error")
    _path_field = "file_path"


class RecordingFormatError(DataLoadError, FormatError):
    """A .cmcr/.cmtr file (or a recording store) is not what it should be."""


class FeatureExtractionError(_OriginalFields, HdmeaError):
    """A feature extractor failed on a unit."""

    _fields = ("feature_name", "unit_id", "original_error")


class CacheConflictError(_OriginalFields, HdmeaError):
    """A feature is stored already and ``force`` was not given."""

    _fields = ("feature_name", "unit_id", "existing_version")


class ValidationError(_OriginalFields, HdmeaError, ValueError):
    """Data fail a check (spike times not increasing, a waveform of the wrong shape, ...)."""

    _fields = ("entity", "entity_id", "field")


class MismatchError(_OriginalFields, HdmeaError, ValueError):
    """A .cmcr and a .cmtr that belong to different recordings."""

    _fields = ("cmcr_path", "cmtr_path", "reason")


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


class VendorTextWarning(H5StreamWarning):
    """Informative text of a vendor file (a date, a program name, a comment) is not valid UTF-8; it is kept with
    replacement characters (U+FFFD) where the bytes do not decode.  The message names the file and the attribute."""


class UnusualVendorValueWarning(H5StreamWarning):
    """A value of a vendor file the format allows but recordings rarely hold (a sensor gain far from the usual
    microvolt per count, a run of zero codes in an analog channel that otherwise varies, a lone cutout sample of a
    spike); it is read as stored.  The message names the file, the object and the usual range, and the recording
    keeps it (``metadata/acquisition/unusual_values``, ``metadata/spike_sorting/unusual_values`` for a ``.cmtr``)."""


class ConfigError(HdmeaError, ValueError):
    """A pipeline configuration is invalid; the message names the key and the reason.

    ``key`` is the dotted key the mistake is at (``batch.workers``; None where no key is at fault) and
    ``reason`` the message without the file in front, as one line of a list of mistakes shows it.
    """

    def __init__(self, message: str = "", *, key: str | None = None, **fields) -> None:
        self.key = key
        self.reason = message if fields.get("composed") else compose_message(
            message, expected=fields.get("expected"), found=fields.get("found"), hint=fields.get("hint"))
        super().__init__(message, **fields)


class ConfigErrors(ConfigError):
    """The mistakes of one configuration, all found in one reading.

    ``problems`` lists each (a :class:`ConfigError`), ``lines`` gives the line of the file each is on
    (None where the file was not read from text, or the key is not written in it).  One mistake reads as it
    does alone; several read one per line: ``FILE:LINE: key: what is wrong (expected ..., found ...). what
    to do``.
    """

    def __init__(self, problems, *, path=None, lines=None) -> None:
        self.problems = list(problems)
        self.lines = list(lines) if lines is not None else [None] * len(self.problems)
        if len(self.problems) == 1:
            one = self.problems[0]
            super().__init__(str(one), key=one.key, path=one.path, obj=one.obj, expected=one.expected,
                             found=one.found, hint=one.hint, composed=True)
            self.reason = one.reason
            return
        where = os.fspath(path) if path is not None else None
        rows = []
        for problem, line in zip(self.problems, self.lines):
            at = ":".join(str(x) for x in (where, line) if x is not None)
            rows.append(f"  {at}: {problem.reason}" if at else f"  {problem.reason}")
        head = f"{len(self.problems)} mistakes in the configuration"
        text = (f"{where}: {head}" if where else head) + ", one per line; fix them all, then run the same command " \
            "again:\n" + "\n".join(rows)
        super().__init__(text, path=path, composed=True, key=self.problems[0].key if self.problems else None)

    def __reduce__(self):  # to a batch's driver from its worker: the mistakes, not only their text
        return _config_errors, (self.problems, self.path, self.lines)


def _config_errors(problems, path, lines) -> ConfigErrors:
    return ConfigErrors(problems, path=path, lines=lines)


#: The original pipeline's name for invalid configuration or parameters.
ConfigurationError = ConfigError


class DeprecatedStepNameWarning(FutureWarning):
    """A configuration names a pipeline step by its former name (``sta``, ``eimage``, ...).

    The step still runs as configured; the message names the key and the current name
    (see :data:`hdmea.steps.table.STEPS`).
    """

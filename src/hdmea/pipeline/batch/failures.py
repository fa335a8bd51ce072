"""How a failed attempt is sorted.

- *user*: the user's setup is at fault (a permission, a read-only filesystem,
  a full disk or quota, a missing output path, or any problem the pre-flight
  checks found); reported once with what to do, never retried;
- *data*: a bad input file; reported once, not retried;
- *infrastructure*: what may pass on retry (a killed worker, a memory error on
  a busy node, a transient I/O error); retried;
- *held*: another process holds the recording (its job claim, or the writer
  claim or HDF5 lock of its output or checkpoint): reported as held, naming
  the holder; never retried at once and never counted as done by a batch that
  did not compute it;
- *error*: anything else (a bug or a bad parameter); reported once.
"""

from __future__ import annotations

import concurrent.futures as cf
import errno
import os
from collections.abc import Callable

from h5stream.errors import FormatError, H5StreamError, SourceNotFoundError, WriteError, WriterClaimError
from hdmea.errors import ConfigError, MissingStepError, RecordingFormatError

__all__ = ["USER", "DATA", "INFRASTRUCTURE", "HELD", "ERROR", "classify_error", "describe_error", "error_type",
           "failure_words"]

USER = "user"
DATA = "data"
INFRASTRUCTURE = "infrastructure"
HELD = "held"
ERROR = "error"


def _infrastructure_types() -> tuple[type[BaseException], ...]:
    types: list[type[BaseException]] = [cf.BrokenExecutor, MemoryError, cf.CancelledError,
                                        TimeoutError, ConnectionError]
    return (*types, *_distributed_types("KilledWorker", "comm.core.CommClosedError"))


def _distributed_types(*names: str) -> tuple[type[BaseException], ...]:
    """dask.distributed's error types of ``names``, where this process imported it (no error of its can exist
    otherwise).  Never imported here: this runs as a stopped batch sorts its workers' errors, and an import
    (or a failed one, where it is not installed) took a stop there past a second on a busy machine."""
    import sys

    if "distributed" not in sys.modules:
        return ()
    found = []
    for name in names:
        module, _, attribute = ("distributed." + name).rpartition(".")
        found.append(getattr(sys.modules.get(module), attribute, None))
    return tuple(t for t in found if isinstance(t, type))


# Checked in order, after a claim held by another process (classify_error: a
# WriterClaimError is an OSError, yet no retry at once helps while its holder runs);
# the first match decides.  Data errors come first because FormatError derives from OSError.  Anything unlisted is a deterministic
# failure (a bug or a bad parameter): reported once, not retried.
_ERROR_CLASSES: list[tuple[Callable[[], tuple[type[BaseException], ...]], str]] = [
    (lambda: (RecordingFormatError, ConfigError, MissingStepError, SourceNotFoundError,
              FileNotFoundError), DATA),
    (lambda: (WriteError,), INFRASTRUCTURE),
    (lambda: (FormatError,), DATA),
    (_infrastructure_types, INFRASTRUCTURE),
    (lambda: (OSError,), INFRASTRUCTURE),
]


def classify_error(exc: BaseException) -> str:
    """``"user"``, ``"data"``, ``"held"`` (none retried), ``"infrastructure"`` (retried) or ``"error"``."""
    from hdmea.pipeline.preflight import PreflightError, user_errno

    if isinstance(exc, PreflightError):
        return exc.kind
    if isinstance(exc, WriterClaimError):
        return HELD
    number = user_errno(exc)
    if number is not None and not (number == errno.ENOENT and isinstance(exc, (FormatError, FileNotFoundError))):
        # A missing input stays a data error below; a missing output path,
        # permissions, read-only filesystems and full disks are the user's.
        return USER
    for types, kind in _ERROR_CLASSES:
        if isinstance(exc, types()):
            return kind
    return ERROR


def _worker_lost_types() -> tuple[type[BaseException], ...]:
    return (cf.BrokenExecutor, *_distributed_types("KilledWorker"))


#: What went wrong in plain words, by the error's type; checked in order, the first match decides.
_WORDS: list[tuple[Callable[[], tuple[type[BaseException], ...]], str]] = [
    (lambda: (WriterClaimError,), "held by another process"),
    (_worker_lost_types, "the worker died (killed, out of memory or crashed)"),
    (lambda: (MemoryError,), "out of memory"),
    (lambda: (cf.CancelledError,), "the job was cancelled"),
    (lambda: (TimeoutError,), "timed out"),
    (lambda: (ConnectionError,), "the connection to the worker was lost"),
    (lambda: (ConfigError,), "the configuration is not valid"),
    (lambda: (MissingStepError,), "a step ran before the step that makes its input"),
    (lambda: (SourceNotFoundError, FileNotFoundError), "an input file is missing"),
    (lambda: (WriteError,), "writing the output failed"),
    (lambda: (RecordingFormatError, FormatError), "the input file is damaged or not a recording"),
    (lambda: (OSError,), "a read or write failed"),
]


def failure_words(exc: BaseException) -> str:
    """What kind of failure ``exc`` is, in plain words (no exception class names)."""
    from hdmea.pipeline.preflight import PreflightError, user_errno

    if isinstance(exc, PreflightError):
        return "the run cannot start"
    number = user_errno(exc)
    if number is not None and not (number == errno.ENOENT and isinstance(exc, (FormatError, FileNotFoundError))):
        return "the output cannot be written" if number in (errno.ENOSPC, errno.EDQUOT) else "a path cannot be used"
    # cf.CancelledError derives from concurrent.futures.Error, MemoryError from Exception: order is by meaning
    for types, words in _WORDS:
        if isinstance(exc, types()):
            return words
    return "an unexpected error in a step (a bug or a bad parameter)"


def error_type(exc: BaseException) -> str:
    """The error's class name, for the summary's machine-readable ``error_type`` field (never for people)."""
    return type(exc).__name__


def describe_error(exc: BaseException) -> str:
    """What failed in plain words and the error's own message, and for the user's errors what to do.

    The exception's class name is not in it: :func:`error_type` gives it to the summary as its own field.
    """
    from hdmea.pipeline.preflight import PreflightError, user_error_hint

    text = str(exc).strip()
    if isinstance(exc, PreflightError):
        return text
    if isinstance(exc, OSError) and not isinstance(exc, H5StreamError) and exc.strerror:
        # "[Errno 13] Permission denied: 'x'" as the path and the reason
        where = " -> ".join(os.fspath(p) for p in (exc.filename, exc.filename2) if p is not None)
        text = f"{where}: {exc.strerror}" if where else exc.strerror
    words = failure_words(exc)
    described = f"{words}: {text}" if text else words
    hint = user_error_hint(exc)
    if hint and hint not in described:
        described += f" ({hint})"
    return described

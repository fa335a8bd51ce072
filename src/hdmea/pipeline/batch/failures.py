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

__all__ = ["USER", "DATA", "INFRASTRUCTURE", "HELD", "ERROR", "classify_error", "describe_error"]

USER = "user"
DATA = "data"
INFRASTRUCTURE = "infrastructure"
HELD = "held"
ERROR = "error"


def _infrastructure_types() -> tuple[type[BaseException], ...]:
    types: list[type[BaseException]] = [cf.BrokenExecutor, MemoryError, cf.CancelledError,
                                        TimeoutError, ConnectionError]
    try:
        from distributed import KilledWorker
        from distributed.comm.core import CommClosedError

        types += [KilledWorker, CommClosedError]
    except ImportError:
        pass
    return tuple(types)


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


def describe_error(exc: BaseException) -> str:
    """``Type: message``, and for the user's errors what to do when the message does not say it."""
    from hdmea.pipeline.preflight import PreflightError, user_error_hint

    text = str(exc).strip()
    if isinstance(exc, PreflightError):
        return text
    if isinstance(exc, OSError) and not isinstance(exc, H5StreamError) and exc.strerror:
        # "[Errno 13] Permission denied: 'x'" as the path and the reason
        where = " -> ".join(os.fspath(p) for p in (exc.filename, exc.filename2) if p is not None)
        text = f"{where}: {exc.strerror}" if where else exc.strerror
    described = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    hint = user_error_hint(exc)
    if hint and hint not in described:
        described += f" ({hint})"
    return described

"""How a failed attempt is sorted: a data error (bad input, not retried) or an infrastructure error (retried)."""

from __future__ import annotations

import concurrent.futures as cf
from collections.abc import Callable

from h5stream.errors import FormatError, SourceNotFoundError, WriteError
from hdmea.errors import ConfigError, MissingStepError, RecordingFormatError

__all__ = ["DATA", "INFRASTRUCTURE", "ERROR", "classify_error", "describe_error"]

DATA = "data"
INFRASTRUCTURE = "infrastructure"
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


# Checked in order; the first match decides.  Data errors come first because
# FormatError derives from OSError.  Anything unlisted is a deterministic
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
    """``"data"`` (bad input: do not retry), ``"infrastructure"`` (retry) or ``"error"``."""
    for types, kind in _ERROR_CLASSES:
        if isinstance(exc, types()):
            return kind
    return ERROR


def describe_error(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__

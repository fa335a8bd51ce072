"""Progress reporting and the command line's logging setup.

Library code reports progress through :func:`progress`: on a terminal it is a
tqdm bar (tqdm switches itself off without a terminal only with
``disable=None``); without a terminal (cluster logs, pipes) it writes a log line
at coarse intervals instead, so a SLURM log shows the run advancing without
thousands of carriage-return lines.

The library only logs through named loggers.  :func:`configure_logging` is for
the command line (and scripts that want the same format): it tags every line
with the recording being processed (set by :func:`recording_context`, which the
batch job uses) and, on SLURM, the job and array task ids.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from typing import IO, Any

from h5stream.stops import check_point

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

__all__ = [
    "progress",
    "Progress",
    "recording_context",
    "current_recording",
    "configure_logging",
    "RecordingTagFilter",
    "BarAwareHandler",
    "slurm_tag",
    "slurm_job",
    "LOG_FORMAT",
    "counted",
    "plural",
]

_current_recording: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "hdmea_current_recording", default=None
)

#: Seconds between two log lines of a progress without a terminal.
LOG_INTERVAL_SECONDS = 30.0
#: A log line is also written each time this fraction of the work is done.
LOG_FRACTION_STEP = 0.25


def current_recording() -> str | None:
    """The recording id set by the innermost :func:`recording_context`, or None."""
    return _current_recording.get()


@contextlib.contextmanager
def recording_context(recording_id: str | None) -> Iterator[None]:
    """Tag the log lines emitted inside the block with ``recording_id``."""
    token = _current_recording.set(recording_id)
    try:
        yield
    finally:
        _current_recording.reset(token)


def _is_terminal(stream: IO | None) -> bool:
    try:
        return bool(stream is not None and stream.isatty())
    except (AttributeError, ValueError):
        return False


class Progress:
    """A progress counter: a tqdm bar on a terminal, coarse log lines otherwise.

    Use :func:`progress` to make one.  ``update(n)`` advances, ``close()`` ends
    (a context manager does it).
    """

    def __init__(
        self,
        total: int | None,
        description: str,
        *,
        unit: str = "it",
        log: logging.Logger | None = None,
        stream: IO | None = None,
        enabled: bool | None = None,
        interval: float = LOG_INTERVAL_SECONDS,
    ) -> None:
        self.total = total
        self.description = description
        self.unit = unit
        self.count = 0
        self.log = log or logger
        self.interval = interval
        self._stream = stream if stream is not None else sys.stderr
        self._started = time.monotonic()
        self._last_log = self._started
        self._next_fraction = LOG_FRACTION_STEP
        self._bar = None
        self._closed = False
        use_bar = _is_terminal(self._stream) if enabled is None else enabled
        if use_bar:
            self._bar = _make_bar(total, description, unit, self._stream)
            if self._bar is not None:
                _ACTIVE_BARS.append(self._bar)
        if self._bar is None:
            self.log.info("%s: started (%s)", description,
                          f"? {plural(unit)}" if total is None else counted(total, unit), extra=_PROGRESS)

    @property
    def uses_bar(self) -> bool:
        return self._bar is not None

    def update(self, n: int = 1) -> None:
        """Advance by ``n``; a stop noted while a job runs whose exception never came ends the work here
        (:func:`h5stream.stops.check_point`)."""
        check_point()
        self.count += n
        if self._bar is not None:
            self._bar.update(n)
            return
        now = time.monotonic()
        due_time = now - self._last_log >= self.interval
        due_fraction = bool(self.total) and self.count / self.total >= self._next_fraction
        if due_time or due_fraction:
            if self.total:
                while self._next_fraction <= self.count / self.total:
                    self._next_fraction += LOG_FRACTION_STEP
            self._last_log = now
            self.log.info("%s: %s", self.description, self._status(now), extra=_PROGRESS)

    def set_postfix(self, text: str) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(text, refresh=False)

    def _status(self, now: float) -> str:
        elapsed = now - self._started
        if self.total:
            pct = 100.0 * self.count / self.total
            return f"{self.count}/{counted(self.total, self.unit)} ({pct:.0f}%, {elapsed:.1f} s)"
        return f"{counted(self.count, self.unit)} ({elapsed:.1f} s)"

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._bar is not None:
            with contextlib.suppress(ValueError):
                _ACTIVE_BARS.remove(self._bar)
            self._bar.close()
        else:
            self.log.info("%s: done, %s", self.description, self._status(time.monotonic()), extra=_PROGRESS)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def plural(word: str) -> str:
    """The plural of a unit's name (``step`` -> ``steps``; ``it`` and words ending in s stay)."""
    return word if word == "it" or word.endswith("s") else word + "s"


def counted(n: int, word: str) -> str:
    """``"1 step"``, ``"6 steps"``: the count word agrees with its number."""
    return f"{n} {word if n == 1 else plural(word)}"


def _make_bar(total, description, unit, stream):
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm is an optional extra: fall back to log lines
        return None
    if "_lock" not in vars(tqdm):
        # tqdm's default lock includes a multiprocessing semaphore, which a process
        # ending without teardown (see exit_without_teardown) leaves to the resource
        # tracker's "leaked semaphore" warning.  Bars are drawn by one process only
        # (workers log instead), so a thread lock is all they need.
        tqdm.set_lock(threading.RLock())
    # disable=None: tqdm itself turns off when the stream is not a terminal.
    return tqdm(total=total, desc=description, unit=unit, file=stream, disable=None,
                dynamic_ncols=True, leave=False)


def progress(total: int | None, description: str, *, unit: str = "it",
             log: logging.Logger | None = None, enabled: bool | None = None,
             stream: IO | None = None) -> Progress:
    """Start reporting progress over ``total`` items.

    Parameters
    ----------
    total
        Number of items, or None when unknown.
    description
        What is being done ("eimage", "batch").
    unit
        Name of one item.
    log
        Logger for the lines written without a terminal (default: this module's).
    enabled
        Force the bar on (True) or off (False); None decides from the stream.
    stream
        Where the bar goes (default ``sys.stderr``).
    """
    return Progress(total, description, unit=unit, log=log, enabled=enabled, stream=stream)


# --------------------------------------------------------------------------- logging for the CLI

LOG_FORMAT = "%(asctime)s %(levelname)-7s %(slurm)s[%(recording)s] %(name)s: %(message)s"


def slurm_job(environ: dict[str, str] | None = None) -> tuple[str, str | None] | None:
    """``(job, task)`` of the SLURM job (an array's job id first; task None outside an array), or None
    outside SLURM; ``environ`` defaults to ``os.environ``."""
    env = os.environ if environ is None else environ
    job = env.get("SLURM_ARRAY_JOB_ID") or env.get("SLURM_JOB_ID")
    if not job:
        return None
    return job, env.get("SLURM_ARRAY_TASK_ID") or None


def slurm_tag(environ: dict[str, str] | None = None) -> str:
    """``"slurm=<job>[_<task>] "`` when running under SLURM, else an empty string."""
    ids = slurm_job(environ)
    if ids is None:
        return ""
    job, task = ids
    return f"slurm={job}_{task} " if task else f"slurm={job} "


class RecordingTagFilter(logging.Filter):
    """Adds ``record.recording`` (current recording id or ``-``) and ``record.slurm``."""

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        super().__init__()
        self._slurm = slurm_tag(environ)

    def filter(self, record: logging.LogRecord) -> bool:
        record.recording = _current_recording.get() or "-"
        record.slurm = self._slurm
        return True


_HANDLER_MARK = "_hdmea_cli_handler"

#: tqdm bars on screen now; while there is one, log lines are written through tqdm.
_ACTIVE_BARS: list[Any] = []


class BarAwareHandler(logging.StreamHandler):
    """A stream handler that, while a progress bar is shown, writes through the bar's writer.

    ``tqdm.write`` clears the bars, writes the line and draws the bars again, so
    a log line never lands in the middle of a bar and a bar never overwrites a
    log line.
    """

    def emit(self, record: logging.LogRecord) -> None:
        if not _ACTIVE_BARS:
            super().emit(record)
            return
        try:
            from tqdm.auto import tqdm

            tqdm.write(self.format(record), file=self.stream)
            self.flush()
        except Exception:  # noqa: BLE001 - logging must never raise; the handler reports it
            self.handleError(record)


#: ``extra`` of a progress counter's log lines (``record.progress``), so a view can leave them out.
_PROGRESS = {"progress": True}

#: The loggers whose INFO lines a person running a pipeline reads (a line per step, the job's start and
#: end, a batch's course); the steps' own INFO lines are details, shown from DEBUG on.
RUN_VIEW_LOGGERS = ("hdmea.pipeline.run", "hdmea.pipeline.batch")


#: ``extra`` of a log line that a single recording's command says again as its last words (a job's stop).
SAID_AT_THE_END = {"said_at_the_end": True}
#: ``extra`` of a log line about a stop's way through the process (the signal noted, passed on to the workers,
#: the batch's count): a command says what the stop left in its own last line, and a batch each stopped
#: recording's in one line; these show from DEBUG on.
STOP_NOTE = {"stop_note": True}


class RunViewFilter(logging.Filter):
    """Passes warnings and errors, and the INFO lines of :data:`RUN_VIEW_LOGGERS` but not their counters; not the
    lines of a stop's way (:data:`STOP_NOTE`).

    ``one_recording``: the command ends by saying what became of its one recording, so the job's own
    line saying it (:data:`SAID_AT_THE_END`) is left out.
    """

    def __init__(self, one_recording: bool = False) -> None:
        super().__init__()
        self.one_recording = one_recording

    def filter(self, record: logging.LogRecord) -> bool:
        if self.one_recording and getattr(record, "said_at_the_end", False):
            return False
        if getattr(record, "stop_note", False):
            return False
        if record.levelno != logging.INFO:
            return True
        if getattr(record, "progress", False):
            return False
        return any(record.name == name or record.name.startswith(name + ".") for name in RUN_VIEW_LOGGERS)


def configure_logging(level: int | str = "INFO", *, stream: IO | None = None,
                      run_view: bool = False, one_recording: bool = False) -> logging.Handler:
    """Send log lines of ``hdmea`` and ``h5stream`` to ``stream`` (default stderr), tagged.

    Meant for the command line and batch workers; calling it twice replaces the
    earlier handler instead of doubling the lines.  ``run_view``: at INFO, only
    the lines a person follows a run by (:class:`RunViewFilter`; ``one_recording``: for a command that
    processes one recording).
    """
    if isinstance(level, str):
        numeric = logging.getLevelName(level.upper())
        if not isinstance(numeric, int):
            raise ValueError(f"unknown log level {level!r}; use DEBUG, INFO, WARNING or ERROR")
        level = numeric
    handler = BarAwareHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.addFilter(RecordingTagFilter())
    if run_view and level == logging.INFO:
        handler.addFilter(RunViewFilter(one_recording))
    setattr(handler, _HANDLER_MARK, True)
    for name in ("hdmea", "h5stream", "h5scp"):
        lg = logging.getLogger(name)
        for old in [h for h in lg.handlers if getattr(h, _HANDLER_MARK, False)]:
            lg.removeHandler(old)
        lg.addHandler(handler)
        lg.setLevel(level)
        lg.propagate = False
    return handler

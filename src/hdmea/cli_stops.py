"""How the ``hdmea`` command line words a stop, and notes a stop signal before a command's own handling.

What a stopped command prints (:func:`stopped_line`, :data:`STOPPED`) and its exit status
(:func:`stop_exit_code`) are the same at every moment: while the console script's start (:mod:`hdmea.__main__`)
imports the command line, while a command checks its inputs, and after a run checkpointed what it finished.
This module imports nothing but the standard library, so the start can read these words before it imports
the command line (:mod:`hdmea.cli`), which reads them too.

:func:`stops_noted` holds Ctrl-C and SIGTERM from the command line's start until a command installs its own
handlers (:func:`hdmea.pipeline.batch.preemption.stop_on_signals`); :func:`stop_detail` is what follows
:data:`STOPPED` when a run was stopped.
"""

from __future__ import annotations

import contextlib
import os

__all__ = ["STOPPED", "RESUMABLE", "COMMANDS", "stop_exit_code", "stopped_line", "command_of",
           "stops_noted", "hand_over", "first_signal", "signal_words", "stop_detail"]

#: What a command stopped by Ctrl-C or a cluster's signal says (once), whatever it was doing.
STOPPED = "stopped; run the same command again to resume"
#: The commands a stop leaves something to resume for.
RESUMABLE = ("run", "run-one", "batch")
#: Every command of the command line (hdmea.cli.build_parser's; a test holds the two together).
COMMANDS = (*RESUMABLE, "demo", "inspect", "verify", "report", "view", "export-nwb", "migrate", "slurm-script")
EXIT_INTERRUPTED = 130  # 128 + SIGINT: what a shell reports for a program stopped by Ctrl-C
EXIT_PREEMPTED = 75  # EX_TEMPFAIL: hdmea.pipeline.batch.preemption.EXIT_PREEMPTED


def stop_exit_code(signal_name=None) -> int:
    """130 for Ctrl-C at a terminal; 75 for a cluster's stop: SIGTERM (a time limit, preemption, scancel),
    or any stop inside a SLURM job (``slurm_array.sh`` and ``RequeueExit=75`` requeue the task on it)."""
    in_slurm = bool(os.environ.get("SLURM_ARRAY_JOB_ID") or os.environ.get("SLURM_JOB_ID"))
    return EXIT_INTERRUPTED if signal_name in (None, "SIGINT") and not in_slurm else EXIT_PREEMPTED


def stopped_line(command) -> str:
    """The one line a stopped command prints (``command``: its name, None when not known yet)."""
    if command in RESUMABLE:
        return f"hdmea {command}: {STOPPED}"
    return f"hdmea {command}: stopped" if command else "hdmea: stopped"


def command_of(argv) -> str | None:
    """The command of a command line's words (None: none given yet)."""
    return next((word for word in argv if word in COMMANDS), None)

_first_signal: str | None = None  # the stop signal that arrived before a command's own handling, if one did
_started_with: dict = {}  # signal -> its handler before the console script's start took it (hand_over)


def hand_over(previous: dict) -> None:
    """The console script's start holds these signals with its own handler until :func:`stops_noted` takes them
    over, with no moment between the two where Python's own handling (a traceback, or an end by the signal)
    is back: ``previous`` maps each signal to its handler before the start."""
    _started_with.clear()
    _started_with.update(previous)


@contextlib.contextmanager
def stops_noted(*, then_ignore: bool = False):
    """Until a command installs its own handlers, Ctrl-C and SIGTERM stop it as they do later: the signal is
    noted (an import it cuts short may fail with another error than KeyboardInterrupt) and raises
    KeyboardInterrupt; the earlier handlers come back at the end.

    ``then_ignore`` (a process that ends with its command, the console script): once the command has
    returned, these signals are ignored instead.  Its files are committed and its status decided; a stop
    arriving while the interpreter tears down would otherwise end the process by the signal (status -2,
    no line) with its work done.
    """
    import signal
    import threading

    from h5stream import stops

    global _first_signal
    _first_signal = None

    def on_stop(signum, frame):
        global _first_signal
        name = signal.Signals(signum).name
        _first_signal = _first_signal or name
        stops.note(name)  # before the raise, which Python drops inside a finalizer or a weakref callback
        if stops.raise_unsafe_at(frame):  # raised at the next instruction outside the import system's code
            return stops.delivered_again(signum)
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    from hdmea import _early_stops

    early = _early_stops.taken()  # held since the package's first line, when the start did not take them
    previous = {sig: _started_with.pop(sig, early.get(sig, signal.getsignal(sig)))
                for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        if stops.is_default_handler(sig, previous[sig]):
            signal.signal(sig, on_stop)
    finished = False
    kept = stops.kept_stops()  # a dropped KeyboardInterrupt is raised again, never printed
    try:
        if early and _early_stops.noted:  # a stop while the package was imported
            _first_signal = _early_stops.noted[0]
            raise KeyboardInterrupt
        with kept:
            yield
        finished = then_ignore
    finally:
        # a stop recorded by a later handler (a command's own, hdmea.pipeline.batch.preemption) is the first
        # signal too: whatever exception the stop surfaced as, the command ends with the stop's line
        _first_signal = _first_signal or kept.signal_name
        stops.forget_recorded()  # the command's status tells the stop (a job's carried over: its output is committed)
        for sig, handler in previous.items():
            taken = stops.is_default_handler(sig, handler)
            signal.signal(sig, signal.SIG_IGN if finished and taken else handler)


def signal_words(signal_name: str | None) -> str:
    return {"SIGINT": "Ctrl-C", "SIGBREAK": "Ctrl-Break", None: "a stop"}.get(signal_name, signal_name)


def stop_detail(name: str, outcome: dict) -> str:
    """What a stopped job left, in a few words: which signal (in which SLURM job), which steps are kept where."""
    from hdmea.pipeline.batch.preemption import slurm_job_text

    job = slurm_job_text()
    where = f" in {job}" if job else ""
    done = outcome.get("steps_done") or []
    checkpoint = outcome.get("checkpoint")
    if checkpoint:
        kept = f"the finished steps {', '.join(done)} are kept in {checkpoint}"
    elif done:
        kept = f"the finished steps could not be kept, so {name} starts over"
    else:
        kept = f"no step of {name} had finished"
    return f"{signal_words(outcome.get('signal'))}{where}: {kept}"


def first_signal() -> str | None:
    """The stop signal that arrived while :func:`stops_noted` held the signals, if one did."""
    return _first_signal

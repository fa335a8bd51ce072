"""How the ``hdmea`` command line notes a stop signal before a command's own handling, and words a stop.

:func:`stops_noted` holds Ctrl-C and SIGTERM from the command line's start until a command installs its own
handlers (:func:`hdmea.pipeline.batch.preemption.stop_on_signals`); :func:`stop_detail` is what follows
"stopped; run the same command again to resume" (:data:`_hdmea_cli.STOPPED`) when a run was stopped.
"""

from __future__ import annotations

import contextlib

__all__ = ["stops_noted", "first_signal", "signal_words", "stop_detail"]

_first_signal: str | None = None  # the stop signal that arrived before a command's own handling, if one did


@contextlib.contextmanager
def stops_noted():
    """Until a command installs its own handlers, Ctrl-C and SIGTERM stop it as they do later: the signal is
    noted (an import it cuts short may fail with another error than KeyboardInterrupt) and raises
    KeyboardInterrupt; the earlier handlers come back at the end."""
    import signal
    import threading

    global _first_signal
    _first_signal = None

    def on_stop(signum, frame):
        global _first_signal
        _first_signal = _first_signal or signal.Signals(signum).name
        raise KeyboardInterrupt

    wanted = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: signal.SIG_DFL}
    previous = {sig: signal.getsignal(sig) for sig in wanted}
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    for sig, default in wanted.items():
        if previous[sig] is default:
            signal.signal(sig, on_stop)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


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

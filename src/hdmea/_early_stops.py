"""The ``hdmea`` command's very first moments: Ctrl-C and SIGTERM held while the package itself is imported.

The console script and ``python -m hdmea`` import the package (:mod:`hdmea`, which imports :mod:`h5stream`) before
their start (:mod:`hdmea.__main__`) runs: some 0.2 s on a busy machine, where a stop printed a traceback (SIGINT)
or ended the process by the signal (SIGTERM, status -15), not the command's one line.  When the process is the
command starting, the package's first line calls :func:`hold`: a stop is noted here and ends the command as soon
as the start can say so (:func:`taken`).  A program that imports :mod:`hdmea` is left alone.  Standard library
only (``os``, ``signal``, ``sys``: loaded by the interpreter already).
"""

from __future__ import annotations

import os
import signal
import sys

__all__ = ["started_as_command", "hold", "taken"]

noted: list[str] = []  # the stops that arrived while held
_previous: dict = {}  # signal -> its handler before hold()


def started_as_command() -> bool:
    """Whether this process is the ``hdmea`` command starting (its console script, ``python -m hdmea``)."""
    argv0 = sys.argv[0] if sys.argv else ""
    if os.path.basename(argv0).lower().split(".")[0] in ("hdmea", "hdmea-script"):
        return True
    orig = list(getattr(sys, "orig_argv", []))
    return argv0 == "-m" and "-m" in orig and orig[orig.index("-m") + 1:][:1] == ["hdmea"]


def _note(signum, frame) -> None:
    noted.append(signal.Signals(signum).name)


def hold() -> None:
    """Note Ctrl-C and SIGTERM (where they would stop the process) until the start takes them (:func:`taken`)."""
    if _previous:
        return
    taken_by_h5stream = getattr(sys.modules.get("h5stream.stops"), "ctrl_c", None)  # Python's, made safe
    defaults = {signal.SIGINT: (signal.default_int_handler, taken_by_h5stream), signal.SIGTERM: (signal.SIG_DFL,)}
    for sig, default in defaults.items():
        if signal.getsignal(sig) in default:
            _previous[sig] = signal.getsignal(sig)
            signal.signal(sig, _note)


def taken() -> dict:
    """The handlers :func:`hold` replaced (signal -> handler), once: the caller's own take over from here (the
    start, :mod:`hdmea.__main__`, or the command line's, :func:`hdmea.cli_stops.stops_noted`)."""
    previous = dict(_previous)
    _previous.clear()
    return previous

"""The start of the ``hdmea`` command: its console script and ``python -m hdmea``.

This module takes Ctrl-C and SIGTERM before it imports the command line: one arriving while the command
line is still being imported (the first moments of every command, before anything is read or
written) ends the command at once with the one line a stop prints at any later moment, without a traceback,
and exit status 130 (75 after SIGTERM or inside a SLURM job, whose task requeues on it).  The line and the
status are :mod:`hdmea.cli_stops`' (standard library only), imported first; a stop that arrives while they
load ends the command as soon as they are there.  Then :func:`hdmea.cli.main` runs the command and answers
later stops with the same words.

Before it, only the package's own ``__init__`` runs (the version and a check for the original pipeline,
about 15 ms, after the interpreter's own start, which no program can guard either).  The start sits above
the command line: it imports :mod:`hdmea.cli_stops` and :mod:`hdmea.cli`, and no module imports it.
"""

from __future__ import annotations

import os
import signal
import sys

_words = None  # hdmea.cli_stops, once imported
_noted: list[str] = []  # a stop that arrived before the words were there


def _end(signal_name: str) -> None:
    sys.stderr.write(_words.stopped_line(_words.command_of(sys.argv[1:])) + "\n")
    sys.stderr.flush()
    os._exit(_words.stop_exit_code(signal_name))


def _stop_at_start(signum, frame) -> None:
    """A stop while the command line imports: nothing is written yet, so the process ends here."""
    name = signal.Signals(signum).name
    if _words is None:  # the words are still loading: the command ends as soon as they are there
        _noted.append(name)
        return
    _end(name)


def _quiet_waits() -> None:
    """The batch's driver: idle library threads sleep rather than spin (before numpy or OpenMP loads here).

    :data:`h5stream.cores.QUIET_WAITS` not set already go into this process's environment: its own
    libraries read them when they load, and so do the processes it starts (the input checks, the workers'
    fork server).  Measured on a 16-core node: the 15 OpenBLAS threads numpy's import starts spun about
    0.12 s each in the driver, whose cores the workers need.  ``hdmea run`` and the other commands are
    left as they were.
    """
    from h5stream.cores import quiet_waits

    os.environ.update(quiet_waits())


def main() -> int:
    global _words
    # only signals that would stop the process anyway (a shell's background job ignores Ctrl-C)
    from hdmea import _early_stops

    from h5stream.stops import is_default_handler

    signals = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.getsignal(sig) for sig in signals if is_default_handler(sig, signal.getsignal(sig))}
    previous.update(_early_stops.taken())  # held by the package's first line (hdmea._early_stops)
    for sig in previous:
        signal.signal(sig, _stop_at_start)
    _noted.extend(_early_stops.noted)
    from hdmea import cli_stops

    _words = cli_stops
    if _noted:
        _end(_noted[0])
    from hdmea._other_install import warn_if_original_installed

    warn_if_original_installed()  # the package's own start left it to the command (hdmea._other_install)
    if cli_stops.command_of(sys.argv[1:]) == "batch":
        _quiet_waits()
    from hdmea.cli import main as command_line

    cli_stops.hand_over(previous)  # the command line's own handlers replace the start's
    return command_line()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

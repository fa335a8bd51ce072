"""The start of the ``hdmea`` command (its console script and ``python -m hdmea``).

This module imports nothing of the library before it has taken Ctrl-C and SIGTERM: one arriving while the
command line is still being imported (the first moments of every command, before anything is read or
written) ends the command at once with the one line a stop prints at any later moment, without a traceback,
and exit status 130 (75 after SIGTERM or inside a SLURM job, whose task requeues on it).  Then
:func:`hdmea.cli.main` runs the command and answers later stops with the same words (:data:`STOPPED`).
"""

from __future__ import annotations

import importlib
import os
import signal
import sys

#: What a command stopped by Ctrl-C or a cluster's signal says (once), whatever it was doing.
STOPPED = "stopped; run the same command again to resume"
#: The commands a stop leaves something to resume for.
RESUMABLE = ("run", "run-one", "batch")
#: Every command of the command line (hdmea.cli.build_parser's; a test holds the two together).
COMMANDS = (*RESUMABLE, "demo", "inspect", "verify", "report", "view", "export-nwb", "migrate")
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


def _stop_at_start(signum, frame) -> None:
    """A stop while the command line imports: nothing is written yet, so the process ends here."""
    name = signal.Signals(signum).name
    sys.stderr.write(stopped_line(command_of(sys.argv[1:])) + "\n")
    sys.stderr.flush()
    os._exit(stop_exit_code(name))


def main() -> int:
    # only signals that would stop the process anyway (a shell's background job ignores Ctrl-C)
    defaults = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: signal.SIG_DFL}
    previous = {sig: signal.getsignal(sig) for sig, default in defaults.items() if signal.getsignal(sig) is default}
    for sig in previous:
        signal.signal(sig, _stop_at_start)
    # imported by name: the command line uses this module's words, and this module only runs it
    command_line = importlib.import_module("hdmea.cli").main
    for sig, handler in previous.items():
        signal.signal(sig, handler)
    return command_line()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""A busy machine: CPU-bound processes beside a test run, as on a shared workstation or a cluster node.

``python -m tests.busy [--per-core N] -- COMMAND...`` runs COMMAND with N busy processes per core (default 2)
and exits with COMMAND's status; ``busy_machine()`` does the same around a block of Python.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator

_SPIN = "while True: pass"


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


@contextlib.contextmanager
def busy_machine(per_core: int = 2) -> Iterator[list[subprocess.Popen]]:
    """Run ``per_core`` spinning Python processes per usable core until the block ends."""
    spinners = [subprocess.Popen([sys.executable, "-c", _SPIN], stdin=subprocess.DEVNULL)
                for _ in range(per_core * _cores())]
    try:
        yield spinners
    finally:
        for spinner in spinners:
            spinner.kill()
        for spinner in spinners:
            spinner.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.busy", description=__doc__.splitlines()[0])
    parser.add_argument("--per-core", type=int, default=2, help="busy processes per core (default 2)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command to run, after --")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given: python -m tests.busy -- COMMAND...")
    with busy_machine(args.per_core):
        return subprocess.call(command)


if __name__ == "__main__":
    sys.exit(main())

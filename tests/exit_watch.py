"""A run that ends leaves nothing behind, and never hangs on its way out.

After the last test, the interpreter joins every thread that is not a daemon (an executor's workers
among them) and every ``multiprocessing`` child before the process ends. One left waiting on something
that never comes holds the finished run until CI's timeout: an hour, with nothing said. So:

- each test's threads that outlive it are remembered with the test that started them, and the end of
  the run lists those still alive (a thread, the test that started it, where it waits), and the child
  processes still running;
- from the end of the run on, a watchdog (``faulthandler.dump_traceback_later``) prints every
  thread's stack and ends the process with exit code 1 if it has not ended within
  ``H5STREAM_EXIT_WATCH`` seconds (default 120; 0 turns it off).

Registered by ``tests/conftest.py``.
"""

from __future__ import annotations

import faulthandler
import os
import sys
import threading
import traceback

import pytest

#: threads that outlived the test that started them: thread -> the test's id
_STARTED_BY: dict[threading.Thread, str] = {}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    before = set(threading.enumerate())
    yield
    for thread in threading.enumerate():
        if thread not in before and thread not in _STARTED_BY:
            _STARTED_BY[thread] = item.nodeid


def _children() -> list[str]:
    """This process's child processes (pid and command line), read from /proc; [] where there is none."""
    me = str(os.getpid())
    found = []
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return found
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
            if fields[1].decode() != me:  # field 4 (ppid), after the command's parentheses
                continue
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                command = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except (OSError, IndexError):
            continue
        found.append(f"{pid} ({fields[0].decode()}): {command[:200]}")
    return found


def _idle_worker(frame: traceback.FrameSummary) -> bool:
    """Whether this is a ``concurrent.futures`` thread worker's wait for its next work item."""
    return (frame.name == "_worker" and frame.filename.endswith(os.path.join("concurrent", "futures", "thread.py"))
            and "work_queue.get" in (frame.line or ""))


def left_behind() -> list[str]:
    """One line (or a few, with the stack) per thread that would hold the interpreter's exit, and per child."""
    lines = []
    frames = sys._current_frames()
    for thread in threading.enumerate():
        if thread is threading.main_thread() or thread.daemon or not thread.is_alive():
            continue
        frame = frames.get(thread.ident)
        stack = traceback.extract_stack(frame) if frame is not None else []
        if any(_idle_worker(f) for f in stack):
            continue  # an executor's worker waiting for work: the interpreter's exit tells it to end
        by = _STARTED_BY.get(thread, "before the first test or by pytest")
        lines.append(f"thread {thread.name!r} (not a daemon), started during {by}, waits in:")
        lines.extend("    " + line.rstrip() for line in traceback.format_list(stack)[-6:])
    lines.extend(f"child process {child}" for child in _children())
    return lines


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config) -> None:
    lines = left_behind()
    if lines:
        print("\n== left running at the end of the run (the interpreter waits for threads that are not daemons):",
              file=sys.stderr)
        for line in lines:
            print(line, file=sys.stderr)
        sys.stderr.flush()
    seconds = float(os.environ.get("H5STREAM_EXIT_WATCH", "120"))
    if seconds > 0:
        faulthandler.dump_traceback_later(seconds, exit=True)

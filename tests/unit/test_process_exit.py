"""A process that ends itself (h5stream.process_exit.end_process) while another of its threads is inside a
semaphore's multiprocessing cleanup: the cleanup ends first, and the resource tracker has nothing to report.

The interleaving is forced, not waited for: the program keeps the interpreter's lock until it waits
(``sys.setswitchinterval`` far beyond the test), and the thread that lets go of the semaphore's last reference
stops between the unlink and the message to the tracker until the exit's run of multiprocessing's finalizers is
over.  From there it runs only if the exit lets the lock go.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = str(Path(__file__).resolve().parents[2] / "src")

PROGRAM = """
import sys
import threading

sys.setswitchinterval(1000.0)  # the main thread keeps the interpreter until it waits

import multiprocessing
from multiprocessing import resource_tracker, util

from h5stream.stops import end_process

box = [multiprocessing.get_context("spawn").Semaphore(0)]  # a named semaphore, told to the tracker
name = box[0]._semlock.name
unlinked, go_on = threading.Event(), threading.Event()
tell = resource_tracker.unregister


def unregister(name, rtype):  # SemLock._cleanup's second half, after its sem_unlink
    unlinked.set()
    go_on.wait()
    tell(name, rtype)


resource_tracker.unregister = unregister
run_finalizers = util._run_finalizers


def finalizers_then_go_on(*args):
    run_finalizers(*args)
    go_on.set()  # the cleanup may end from here, once the main thread lets it run


util._run_finalizers = finalizers_then_go_on
print(name, flush=True)
threading.Thread(target=box.clear, name="last-reference").start()  # its cleanup runs on that thread
unlinked.wait()
end_process(3)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="named POSIX semaphores and the resource tracker")
def test_the_exit_waits_for_a_semaphore_cleanup_another_thread_is_running():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [SRC, os.environ.get("PYTHONPATH")]))}
    # communicate reads to the end of stderr, which the tracker shares: its last words are in it
    done = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 3, done.stderr
    assert "leaked semaphore" not in done.stderr and "No such file" not in done.stderr, done.stderr
    assert done.stderr == ""
    name = done.stdout.strip()
    assert name.startswith("/")
    if os.path.isdir("/dev/shm"):  # Linux keeps a named semaphore there as sem.NAME
        assert not os.path.exists(f"/dev/shm/sem.{name[1:]}")


@pytest.mark.skipif(sys.platform == "win32", reason="named POSIX semaphores and the resource tracker")
def test_a_thread_inside_a_semaphore_cleanup_is_seen_until_it_has_told_the_tracker(monkeypatch):
    import multiprocessing
    import threading
    from multiprocessing import resource_tracker

    from h5stream.process_exit import cleanups_running, wait_for_cleanups

    # the tracker is not started here: what it would be told is kept in this list
    told: list[tuple[str, str, str]] = []
    unlinked, go_on = threading.Event(), threading.Event()

    def unregister(name, rtype):
        unlinked.set()
        go_on.wait()
        told.append(("UNREGISTER", name, rtype))

    monkeypatch.setattr(resource_tracker, "register", lambda name, rtype: told.append(("REGISTER", name, rtype)))
    monkeypatch.setattr(resource_tracker, "unregister", unregister)
    box = [multiprocessing.get_context("spawn").Semaphore(0)]
    name = box[0]._semlock.name
    assert cleanups_running() == []
    thread = threading.Thread(target=box.clear, name="last-reference")
    thread.start()
    try:
        assert unlinked.wait(60)
        assert cleanups_running() == [thread.ident]
        assert wait_for_cleanups(0.0) is False
    finally:
        go_on.set()
    assert wait_for_cleanups(60) is True
    assert told == [("REGISTER", name, "semaphore"), ("UNREGISTER", name, "semaphore")]
    assert cleanups_running() == []
    thread.join()

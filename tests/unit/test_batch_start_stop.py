"""A stop while a batch starts ends it at once: the pool starts aside (:func:`hdmea.pipeline.batch.pool.started_aside`)
and what it made is ended once it exists; the out-of-process input check takes a noted stop instead of reporting
the reader the same stop ended as a crashed file (:func:`h5stream.files.verify_files`)."""

from __future__ import annotations

import os
import signal
import threading

import h5py
import numpy as np
import pytest

from h5stream import stops
from h5stream.files import verify_files
from hdmea.pipeline.batch.pool import started_aside


class _Stop(BaseException):
    pass


def _raising_handler(signum, frame):
    if stops.raise_unsafe_at(frame):  # as a command's handlers: never where a lock was just taken (lock_windows)
        return stops.delivered_again(signum)
    raise _Stop()


@pytest.mark.skipif(not hasattr(signal, "pthread_kill"), reason="needs a signal sent to one thread")
def test_a_stop_ends_the_wait_at_once_and_what_the_start_makes_is_ended_once_made():
    begun, release, ended = threading.Event(), threading.Event(), threading.Event()
    made_by, ended_with = [], []
    main = threading.main_thread().ident

    def start():
        begun.set()
        release.wait()  # a start that lasts until the test lets it end (a fork server's imports)
        made_by.append(threading.current_thread().name)
        return "the pool"

    def end(made):
        ended_with.append(made)
        ended.set()

    def stopper():
        begun.wait()
        signal.pthread_kill(main, signal.SIGUSR1)

    previous = signal.signal(signal.SIGUSR1, _raising_handler)
    try:
        threading.Thread(target=stopper, daemon=True).start()
        with pytest.raises(_Stop):
            started_aside(start, end)
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert made_by == [] and ended_with == []  # the wait ended while the start still ran
    release.set()
    assert ended.wait(60)
    assert ended_with == ["the pool"] and made_by == ["hdmea-batch-start"]


@pytest.mark.skipif(not hasattr(signal, "pthread_kill"), reason="needs a signal sent to one thread")
def test_a_start_that_ends_soon_after_the_stop_is_ended_on_the_stopped_thread_before_the_stop_goes_on(monkeypatch):
    # Ended on the start's own thread while the stopped one went on to the process's exit, a pool's semaphore
    # could be unlinked without the resource tracker being told (its warnings printed after the stop line).
    from hdmea.pipeline.batch import pool

    monkeypatch.setattr(pool, "ABANDONED_START_SECONDS", 60.0, raising=False)  # no timing in the test: the start ends at once
    taken = threading.Event()
    ended_on = []
    main = threading.main_thread().ident

    def handler(signum, frame):
        taken.set()
        raise _Stop()

    def start():
        signal.pthread_kill(main, signal.SIGUSR1)
        taken.wait()  # returns once the stopped thread has taken the stop
        return "the pool"

    previous = signal.signal(signal.SIGUSR1, handler)
    try:
        with pytest.raises(_Stop):
            started_aside(start, lambda made: ended_on.append((made, threading.current_thread().name)))
        assert ended_on == [("the pool", threading.current_thread().name)]
    finally:
        signal.signal(signal.SIGUSR1, previous)


def test_what_the_start_made_is_held_by_the_waiting_thread_alone_once_returned(monkeypatch):
    # Still held by the start's thread (its frame or the state it shares) when the batch let it go, the pool was
    # freed on that thread, whose cleanup of the pool's semaphores could then race the process's exit (the
    # resource tracker's "leaked semaphore" warnings after the stop line).
    import sys
    import weakref

    from hdmea.pipeline.batch import pool

    set_on_start_thread, gate = threading.Event(), threading.Event()

    class HeldAfterSet(threading.Event):
        """The start's thread, once it has told the waiting thread, stays there until the test lets it go."""

        def set(self):
            super().set()
            if sys._getframe(1).f_code.co_filename == pool.__file__ \
                    and threading.current_thread().name == "hdmea-batch-start":
                set_on_start_thread.set()
                gate.wait()

    class Made:
        pass

    monkeypatch.setattr(threading, "Event", HeldAfterSet)  # started_aside's, made while the test runs it
    try:
        made = started_aside(Made, lambda made: None)
        assert set_on_start_thread.wait(60)
        freed = weakref.ref(made)
        del made
        assert freed() is None  # let go of here, on this thread, while the start's thread still runs
    finally:
        gate.set()


def test_without_a_stop_the_start_returns_what_it_made_and_nothing_is_ended():
    ended = []
    assert started_aside(lambda: (1, 2), ended.append) == (1, 2)
    assert ended == []


def test_a_start_that_fails_raises_its_own_error_here():
    def start():
        raise ValueError("no workers")

    with pytest.raises(ValueError, match="no workers"):
        started_aside(start, lambda made: None)


def test_the_input_check_takes_a_noted_stop_and_starts_no_reader(tmp_path, monkeypatch):
    import subprocess

    path = tmp_path / "good.h5"
    with h5py.File(path, "w") as f:
        f["x"] = np.arange(10)
    started = []
    popen = subprocess.Popen
    monkeypatch.setattr(subprocess, "Popen", lambda *a, **k: started.append(a) or popen(*a, **k))
    assert verify_files([path]) == [None] and len(started) == 1  # the reader runs without a stop
    with stops.kept_stops():
        stops.note("SIGTERM")
        with pytest.raises(KeyboardInterrupt):
            verify_files([path])
    assert len(started) == 1


def test_a_stop_inside_the_checks_submission_ends_the_batch_as_the_stop(tmp_path, monkeypatch):
    import concurrent.futures as cf

    from hdmea.pipeline.batch import preemption, run_batch
    from hdmea.synthetic import generate_recording

    made = generate_recording(tmp_path / "in", "r0", n_units=2, seed=0)

    def stopped_as_it_submits(self, fn, *args, **kwargs):  # the stop lands in the checks' thread's start
        preemption.stop_jobs("SIGTERM")
        raise preemption.Preempted("SIGTERM")

    monkeypatch.setattr(cf.ThreadPoolExecutor, "submit", stopped_as_it_submits)
    try:
        with pytest.raises(preemption.Preempted) as raised:
            run_batch([(made.cmcr_path, made.cmtr_path)], None, tmp_path / "out", workers=1)
    finally:
        preemption._reset()
    assert raised.value.signal_name == "SIGTERM"


# A worker forked after its driver ended: a process B started by A (its "driver") that imports the fork server's
# module, answers whether A has ended while A waits for that answer, then again after A has gone, and finally
# fails as a worker whose driver's semaphore is gone does, through the hook a forked worker gets.
WORKER = """
import os, sys
from hdmea.pipeline.batch import server_signals
print(server_signals.driver_ended(0.0), flush=True)
sys.stdout.close()
print("after the driver:", server_signals.driver_ended(60.0), file=sys.stderr, flush=True)
try:
    raise FileNotFoundError("the driver's semaphore is gone")
except FileNotFoundError:
    server_signals._quiet_without_driver(*sys.exc_info())
"""
DRIVER = """
import subprocess, sys
worker = subprocess.Popen([sys.executable, "-c", sys.argv[1]], stdout=subprocess.PIPE)
print(worker.stdout.readline().decode().strip(), flush=True)
"""


@pytest.mark.skipif(os.name == "nt", reason="the fork server is POSIX's")
def test_a_worker_whose_driver_has_ended_fails_without_a_word(child_env):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", DRIVER, WORKER], capture_output=True, text=True, env=child_env,
                          timeout=300)
    assert done.stdout.strip() == "False"  # asked while the driver waited for the answer
    assert done.stderr.strip() == "after the driver: True", done.stderr  # and no traceback


def test_a_workers_failure_is_printed_while_its_driver_runs(capsys, monkeypatch):
    from hdmea.pipeline.batch import server_signals

    monkeypatch.setattr(server_signals, "DRIVER_END_SECONDS", 0.0)
    try:
        raise FileNotFoundError("a semaphore that is not there")
    except FileNotFoundError:
        import sys

        server_signals._quiet_without_driver(*sys.exc_info())
    assert "FileNotFoundError: a semaphore that is not there" in capsys.readouterr().err


def test_the_driver_names_itself_to_its_fork_server_in_the_variable_the_server_reads(child_env):
    import subprocess
    import sys

    from hdmea.pipeline.batch import executors

    read = subprocess.run([sys.executable, "-c", "from hdmea.pipeline.batch import server_signals as s; "
                           "print(s.DRIVER_VARIABLE)"], capture_output=True, text=True, env=child_env, timeout=300)
    assert read.stdout.strip() == executors._DRIVER_VARIABLE, read.stderr

"""A stop raised just after a lock was taken leaves no lock taken (:mod:`h5stream.lock_windows`).

The failure this reproduces hung ``hdmea batch`` stopped by SIGTERM while its pool started: the main thread waits
for the start in short waits of an :class:`threading.Event` (:func:`hdmea.pipeline.batch.pool.started_aside`);
the signal's handler ran as ``Condition.__enter__``'s lock acquire returned, and raised there, before ``Event.wait``'s
``with`` block began.  The event's lock stayed taken: the stopped main thread's next wait on the event, and the
start's thread setting it, waited for ever (until the stop campaign killed the command after 300 s).

Here a fresh interpreter makes that moment happen, with no timing left to chance: a second thread holds the event's
lock while the main thread waits on the event; once the main thread is seen waiting for the lock inside
``Condition.__enter__``, the second thread sends the signal (``_thread.interrupt_main``, which the main thread
takes at its next check for signals, after the lock's acquire has returned) and lets the lock go.  The reference
is the same program with Python's own Ctrl-C handler, which raises there and leaves the lock taken.
"""

from __future__ import annotations

import dis
import linecache
import logging
import subprocess
import sys
import textwrap
import threading

import pytest

from h5stream import lock_windows

PROGRAM = textwrap.dedent(
    """
    import _thread, contextlib, os, signal, sys, threading
    import h5stream

    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # as a command starts (a test run may ignore it: server_signals)
    signum = signal.SIGINT
    if {handler!r} == "python's own":
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if {handler!r} == "a command's run":  # hdmea run's and batch's handlers: Preempted on SIGTERM
        from hdmea.pipeline.batch.preemption import Preempted, stop_on_signals
        block, stop, signum = stop_on_signals(), Preempted, signal.SIGTERM
    else:
        block, stop = contextlib.nullcontext(), KeyboardInterrupt
    main = threading.get_ident()
    held = threading.Event()
    if {taker!r} == "an event's wait":  # Event.wait enters its Condition, whose __enter__ takes the lock
        event = threading.Event()
        lock, taker = event._cond, threading.Condition.__enter__.__code__

        def work():
            while not event.wait(0.05):
                pass
    else:  # a log handler's handle() calls its acquire(), then begins its try
        import logging

        handler = logging.StreamHandler(open(os.devnull, "w"))
        lock, taker = handler.lock, logging.Handler.acquire.__code__
        record = logging.LogRecord("x", logging.WARNING, "here", 1, "a line", None, None)

        def work():
            while True:
                handler.handle(record)

    def holder_of_the_lock():
        lock.acquire()
        held.set()
        while True:  # until the main thread waits for the lock inside the function that takes it
            frame = sys._current_frames().get(main)
            if frame is not None and frame.f_code is taker:
                break
        _thread.interrupt_main(signum)
        lock.release()

    other = threading.Thread(target=holder_of_the_lock)
    said = "lost"
    try:
        with block:
            other.start()
            held.wait()
            work()
    except stop:
        said = "stopped"
    other.join()
    free = []
    taker = threading.Thread(target=lambda: free.append(lock.acquire(timeout={wait})))
    taker.start()
    taker.join()
    print(said, "lock free" if free[0] else "lock taken for ever", flush=True)
    os._exit(0)
    """
)


#: a log handler's ``handle`` calls its ``acquire`` before its ``try`` up to Python 3.12; from 3.13 on it takes the
#: lock in a ``with`` statement, where no Python frame of the taker is ever seen (nothing to make happen there)
_HANDLE_ACQUIRES = "acquire" in logging.Handler.handle.__code__.co_names
TAKERS = ["an event's wait", pytest.param("a log handler", marks=pytest.mark.skipif(
    not _HANDLE_ACQUIRES, reason="logging.Handler.handle takes its lock in a with statement (Python 3.13 on)"))]


def _run(handler: str, taker: str, wait: float, child_env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", PROGRAM.format(handler=handler, taker=taker, wait=wait)],
                          capture_output=True, text=True, timeout=120, env=child_env)


@pytest.mark.stops
@pytest.mark.parametrize("taker", TAKERS)
@pytest.mark.parametrize("handler", ["importing h5stream's", "a command's run"])
def test_a_stop_as_a_lock_is_taken_is_raised_once_the_block_that_lets_it_go_began(handler, taker, child_env):
    taken = _run(handler, taker, 60.0, child_env)  # the lock is free at once: the wait only bounds a failure
    assert taken.stdout.splitlines() == ["stopped lock free"], taken
    assert taken.stderr == "", taken.stderr


@pytest.mark.stops
@pytest.mark.parametrize("taker", TAKERS)
def test_the_reference_python_own_handler_leaves_the_lock_taken(taker, child_env):
    taken = _run("python's own", taker, 2.0, child_env)
    assert taken.stdout.splitlines() == ["stopped lock taken for ever"], taken


def _reference_ranges(code) -> tuple:
    return tuple((entry.start, entry.end) for entry in dis._parse_exception_table(code))


@pytest.mark.skipif(sys.version_info < (3, 11), reason="exception tables begin with Python 3.11")
def test_handled_ranges_are_the_exception_tables_blocks():
    codes = [f.__code__ for cls in (threading.Condition, threading.Event, threading.Thread, threading.Semaphore)
             for f in vars(cls).values() if hasattr(f, "__code__")]
    assert any(_reference_ranges(code) for code in codes)
    for code in codes:
        assert lock_windows.handled_ranges(code) == _reference_ranges(code), code.co_name


@pytest.mark.skipif(sys.version_info < (3, 11), reason="exception tables begin with Python 3.11")
def test_inside_threading_a_stop_is_raised_only_inside_its_blocks():
    wait = threading.Condition.wait.__code__
    calls = {ins.offset: ins.positions.lineno for ins in dis.get_instructions(wait) if ins.opname == "CALL"}

    class At:
        f_code = wait

        def __init__(self, offset):
            self.f_lasti = offset

    source = {line: linecache.getline(wait.co_filename, line).strip() for line in calls.values()}
    for offset, line in calls.items():
        if source[line].startswith(("gotit = waiter.acquire", "waiter.acquire()")) and \
                offset > min(o for o, ln in calls.items() if "_release_save" in source[ln]):
            assert not lock_windows.lock_window_at(At(offset)), source[line]  # a blocking wait: stopped at once
        if "_release_save" in source[line]:
            assert lock_windows.lock_window_at(At(offset))  # its lock let go, its try not begun
    enter = threading.Condition.__enter__.__code__

    class InEnter:
        f_code = enter
        f_lasti = max(ins.offset for ins in dis.get_instructions(enter) if ins.opname == "CALL")

    assert lock_windows.lock_window_at(InEnter())


def test_outside_the_standard_librarys_lock_code_nothing_is_a_lock_window():
    assert not lock_windows.lock_window_at(sys._getframe())

"""An exception raised in another thread lands in that thread, also while it is starting threads.

CPython 3.11 gives a thread being started its creator's ident until it runs, and
sets an exception raised by ident on that new thread first; the new thread then
dies before it signals that it started, and its creator waits for ever.  The
threads here start threads back to back, so the raise keeps meeting that window.
"""

from __future__ import annotations

import sys
import threading
import time

import pytest

from h5stream.interrupts import raise_in_thread


class Stop(Exception):
    pass


@pytest.fixture
def strays(monkeypatch):
    """Exceptions that ended threads other than the target (their hooks), collected instead of printed."""
    seen: list[type] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: seen.append(u.exc_type))
    monkeypatch.setattr(threading, "excepthook", lambda a: seen.append(a.exc_type))
    return seen


def _starter(state: dict) -> None:
    try:
        while True:
            child = threading.Thread(target=int)
            child.start()
            child.join()
            state["started"] += 1
    except Stop:
        state["stopped"] = True


def test_the_exception_lands_in_a_thread_that_starts_threads_back_to_back(strays):
    for trial in range(200):
        state = {"started": 0, "stopped": False}
        target = threading.Thread(target=_starter, args=(state,), daemon=True)
        target.start()
        while state["started"] < 5:
            time.sleep(0.0002)
        assert raise_in_thread(target.ident, Stop)
        target.join(10)
        assert not target.is_alive(), f"trial {trial}: the target still runs (a child it started never did)"
        assert state["stopped"], f"trial {trial}: the target ended without the exception"
        assert strays == [], f"trial {trial}: the exception landed in another thread"


def test_a_thread_that_is_gone_is_not_raised_in():
    done = threading.Thread(target=int)
    done.start()
    done.join()
    assert raise_in_thread(done.ident, Stop) is False


def test_a_thread_whose_child_never_runs_is_left_alone_after_the_wait(strays):
    # Its creator stays inside Thread.start while the child's start is held back.
    release = threading.Event()

    class Held(threading.Thread):
        def _bootstrap(self):
            release.wait()
            super()._bootstrap()

    state = {"in_start": threading.Event(), "stopped": False}

    def creator() -> None:
        try:
            child = Held(target=int)
            state["in_start"].set()
            child.start()
            child.join()
            while True:
                time.sleep(0.001)
        except Stop:
            state["stopped"] = True

    target = threading.Thread(target=creator, daemon=True)
    target.start()
    state["in_start"].wait()
    time.sleep(0.05)
    started = time.monotonic()
    assert raise_in_thread(target.ident, Stop, wait_seconds=0.2) is False
    assert 0.2 <= time.monotonic() - started < 2.0
    release.set()
    # Once its child runs, the creator can be raised in, and nothing else was.
    assert raise_in_thread(target.ident, Stop)
    target.join(10)
    assert state["stopped"] and strays == []

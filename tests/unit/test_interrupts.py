"""An exception raised in another thread lands in that thread, also while it is starting threads, and
inside the blocks around the loop it interrupts.

CPython 3.11 gives a thread being started its creator's ident until it runs, and
sets an exception raised by ident on that new thread first; the new thread then
dies before it signals that it started, and its creator waits for ever.  The
threads here start threads back to back, so the raise keeps meeting that window.

CPython 3.13 looks the handler of an exception raised at a loop's closing jump
up at the jump, outside the loop's ``try`` and ``with`` blocks: a loop that
counts, directly inside a ``try``, let the exception escape every time.
"""

from __future__ import annotations

import sys
import threading
import time

import pytest

from h5stream import interrupts
from h5stream.interrupts import raise_in_thread


class Stop(BaseException):
    """A stop, as the ones raised in threads are (``KeyboardInterrupt``, a job's ``Preempted``): not an
    ``Exception``, which the standard library's own clean-ups take (``Thread.start``'s ``except Exception`` when
    it lands at the return of the new thread's start, where the thread's bookkeeping then fails with a
    ``KeyError`` in its place)."""


@pytest.fixture
def strays(monkeypatch):
    """A :class:`Stop` that ended a thread other than the target (their hooks), collected instead of printed.
    Whatever else reaches the hooks (a finalizer of an earlier test's garbage) goes to the hooks before."""
    seen: list[type] = []
    unraisable, excepthook = sys.unraisablehook, threading.excepthook

    def on_unraisable(u) -> None:
        if u.exc_type is Stop:
            seen.append(u.exc_type)
        else:
            unraisable(u)

    def on_thread_end(a) -> None:
        if a.exc_type is Stop:
            seen.append(a.exc_type)
        else:
            excepthook(a)

    monkeypatch.setattr(sys, "unraisablehook", on_unraisable)
    monkeypatch.setattr(threading, "excepthook", on_thread_end)
    return seen


def _starter(state: dict) -> None:
    try:
        while True:
            child = threading.Thread(target=int)
            child.start()
            child.join()
            state["started"] += 1
            if state["started"] == 5:
                state["warm"].set()
    except Stop:
        state["stopped"].set()
    finally:
        state["ended"].set()


#: seconds a trial waits for an event that comes at once unless the exception landed in the wrong thread (then
#: it never comes: a creator whose child died before it started waits for ever); far above any scheduler delay
NEVER = 120


def test_the_exception_lands_in_a_thread_that_starts_threads_back_to_back(strays):
    """The thread starts a thread, joins it, starts the next, for ever; the exception ends it, every trial.  A
    raise that lands in a child being started leaves the target waiting for ever (the events never come), and
    the child's end shows in ``strays``.  The raise declines (False, nothing raised anywhere) while a child has
    not started within its wait: on a busy machine that can take long, so it is asked again."""
    for trial in range(200):
        state = {"started": 0, "warm": threading.Event(), "stopped": threading.Event(), "ended": threading.Event()}
        target = threading.Thread(target=_starter, args=(state,), daemon=True)
        target.start()
        assert state["warm"].wait(NEVER), f"trial {trial}: the target never started five children"
        while not raise_in_thread(target.ident, Stop):
            assert not state["ended"].is_set(), f"trial {trial}: the target ended before the exception was raised"
        assert state["ended"].wait(NEVER), f"trial {trial}: the target still runs (a child it started never did)"
        assert state["stopped"].is_set(), f"trial {trial}: the target ended without the exception"
        target.join()
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
    if interrupts.LOOKUP_AT_THE_JUMP:
        # Raised by the thread itself (sys.monitoring), where no ident is shared: it waits for the creator's
        # next return, which comes once the child has started.
        assert raise_in_thread(target.ident, Stop)
        time.sleep(0.2)
        assert target.is_alive() and not state["stopped"]
        release.set()
    else:
        started = time.monotonic()
        assert raise_in_thread(target.ident, Stop, wait_seconds=0.2) is False
        assert 0.2 <= time.monotonic() - started < 2.0
        release.set()
        # Once its child runs, the creator can be raised in, and nothing else was.
        assert raise_in_thread(target.ident, Stop)
    target.join(10)
    assert state["stopped"] and strays == []


LOOP_SHAPES = {
    # a counting loop over two lines: its closing jump is where 3.13 looked for the raise, outside the try
    "while": "n = 0\nwhile n < 10**9:\n    n += 1",
    "one-line while": "n = 0\nwhile n < 10**9: n += 1",
    "for": "for _ in range(10**9):\n    pass",
    "calls": "while time.monotonic() < 10**9:\n    len('x')",
    "nested": "for _ in range(10**9):\n    for _ in range(3):\n        pass",
}


def _loop_job(body: str):
    """A job whose loop sits directly inside its ``with`` and ``try`` blocks, as the compiler sees it."""
    source = ("def job(log, ready):\n    try:\n        with Logged(log):\n            ready.set()\n"
              + "".join(f"            {line}\n" for line in body.split("\n"))
              + "        log.append('not stopped')\n    except Stop:\n        log.append('stopped')\n")
    namespace = {"Stop": Stop, "Logged": _Logged, "time": time}
    exec(compile(source, f"<loop {body!r}>", "exec"), namespace)
    return namespace["job"]


class _Logged:
    def __init__(self, log: list) -> None:
        self.log = log

    def __enter__(self) -> None:
        pass

    def __exit__(self, *exc_info) -> None:
        self.log.append("exit ran")


@pytest.mark.parametrize("shape", list(LOOP_SHAPES))
def test_the_exception_is_taken_by_the_blocks_around_the_loop_it_stops(shape, strays):
    """Raised at random moments of a loop directly inside ``with`` and ``try``: the ``with`` block's ``__exit__``
    runs and the ``except`` takes it, every time, soon (the loop would run for minutes)."""
    job = _loop_job(LOOP_SHAPES[shape])
    for trial in range(25):
        log: list[str] = []
        ready = threading.Event()
        target = threading.Thread(target=job, args=(log, ready), daemon=True)
        target.start()
        assert ready.wait(10)
        time.sleep(0.001 * (trial % 7))
        started = time.monotonic()
        assert raise_in_thread(target.ident, Stop)
        target.join(10)
        assert not target.is_alive(), f"{shape}, trial {trial}: not stopped"
        assert time.monotonic() - started < 5
        assert log == ["exit ran", "stopped"], f"{shape}, trial {trial}: {log}"
    assert strays == []


class _Plain:
    """An object a weakref can point at."""


@pytest.mark.skipif(not interrupts.LOOKUP_AT_THE_JUMP,
                    reason="before 3.13 the interpreter raises the exception itself, at once, wherever the thread is")
@pytest.mark.parametrize("kind", ["__del__", "weakref.finalize"])
def test_an_exception_waiting_is_not_raised_inside_a_callback_whose_raise_python_drops(kind, strays):
    """A ``__del__`` or a weakref callback runs wherever a collection happens; what it raises is printed as
    "Exception ignored in" and dropped. The exception armed while one runs arrives after it has returned."""
    inside, go = threading.Event(), threading.Event()
    outcome: list[str] = []

    def callback_body() -> None:  # compiled calls return here while the exception waits
        inside.set()
        go.wait(NEVER)
        for _ in range(1000):
            len("x")
        outcome.append("callback done")

    class Held:
        def __del__(self) -> None:
            callback_body()

    def target() -> None:
        try:
            obj = Held() if kind == "__del__" else _Plain()
            if kind == "weakref.finalize":
                import weakref

                weakref.finalize(obj, callback_body)
            del obj  # the callback runs here
            outcome.append("after the callback")
            for _ in range(2_000_000):
                len("x")
            outcome.append("not stopped")
        except Stop:
            outcome.append("stopped")

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    assert inside.wait(NEVER)
    assert raise_in_thread(thread.ident, Stop)
    go.set()
    thread.join(NEVER)
    assert not thread.is_alive()
    assert strays == []  # nothing dropped by the interpreter
    assert outcome == ["callback done", "after the callback", "stopped"]


def _waits_to_take(ident: int, code) -> bool:
    """Whether thread ``ident`` waits in a compiled lock call made by ``code`` (directly, or through a
    Condition's ``__enter__``)."""
    frame = sys._current_frames().get(ident)
    if frame is not None and frame.f_code.co_name == "__enter__":
        frame = frame.f_back
    return frame is not None and frame.f_code is code and "WAITS_HERE" in _line_of(frame)


def _line_of(frame) -> str:
    import linecache

    return linecache.getline(frame.f_code.co_filename, frame.f_lineno)


@pytest.mark.skipif(not interrupts.LOOKUP_AT_THE_JUMP,
                    reason="before 3.13 the interpreter raises the exception itself, at once, wherever the thread is")
@pytest.mark.parametrize("kind", ["acquire", "condition"])
def test_an_exception_armed_while_a_thread_waits_for_a_lock_never_leaves_the_lock_taken(kind, strays):
    """Armed while the thread waits to take a lock (its ``acquire``, a Condition's ``with``), the exception
    arrives inside the block that releases the lock, never as the lock is taken before it: left taken, the
    lock stops every thread that needs it (a thread being started waited in its Event.set for ever, and the
    interpreter's exit for that thread)."""
    lock = threading.Lock()
    cond = threading.Condition(lock)
    outcome: list[str] = []

    def target() -> None:
        try:
            if kind == "acquire":
                lock.acquire()  # WAITS_HERE
                try:
                    for _ in range(2_000_000):
                        len("x")
                    outcome.append("not stopped")
                finally:
                    lock.release()
            else:
                with cond:  # WAITS_HERE
                    for _ in range(2_000_000):
                        len("x")
                    outcome.append("not stopped")
        except Stop:
            outcome.append("stopped")

    lock.acquire()
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    deadline = time.monotonic() + NEVER
    while not _waits_to_take(thread.ident, target.__code__):
        assert time.monotonic() < deadline, "the thread never waited for the lock"
        time.sleep(0.001)  # polling the thread's place: nothing signals that it waits in the lock
    assert raise_in_thread(thread.ident, Stop)
    lock.release()
    thread.join(NEVER)
    assert not thread.is_alive()
    assert outcome == ["stopped"]
    assert lock.acquire(blocking=False), "the stopped thread left the lock taken"
    lock.release()
    assert strays == []

"""A stop asked of this process, kept as a fact until the work has ended.

A stop signal's handler runs on the main thread between two of its bytecodes, wherever that thread is, also
inside a finalizer (``__del__``) or a weak reference's callback run by the garbage collector
(``WeakValueDictionary``'s ``remove``, for one).  What the handler raises there (``KeyboardInterrupt``, a job's
stop) Python drops: it prints ``Exception ignored in ...`` and the work goes on to its end, the stop lost.
The same holds for a stop raised into a job's thread from another thread.

So a stop is a fact before it is an exception:

- the handler records it (:func:`note`) before it raises;
- while a :class:`kept_stops` block runs (a command, a job), an exception of the stop's classes that Python
  drops is not printed: it is recorded, and raised again in the same thread at its next instruction outside
  the callback (:func:`h5stream.interrupts.raise_in_thread`, as :class:`RaisedAgain`, a
  ``KeyboardInterrupt``), or handed to the block's own ``raise_again`` (a job runner that raises its stop only
  where the job's blocks take it);
- the places where work can stop (between two steps, a progress callback, between two pieces of a kernel's
  work) ask :func:`noted`, and :func:`raise_if_noted` raises the stop there when the exception never came.

The record lasts until the outermost :class:`kept_stops` block ends (a command's return reads it there).
Standard library only at import: a command line's start imports this before anything heavy.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable

__all__ = ["RaisedAgain", "kept_stops", "note", "noted", "raise_if_noted", "signal_name_of", "end_process"]

_lock = threading.RLock()  # reentrant: a signal handler may run while the main thread holds it
_noted: str | None = None  # the first stop asked inside the outermost kept_stops block (a signal's name)
_keepers: list[kept_stops] = []  # the blocks running now, innermost last
_previous_hook = None  # sys.unraisablehook before the outermost block
_in_flight: set[int] = set()  # threads with a stop raised again on its way
_made_hook = None  # the hook the blocks install (made once)


def _installed_hook():
    global _made_hook
    if _made_hook is None:
        _made_hook = _hook()
    return _made_hook


class RaisedAgain(KeyboardInterrupt):
    """A ``KeyboardInterrupt`` that Python dropped (raised inside a finalizer or a weak reference's callback),
    raised again in its thread at the next instruction outside that callback."""

    def __init__(self, *args) -> None:
        _in_flight.discard(threading.get_ident())  # it has arrived (no lock: this may run while it is held)
        super().__init__(*args or (f"a stop ({_noted or 'SIGINT'}) raised again after Python dropped it",))


def note(signal_name: str) -> None:
    """Record that a stop (``signal_name``: ``"SIGINT"``, ``"SIGTERM"``, ...) was asked; the first one is kept."""
    global _noted
    if _noted is None:
        _noted = signal_name


def noted() -> str | None:
    """The signal of the stop asked inside the running :class:`kept_stops` blocks, or None."""
    return _noted


def raise_if_noted() -> None:
    """Raise :class:`RaisedAgain` here when a stop was noted (a stop raised again and still on its way to this
    thread is taken back first: it is raised once, here)."""
    if _noted is None:
        return
    ident = threading.get_ident()
    if ident in _in_flight:
        from h5stream import interrupts

        interrupts.take_back_own()
        _in_flight.discard(ident)
    raise RaisedAgain()


def end_process(code: int = 0) -> None:
    """End this process now with ``code``, skipping the interpreter's teardown (for a process whose files are
    all committed and closed: the standard streams and log handlers are flushed, and multiprocessing's own
    finalizers run, which hand this process's semaphores back to the resource tracker it shares).

    Also the one sure exit after a stop: a ``KeyboardInterrupt`` that cut short code an extension module ran
    through ``PyRun_*`` while it was imported marks the interpreter, which then ends itself by SIGINT at its
    exit (status -2, nothing said) whatever status the program returned, although the program took the
    exception.  The teardown also takes seconds once numba has loaded LLVM.
    """
    import os

    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001, S110 - a closed or broken stream has nothing left to flush
            pass
    if "logging" in sys.modules:
        sys.modules["logging"].shutdown()
    if "multiprocessing.util" in sys.modules:
        # the standard library has no public name for this step of its exit handler
        sys.modules["multiprocessing.util"]._run_finalizers()
    os._exit(code)


def signal_name_of(exception: BaseException | None) -> str:
    """The signal a stop exception stands for: its ``signal_name`` when it has one, SIGINT for Ctrl-C's."""
    return getattr(exception, "signal_name", None) or "SIGINT"


class kept_stops:
    """While inside, a stop exception (of ``kinds``) that Python drops is recorded and raised again.

    ``raise_again(ident, kind)`` returns the exception to raise again in thread ``ident`` (None: none now), and
    keeps its own account of it; by default :class:`RaisedAgain` in the main thread (a stop dropped in another
    thread is only recorded).  It is raised at the thread's next instruction outside the callback.  Blocks
    nest: a dropped exception goes to the innermost block that keeps its kind; the record is forgotten when
    the outermost block ends (the block's ``signal_name`` keeps it).  A class, not a generator's context
    manager, so that a stop raised on entry or exit never lands between the bookkeeping and the block.
    """

    def __init__(self, kinds: tuple[type[BaseException], ...] = (KeyboardInterrupt,),
                 raise_again: Callable[[int, type[BaseException]], None] | None = None) -> None:
        self.kinds = kinds
        self.raise_again = raise_again
        self.signal_name: str | None = None

    def __enter__(self) -> kept_stops:
        global _previous_hook
        with _lock:
            if not _keepers:
                _previous_hook = sys.unraisablehook
                sys.unraisablehook = _installed_hook()
            _keepers.append(self)
        return self

    def __exit__(self, *exc_info) -> None:
        global _noted, _previous_hook
        with _lock:
            self.signal_name = _noted
            if self in _keepers:
                _keepers.remove(self)
            if not _keepers:
                if sys.unraisablehook is _installed_hook():
                    sys.unraisablehook = _previous_hook
                _previous_hook = None
                _noted = None
                if threading.get_ident() in _in_flight:  # on its way as the work ended: not for the caller
                    from h5stream import interrupts

                    interrupts.take_back_own()
                    _in_flight.discard(threading.get_ident())


def _raise_again_in_main(ident: int, kind: type[BaseException]) -> type[BaseException] | None:
    if ident != threading.main_thread().ident:
        return None
    _in_flight.add(ident)  # before: it may arrive before the raise returns
    return RaisedAgain


def _decide(unraisable) -> tuple[int, type[BaseException]] | None:
    """A dropped stop is recorded, not printed; returns what to raise again in which thread (None: nothing)."""
    kind = unraisable.exc_type
    with _lock:
        keeper = next((k for k in reversed(_keepers) if isinstance(kind, type) and issubclass(kind, k.kinds)),
                      None)
        previous = _previous_hook
    if keeper is None:
        (previous or sys.__unraisablehook__)(unraisable)
        return None
    note(signal_name_of(unraisable.exc_value))
    ident = threading.get_ident()
    again = (keeper.raise_again or _raise_again_in_main)(ident, kind)
    if again is None:
        return None
    from h5stream import interrupts

    if interrupts.LOOKUP_AT_THE_JUMP:  # raised by a monitoring tool, never in this module's code
        if not interrupts.raise_in_thread(ident, again):
            _failed(ident)
        return None
    return ident, again  # raised by the compiled hook once this returned (never inside the hook itself)


def _failed(ident: int) -> None:
    _in_flight.discard(ident)  # the next place that asks noted() raises it


def _hook():
    """The hook a block installs: on Pythons before 3.13 the raise is set by compiled code after
    :func:`_decide` returned, so that no instruction of the hook runs after it (it would arrive there)."""
    from h5stream import interrupts

    if interrupts.LOOKUP_AT_THE_JUMP:
        interrupts.never_raise_in(__file__)
        return _decide
    from h5stream.native import compiled

    raise_after = getattr(compiled("_runtime"), "RaiseAfter", None)
    if raise_after is None:  # a build of the kernels older than this module: the stop is recorded only
        return _recorded_only
    return raise_after(_decide, _failed)


def _recorded_only(unraisable) -> None:
    chosen = _decide(unraisable)
    if chosen is not None:
        _failed(chosen[0])  # the next place that asks noted() raises it

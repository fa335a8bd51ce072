"""Stopping work that runs on another thread of this process, in the place its own handlers expect.

Python delivers a signal to the main thread only.  A long job on a worker
thread (a Dask worker's, a thread pool's) is stopped by raising an exception in
that thread: it arrives at the thread's next Python instruction, after any
compiled call it is in has returned.

The exception is set by thread ident, and CPython 3.11 gives a thread that is
being started its creator's ident until it runs, matching that new thread
first: raised then, the exception would land in the new thread (a thread
pool's worker dies before its first task, and its creator waits for it for
ever).  So it is raised only while the target is not starting a thread,
checked and set in one compiled call (``h5stream._ext._runtime``).

CPython 3.13 looks for signals and for exceptions raised from another thread
at a loop's backward jump *before* it jumps, and looks up the handler of what
is raised there at the jump itself, which the compiler may leave outside the
``try`` and ``with`` blocks around the loop (a jump cannot raise by itself, so
nothing else depends on where its exception table puts it): raised there, the
exception skips every ``except``, ``finally`` and ``__exit__`` of that
function (a counting ``while`` loop directly inside a ``try`` lets it escape
every time).  There:

- :func:`raise_in_thread` does not use the interpreter's raise: it arms a
  :mod:`sys.monitoring` tool that raises the exception in the target thread
  where 3.12 raised it, but never at a jump: as a call returns, or at the start
  of a loop (the instruction its backward jump goes to, which the compiler
  places inside the blocks around the loop); never while code of a file given to
  :func:`never_raise_in` (the bookkeeping of the code that stops threads), a
  ``__del__`` method or a callback of :mod:`weakref` (where Python drops what
  they raise: a collection runs them wherever it happens) is on the thread's
  stack; never inside :mod:`threading`'s own code (which holds its locks
  between its calls), nor as a lock's ``acquire`` or an ``__enter__`` returns
  (before the ``try`` or the ``with`` block that releases it);
  the tool is released once nothing waits;
- a signal handler asks :func:`lands_in_its_handlers` whether raising now
  reaches the handlers around the instruction it interrupted, and where it
  would not (a jump), leaves the exception to :func:`raise_in_thread` for its
  own thread.

Earlier Pythons look the handler up after the jump: there the exception is
raised by the interpreter, at once.
"""

from __future__ import annotations

import _weakrefset
import dis
import functools
import sys
import threading
import time
import weakref

__all__ = ["raise_in_thread", "take_back_own", "lands_in_its_handlers", "never_raise_in"]

#: how long :func:`raise_in_thread` waits for a thread that is starting another
START_WAIT_SECONDS = 2.0

#: True where the interpreter looks up the handler of an exception raised at a loop's backward jump at the
#: jump, outside the blocks around the loop (CPython 3.13); the exception then waits for a place inside them.
LOOKUP_AT_THE_JUMP = sys.version_info >= (3, 13)


def raise_in_thread(ident: int, exception: type[BaseException], *,
                    wait_seconds: float = START_WAIT_SECONDS) -> bool:
    """Raise ``exception`` (a class) in the thread ``ident``; False when no such thread runs Python.

    A stop is a ``BaseException`` that is not an ``Exception`` (``KeyboardInterrupt``): it lands anywhere in
    the thread, the standard library's code included, whose ``except Exception`` clean-ups would take an
    ``Exception`` (``threading.Thread.start``'s, once the new thread ran, fails on it with a ``KeyError``).

    While that thread is starting another one, the raise waits (in steps of
    half a millisecond, up to ``wait_seconds``) until it has started; False when
    it has not by then, and nothing is raised anywhere.  Where the interpreter
    would look the exception's handler up outside the blocks around a loop
    (:data:`LOOKUP_AT_THE_JUMP`), the exception waits instead for the thread's
    next return from a call or loop start (this is also the way for the
    calling thread itself, from a signal handler); False there also when no
    :mod:`sys.monitoring` tool id is free.
    """
    if LOOKUP_AT_THE_JUMP:
        return _waiting.arm(ident, exception)
    from h5stream.native import compiled

    runtime = compiled("_runtime")
    deadline = time.monotonic() + wait_seconds
    while True:
        status = runtime.raise_in_thread_now(ident, exception)
        if status >= 0:
            return status == 1
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.0005)


def take_back_own() -> None:
    """Take back an exception :func:`raise_in_thread` set in the calling thread that has not arrived yet.

    For code that learns of the stop on its own and raises it itself at a
    point of its choosing: the exception is then raised once, there.
    """
    if LOOKUP_AT_THE_JUMP:
        _waiting.disarm(threading.get_ident())
        return
    from h5stream.native import compiled

    compiled("_runtime").clear_in_thread(threading.get_ident())


def never_raise_in(filename: str) -> None:
    """Never raise an exception :func:`raise_in_thread` left waiting while code of ``filename`` (a module's
    ``__file__``) runs in the thread, also what it calls: it arrives once that code has returned.

    For the bookkeeping of the code that stops threads (where the exception
    would leave it half done) and its signal handlers (from which it would
    land where the handler was called).  Where the interpreter raises the
    exception itself (before 3.13) this cannot be had.
    """
    _waiting.exempt.add(filename)


def lands_in_its_handlers(frame) -> bool:
    """Whether an exception raised now by a signal handler called at ``frame`` reaches the handlers (``except``,
    ``finally``, ``with``) around the instruction the frame was interrupted at.

    False only where the interpreter looks the handler up at a jump
    (:data:`LOOKUP_AT_THE_JUMP`): the signal handler then calls
    :func:`raise_in_thread` for its own thread instead of raising.
    """
    return not LOOKUP_AT_THE_JUMP or frame is None or _raises_by_itself(frame.f_code, frame.f_lasti)


def _raises_by_itself(code, offset: int) -> bool:
    """Whether the instruction at ``offset`` can raise an exception of its own (not a jump, not a ``NOP``): the
    compiler places every such instruction inside the exception handlers of the blocks it is in."""
    if offset < 0:
        return True
    ops = code.co_code
    while offset < len(ops) and ops[offset] == _EXTENDED_ARG:
        offset += 2
    return offset < len(ops) and ops[offset] not in _RAISE_NOTHING


_EXTENDED_ARG = dis.opmap["EXTENDED_ARG"]
#: jumps (a loop's ``FOR_ITER`` and a ``SEND`` also jump, but call the iterator: they can raise) and ``NOP``
_RAISE_NOTHING = frozenset(op for name, op in dis.opmap.items() if name.startswith(("JUMP", "POP_JUMP"))) \
    | {dis.opmap["NOP"]}


@functools.lru_cache(maxsize=1024)
def _loop_heads(code) -> frozenset[int]:
    """The offsets a backward jump of ``code`` goes to (a loop's start) that can raise by themselves."""
    heads = {ins.jump_target for ins in dis.get_instructions(code)
             if ins.opname.startswith("JUMP_BACKWARD") and ins.jump_target is not None}
    return frozenset(head for head in heads if _raises_by_itself(code, head))


_LOCKS = (type(threading.Lock()), type(threading.RLock()))
#: threading's own code (a Condition's ``__enter__``, an Event's ``wait`` and ``set``, ``Thread.start``) holds its
#: locks between its calls: an exception raised in it left a lock taken for ever (a thread being started then
#: waited in its ``Event.set``, and the interpreter's exit for that thread); it lands once that code returns
_THREADING = threading.__file__
_ENTERS = frozenset({"__enter__", "__aenter__"})


def _takes_a_lock(function) -> bool:
    """Whether ``function`` takes a lock (a lock's ``acquire`` or ``__enter__``): raised as it returns, the
    exception would leave the lock taken before the ``try`` that releases it."""
    return isinstance(getattr(function, "__self__", None), _LOCKS) and \
        getattr(function, "__name__", "") in ("acquire", "__enter__", "acquire_lock")


#: names of the methods the interpreter calls where an exception they raise is dropped (printed as "Exception
#: ignored in ..."): an exception waiting for the thread is not raised while one of them is on its stack
CALLBACKS = frozenset({"__del__"})


class _Waiting:
    """Exceptions waiting to be raised in threads of this process, by a :mod:`sys.monitoring` tool (3.13).

    Raised where the interpreter of 3.12 raised them, but never at a jump:
    as a call returns (a Python function's return, a compiled function's:
    the caller's blocks take it, and a ``with`` block's ``__exit__`` has run),
    and at a loop's start (the instruction a backward jump goes to), watched in
    the functions the thread was running when the exception was set and those
    it enters later.  Not on entering a function (that would skip a
    ``__exit__`` the interpreter calls), not in code of an exempt file.  The
    tool watches only while an exception waits; an event in a thread with
    nothing waiting costs a dictionary look-up, and a loop's place that is not
    its start is switched off after its first pass.
    """

    NAME = "h5stream.interrupts"
    TOOLS = (4, 3, 5)  # the ids sys.monitoring names for debuggers, coverage and profilers stay free for them

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.by_thread: dict[int, type[BaseException]] = {}
        # the weakref modules' callbacks (a WeakSet's, a WeakValueDictionary's removal, a finalize) and __del__
        # methods (CALLBACKS) run where the collector calls them: an exception raised there is printed as
        # "Exception ignored in" and dropped, so the one waiting arrives after they return
        self.exempt: set[str] = {__file__, weakref.__file__, _weakrefset.__file__}
        self.tool: int | None = None
        self.watched: set = set()  # code objects whose loop starts are watched

    def arm(self, ident: int, exception: type[BaseException]) -> bool:
        with self.lock:
            frames = sys._current_frames()
            if ident not in frames:
                return False
            for gone in set(self.by_thread) - set(frames):
                del self.by_thread[gone]  # an exception that waited for a thread that ended is not for its ident's next
            if self.tool is None and not self._start():
                return False
            frame = frames[ident]
            while frame is not None:
                self._watch(frame.f_code)
                frame = frame.f_back
            self.by_thread[ident] = exception
            return True

    def disarm(self, ident: int) -> None:
        with self.lock:
            self.by_thread.pop(ident, None)
            self._stop_if_idle()

    def _start(self) -> bool:
        monitoring, events = sys.monitoring, sys.monitoring.events
        for tool in self.TOOLS:
            try:
                monitoring.use_tool_id(tool, self.NAME)
            except ValueError:  # taken by another tool
                continue
            monitoring.register_callback(tool, events.PY_START, self._at_start)
            monitoring.register_callback(tool, events.PY_RETURN, self._at_return)
            monitoring.register_callback(tool, events.C_RETURN, self._at_compiled_return)
            monitoring.register_callback(tool, events.INSTRUCTION, self._at_instruction)
            # C_RETURN comes with CALL (no callback: nothing is done before a call)
            monitoring.set_events(tool, events.PY_START | events.PY_RETURN | events.CALL)
            self.tool = tool
            return True
        return False

    def _stop_if_idle(self) -> None:
        if self.by_thread or self.tool is None:
            return
        monitoring, events = sys.monitoring, sys.monitoring.events
        monitoring.set_events(self.tool, 0)
        for code in self.watched:
            monitoring.set_local_events(self.tool, code, 0)
        self.watched.clear()
        for event in (events.PY_START, events.PY_RETURN, events.C_RETURN, events.INSTRUCTION):
            monitoring.register_callback(self.tool, event, None)
        monitoring.free_tool_id(self.tool)
        self.tool = None

    def _watch(self, code) -> None:
        if code not in self.watched and code.co_filename not in self.exempt and _loop_heads(code):
            self.watched.add(code)
            sys.monitoring.set_local_events(self.tool, code, sys.monitoring.events.INSTRUCTION)

    def _waits_here(self, code, *, in_caller: bool = False) -> bool:
        """Whether an exception waits for this thread, and neither ``code`` nor a caller on the thread's stack is
        in an exempt file (the code that stops threads, and whatever it calls: logging, a signal handler's),
        nor would it land in :mod:`threading`'s own code (the event's frame, or its caller's for a return:
        ``in_caller``)."""
        if threading.get_ident() not in self.by_thread:
            return False
        frame = sys._getframe(2)  # the event's frame: this method's caller is a callback, called from C
        lands = frame.f_back if in_caller else frame
        if lands is not None and lands.f_code.co_filename == _THREADING:
            return False
        while frame is not None:
            if frame.f_code.co_filename in self.exempt or frame.f_code.co_name in CALLBACKS:
                return False
            frame = frame.f_back
        return code.co_filename not in self.exempt

    def _raise(self) -> None:
        with self.lock:
            exception = self.by_thread.pop(threading.get_ident(), None)
            self._stop_if_idle()
        if exception is not None:
            raise exception

    def _at_start(self, code, offset: int) -> None:
        if self._waits_here(code):
            with self.lock:
                if self.tool is not None:
                    self._watch(code)

    def _at_return(self, code, offset: int, value) -> None:
        # not as an __enter__ returns: the with statement that called it has not yet set up its __exit__
        if code.co_name not in _ENTERS and self._waits_here(code, in_caller=True):
            self._raise()

    def _at_compiled_return(self, code, offset: int, function, arg) -> None:
        if not _takes_a_lock(function) and self._waits_here(code):
            self._raise()

    def _at_instruction(self, code, offset: int):
        if offset not in _loop_heads(code):
            return sys.monitoring.DISABLE
        if self._waits_here(code):
            self._raise()
        return None


_waiting = _Waiting()

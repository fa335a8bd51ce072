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

Some places a handler's raise must not reach at all: the import system's own code (``importlib._bootstrap``:
its module-lock weak reference callback takes the global import lock before its ``try``, so a raise there
leaves the lock held for ever and the next import of any other thread waits for ever, besides being dropped),
a ``__del__``, and the weak reference callbacks of :mod:`weakref`.  A handler called there
(:func:`raise_unsafe_at`) raises nothing: the signal is delivered again, and the handler raises at the main thread's
next instruction outside them.  :func:`take_ctrl_c` gives a program that imports :mod:`h5stream` (or a package
built on it) that handling for Ctrl-C where Python's own had it: Ctrl-C still raises ``KeyboardInterrupt``.

Outside the blocks (a job run from Python spends its first second importing, then loads its configuration) a
program may take a ``KeyboardInterrupt`` and go on.  There the stop is :func:`recorded` as the handler raises
it, and its exception carries a watch, which delivers the signal again as the exception is freed where it was
lost: dropped by Python (a callback's), or taken before it left the import it was raised in (an imported
module's ``except BaseException`` or bare ``except``, compiled code that clears the error; an import a stop
reached ends with it).  The rule for the record:

- the program's own code that catches the ``KeyboardInterrupt`` handles the stop, and the record is gone: the
  frame whose ``except`` (or ``with`` block, or ``finally``) took it is code of the program
  (:func:`is_program_frame`: a script, ``python -c``, the program's own modules), not the standard library, an
  installed package or this project's packages (:data:`LIBRARY_PATHS`), nor code they made at run time.  While that ``except`` runs, nothing
  raises the stop again (it may save what it has);
- taken by a library's code instead (an ``except BaseException: pass``, an ``except Exception`` around a
  stop that came out as another error), the record stays: the next place that asks (:func:`check_point`: a
  progress callback, a kernel's pieces; :func:`raise_if_noted`: a job's start, between its steps, a session's
  save) raises it again, as a ``KeyboardInterrupt`` that the same rule follows;
- a program that ends by another exception while a stop is noted or recorded ends as the stop: one line naming
  that error, then by the signal (an import a stop cut short may fail as any error of the module, and CPython
  itself turns some into a ``TypeError``), never that error's traceback.
"""

from __future__ import annotations

import _thread
import os
import signal
import sys
import threading
import weakref
from collections.abc import Callable

from h5stream.lock_windows import lock_window_at
from h5stream.process_exit import end_process, flush_standard_streams

__all__ = ["RaisedAgain", "kept_stops", "note", "noted", "recorded", "forget_recorded", "carry_over",
           "raise_if_noted", "check_point", "check_before_write", "signal_name_of", "end_process", "raise_unsafe_at", "delivered_again", "take_ctrl_c", "ctrl_c", "is_default_handler",
           "is_program_code", "is_program_frame"]

_lock = threading.RLock()  # reentrant: a signal handler may run while the main thread holds it
_noted: str | None = None  # the first stop asked inside the outermost kept_stops block (a signal's name)
_keepers: list[kept_stops] = []  # the blocks running now, innermost last
_previous_hook = None  # sys.unraisablehook before the outermost block
_in_flight: set[int] = set()  # threads with a stop raised again on its way
_made_hook = None  # the hook the blocks install (made once)
_recorded: str | None = None  # a stop asked outside the blocks that the program has not handled (a signal's name)


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
    """The signal of the stop asked inside the running :class:`kept_stops` blocks, or of a Ctrl-C outside them
    that the program has not handled yet (:func:`recorded`), or None."""
    return _noted or _recorded


def recorded() -> str | None:
    """The signal of a Ctrl-C taken by :func:`ctrl_c` outside the blocks that the program has not handled: its
    ``KeyboardInterrupt`` is on its way, or was taken by a library (:func:`is_program_code`), or lost where
    Python drops it; None once the program's own code caught it, or none came."""
    return _recorded


def forget_recorded() -> None:
    """Forget a recorded stop (:func:`recorded`): for a program that takes a stop its own way."""
    global _recorded
    _recorded = None


def carry_over() -> None:
    """At a job's normal return inside its blocks (its work committed): a stop noted in them whose exception
    never came (a library took it) is kept as :func:`recorded`, for the program's next place that asks."""
    if _noted is not None:
        _record(_noted)


def _handling_own_stop() -> bool:
    """Whether the exception being handled here is a recorded stop that the program's own code caught (its
    ``except`` or ``finally`` runs now): the program handles it, nothing is raised again meanwhile."""
    handled = sys.exc_info()[1]
    tb = getattr(handled, "__traceback__", None)
    if not isinstance(handled, _WatchedStop) or tb is None:
        return False
    if is_program_frame(tb.tb_frame):
        forget_recorded()
        return True
    return False


def raise_if_noted() -> None:
    """Raise :class:`RaisedAgain` here when a stop was noted (a stop raised again and still on its way to this
    thread is taken back first: it is raised once, here); in the main thread, a recorded stop
    (:func:`recorded`) is raised as a ``KeyboardInterrupt`` that the program's own ``except`` takes for good."""
    if _noted is None:
        if _recorded is not None and threading.current_thread() is threading.main_thread() \
                and not _handling_own_stop():
            raise _watched(signal.Signals[_recorded], sys._getframe())
        return
    ident = threading.get_ident()
    if ident in _in_flight:
        from h5stream import interrupts

        interrupts.take_back_own()
        _in_flight.discard(ident)
    raise RaisedAgain()


#: where a stop raised by a signal handler would be dropped or leave a lock held: the import system's own code
#: (also ``importlib/_bootstrap*.py`` where it is not frozen) and :mod:`weakref`'s callbacks
_NO_RAISE_FILES = tuple(f"{sep}{name}.py" for sep in "/\\" for name in (
    "importlib" + sep + "_bootstrap", "importlib" + sep + "_bootstrap_external", "weakref", "_weakrefset"))


def raise_unsafe_at(frame) -> bool:
    """Whether a signal handler called at ``frame`` must not raise there: inside the import system's own code,
    a ``__del__`` or a weak reference callback of :mod:`weakref` (:data:`_NO_RAISE_FILES`), or where a lock was
    just taken and the block that lets it go has not begun (:func:`h5stream.lock_windows.lock_window_at`: an
    event's or a condition's lock in :mod:`threading`'s own code).  The handler then
    returns :func:`delivered_again`.  Also anywhere below the unraisable hook the blocks install (:func:`_decide`
    and what it calls: Python 3.13's monitoring callbacks run inside it), where a raise is printed as ``Exception
    ignored in sys.unraisablehook`` and lost."""
    if frame is None:
        return False
    code = frame.f_code
    if code.co_name == "__del__" or code.co_filename.startswith("<frozen importlib.") \
            or code.co_filename.endswith(_NO_RAISE_FILES) or code in _NO_RAISE_CODES or lock_window_at(frame):
        return True
    if _keepers:  # the hook is installed only while a block runs
        while frame is not None:
            if frame.f_code in _IN_HOOK_CODES:
                return True
            frame = frame.f_back
    return False


_NO_RAISE_CODES: set = set()  # this module's callbacks, called where a raise is dropped (filled below)


class _Token:
    __slots__ = ("__weakref__",)


class _SignalAgain(weakref.ref):
    """A weak reference whose callback (``_thread.interrupt_main``, called with the reference, which it reads
    as its signal number) delivers the signal again."""

    __slots__ = ("signum",)

    def __new__(cls, token, signum):
        self = super().__new__(cls, token, _thread.interrupt_main)
        self.signum = signum
        return self

    def __init__(self, token, signum) -> None:
        super().__init__(token, _thread.interrupt_main)

    def __index__(self) -> int:
        _waiting.discard(self)
        return self.signum


_waiting: set[_SignalAgain] = set()  # alive until their callback ran


def delivered_again(signum: int) -> object:
    """What a signal handler that must not raise where it was called (:func:`raise_unsafe_at`) returns: as the
    interpreter lets go of it, after the handler returned, ``signum`` is delivered again, so its handler runs
    again at the main thread's next check for signals, where it asks again.

    Delivered from the handler itself, the signal would call the handler again at once, inside it; the
    interpreter drops a handler's returned value in compiled code, where no check for signals runs.
    """
    token = _Token()
    _waiting.add(_SignalAgain(token, signum))
    return token


def ctrl_c(signum, frame) -> object:
    """Ctrl-C as Python's own handler takes it (``KeyboardInterrupt``), but never raised where Python drops it or
    where it would leave the import lock held (:func:`raise_unsafe_at`: it is raised at the next instruction
    outside those places), and recorded (:func:`note`) while a :class:`kept_stops` block runs, for the places
    where work can stop.

    Outside such a block the exception carries a watch (:func:`_watched`): where it is dropped all the same
    (a callback Python calls from compiled code) or swallowed inside an import (an ``except BaseException``
    or a bare ``except`` of the imported module, compiled code that clears the error), the signal is
    delivered again as the exception is freed, and raised at the next instruction."""
    if frame is None:  # no Python code runs: the interpreter prints the error it ends with, or ends
        return None
    if raise_unsafe_at(frame):
        return delivered_again(signum)
    if _keepers:
        note(signal.Signals(signum).name)
        raise KeyboardInterrupt
    _record(signal.Signals(signum).name)
    raise _watched(signum, frame)


def _record(signal_name: str) -> None:
    global _recorded
    _recorded = _recorded or signal_name


#: the attribute of a KeyboardInterrupt raised outside the blocks that holds its watch's token
_WATCH_TOKEN = "_h5stream_stop_watch"


class _StopWatch(weakref.ref):
    """A weak reference to the token a ``KeyboardInterrupt`` raised by :func:`ctrl_c` carries: its callback
    (:func:`_freed`) runs as the exception is freed.

    ``importing``: the outermost import running where the signal came (its ``_find_and_load`` frame), or
    None; ``dropped``: Python dropped the exception (a callback's, given to the unraisable hook)."""

    __slots__ = ("key", "signum", "importing", "dropped", "caught_in")

    def __new__(cls, token, signum, importing):
        return super().__new__(cls, token, _freed)

    def __init__(self, token, signum, importing) -> None:
        super().__init__(token, _freed)
        self.key = id(token)
        self.signum = signum
        self.importing = importing
        self.dropped = False
        self.caught_in: bool | None = None  # whether the frame that caught the exception last is the program's


class _WatchedStop(KeyboardInterrupt):
    """The ``KeyboardInterrupt`` :func:`ctrl_c` raises outside the blocks: as it is freed, the frame that caught
    it (its traceback's first frame) is handed to its watch, which decides whether the program handled it.
    Printed and pickled as ``KeyboardInterrupt``."""

    def __del__(self) -> None:
        watch = _watches.get(id(getattr(self, _WATCH_TOKEN, None)))
        tb = self.__traceback__
        if watch is not None and tb is not None:
            watch.caught_in = is_program_frame(tb.tb_frame)


_WatchedStop.__module__, _WatchedStop.__qualname__, _WatchedStop.__name__ = \
    "builtins", "KeyboardInterrupt", "KeyboardInterrupt"


_watches: dict[int, _StopWatch] = {}  # id of the token -> its watch, until the exception was freed


def _watched(signum: int, frame) -> KeyboardInterrupt:
    """The ``KeyboardInterrupt`` :func:`ctrl_c` raises outside the blocks, with its watch."""
    global _hook_before_drops
    stop = _WatchedStop()
    token = _Token()
    watch = _StopWatch(token, signum, _outermost_import(frame))
    _watches[watch.key] = watch
    setattr(stop, _WATCH_TOKEN, token)
    if sys.unraisablehook is not _dropped:
        _hook_before_drops, sys.unraisablehook = sys.unraisablehook, _dropped
    return stop


def _outermost_import(frame):
    """The frame of the outermost import running at ``frame`` (``importlib._bootstrap._find_and_load``), or None."""
    found = None
    while frame is not None:
        code = frame.f_code
        if code.co_name == "_find_and_load" and (code.co_filename.startswith("<frozen importlib.")
                                                 or code.co_filename.endswith(_NO_RAISE_FILES)):
            found = frame
        frame = frame.f_back
    return found


def _freed(watch: _StopWatch) -> None:
    """A watched ``KeyboardInterrupt`` is freed: the stop was lost where Python dropped the exception, or where
    it was taken before it left the import it was raised in (an import that a stop reached ends with it).  The
    signal is then delivered again: its handler raises it at the main thread's next instruction."""
    _watches.pop(watch.key, None)
    importing = watch.importing
    watch.importing = None
    lost = watch.dropped
    if importing is not None and not lost:
        frame = sys._getframe().f_back
        while frame is not None and frame is not importing:
            frame = frame.f_back
        lost = frame is not None
    if lost:
        _thread.interrupt_main(watch.signum)
    elif watch.caught_in:
        forget_recorded()  # the program's own except took it: its choice (a library's keeps it recorded)


#: where code that is not the program's own lives: the standard library, installed packages, and this
#: project's packages (whatever folder they were imported from); a program may add folders
LIBRARY_PATHS: list[str] = []


def _library_paths() -> list[str]:
    if not LIBRARY_PATHS:
        import site
        import sysconfig

        paths = {sysconfig.get_paths(vars={"base": base, "platbase": base})[kind]
                 for base in {sys.prefix, sys.base_prefix, sys.exec_prefix}
                 for kind in ("stdlib", "platstdlib", "purelib", "platlib")}
        paths.update(getattr(site, "getsitepackages", list)())
        paths.add(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # h5stream, hdmea, h5scp
        LIBRARY_PATHS.extend(os.path.join(os.path.realpath(p), "") for p in sorted(paths))
    return LIBRARY_PATHS


def is_program_code(filename: str) -> bool:
    """Whether ``filename`` (a code object's) is the program's own code: a script, ``python -c``'s
    ``<string>``, a module of the program's folders; not the standard library, an installed package or
    this project's packages (:data:`LIBRARY_PATHS`), nor frozen code.  A name in angle brackets alone does
    not tell whose code it is (:func:`is_program_frame` does)."""
    if filename.startswith("<frozen ") or filename.startswith("<built-in"):
        return False
    if filename.startswith("<"):
        return True
    return not os.path.realpath(filename).startswith(tuple(_library_paths()))


def is_program_frame(frame) -> bool:
    """Whether ``frame`` runs the program's own code (:func:`is_program_code`).  Code made at run time has a
    file name in angle brackets (``<string>``) whoever made it: ``python -c`` and the program's own ``exec``,
    but also the methods :mod:`dataclasses` writes, a :func:`~collections.namedtuple`'s, a library's ``exec``.
    Such code is judged by the module it runs in (its globals): the defining module's file (the methods of a
    dataclass run in its module's globals), or ``__main__`` without a file (``python -c``, standard input, an
    interactive session); code run in a namespace of its own (a namedtuple's) was made by a library."""
    filename = frame.f_code.co_filename
    if not filename.startswith("<") or filename.startswith(("<frozen ", "<built-in")):
        return is_program_code(filename)
    names = frame.f_globals
    module_file = names.get("__file__")
    if isinstance(module_file, str) and module_file:
        return is_program_code(module_file)
    return names.get("__name__") == "__main__"


_hook_before_drops = None  # sys.unraisablehook before a watched stop was first raised


def _dropped(unraisable) -> None:
    """The unraisable hook once :func:`ctrl_c` raised outside the blocks: a watched stop that Python drops is
    not printed (it is delivered again as it is freed); anything else goes to the hook before."""
    token = getattr(unraisable.exc_value, _WATCH_TOKEN, None)
    watch = _watches.get(id(token)) if token is not None else None
    if watch is None or watch() is not token:
        (_hook_before_drops or sys.__unraisablehook__)(unraisable)
        return
    watch.dropped = True


_NO_RAISE_CODES.update((_freed.__code__, _dropped.__code__, is_program_code.__code__, is_program_frame.__code__,
                        _library_paths.__code__))


def is_default_handler(sig: int, handler) -> bool:
    """Whether ``handler`` is Python's own handling of ``sig`` (also :func:`ctrl_c`, which stands for it)."""
    if sig == signal.SIGINT:
        return handler is signal.default_int_handler or handler is ctrl_c
    return handler is signal.SIG_DFL


def take_ctrl_c() -> None:
    """Take SIGINT with :func:`ctrl_c` where Python's own handler has it (in the main thread only): called as
    :mod:`h5stream` is imported, so a job run from Python keeps every Ctrl-C from its first import on."""
    if threading.current_thread() is threading.main_thread() \
            and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, ctrl_c)
        _library_paths()  # read now, never first inside a callback
        if sys.excepthook is sys.__excepthook__:
            sys.excepthook = _uncaught


def _uncaught(kind, value, tb) -> None:
    """The program ends by an exception it did not catch: while a stop is noted or recorded (:func:`noted`), an
    exception other than ``KeyboardInterrupt`` is what the stop caused (an import it cut short surfaces as the
    imported module's error; CPython itself makes some a ``TypeError``), so the program ends as the stop: one
    line naming that error, then by the signal, as Python ends on an uncaught ``KeyboardInterrupt``."""
    name = noted()
    if name is None or issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, value, tb)
        return
    import atexit

    program = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] not in ("", "-c") else "python"
    sys.stderr.write(f"{program}: stopped by {'Ctrl-C' if name == 'SIGINT' else name} "
                     f"(the stop cut short: {kind.__name__}: {value})\n")
    atexit._run_exitfuncs()
    flush_standard_streams()
    signum = signal.Signals[name]
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
    os._exit(128 + signum)


def check_point() -> None:
    """A place where work can stop (a progress callback, between two pieces of a kernel's work): in the main
    thread, a stop noted inside the running :class:`kept_stops` blocks whose exception never came is raised
    here, the way the innermost block raises it (its ``at_check``).  Costs a global's read when none was."""
    if (_noted is None and _recorded is None) or threading.current_thread() is not threading.main_thread():
        return
    with _lock:
        keeper = _keepers[-1] if _keepers else None
    (keeper.at_check if keeper is not None and keeper.at_check is not None else raise_if_noted)()


def check_before_write() -> None:
    """At the start of a write the program asked for (a session's save or checkpoint): outside every
    :class:`kept_stops` block, a stop a library took before is raised here, before anything is written.  Inside
    a block nothing is raised: the block's own stop handling may be what writes (a run keeps its finished steps
    in a checkpoint after a stop), and the block raises the stop once that write is done."""
    if not _keepers:
        check_point()


def signal_name_of(exception: BaseException | None) -> str:
    """The signal a stop exception stands for: its ``signal_name`` when it has one, SIGINT for Ctrl-C's."""
    return getattr(exception, "signal_name", None) or "SIGINT"


class kept_stops:
    """While inside, a stop exception (of ``kinds``) that Python drops is recorded and raised again.

    ``at_check()`` raises a noted stop at a :func:`check_point` inside the block (a job runner's own stop; by
    default :func:`raise_if_noted`).  ``raise_again(ident, kind)`` returns the exception to raise again in thread ``ident`` (None: none now), and
    keeps its own account of it; by default :class:`RaisedAgain` in the main thread (a stop dropped in another
    thread is only recorded).  It is raised at the thread's next instruction outside the callback.  Blocks
    nest: a dropped exception goes to the innermost block that keeps its kind; the record is forgotten when
    the outermost block ends (the block's ``signal_name`` keeps it).  A class, not a generator's context
    manager, so that a stop raised on entry or exit never lands between the bookkeeping and the block.
    """

    def __init__(self, kinds: tuple[type[BaseException], ...] = (KeyboardInterrupt,),
                 raise_again: Callable[[int, type[BaseException]], None] | None = None,
                 at_check: Callable[[], None] | None = None) -> None:
        self.kinds = kinds
        self.raise_again = raise_again
        self.at_check = at_check  # how check_point raises a noted stop inside this block (default raise_if_noted)
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


_IN_HOOK_CODES = {_decide.__code__}  # a signal handler called below these raises nothing there (raise_unsafe_at)


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

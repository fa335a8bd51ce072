"""Where a stop raised by a signal handler would leave a lock taken for ever: the window between a lock's acquire and
the ``try`` or ``with`` block that lets it go again.

A signal handler runs on the main thread at the interpreter's next check for signals, which CPython makes as a
call returns.  A Python function that takes a lock and returns it to its caller's block holds the lock between
those two moments, and so does the caller until its block begins: :class:`threading.Condition`'s ``__enter__``
(an :class:`threading.Event`'s ``wait`` and ``set`` enter one), :mod:`logging`'s ``acquire`` before a handler's
``try``.  An exception raised there leaves before the block began, so no ``__exit__`` or ``finally`` lets the lock
go: the next ``wait`` or ``set`` of the same event, on any thread, waits for ever (a batch's driver stopped while
its pool started hung so, with the thread that started the pool, until it was killed).
:class:`threading.Condition`'s ``wait`` has such a window the other way round: between letting its lock go and its
``try``, the caller's ``with`` would let it go a second time.

:func:`lock_window_at` names these places for :func:`h5stream.stops.raise_unsafe_at`, whose handlers then raise
nothing there: the signal is delivered again and the stop is raised at the main thread's next instruction outside
them.  In the code of the standard library's locks (:data:`LOCK_CODE`) a stop is raised only where the instruction
lies in a ``try`` or ``with`` block of the same function (read from the code's exception table, Python 3.11 on),
whose clean-up lets its locks go: a blocking wait (a condition's, a thread's ``join``) still takes the stop at
once.  Python 3.10 has no exception table: there the blocks are read from the bytecode, each from its ``SETUP_``
instruction to its first ``POP_BLOCK`` (a block left early by a ``return`` or a ``break`` ends there for this
reading too, which only takes a stop a few instructions later).

Standard library only, nothing imported beyond what the interpreter has loaded: the command line's start imports
this (through :mod:`h5stream.stops`) before anything heavy.
"""

from __future__ import annotations

import os
import sys
import threading

if sys.version_info < (3, 11):  # blocks read from the bytecode (handled_ranges); loaded here, never in a handler
    from opcode import opmap

    _SETUPS = frozenset(opmap[name] for name in ("SETUP_FINALLY", "SETUP_WITH", "SETUP_ASYNC_WITH"))
    _POP_BLOCK = opmap["POP_BLOCK"]

__all__ = ["lock_window_at", "handled_ranges"]

_STDLIB = os.path.dirname(threading.__file__)
#: the files of the standard library's code that takes locks and lets them go between its calls: :mod:`threading`,
#: :mod:`logging` (its handlers' and its module's lock), :mod:`multiprocessing.synchronize`
LOCK_CODE = frozenset(os.path.normcase(os.path.join(_STDLIB, *parts)) for parts in (
    ("threading.py",), ("logging", "__init__.py"), ("multiprocessing", "synchronize.py")))

_ranges: dict = {}  # code object -> its handled ranges (filled as handlers ask; a signal handler may)


def lock_window_at(frame) -> bool:
    """Whether a signal handler called at ``frame`` (the main thread's innermost frame) would, by raising, leave a
    lock taken or let one go twice: the code of :data:`LOCK_CODE` outside the ``try`` and ``with`` blocks of its
    own function."""
    code = frame.f_code
    if os.path.normcase(code.co_filename) not in LOCK_CODE:
        return False
    return not any(start <= frame.f_lasti < end for start, end in handled_ranges(code))


def handled_ranges(code) -> tuple[tuple[int, int], ...]:
    """The byte ranges ``(start, end)`` of ``code``'s instructions that lie inside an exception handler's block
    (a ``try``, a ``with``): from its exception table (Python 3.11 on), else from its ``SETUP_`` and
    ``POP_BLOCK`` instructions."""
    found = _ranges.get(code)
    if found is None:
        table = getattr(code, "co_exceptiontable", None)
        if table is None:
            found = _setup_blocks(code.co_code)
        else:
            numbers = list(_varints(table))
            # each entry: start, length (in 2-byte code units), handler target, stack depth and lasti flag
            found = tuple((2 * numbers[i], 2 * (numbers[i] + numbers[i + 1])) for i in range(0, len(numbers) - 3, 4))
        _ranges[code] = found
    return found


def _setup_blocks(ops: bytes) -> tuple[tuple[int, int], ...]:
    """Python 3.10's blocks: from after each ``SETUP_`` instruction to the first ``POP_BLOCK`` that closes it."""
    starts, found = [], []
    for offset in range(0, len(ops), 2):
        if ops[offset] in _SETUPS:
            starts.append(offset + 2)
        elif ops[offset] == _POP_BLOCK and starts:
            found.append((starts.pop(), offset))
    return tuple(found)


def _varints(table: bytes):
    """The numbers of an exception table: 6 bits a byte, most significant first; bit 6 says another byte follows
    (bit 7 marks an entry's first byte)."""
    value = 0
    for byte in table:
        value = (value << 6) | (byte & 63)
        if not byte & 64:
            yield value
            value = 0

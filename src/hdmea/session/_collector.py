"""Python's cyclic garbage collector while a step stages into a session: what was there before is not scanned.

A session holds its staged tree as Python objects (a node per dataset and group: a lab recording of 240 units
with 400 trials of one movie holds over 100,000 of them once each trial's node is built), and every one of
them is tracked by the cyclic collector.  A full collection walks all of them; it comes when enough
allocations have passed, in whichever step makes them, so a step of a few milliseconds that happens to make
that allocation paid a whole walk of the session (about 0.1 s on the benchmark machine at that size).  The
objects that were there when the step began are long-lived by the time a step runs over them: the step
reads them, replaces some, and adds its own.

:func:`step_collections` runs a step with every object tracked at its start frozen (``gc.freeze``): the
step's collections, full ones included, walk only what the step itself made, and a cycle it drops is
reclaimed as always.  At the end everything is thawed (``gc.unfreeze``) into the oldest generation, where
the next full collection finds anything among it that became garbage meanwhile (reference counting frees
all else at once, frozen or not).

:func:`paused_collections` turns the collector off for a block that makes many long-lived objects and little
cyclic garbage (a session's tree read from a file: tens of thousands of nodes, which set off full collections
over every object of the process as they are made; a save, which builds the file's node of every trial a step
cut and keeps them: at 240 units x 400 trials two full collections, about 0.1 s each on the benchmark machine,
where 120 units x 200 trials made none).  Steps inside steps, and steps in several threads at a time, share one
freeze, thawed when the last of them ends.  A process that froze objects itself (``gc.get_freeze_count()``
not 0, as a server that forks its workers does) or that turned the collector off is left as it is: a thaw
would undo its own freeze.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

__all__ = ["step_collections", "paused_collections"]

_lock = threading.Lock()
#: steps running inside the freeze now, and whether it is ours to thaw
_running = 0
_frozen = False


@contextlib.contextmanager
def step_collections() -> Iterator[None]:
    """Run the block with the objects tracked when it starts frozen for the collector (see the module)."""
    global _running, _frozen
    with _lock:
        if _running == 0:
            if _frozen:  # our thaw, cut short by an exception raised into the thread there: done now
                gc.unfreeze()
            _frozen = gc.isenabled() and gc.get_freeze_count() == 0
            if _frozen:
                gc.freeze()
        _running += 1
    try:
        yield
    finally:
        with _lock:
            _running -= 1
            if _running == 0 and _frozen:
                gc.unfreeze()
                _frozen = False


@contextlib.contextmanager
def paused_collections(*, collect_young: bool = False) -> Iterator[None]:
    """Run the block with the cyclic collector off (as it was before, after it).  At its end, everything the
    block made and kept is the youngest generation: with ``collect_young`` it is collected once, so that
    cycles made in the block are freed at once rather than after later collections promote them; else it
    is moved to the oldest generation unwalked (``gc.freeze`` then ``gc.unfreeze``, as a step's freeze ends),
    where the next full collection looks at it, rather than walked by the next young collection and the
    one after.  A process that froze objects itself is left as it is (a thaw would undo its own freeze)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            if collect_young:
                gc.enable()
                gc.collect(0)
            else:
                with _lock:
                    if _running == 0 and not _frozen and gc.get_freeze_count() == 0:
                        gc.freeze()
                        gc.unfreeze()
                gc.enable()

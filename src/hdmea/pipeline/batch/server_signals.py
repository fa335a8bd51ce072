"""Imported by the fork server of a batch's process pool (:func:`hdmea.pipeline.batch.executors._forkserver_preload`):
the server outlives a SIGTERM sent to the batch's process group.

A SIGTERM to the group (``kill -TERM -PGID``, a cluster's stop) ended the server at once; the driver then read
each worker's status from the server's closed pipe as "ended" while the worker still ran its job, reported the
recording stopped with nothing kept, and left the worker running after the command had ended.  The server
ends with its driver instead (its own pipe from the driver closes).  Every process it forks takes SIGTERM
again as it is forked (``os.register_at_fork``), before any of its own code runs.

A worker forked after its driver has ended (a stop while the pool started: the driver ends at once, the
server forks the workers asked for once its imports are done) cannot set itself up: what the driver sent it
(its semaphore, its pipe) is gone.  Python would print that failure's traceback on the terminal after the
command's last line; the worker ends without a word instead, once the driver has ended (waited for up to
:data:`DRIVER_END_SECONDS`: the driver hands its semaphores back just before it ends).  While the driver runs,
such a failure is printed as before.
"""

from __future__ import annotations

import os
import signal
import sys
import threading


#: seconds a worker whose start failed waits for its driver's end before it prints why it failed
DRIVER_END_SECONDS = 2.0
#: the variable in which the driver names itself to the server it starts (by the time the server imports this
#: module on a busy machine, a stopped driver may have ended and the server's parent be another process)
DRIVER_VARIABLE = "HDMEA_BATCH_DRIVER_PID"
_DRIVER = int(os.environ.get(DRIVER_VARIABLE) or os.getppid())
_GONE = False  # the driver had ended already when this module was imported
try:
    _DRIVER_FD = os.pidfd_open(_DRIVER)  # readable once the driver has ended (Linux)
except ProcessLookupError:
    _DRIVER_FD, _GONE = None, True
except (AttributeError, OSError):
    _DRIVER_FD = None


def driver_ended(timeout: float = DRIVER_END_SECONDS) -> bool:
    """Whether the driver that started this server has ended, or ends within ``timeout`` seconds."""
    import select
    import time

    if _GONE:
        return True
    if _DRIVER_FD is not None:
        return bool(select.select([_DRIVER_FD], [], [], timeout)[0])
    deadline = time.monotonic() + timeout
    pause = threading.Event()  # never set: a bounded pause between two looks at the process table
    while True:
        try:
            os.kill(_DRIVER, 0)
        except ProcessLookupError:
            return True
        except OSError:
            return False
        if time.monotonic() > deadline:
            return False
        pause.wait(0.05)


def _quiet_without_driver(kind, value, tb) -> None:
    """A forked worker's failure before its own code ran: said unless its driver has gone (which is why)."""
    if not driver_ended():
        sys.__excepthook__(kind, value, tb)


def _child_takes_sigterm() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    sys.excepthook = _quiet_without_driver


if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    os.register_at_fork(after_in_child=_child_takes_sigterm)

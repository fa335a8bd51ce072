"""Imported by the fork server of a batch's process pool (:func:`hdmea.pipeline.batch.executors._forkserver_preload`):
the server outlives a SIGTERM sent to the batch's process group.

A SIGTERM to the group (``kill -TERM -PGID``, a cluster's stop) ended the server at once; the driver then read
each worker's status from the server's closed pipe as "ended" while the worker still ran its job, reported the
recording stopped with nothing kept, and left the worker running after the command had ended.  The server
ends with its driver instead (its own pipe from the driver closes).  Every process it forks takes SIGTERM
again as it is forked (``os.register_at_fork``), before any of its own code runs.
"""

from __future__ import annotations

import os
import signal
import threading


def _child_takes_sigterm() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    os.register_at_fork(after_in_child=_child_takes_sigterm)

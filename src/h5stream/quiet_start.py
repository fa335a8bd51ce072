"""Imported first by a process that loads numpy and the compiled kernels after it: their idle threads sleep.

Importing this module adds :data:`h5stream.cores.QUIET_WAITS` (those not set already) to this process's
environment.  It exists for a process whose start the caller does not control but whose first imports it
names: the batch's fork server imports it before numpy and the pipeline's modules
(:func:`hdmea.pipeline.batch.executors._forkserver_preload`), so the libraries read the variables when they
load, and every worker forked from the server inherits them with the loaded libraries.  Where a library is
loaded already, importing this module changes nothing in it.

Such a process and the workers it forks take no Ctrl-C of their own either: SIGINT, which a terminal sends to
its whole process group, is ignored from here on (where Python's own handling had it), so that a Ctrl-C while
the server imports or a worker starts prints no traceback and kills nothing.  The process that started them
takes the Ctrl-C and passes the stop on to the jobs (the batch's driver: a job's own handlers take the
signals for its run, :func:`hdmea.pipeline.batch.preemption.stop_on_signals`).
"""

from __future__ import annotations

import signal
import threading

from h5stream import stops  # standard library only (and the package's __init__, which takes Ctrl-C)

_MAIN = threading.current_thread() is threading.main_thread()
if _MAIN and stops.is_default_handler(signal.SIGINT, signal.getsignal(signal.SIGINT)):
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # first: the imports below can take a while on a busy machine

import os  # noqa: E402

from h5stream.cores import quiet_waits  # noqa: E402

os.environ.update(quiet_waits())

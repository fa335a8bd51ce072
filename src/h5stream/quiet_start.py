"""Imported first by a process that loads numpy and the compiled kernels after it: their idle threads sleep.

Importing this module adds :data:`h5stream.cores.QUIET_WAITS` (those not set already) to this process's
environment.  It exists for a process whose start the caller does not control but whose first imports it
names: the batch's fork server imports it before numpy and the pipeline's modules
(:func:`hdmea.pipeline.batch.executors._forkserver_preload`), so the libraries read the variables when they
load, and every worker forked from the server inherits them with the loaded libraries.  Where a library is
loaded already, importing this module changes nothing in it.
"""

from __future__ import annotations

import os

from h5stream.cores import quiet_waits

os.environ.update(quiet_waits())

"""How many threads a parallel kernel should use: the cores free right now.

The parallel paths (gzip writes, the deflate reader, the dense-to-CSR encoder,
interval sectioning) used to take every core the process may run on.  On a
shared machine that is wrong in a costly way: when another process keeps one of
two cores busy, a second thread adds little or no CPU time (with session
autogrouping, Linux's default, the scheduler shares the cores between sessions,
not threads), it adds hand-offs, and a kernel whose threads meet at barriers
waits for the one the scheduler paused.  A parallel path that cannot pay must
fall back to the serial one.

:func:`free_cores` counts the cores free now:

* the cores this process may use: its CPU affinity, lowered by a cgroup v2 CPU
  quota (``cpu.max``) when there is one (:func:`allowed_cores`);
* minus the cores other processes keep busy: the number of runnable threads on
  the machine (``/proc/loadavg``'s fourth field, an instantaneous count, not the
  lagging 1-minute average) minus this process's own running threads
  (``/proc/self/task/*/stat``), averaged over :data:`SAMPLES` readings
  :data:`SAMPLE_GAP` seconds apart (about 5 ms in all) and scaled to our share
  of the machine when the affinity allows fewer cores than are online
  (:func:`others_running`);
* rounded to the nearest whole core, at least 1 (:func:`threads_for`): with
  half a core or more taken by others on a 2-core machine, one thread.

The figure is kept :data:`CACHE_SECONDS` so that a save writing many arrays
measures once.  Where ``/proc`` cannot be read (not Linux) the allowed cores
are used as they are.

Kernels whose threads take small tasks from one queue, with no barrier (the gzip
writer), take every allowed core instead (:func:`sharing_threads`): a paused
thread of theirs delays one task, not the others, and each extra thread wins a
share of a busy core.

Overrides: the ``n_threads`` argument of the callers, or the environment
variable :data:`ENV_VAR` (``H5STREAM_THREADS``): a whole number of threads, or
``all`` for every allowed core whatever the load (the behaviour before this
module).
"""

from __future__ import annotations

import math
import os
import threading
import time
from pathlib import Path

from h5stream import capabilities

__all__ = [
    "ENV_VAR",
    "SAMPLES",
    "SAMPLE_GAP",
    "CACHE_SECONDS",
    "allowed_cores",
    "others_running",
    "threads_for",
    "free_cores",
    "sharing_threads",
    "QUIET_WAITS",
    "quiet_waits",
]

#: environment override: a thread count, or "all" for every allowed core
ENV_VAR = "H5STREAM_THREADS"
#: readings of the runnable-thread count averaged per measurement
SAMPLES = 5
#: seconds between two readings
SAMPLE_GAP = 0.001
#: seconds a measurement is reused
CACHE_SECONDS = 1.0

_LOADAVG = Path("/proc/loadavg")
_TASKS = Path("/proc/self/task")
_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")

_cache_lock = threading.Lock()
_cache: tuple[float, int] | None = None


def _affinity() -> int:
    if capabilities.cpu_affinity():
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def _quota(text: str | None) -> float | None:
    """Cores granted by a cgroup v2 ``cpu.max`` line ("max 100000" or "150000 100000"); None: no quota."""
    if not text:
        return None
    fields = text.split()
    if len(fields) != 2 or fields[0] == "max":
        return None
    try:
        quota, period = int(fields[0]), int(fields[1])
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def allowed_cores() -> int:
    """Cores this process may use: its affinity, lowered to a cgroup CPU quota (rounded up)."""
    cores = _affinity()
    try:
        quota = _quota(_CPU_MAX.read_text(encoding="ascii")) if capabilities.linux_proc() else None
    except OSError:
        quota = None
    if quota is not None:
        cores = min(cores, max(1, math.ceil(quota)))
    return cores


def _runnable(text: str) -> int | None:
    """Runnable threads on the machine from a ``/proc/loadavg`` line ("0.50 0.40 0.30 3/120 4567")."""
    fields = text.split()
    if len(fields) < 4 or "/" not in fields[3]:
        return None
    try:
        return int(fields[3].split("/", 1)[0])
    except ValueError:
        return None


def _own_running() -> int:
    """Threads of this process in the running state (the caller's own thread among them)."""
    count = 0
    try:
        tasks = list(_TASKS.iterdir())
    except OSError:
        return 1
    for task in tasks:
        try:
            stat = (task / "stat").read_text(encoding="ascii", errors="replace")
        except OSError:  # the thread ended meanwhile
            continue
        # "tid (name) S ...": the name may hold spaces and parentheses, the state follows the last ")"
        state = stat.rsplit(")", 1)[-1].split(None, 1)[:1]
        if state == ["R"]:
            count += 1
    return max(1, count)


def others_running(samples: int = SAMPLES, gap: float = SAMPLE_GAP) -> float | None:
    """Cores of this process's share that other processes keep busy now (None: not measurable).

    Mean over ``samples`` readings of (runnable threads on the machine - this
    process's running threads), scaled by allowed / online cores.
    """
    if not capabilities.linux_proc():
        return None
    readings = []
    for i in range(max(1, samples)):
        if i:
            time.sleep(gap)
        try:
            runnable = _runnable(_LOADAVG.read_text(encoding="ascii"))
        except OSError:
            return None
        if runnable is None:
            return None
        readings.append(max(0, runnable - _own_running()))
    others = sum(readings) / len(readings)
    online = os.cpu_count() or 1
    allowed = allowed_cores()
    if online > allowed:
        others *= allowed / online
    return others


def threads_for(allowed: int, others: float | None) -> int:
    """The decision: ``allowed`` cores less those ``others`` keep busy, to the nearest core, at least 1.

    ``others`` None (unmeasurable) leaves ``allowed`` as it is.
    """
    allowed = max(1, int(allowed))
    if others is None or not math.isfinite(others):
        return allowed
    free = allowed - max(0.0, float(others))
    return max(1, min(allowed, math.floor(free + 0.5)))


def _from_environment() -> int | None:
    """The override of :data:`ENV_VAR`: a thread count, ``all`` (every allowed core), or None when unset."""
    raw = os.environ.get(ENV_VAR, "").strip()
    if not raw:
        return None
    if raw.lower() == "all":
        return allowed_cores()
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(
            f"environment variable {ENV_VAR}: expected a whole number of threads >= 1 or 'all', found {raw!r}; "
            f"unset it to use the cores free at the time"
        )
    return value


def sharing_threads() -> int:
    """Threads for a kernel whose threads take small tasks from one queue (no barrier): every allowed core.

    Such a kernel loses nothing to a thread the scheduler pauses (the others take
    its tasks), and each thread of ours wins a share of a core another process
    holds, so it takes every allowed core whatever the load (the gzip writer: on
    a 2-core machine shared with other sessions, the 5,000 x 2,000 float64
    container's save+load against the original writer gave 0.79 with the one
    thread :func:`free_cores` chose at load 3, 1.03 with both cores at load 6).
    :data:`ENV_VAR` overrides.
    """
    override = _from_environment()
    return override if override is not None else allowed_cores()


def free_cores(*, refresh: bool = False) -> int:
    """Threads a parallel kernel should use now (see the module's text); :data:`ENV_VAR` overrides.

    The measurement is reused for :data:`CACHE_SECONDS`; ``refresh`` measures anew.
    """
    global _cache
    override = _from_environment()
    if override is not None:
        return override
    now = time.monotonic()
    with _cache_lock:
        if not refresh and _cache is not None and now - _cache[0] < CACHE_SECONDS:
            return _cache[1]
    threads = threads_for(allowed_cores(), others_running())
    with _cache_lock:
        _cache = (time.monotonic(), threads)
    return threads


#: Environment variables that make the idle threads of the numeric libraries sleep at once rather than
#: spin.  Both are read once, when the library loads (numpy's import for OpenBLAS, the first compiled kernel
#: for OpenMP), so they belong in the environment a process starts with.  An OpenBLAS thread spins
#: (``sched_yield``) about 2**28 clock cycles (0.1 s) after it starts and after each BLAS call it served, and
#: numpy's import starts one per core whether or not the process multiplies a matrix; ``2**4`` cycles instead
#: (the smallest ``OPENBLAS_THREAD_TIMEOUT`` it takes).  An OpenMP runtime's threads spin after each parallel
#: region and at its end (libgomp: 300,000 rounds) before they sleep; ``PASSIVE``: they sleep at once (libgomp,
#: LLVM's and Intel's runtimes).  Measured on a 16-core node (docs/benchmarks.md, "Where the batch's CPU
#: went on 16 cores"): eight tiny recordings with one worker took 10.4 s of CPU for 3.0 s of wall time; the 15 spare
#: OpenBLAS threads of each of the four processes that import numpy burnt 0.07-0.12 s each, and with the
#: variables the batch took 3.8-4.0 s (12.2-12.8 s without, in the same minutes).
QUIET_WAITS = {"OMP_WAIT_POLICY": "PASSIVE", "OPENBLAS_THREAD_TIMEOUT": "4"}


def quiet_waits(environ=None) -> dict[str, str]:
    """The variables of :data:`QUIET_WAITS` that ``environ`` (default: this process's) does not set.

    What to add to the environment of a process about to start (or of this one, before it loads numpy or
    an OpenMP runtime); a value the user chose stays.
    """
    environ = os.environ if environ is None else environ
    return {name: value for name, value in QUIET_WAITS.items() if name not in environ}

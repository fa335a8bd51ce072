"""What a batch worker process does once, before its first job: thread limits and the steps' imports.

Also how a worker process ends quickly once its work is committed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

from hdmea.pipeline.batch.failures import describe_error

__all__ = ["WorkerSetup", "thread_environment", "available_cores", "free_workers", "threads_per_worker",
           "choose_layout", "exit_without_teardown"]

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

#: Thread-count variables the numeric libraries read once, when they load.
#: (``H5STREAM_THREADS``: h5stream's compression and sectioning threads, :mod:`h5stream.cores`)
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS",
                     "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "H5STREAM_THREADS")


def thread_environment(threads: int) -> dict[str, str]:
    """Environment variables that cap every numeric library of a worker at ``threads`` threads."""
    return {name: str(int(threads)) for name in _THREAD_VARIABLES}


def available_cores() -> int:
    """Cores this process may run on (its affinity mask, else the machine's count)."""
    from h5stream import capabilities

    if capabilities.cpu_affinity():
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


#: readings of the machine's runnable threads behind a batch's choice of worker count, and the seconds
#: between two: a batch runs for minutes or hours, so a process that runs for a moment when it
#: starts must not decide its size (about 0.2 s in all)
WORKER_SAMPLES = 21
WORKER_SAMPLE_GAP = 0.01


def free_workers() -> int:
    """Worker processes for a batch whose caller names none: the cores free when it starts.

    The cores this process may use (affinity, cgroup quota) less those other
    processes keep busy, averaged over about 0.2 s (:func:`h5stream.cores.others_running`),
    to the nearest core and at least 1.  On a machine where another program keeps
    one of two cores busy, a second worker process gains nothing (each job gets
    half a core) and costs its start-up; the batch then runs its recordings one
    after another in its own process.
    """
    from h5stream.cores import allowed_cores, others_running, threads_for

    return threads_for(allowed_cores(), others_running(WORKER_SAMPLES, WORKER_SAMPLE_GAP))


def threads_per_worker(workers: int, cores: int | None = None) -> int:
    """Each of ``workers`` jobs side by side gets an equal share of the cores (at least one)."""
    return max(1, (cores or available_cores()) // max(1, workers))


def choose_layout(free: int, recordings: int) -> tuple[int, int]:
    """``(workers, threads per worker)`` that keep ``free`` cores busy with ``recordings`` to run.

    A worker per free core while there are recordings for them all; with fewer
    recordings than cores, one worker per recording, each job's kernels taking
    an equal share of the free cores (16 cores, 4 recordings: 4 workers x 4
    threads), so that recordings x threads covers the cores either way.
    """
    workers = max(1, min(free, recordings))
    return workers, threads_per_worker(workers, max(1, free))


def _limit_loaded_libraries(threads: int) -> None:
    """Cap libraries that were loaded before the variables were set (numba, BLAS, OpenMP)."""
    numba = sys.modules.get("numba")
    if numba is not None:
        with contextlib.suppress(Exception):
            numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    # numpy's OpenBLAS (and any OpenMP runtime) start their threads when they load, which a worker
    # process may already have done (distributed imports numpy): threadpoolctl caps them at run time.
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads)


def _import_steps() -> None:
    """Import every step's module (a worker forked from the batch's fork server has them already).

    Only the imports: every kernel is compiled at install (nothing is left to
    JIT-compile), so running the pipeline on a synthetic recording first, as
    workers once did, only added a recording's work to each worker's start
    (measured: about as long as eight small recordings' jobs on 2 cores).
    """
    import importlib

    from hdmea.steps.table import STEPS

    for module in [step.module for step in STEPS]:
        importlib.import_module(module)


def _warm_up() -> None:
    """Import every step and run the whole pipeline once on a tiny synthetic recording.

    A check that every kernel loads and runs (``python -m hdmea.pipeline.batch.precompile``);
    batch workers only import (:func:`_import_steps`).
    """
    import importlib
    import tempfile

    from hdmea.config import parse_config
    from hdmea.pipeline.run import run_pipeline
    from hdmea.steps.table import STEPS
    from hdmea.synthetic import generate_recording

    for module in [step.module for step in STEPS]:
        importlib.import_module(module)

    with tempfile.TemporaryDirectory(prefix="hdmea-warm-") as tmp, warnings.catch_warnings(), _quiet_logs():
        warnings.simplefilter("ignore")
        made = generate_recording(tmp, "warm", n_units=3, seed=0)
        config = parse_config({"stimulus": {"file": str(made.stimulus_path)}, "steps": {s.name: True for s in STEPS if s.switch},
                               "output": {"checkpoint": False}})
        run_pipeline(made.cmcr_path, made.cmtr_path, Path(tmp) / "warm.h5", config, dataset_id="warm",
                     show_progress=False)


@contextlib.contextmanager
def _quiet_logs():
    """Keep the warm-up's own log lines (its synthetic recording) out of the user's log."""
    loggers = [logging.getLogger(name) for name in ("hdmea", "h5stream", "h5scp")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


@dataclasses.dataclass(frozen=True)
class WorkerSetup:
    """What a batch worker process does once, before its first job.

    ``threads`` caps the numeric libraries (None: leave them alone); ``warm``
    imports every step (:func:`_import_steps`); ``init`` is the caller's own initialiser (e.g.
    logging).  Used as the process pool's initializer, run on every Dask worker
    when the cluster starts, and by each job as a fallback (a worker restarted
    after a crash); it runs once per process whichever comes first.
    """

    threads: int | None = None
    warm: bool = True
    init: Callable[[], None] | None = None

    def __call__(self) -> float:
        """Set this process up unless done already; returns the seconds it took (0.0 when done before)."""
        key = repr(self)  # equal after pickling, unlike the objects themselves
        if key in _SETUP_SECONDS:
            return 0.0
        started = time.perf_counter()
        if self.threads is not None:
            os.environ.update(thread_environment(self.threads))
            _limit_loaded_libraries(self.threads)
        if self.init is not None:
            self.init()
        if self.warm:
            try:
                _import_steps()
            except Exception as exc:  # noqa: BLE001 - warming is an optimisation; the job reports real errors
                logger.warning("worker warm-up failed (%s); jobs start cold", describe_error(exc))
        _SETUP_SECONDS[key] = time.perf_counter() - started
        return _SETUP_SECONDS[key]

    def reported_up_front(self) -> float:
        """Set up now and return the seconds to the caller, so that no job reports them again."""
        seconds = self()
        _SETUP_REPORTED.add(repr(self))
        return seconds


_SETUP_SECONDS: dict[str, float] = {}  # setups this process ran, with their seconds
_SETUP_REPORTED: set[str] = set()  # setups whose seconds went out with a job already


def take_setup_seconds(setup: WorkerSetup | None) -> float:
    """Run this process's setup if needed; its seconds are reported with the first job only."""
    if setup is None:
        return 0.0
    setup()
    key = repr(setup)
    if key in _SETUP_REPORTED:
        return 0.0
    _SETUP_REPORTED.add(key)
    return _SETUP_SECONDS[key]


def exit_without_teardown(code: int = 0) -> None:
    """End this process now with ``code``, skipping the interpreter's teardown.

    Tearing down a process that loaded numba's LLVM takes seconds (longer than
    a Dask nanny waits before killing the worker); every file of a finished
    job is already committed and closed, so there is nothing left to flush but
    the standard streams and log handlers.
    """
    # multiprocessing's own finalizers still run: they release the semaphores
    # this process registered with the parent's resource tracker (a worker forked
    # from the batch's fork server shares that tracker, which otherwise reports
    # them as leaked when the batch ends).
    import multiprocessing.util  # noqa: F401  (its finalizers run: h5stream.stops.end_process)

    from h5stream.stops import end_process

    end_process(code)

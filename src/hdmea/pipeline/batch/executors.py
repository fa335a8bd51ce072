"""The executors a batch submits to, and the choice among them (:func:`make_pool`): a process pool rebuilt
when a worker dies (the default on one machine), a local Dask cluster (``scheduler="local"``), a Dask
scheduler's address, a given ``concurrent.futures`` executor or Dask client, or a SLURM cluster; each is
handed to the engine as a :class:`~hdmea.pipeline.batch.pool.Pool`.

On one machine the default is a process pool whose workers fork from one server
process that imported the pipeline's modules once (:func:`_forkserver_preload`):
a worker starts in milliseconds, imports nothing itself, and no scheduler, nanny
or heartbeat runs beside the jobs.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import logging
import os
from collections.abc import Callable
from typing import Any

from h5stream.cores import quiet_waits
from hdmea.pipeline.batch.failures import describe_error
from hdmea.pipeline.batch.pool import Pool
from hdmea.pipeline.batch.workers import WorkerSetup, available_cores, exit_without_teardown, thread_environment
from hdmea.progress import STOP_NOTE, counted

__all__ = ["make_pool", "in_process_pool", "slurm_cluster", "slurm_client", "LOCAL_DASK"]

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())


class _StoppableProcessPool(cf.ProcessPoolExecutor):
    """A process pool whose workers each run a thread that stops their job when :meth:`stop_jobs` is called.

    Signals do that on POSIX; this is the way on systems where a signal sent to
    another process ends it without running its handler (Windows' SIGTERM).
    """

    def __init__(self, workers: int, context: Any, setup: WorkerSetup | None) -> None:
        # Nothing the driver does here waits for a worker: a multiprocessing.Event's set() waits until each
        # worker waiting on it has woken, for ever when one of them has died meanwhile (a SIGTERM to the process
        # group ends an idle worker): a stopped batch's driver hung there.  A semaphore's release never waits,
        # and the name lies in memory without a lock a dead worker could hold.
        self._stop_told = context.Semaphore(0)
        self._stop_name = context.RawArray("c", 32)
        super().__init__(max_workers=workers, mp_context=context, initializer=_start_worker,
                         initargs=(self._stop_told, self._stop_name, setup))

    def stop_jobs(self, signal_name: str) -> None:
        self._stop_name.value = signal_name.encode("ascii", "replace")[:31]
        self._stop_told.release()  # each worker that takes it gives it back for the next


def _start_worker(stop_told: Any, stop_name: Any, setup: WorkerSetup | None) -> None:
    """A process pool worker's start: the thread that waits for the driver's stop, then the setup."""
    import threading

    threading.Thread(target=_stop_when_told, args=(stop_told, stop_name), name="hdmea-stop-watch",
                     daemon=True).start()
    if setup is not None:
        setup()


#: seconds between two looks of a pool's worker at its driver (a worker whose driver has gone ends)
DRIVER_CHECK_SECONDS = 0.5
#: the status of a pool's worker that ended because its driver had (EX_TEMPFAIL: run the batch again)
EXIT_DRIVER_GONE = 75


def _stop_when_told(stop_told: Any, stop_name: Any) -> None:
    import multiprocessing

    from hdmea.pipeline.batch.preemption import stop_jobs

    driver = multiprocessing.parent_process()
    while not stop_told.acquire(timeout=DRIVER_CHECK_SECONDS):
        if driver is not None and not driver.is_alive():
            _end_without_driver(driver.pid)
            return
    stop_told.release()  # for the pool's other workers
    name = stop_name.value.decode("ascii", "replace") or "SIGTERM"
    logger.warning("%s passed on by the batch's driver: stopping, keeping what is finished", name, extra=STOP_NOTE)
    stop_jobs(name)


def _end_without_driver(pid: int | None) -> None:
    """The batch's driver ended without ending this worker (a stop that cut its pool's shutdown short, a kill):
    the running job is stopped (it keeps its finished steps) and the worker ends once it has, instead of
    waiting for ever for work no one will send."""
    import threading

    from hdmea.pipeline.batch.preemption import jobs_running, stop_jobs

    # not on the terminal: the command has ended and said how
    logger.debug("the batch's driver (process %s) has ended: stopping, keeping what is finished", pid)
    stop_jobs("SIGTERM")
    pause = threading.Event()  # never set: a bounded pause between two looks
    while jobs_running():
        pause.wait(DRIVER_CHECK_SECONDS)
    exit_without_teardown(EXIT_DRIVER_GONE)


def _process_pool(workers: int, setup: WorkerSetup | None = None) -> Pool:
    import multiprocessing

    from h5stream import capabilities

    # forkserver: workers start from a clean process (no inherited threads or open
    # HDF5 handles of the driver) yet faster than spawn.
    context = multiprocessing.get_context("forkserver" if capabilities.fork_server() else "spawn")

    def make() -> cf.Executor:
        # The setup runs when a worker starts (also in a rebuilt pool), before any job.
        executor = _StoppableProcessPool(workers, context, setup)
        # The pool starts a worker per submission while none is idle: a first task per worker starts
        # them all now, beside the batch's input checks, instead of after them with the first recordings.
        with _started_without_ctrl_c():  # a fork server not started yet starts here
            for _ in range(workers):
                executor.submit(os.getpid)
        return executor

    pool = Pool(make(), owned=True, slots=workers, name=f"process pool, {counted(workers, 'worker')}",
                 rebuild=make)
    pool.local_workers = workers
    return pool


def in_process_pool() -> Pool:
    """Jobs one after another on one thread of this process: no worker process to start or warm up.

    For a batch on a machine with one core free, where a second process gains
    nothing, or of a single recording (its kernels then take the free cores).
    A job that kills its process (a crash in a compiled library, the
    kernel's out-of-memory killer) ends the batch with it; the finished outputs
    stay finished, and running the batch again resumes after them.
    """
    executor = cf.ThreadPoolExecutor(1, thread_name_prefix="hdmea-batch-job")
    pool = Pool(executor, owned=True, slots=1, name="this process, one recording after another")
    pool.local_workers = 1
    return pool


def _fast_exit_plugin():
    from distributed import WorkerPlugin

    class FastExit(WorkerPlugin):
        """Ends a worker process of a cluster the batch owns as soon as the worker has closed."""

        name = "hdmea-fast-exit"

        def teardown(self, worker) -> None:
            exit_without_teardown()

    return FastExit()


def _forkserver_preload(setup: WorkerSetup | None, *, dask: bool = False) -> list[str]:
    """Modules the workers' fork server imports once, so that no worker imports them itself.

    Every worker process of a warmed-up batch imports numpy, h5py (and distributed,
    for a Dask worker: ``dask``) and every step's module before its first job: seconds each, paid
    by each worker at the same time (twice the CPU of one start on two cores, and
    twice the wait on a machine other users keep busy).  On POSIX the workers
    fork from one server process that imported them once (the same modules of
    the same files: forking copies them).  Nothing runs in the server but
    imports: no thread pool of numba or OpenMP has started, and each worker still
    sets its own thread limits (:class:`WorkerSetup`).  Empty (the default spawn
    start) elsewhere.

    The first module, :mod:`h5stream.quiet_start`, puts :data:`h5stream.cores.QUIET_WAITS` in the server's
    environment before anything loads numpy or the kernels' OpenMP runtime, for jobs not warmed up too
    (their server imports only it): the workers' idle library threads sleep instead of spinning on the
    cores beside the jobs.  Measured on a 16-core node: OpenBLAS's fifteen idle threads spin about 0.1 s
    each after they start, in every process that imports numpy, and libgomp's after each parallel region.
    """
    from h5stream import capabilities

    if not capabilities.fork_server() or setup is None:
        return []
    first = [_QUIET_START] if dask else [_QUIET_START, _SERVER_SIGNALS]
    if not setup.warm:
        return first
    from hdmea.steps.table import STEPS

    return list(dict.fromkeys([*first, *(["distributed"] if dask else []), "numpy", "h5py",
                               "hdmea.pipeline.batch", *(step.module for step in STEPS)]))


#: the module the workers' fork server imports first (:func:`_forkserver_preload`)
_QUIET_START = "h5stream.quiet_start"
#: then, for a process pool's server: it outlives a SIGTERM to the batch's process group
_SERVER_SIGNALS = "hdmea.pipeline.batch.server_signals"
#: its ``DRIVER_VARIABLE`` (a test holds the two together: importing that module here would change this process's
#: own SIGTERM handling)
_DRIVER_VARIABLE = "HDMEA_BATCH_DRIVER_PID"


def _start_fork_server(setup: WorkerSetup | None, *, dask: bool = False) -> bool:
    """Start the workers' fork server now, with :func:`_forkserver_preload`'s modules; whether it was asked to.

    :func:`multiprocessing.forkserver.ensure_running` returns once the server
    process exists; the server imports its modules on its own, and the first
    worker it forks waits for them.  A server already running in this process
    (an earlier batch) is kept, with the modules it has.
    """
    preload = _forkserver_preload(setup, dask=dask)
    if not preload:
        return False
    import multiprocessing
    from multiprocessing import forkserver

    multiprocessing.get_context("forkserver").set_forkserver_preload(preload)
    if _SERVER_SIGNALS in preload:  # the server's workers know their driver by it (server_signals.driver_ended)
        os.environ[_DRIVER_VARIABLE] = str(os.getpid())
    with _started_without_ctrl_c():
        forkserver.ensure_running()
    return True


@contextlib.contextmanager
def _started_without_ctrl_c():
    """Processes started inside (the fork server, and the workers it forks) hold SIGINT blocked, as this thread
    does meanwhile (a child inherits its parent's signal mask, across exec too): a Ctrl-C to the process group
    while the server imports its modules would print its traceback and end it.  The driver takes the Ctrl-C
    and passes the stop on.  The batch starts its pool on a thread of its own
    (:func:`hdmea.pipeline.batch.pool.started_aside`), so the main thread takes the signal meanwhile; on the
    main thread itself, the signal goes to another thread, whose handler notes it for this one (Python runs its
    handlers in the main thread), or waits until the mask is back.
    """
    import signal

    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    from multiprocessing import resource_tracker

    # started first: its start unblocks SIGINT in the calling thread when done (it holds it meanwhile, as here)
    resource_tracker.ensure_running()
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


#: Dask's periodic callbacks, slowed down for a local batch of long jobs.  Every
#: scheduler, nanny and worker process wakes its event loop at these intervals, and
#: in a worker each wake-up takes the GIL from the job's thread; on a machine whose
#: cores all run jobs, every such wake-up also takes a core from a job.  By default
#: the event loop's health check runs every 20 ms, the system monitor (CPU, memory,
#: disk counters) every 500 ms and the memory monitor every 100 ms.  Measured on 2
#: cores, 6 warm jobs on 2 workers, 6 interleaved rounds: 29.6 s (median) with the
#: defaults, 27.2 s with these, 27.5 s for a process pool (the first 3 rounds still
#: had the disk counters on and the health check's cycle at 1 s).  Work stealing is off:
#: the jobs of a batch wait in the scheduler's queue until a worker is free, so
#: there is nothing to steal, and its callback runs every second.  The memory
#: monitor still ends a worker that passes its memory limit, within a second.
_QUIET_TIMERS = {
    "distributed.admin.tick.interval": "1s",
    "distributed.admin.tick.cycle": "10s",
    "distributed.admin.system-monitor.interval": "5s",
    "distributed.admin.system-monitor.disk": False,
    "distributed.worker.memory.monitor-interval": "1s",
    "distributed.scheduler.work-stealing": False,
}


def _dask_local_cluster(workers: int, setup: WorkerSetup | None = None) -> Pool | None:
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        return None
    # allowed_failures=0: a task whose worker dies comes back to us at once as
    # KilledWorker, so the batch's own retry count applies (the nanny restarts the worker).
    # The nanny sets ``env`` in each worker process before it unpickles any task,
    # hence before numba or OpenMP load and read their thread counts (and their waits:
    # QUIET_WAITS, also in the fork server's environment, see _forkserver_preload).
    env = {**quiet_waits(),
           **(thread_environment(setup.threads) if setup is not None and setup.threads is not None else {})}
    import dask

    settings = {"distributed.worker.profile.enabled": False,
                "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
                **_QUIET_TIMERS}
    preload = _forkserver_preload(setup, dask=True)
    if preload:
        settings["distributed.worker.multiprocessing-method"] = "forkserver"
    try:
        # No statistical profiler in the workers: it samples the job's thread every
        # 10 ms for a dashboard nobody watches, taking the GIL from long numeric jobs.
        # No MALLOC_TRIM_THRESHOLD_ in the workers' environment either: the nanny sets
        # it by default, and any value turns off glibc's adaptive mmap threshold, so
        # every large numpy temporary is mapped and unmapped again (page faults on each
        # use); jobs ran 5-10% slower with it.  The nannies keep this configuration
        # for the workers they restart.  No dashboard: its pages (bokeh) take 0.5-0.9 s to start
        # in this process; a batch to watch runs on a client the user started.  The scheduler's
        # HTTP server (health and metrics routes) listens on a free local port, never on another
        # batch's 8787.
        with dask.config.set(settings):
            if preload:
                from distributed.utils import get_mp_context

                get_mp_context().set_forkserver_preload(preload)
            cluster = LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True,
                dashboard_address="127.0.0.1:0", scheduler_kwargs={"allowed_failures": 0, "dashboard": False},
                env=env or None,
            )
    except (OSError, RuntimeError, TimeoutError) as exc:  # e.g. no local TCP ports
        logger.warning("a Dask LocalCluster could not start (%s); using a process pool", describe_error(exc))
        return None
    client = Client(cluster)
    client.register_plugin(_fast_exit_plugin())

    def close() -> None:
        # Workers end at once when they close (FastExit), so the scheduler's last send to one may
        # find its connection gone: distributed logs that as an INFO record with a traceback.
        batched = logging.getLogger("distributed.batched")
        level = batched.level
        batched.setLevel(logging.WARNING)
        try:
            client.close()
            cluster.close()
        finally:
            batched.setLevel(level)

    pool = _dask_client_pool(client, owned=True, name=f"dask LocalCluster, {counted(workers, 'worker')}",
                             close=close)
    pool.local_workers = workers
    if setup is not None:
        # Every worker sets itself up at once, side by side; a worker the nanny
        # restarts later does it before its first job instead.
        pool.setup_seconds = {str(k): float(v) for k, v in client.run(setup.reported_up_front).items()}
    return pool


def _dask_client_pool(client: Any, *, owned: bool, name: str,
                      close: Callable[[], None] | None = None) -> Pool:
    return Pool(None, owned=owned, slots=None, name=name, close=close if owned else (lambda: None),
                client=client)


def _is_dask_client(obj: Any) -> bool:
    try:
        from distributed import Client
    except ImportError:
        return False
    return isinstance(obj, Client)


def slurm_cluster(slurm_options: Any) -> Any:
    """A dask-jobqueue ``SLURMCluster`` built from options, not yet scaled (no job submitted).

    ``slurm_options`` is a :class:`hdmea.config.SlurmConfig` or a dict of
    ``SLURMCluster`` keyword arguments (``cores``, ``memory``, ``walltime``,
    ``queue``, ``account``, ...).  ``cluster.job_script()`` shows what would be
    submitted.
    """
    try:
        from dask_jobqueue import SLURMCluster
    except ImportError as exc:
        raise ImportError(
            "SLURM clusters need dask-jobqueue: pip install 'h5stream[batch]'"
        ) from exc
    kwargs = slurm_options.cluster_kwargs() if hasattr(slurm_options, "cluster_kwargs") else dict(slurm_options)
    # Workers run one job at a time in processes (the jobs hold the GIL in places),
    # and a task whose worker dies comes back to the batch at once.
    kwargs.setdefault("scheduler_options", {"dashboard_address": ":0"})
    return SLURMCluster(**kwargs)


def slurm_client(slurm_options: Any, *, jobs: int | None = None) -> Any:
    """A dask ``Client`` on a :func:`slurm_cluster` scaled to ``jobs`` SLURM jobs.

    ``jobs`` defaults to ``slurm_options.jobs`` (or 1).  Close the client and
    then ``client.cluster`` when done (the SLURM jobs end with them).
    """
    from distributed import Client

    cluster = slurm_cluster(slurm_options)
    cluster.scale(jobs=jobs or getattr(slurm_options, "jobs", None) or 1)
    return Client(cluster)


#: ``scheduler=LOCAL_DASK``: the batch starts a Dask LocalCluster of its own instead of its process pool
LOCAL_DASK = "local"


def make_pool(executor: Any, workers: int | None, scheduler: str | None,
               setup: WorkerSetup | None = None) -> Pool:
    n = workers or available_cores()
    if executor is None and scheduler == LOCAL_DASK:
        # The fork server imports the workers' modules on another core while this
        # process imports distributed and starts the scheduler.
        _start_fork_server(setup, dask=True)
        pool = _dask_local_cluster(n, setup)
        return pool if pool is not None else _process_pool(n, setup)
    if executor is None and scheduler is not None:
        from distributed import Client

        client = Client(scheduler)
        return _dask_client_pool(client, owned=True, name=f"dask scheduler {scheduler}",
                                 close=client.close)
    if executor is None:
        # The fork server imports the workers' modules once (beside this process's checks);
        # each worker then forks from it.
        _start_fork_server(setup)
        return _process_pool(n, setup)
    if _is_dask_client(executor):
        cluster = getattr(executor, "cluster", None)
        return _dask_client_pool(executor, owned=False,
                                 name=f"dask client {executor.scheduler.address if executor.scheduler else ''}"
                                 + (f" ({type(cluster).__name__})" if cluster is not None else ""))
    if isinstance(executor, cf.Executor):
        slots = getattr(executor, "_max_workers", None)
        rebuild = None
        if isinstance(executor, cf.ProcessPoolExecutor):
            context = getattr(executor, "_mp_context", None)

            def rebuild() -> cf.Executor:  # a replacement of the same size, owned by the batch
                return cf.ProcessPoolExecutor(max_workers=slots, mp_context=context)
        return Pool(executor, owned=False, slots=slots, name=type(executor).__name__,
                     close=lambda: None, rebuild=rebuild)
    raise TypeError(
        f"executor must be a concurrent.futures.Executor or a dask Client, not {type(executor).__name__}"
    )

"""The batch loop: submit one job per recording, collect outcomes, retry infrastructure failures.

What is checked before a recording runs (finished already, inputs readable, preflight) is
:mod:`hdmea.pipeline.batch.prechecks`'."""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import logging
import os
import queue as queue_module
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from hdmea.config import PipelineConfig
from hdmea.errors import ConfigError
from hdmea.pipeline.batch.executors import LOCAL_DASK, in_process_pool, make_pool
from hdmea.pipeline.batch.pool import STOPPED_POOL_GRACE_SECONDS, Pool, started_aside
from hdmea.pipeline.batch.prechecks import _check_inputs, _finished_results
from hdmea.pipeline.batch.failures import ERROR, HELD, INFRASTRUCTURE, classify_error, describe_error, error_type
from hdmea.pipeline.batch.preemption import (
    Preempted,
    describe_stop,
    raise_if_stopped,
    shielded,
    signals_noted,
    stop_requested,
)
from hdmea.pipeline.batch.jobs import JobCall, JobFunction, run_pipeline_job
from hdmea.pipeline.batch.recordings import (
    Recording,
    checkpoint_path_for,
    discover_recordings,
    new_batch_id,
    output_path_for,
)
from hdmea.pipeline.batch.summary import BatchSummary, RecordingResult
from hdmea.pipeline.batch.workers import (
    WorkerSetup,
    available_cores,
    choose_layout,
    free_workers,
    threads_per_worker,
)
from hdmea.pipeline.preflight import (
    CreatedFolders,
    PreflightError,
    check_output_folder,
    check_run,
)
from hdmea.progress import STOP_NOTE, counted, progress

__all__ = ["run_batch"]

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())


#: seconds between two log lines saying why a cluster's batch waits for workers
WAIT_REPORT_SECONDS = 10.0


def run_batch(
    recordings: str | os.PathLike | Iterable[Any],
    config: PipelineConfig | None,
    out_dir: str | os.PathLike,
    executor: Any = None,
    retries: int | None = None,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    job: JobFunction | None = None,
    worker_init: Callable[[], None] | None = None,
    show_progress: bool | None = None,
    verify_inputs: bool = True,
) -> BatchSummary:
    """Process many recordings, one idempotent job each, and report how each ended.

    Parameters
    ----------
    recordings
        A directory of ``.cmcr``/``.cmtr`` pairs, a list file, or an iterable of
        :class:`Recording` / ``(cmcr, cmtr)`` pairs (see :func:`discover_recordings`).
    config
        The pipeline configuration (default: an empty :class:`PipelineConfig`).
    out_dir
        Directory of the outputs ``<name>.h5`` (created if missing, and removed
        again when the batch fails and leaves it empty).
    executor
        Any ``concurrent.futures.Executor`` or a dask ``Client``.  None: a pool of
        ``workers`` worker processes forked from one server process that imported
        the pipeline once, rebuilt when a worker dies (``scheduler="local"``: a Dask
        ``LocalCluster`` of ``workers`` processes instead).  The batch never shuts
        down an executor it was given.
    retries
        How many times a recording is tried again after an infrastructure error
        (killed worker, out of memory, a transient I/O error); data errors and
        the user's errors (permissions, read-only filesystem, full disk) are
        never retried.
        Default: ``config.batch.retries``.
    workers
        Worker processes of the default executor (default: ``config.batch.workers``,
        else chosen so that the cores free when the batch starts are busy
        (:func:`choose_layout`): a worker per free core, but no more workers than
        recordings, each job's kernels taking the free cores // workers threads;
        with only one core free, no worker process is started and the recordings
        run one after another on a thread of this process, their kernels on one
        thread unless ``config.batch.threads_per_job`` says otherwise).  The
        summary states the layout (``layout``: cores, workers, threads per
        worker, cores kept busy).
    scheduler
        Address of a running Dask scheduler to use instead of a local pool, or
        ``"local"`` for a Dask ``LocalCluster`` of the batch's own.
    job
        ``job(recording, output, config) -> dict``: the work for one recording
        (default: the whole pipeline).  Must be picklable.
    worker_init
        Called once in each worker process before its first job (e.g. logging setup).
        Worker processes of this machine also cap their numeric libraries at
        their share of the cores (``config.batch.threads_per_job``, default
        cores // workers) and, for the pipeline job, warm up once (imports and
        compiled kernels) before their first recording; that setup is not part
        of a recording's time but is part of the batch's wall time, and the
        summary reports it (``startup_seconds``, ``worker_setup_seconds``).
    show_progress
        Progress bar / log lines: None decides from the terminal.
    verify_inputs
        Read each recording's ``.cmcr``/``.cmtr`` in a separate process first
        (:func:`hdmea.io.mcs.verify_recordings`, pipeline job only): a file that
        crashes or hangs libhdf5, or that a read refuses, fails its own recording
        (kind ``"data"``) and the batch goes on.

    Returns
    -------
    BatchSummary
        One :class:`RecordingResult` per recording, in input order.

    Before any job is submitted, the driver skips every recording already
    finished with this configuration (when that is all of them, it returns
    at once, without starting workers) and checks the rest
    (:func:`hdmea.pipeline.preflight.check_run`): a recording whose inputs do
    not exist or do not open as ``.cmcr``/``.cmtr`` files is failed without
    running (kind ``"user"`` or ``"data"``), every such problem logged at once;
    an output folder that cannot be created or written, or a disk without
    room for the outputs, raises :class:`~hdmea.pipeline.preflight.PreflightError`
    listing every problem, and no job is started.  The inputs are checked while
    the executor starts and its workers warm up (a default executor started
    meanwhile is closed again when nothing can run).  Errors of the user's
    setup met later (permissions, read-only filesystem, full disk) are kind
    ``"user"`` and never retried.

    Ctrl-C in a program that imported :mod:`hdmea` is never raised where
    Python would drop it or leave the import lock held
    (:func:`h5stream.stops.ctrl_c`), also while the batch's modules are
    still being imported; one a library took before ends the batch at its start.
    """
    raise_if_stopped()  # a stop taken before the batch by a library (h5stream.stops.recorded) ends it here
    config = config if config is not None else PipelineConfig()
    retries = config.batch.retries if retries is None else retries
    if retries < 0:
        raise ConfigError("retries must be >= 0", found=repr(retries))
    workers = workers if workers is not None else config.batch.workers
    scheduler = scheduler if scheduler is not None else (
        config.batch.scheduler if executor is None else None)
    local = executor is None and scheduler in (None, LOCAL_DASK)
    # Without a count from the caller, the batch takes the cores free when it starts.
    choose_workers = workers is None and local
    started = time.perf_counter()
    batch_id = new_batch_id()
    items = discover_recordings(recordings)
    out_dir = Path(out_dir)
    job = job if job is not None else run_pipeline_job
    outputs = [output_path_for(r, out_dir) for r in items]
    finished = _finished_results(items, outputs, config)
    todo = [i for i in range(len(items)) if i not in finished]
    if not todo:
        # Nothing to do: no cluster is started, no folder is checked or created.
        summary = BatchSummary(results=[finished[i] for i in range(len(items))],
                               seconds=time.perf_counter() - started, executor="none (nothing to do)",
                               batch_id=batch_id)
        logger.info("all %s finished already with this configuration; nothing to do",
                    counted(len(items), "recording"))
        return summary
    # The output folder first: a batch that cannot write its results starts nothing at all,
    # not even the input checks in another process; the inputs' existence is reported with it.
    unwritable = check_output_folder(out_dir)
    if unwritable:
        missing = check_run([items[i] for i in todo], [], config, open_files=False)
        raise PreflightError(unwritable + missing.all_problems)
    # The inputs' checks (reading them in a separate process, then opening them here) take
    # about as long per recording as a small recording's work; they run on a thread while
    # the executor starts and its workers warm up, which take seconds and need none of them.
    # No job is submitted before every check is done (a stop inside their submission leaves nothing to cancel).
    pipeline = job is run_pipeline_job
    free = None
    if choose_workers:
        # Measured before the checks start: their separate reading process is the batch's own work.
        free = free_workers()
        workers, _ = choose_layout(free, len(todo))
    checker, checked = cf.ThreadPoolExecutor(1, thread_name_prefix="hdmea-batch-checks"), cf.Future()
    try:
        checked = checker.submit(_check_inputs, items, outputs, todo, config,
                                 verify=verify_inputs and pipeline, open_files=pipeline)

        def start() -> tuple[Pool, Any, PipelineConfig]:
            return _start_pool(executor, workers, scheduler, config, warm=pipeline, worker_init=worker_init,
                               in_process=choose_workers and workers == 1, cores=free)

        if executor is None and scheduler is None:
            # The batch's own process pool starts aside; a stop ends the batch at once and the pool's workers
            # as soon as they exist (never left starting after this process has gone).
            pool, setup, config = started_aside(start, lambda made: made[0].close(stopped=True, before_jobs=True))
        else:
            with shielded():  # a stop waits for the pool to be whole, then ends the batch below, the pool closed
                pool, setup, config = start()
        try:
            raise_if_stopped()
            unverified, report = checked.result()
            if report.shared:
                raise PreflightError(report.all_problems)
        except BaseException:
            pool.close(stopped=bool(stop_requested()), before_jobs=True)
            raise
    except BaseException as exc:
        checked.cancel()
        if stop_requested() and not isinstance(exc, Preempted):
            raise Preempted(stop_requested()) from None  # a worker's start or the checks cut short by the stop
        raise
    finally:
        # after a stop the checks are not waited for (their reading process ends with the same stop)
        checker.shutdown(wait=not stop_requested(), cancel_futures=True)
    todo = [i for i in todo if i not in unverified]
    refused = {i: report.problems[items[i].name] for i in todo if items[i].name in report.problems}
    refused.update(unverified)
    if refused:
        logger.error("%s cannot start and %s not submitted:\n%s", counted(len(refused), "recording"),
                     "is" if len(refused) == 1 else "are",
                     "\n".join(f"  {p}" for problems in refused.values() for p in problems))
    todo = [i for i in todo if i not in refused]
    if finished:
        logger.info("%s finished already, skipped", counted(len(finished), "recording"))
    results: list[RecordingResult | None] = [finished.get(i) for i in range(len(items))]
    for i, problems in refused.items():
        results[i] = RecordingResult(
            name=items[i].name, output=outputs[i], status="failed", kind=problems[0].kind,
            error="; ".join(f"{p.path}: {p.what}. {p.hint}" for p in problems),
            error_type=next((p.error_type for p in problems if p.error_type), None))
    if not todo:
        pool.close()
        return BatchSummary(results=results, seconds=time.perf_counter() - started,
                            executor="no workers started: every recording was refused before its first step",
                            batch_id=batch_id)
    folders = CreatedFolders(out_dir)
    call = JobCall(job, setup, batch_id)
    layout = _layout(pool, config, len(todo), free)
    startup_seconds = time.perf_counter() - started
    logger.info("batch of %s on %s", counted(len(todo), "recording"), pool.name)
    stopped_by: list[str] = []
    try:
        ran = _run_all(pool, call, [items[i] for i in todo], out_dir, config, retries, show_progress,
                       stopped_by)
    except BaseException:
        folders.remove_if_empty()
        raise
    finally:
        pool.close(stopped=bool(stopped_by or stop_requested()))
    for i, result in zip(todo, ran):
        results[i] = result
    summary = BatchSummary(results=results, seconds=time.perf_counter() - started, executor=pool.name,
                           startup_seconds=startup_seconds,
                           worker_setup_seconds=_setup_times(pool.setup_seconds, results),
                           stopped_by=stopped_by[0] if stopped_by else None, batch_id=batch_id,
                           layout=layout)
    if summary.stopped_by:
        logger.warning("batch stopped by %s: %d done, %d preempted (resumable), %d failed in %.2f s",
                       summary.stopped_by, len(summary.done), len(summary.preempted), len(summary.failed),
                       summary.seconds, extra=STOP_NOTE)
    else:
        logger.info("batch finished: %d done, %d skipped, %d held by other processes, %d failed in %.2f s",
                    len(summary.done), len(summary.skipped), len(summary.held), len(summary.failed),
                    summary.seconds)
    return summary


def _start_pool(executor: Any, workers: int | None, scheduler: str | None, config: PipelineConfig, *,
                warm: bool, worker_init: Callable[[], None] | None,
                in_process: bool = False, cores: int | None = None) -> tuple[Pool, WorkerSetup, PipelineConfig]:
    """The executor, what each of its workers does before its first job, and the configuration the jobs get.

    Only the pipeline job gains from importing the steps up front (``warm``).
    ``cores``: the cores free when the batch started, when the batch chose its
    layout (:func:`choose_layout`), else None (the machine's cores are shared).
    ``in_process``: one worker is all the batch needs (one core free, or one
    recording), the jobs run on a thread of this process (nothing to start or
    warm: the first job pays its imports, as it would alone), and their kernels
    take the free cores, as a worker's take its share: kernels that choose their
    threads call by call can take more and then lose to the other programs at
    each barrier.  A ``threads_per_job`` the configuration names wins.
    """
    if in_process:
        free = cores or 1
        logger.info("%s of %s free: the recordings run one after another in this process",
                    free, counted(available_cores(), "core"))
        pool, setup, threads = in_process_pool(), WorkerSetup(threads=None, warm=False, init=worker_init), free
    else:
        local_setup = None
        if executor is None and scheduler in (None, LOCAL_DASK):
            # Worker processes of this machine side by side split its cores: each job's
            # kernels get their share, and each worker's libraries are capped to it.
            share = config.batch.threads_per_job or threads_per_worker(workers or available_cores(), cores)
            local_setup = WorkerSetup(threads=share, warm=warm, init=worker_init)
        pool = make_pool(executor, workers, scheduler, local_setup)
        setup = local_setup if pool.local_workers else WorkerSetup(threads=None, warm=warm, init=worker_init)
        if isinstance(executor, cf.ThreadPoolExecutor):
            # Threads of this process: nothing to set up per worker, nothing to warm.
            setup = WorkerSetup(threads=None, warm=False, init=worker_init)
        threads = setup.threads
    if config.batch.threads_per_job is None and threads is not None:
        config = dataclasses.replace(config, batch=dataclasses.replace(config.batch, threads_per_job=threads))
    return pool, setup, config


def _layout(pool: Pool, config: PipelineConfig, recordings: int, free: int | None) -> dict:
    """How the batch uses this machine's cores (empty for workers elsewhere: a scheduler, a given executor)."""
    workers = pool.local_workers
    threads = config.batch.threads_per_job
    if workers is None or threads is None:
        return {}
    layout = {"cores": available_cores(), "free_cores": free, "workers": workers, "threads_per_worker": threads,
              "busy_cores": min(workers, recordings) * threads}
    logger.info("layout: %s x %s for %s = %d of %s busy%s", counted(workers, "worker"),
                counted(threads, "thread"), counted(recordings, "recording"), layout["busy_cores"],
                counted(layout["cores"], "core"), "" if free is None else f" ({free} free when it started)")
    return layout


def _setup_times(up_front: dict[str, float], results: Sequence[RecordingResult]) -> list[float]:
    """Seconds each worker spent on its setup: at cluster start, or reported with its first job."""
    times = [t for t in up_front.values() if t > 0]
    times += [r.worker_setup_seconds for r in results if r.worker_setup_seconds > 0]
    return times


def _run_all(pool: Pool, call: JobCall, items: Sequence[Recording], out_dir: Path,
             config: PipelineConfig, retries: int, show_progress: bool | None,
             stopped_by: list[str]) -> list[RecordingResult]:
    """Every recording's result; ``stopped_by`` gets the signal that stopped the batch, if one did."""
    results = [RecordingResult(name=r.name, output=output_path_for(r, out_dir)) for r in items]
    queue: list[int] = list(range(len(items)))  # indices waiting for a submission
    # futures of the pool: concurrent.futures ones, or a Dask client's own
    running: dict[Any, int] = {}
    generation: dict[Any, int] = {}  # which incarnation of the pool ran the future
    max_attempts = 1 + retries
    completed: queue_module.SimpleQueue[Any] = queue_module.SimpleQueue()  # futures that ended
    stopping: list[str] = []  # the signal that stopped this batch, once one did

    def finish(index: int, outcome: dict) -> None:
        res = results[index]
        if outcome["status"] == "skipped" and call.batch is not None and outcome.get("finished_by") == call.batch:
            # Finished by this batch (its marker names it): a worker died after the job but before
            # its result was collected, and the rerun found the finished output.  A recording
            # another batch finished meanwhile stays "skipped", naming that batch.
            outcome = dict(outcome, status="done", seconds=outcome.get("job_seconds", 0.0))
        res.status = outcome["status"]
        res.seconds += outcome.get("seconds", 0.0)
        res.worker_setup_seconds += outcome.get("worker_setup_seconds", 0.0)
        res.detail = outcome.get("detail", {}) or {}
        res.finished_by = outcome.get("finished_by")
        res.note = outcome.get("note")
        if outcome["status"] in ("failed", "held"):
            res.kind = outcome.get("kind")
            res.error = outcome.get("error")
            res.error_type = outcome.get("error_type")
            res.holder = outcome.get("holder")
        elif outcome["status"] == "preempted":
            res.kind = None
            res.error = outcome.get("message")
            res.error_type = None
            res.detail = _preempted_detail(outcome)
        else:
            res.kind = None
            res.error = None
            res.error_type = None
        bar.update(1)

    def failed_attempt(index: int, kind: str, error: str, seconds: float = 0.0,
                       error_type: str | None = None) -> None:
        res = results[index]
        res.errors.append(f"attempt {res.attempts}: [{kind}] {error}")
        res.error_types.append(error_type)
        res.seconds += seconds
        if kind == INFRASTRUCTURE and res.attempts < max_attempts and not stopping:
            logger.warning("%s: attempt %d failed (%s); trying again", res.name, res.attempts, error)
            queue.append(index)
            return
        if kind == INFRASTRUCTURE and stopping:
            # its worker ended by the same stop (a SIGTERM to every process of the job) before or between
            # jobs: stopped, not failed, with what its checkpoint holds from before
            finish(index, _not_run(stopping[0], res.name, res.output))
            return
        # Another process's claim: reported as held, not retried (its holder may run for hours).
        finish(index, {"status": "held" if kind == HELD else "failed", "kind": kind, "error": error,
                       "error_type": error_type})

    def submit_more() -> None:
        if pool.slots is None and len(queue) > 1:
            # An executor without a slot limit (Dask) takes the whole queue as one submission.
            batch = list(queue)
            for index in batch:
                results[index].attempts += 1
            futures = pool.submit_many(call, [items[i] for i in batch], [results[i].output for i in batch],
                                       [config] * len(batch), [results[i].attempts for i in batch])
            queue.clear()
            for index, future in zip(batch, futures):
                track(future, index)
            return
        while queue and (pool.slots is None or len(running) < pool.slots):
            index = queue.pop(0)
            results[index].attempts += 1
            try:
                future = pool.submit(call, items[index], results[index].output, config, results[index].attempts)
            except cf.BrokenExecutor as exc:
                results[index].attempts -= 1
                queue.insert(0, index)
                if not pool.can_rebuild():
                    for i in list(queue):
                        results[i].attempts += 1
                        finish(i, {"status": "failed", "kind": INFRASTRUCTURE,
                                   "error": f"the executor is broken: {describe_error(exc)}",
                                   "error_type": error_type(exc)})
                    queue.clear()
                    return
                pool.rebuild()
                continue
            track(future, index)

    def track(future: Any, index: int) -> None:
        running[future] = index
        generation[future] = pool.rebuilds
        future.add_done_callback(completed.put)

    def stop(signal_name: str) -> None:
        # Tell every running job to checkpoint and end; those not started end without running.
        stopping.append(signal_name)
        logger.warning("%s received: the %s running keep what they finished, the %s waiting do not start",
                       signal_name, counted(len(running), "recording"), counted(len(queue), "recording"),
                       extra=STOP_NOTE)
        for index in list(queue):
            results[index].attempts += 1
            finish(index, _not_run(signal_name, items[index].name, results[index].output))
        queue.clear()
        try:
            pool.stop_jobs(signal_name)
        except Exception as exc:  # noqa: BLE001 - the jobs still end, at worst when the cluster closes
            logger.error("could not pass %s on to the workers: %s", signal_name, describe_error(exc))

    # A stop signal in this process is noted by the handler (which also stops any job on a thread of this
    # process) and acted on here, between two waits, so no outcome is lost half-processed.
    def note_lost_jobs() -> None:
        # A worker that left while running a job (a cancelled SLURM job): Dask runs the task again
        # elsewhere by itself; it counts as a failed attempt here, and past the retries it fails.
        keys = {str(getattr(future, "key", "")): future for future in running}
        for key, what, started in pool.lost_jobs():
            future = keys.get(key)
            if future is None:
                continue
            index = running[future]
            if started is not None and started != items[index].name:
                continue  # it waited on that worker without starting: nothing lost, Dask runs it elsewhere
            res = results[index]
            res.errors.append(f"attempt {res.attempts}: [{INFRASTRUCTURE}] {what}")
            res.error_types.append(None)  # a worker that left: no exception was raised here
            if res.attempts < max_attempts and not stopping:
                logger.warning("%s: attempt %d failed (%s); trying again", res.name, res.attempts, what)
                res.attempts += 1
            else:
                running.pop(future)
                future.cancel()
                finish(index, {"status": "failed", "kind": INFRASTRUCTURE, "error": what})

    waited = {"since": time.monotonic(), "said": None}

    def say_why_waiting() -> None:
        # A cluster whose workers have not started (SLURM jobs pending: a drained node, a full queue)
        # runs nothing; the log says so, and why, every WAIT_REPORT_SECONDS while it lasts.
        now = time.monotonic()
        if now - waited["since"] < WAIT_REPORT_SECONDS:
            return
        waited["since"] = now
        why = pool.waiting_for_workers()
        if why is not None:
            logger.warning("waiting for workers before any recording can run: %s", why)
        elif waited["said"] is not None:
            logger.info("workers connected; the batch goes on")
        waited["said"] = why

    end_unreported = _Unreported(pool)
    pool.watch_workers()
    with progress(len(items), "batch", unit="recording", log=logger, enabled=show_progress) as bar, \
            signals_noted():
        submit_more()
        while running:
            signal_name = stop_requested()
            if signal_name and not stopping:
                stop(signal_name)
            note_lost_jobs()
            say_why_waiting()
            # Each future reports itself when it ends (no wait over every running future per ending).
            try:
                finished = [completed.get(timeout=0.2)]
            except queue_module.Empty:
                if stopping:
                    end_unreported(running, lambda index: finish(index, _not_run(
                        stopping[0], items[index].name, results[index].output)))
                continue
            while True:
                try:
                    finished.append(completed.get_nowait())
                except queue_module.Empty:
                    break
            # A stop that came during the wait (which also ended a job the same signal reached) is the batch's:
            # what the jobs report now is read as stopped, never as a worker's own stop to retry.
            signal_name = stop_requested()
            if signal_name and not stopping:
                stop(signal_name)
            broken = False
            finished_broken: list[Any] = []
            finished = [future for future in finished if future in running]  # not failed as lost already
            for future, (outcome, exc) in zip(finished, pool.outcomes(finished)):
                index = running.pop(future)
                if isinstance(exc, Preempted):  # stopped as its job ended, before it could report
                    finish(index, {"status": "preempted", "signal": exc.signal_name, "message": str(exc)})
                    continue
                if exc is not None:  # any way a worker can fail is sorted here
                    if isinstance(exc, cf.BrokenExecutor):
                        broken = True
                        finished_broken.append(future)
                    kind = classify_error(exc)
                    failed_attempt(index, kind, describe_error(exc), error_type=error_type(exc))
                    continue
                if outcome["status"] == "failed":
                    results[index].worker_setup_seconds += outcome.get("worker_setup_seconds", 0.0)
                    failed_attempt(index, outcome.get("kind") or ERROR, outcome.get("error") or "",
                                   outcome.get("seconds", 0.0), outcome.get("error_type"))
                elif outcome["status"] == "preempted" and not stopping:
                    # Its worker was stopped (a SLURM worker job's time limit), not the batch: the
                    # recording goes on elsewhere, from its checkpoint.
                    results[index].worker_setup_seconds += outcome.get("worker_setup_seconds", 0.0)
                    failed_attempt(index, INFRASTRUCTURE, outcome.get("message") or "stopped by a signal")
                else:
                    finish(index, outcome)
            # Rebuilt before any retry is sent (the rebuild waits for the broken pool's workers to end),
            # once per broken pool: jobs of that pool that come back later as broken are only retried.
            rebuild = broken and any(generation.get(f) == pool.rebuilds for f in finished_broken)
            for future in finished:
                generation.pop(future, None)
            if stopping:
                continue  # nothing new starts; the running jobs report back
            if rebuild and pool.can_rebuild():
                pool.rebuild()
            submit_more()
    stopped_by[:] = stopping
    return results


class _Unreported:
    """After a stop, the jobs whose worker processes have all ended without their outcome coming back (a result
    lost with its worker) are ended as stopped once :data:`STOPPED_POOL_GRACE_SECONDS` have passed: the batch
    never waits for an outcome that no process is left to send."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.since: float | None = None

    def __call__(self, running: dict, end: Callable[[int], None]) -> None:
        if not running or self.pool.workers_alive() is not False:
            self.since = None
            return
        now = time.monotonic()
        if self.since is None:
            self.since = now
        elif now - self.since > STOPPED_POOL_GRACE_SECONDS:
            for future in list(running):
                end(running.pop(future))


def _not_run(signal_name: str, name: str, output: Path) -> dict:
    """The outcome of a recording a stop ended before its job ran here: what its checkpoint keeps, if it has one
    (from an earlier run), else nothing."""
    checkpoint = checkpoint_path_for(output)
    kept = checkpoint if checkpoint.exists() else None
    return {"status": "preempted", "signal": signal_name, "checkpoint": None if kept is None else str(kept),
            "steps_done": None, "message": describe_stop(signal_name, name, kept, None)}


def _preempted_detail(outcome: dict) -> dict:
    return {key: outcome.get(key) for key in ("signal", "checkpoint", "steps_done")}

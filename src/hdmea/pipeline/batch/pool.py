"""The pool a batch submits its jobs to: one interface over a ``concurrent.futures`` executor or a Dask client.

:class:`Pool` is what the engine (:mod:`hdmea.pipeline.batch.engine`) talks to, whatever runs the jobs:
it submits them (a Dask client takes a batch as one graph), collects their outcomes, tells running jobs
to stop on a signal, reports the jobs of workers that left a Dask cluster (with their SLURM job's state)
and why no job can start yet, and replaces a process pool a dying worker broke
(:func:`_end_broken_pool`).  Which executor backs it, and how it is started, is
:mod:`hdmea.pipeline.batch.executors`'.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

from hdmea.progress import counted

__all__ = ["Pool", "BROKEN_POOL_GRACE_SECONDS", "STOPPED_POOL_GRACE_SECONDS", "started_aside"]

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())


class Pool:
    """The executor a batch submits to, and how to replace it when it breaks."""

    def __init__(self, executor: cf.Executor | None, *, owned: bool, slots: int | None,
                 name: str, close: Callable[[], None] | None = None,
                 rebuild: Callable[[], cf.Executor] | None = None, client: Any = None) -> None:
        #: the ``concurrent.futures`` executor, or None for a Dask ``client`` (jobs go to it directly)
        self.executor = executor
        self.client = client
        self.owned = owned
        self.slots = slots
        self.name = name
        self._close = close
        self._rebuild = rebuild
        self.rebuilds = 0
        self.local_workers: int | None = None  # jobs run side by side on this machine
        self.setup_seconds: dict[str, float] = {}  # worker -> seconds of its setup, when known up front

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``executor.submit(fn, *args)``: a ``concurrent.futures`` future, or a Dask future for a client."""
        if self.client is not None:
            return self.client.submit(fn, *args, pure=False)
        return self.executor.submit(fn, *args)

    def submit_many(self, fn: Callable[..., Any], *iterables: Sequence[Any]) -> list[Any]:
        """``[submit(fn, *args) for args in zip(*iterables)]``, as one submission where the executor
        can take one.

        A Dask client takes a whole batch as one graph (``client.map``): the
        scheduler updates its graph once instead of once per recording, which
        measured about half of the engine's own cost per recording.
        """
        if self.client is not None:
            return self.client.map(fn, *iterables, pure=False)
        return [self.executor.submit(fn, *args) for args in zip(*iterables)]

    def outcomes(self, futures: Sequence[Any]) -> list[tuple[Any, BaseException | None]]:
        """``(result, None)`` or ``(None, exception)`` of each ended future of :meth:`submit`.

        A Dask client's finished results come back in one ``gather``: a wrapper
        of the client as a ``concurrent.futures`` executor fetches each result
        on its own, one request to the scheduler and the worker per recording.
        A result lost after its task finished (its worker died) and every
        failed or cancelled task are asked for one at a time.
        """
        gathered: dict[int, tuple[Any, None]] = {}
        if self.client is not None:
            finished = [f for f in futures if f.status == "finished"]
            if len(finished) > 1:
                try:
                    values = self.client.gather(finished)
                except Exception:  # noqa: BLE001 - each future on its own below says what happened
                    logger.debug("gathering %d results failed; asking one at a time", len(finished),
                                 exc_info=True)
                else:
                    gathered = {id(f): (v, None) for f, v in zip(finished, values)}
        return [gathered.get(id(f)) or _outcome(f) for f in futures]

    def stop_jobs(self, signal_name: str) -> None:
        """Tell the running jobs to checkpoint and end (:mod:`hdmea.pipeline.batch.preemption`).

        Dask workers run :func:`~hdmea.pipeline.batch.preemption.stop_jobs`
        themselves; threads of this process are told directly; the batch's own
        process pool sets an event that a thread in each worker waits on, which
        stops that worker's job with the signal's name (on POSIX by sending its
        main thread SIGTERM, which also ends a blocking wait); the workers of a
        pool given by the caller get SIGTERM where a signal runs their handler
        (POSIX), and elsewhere (Windows, where SIGTERM to a process ends it at
        once) cannot be told, and finish their recordings.
        """
        from h5stream import capabilities
        from hdmea.pipeline.batch.preemption import stop_jobs

        if self.client is not None:
            told = self.client.run(stop_jobs, signal_name)
            logger.info("told %s to stop: %d running job(s)", counted(len(told), "worker"), sum(told.values()))
        elif isinstance(self.executor, cf.ProcessPoolExecutor):
            tell = getattr(self.executor, "stop_jobs", None)
            if callable(tell):
                # the batch's own pool (hdmea.pipeline.batch.executors): the thread waiting in each worker
                # stops its job with the signal's name
                tell(signal_name)
            elif capabilities.posix_signals():
                import signal

                for pid in list(getattr(self.executor, "_processes", None) or {}):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGTERM)
            else:
                logger.warning("the workers of the given process pool cannot be told to stop on this system "
                               "(SIGTERM would end them without a checkpoint): their running recordings finish")
        else:
            stop_jobs(signal_name)

    def watch_workers(self) -> None:
        """Note where each job runs and which workers leave while running one (Dask clients).

        :meth:`lost_jobs` then reports them: Dask itself runs such a task again
        on another worker when the worker closed (a SLURM job cancelled or at
        its time limit closes its Dask worker), so no error comes back for it.
        """
        if self.client is None:
            return
        import queue

        from hdmea.pipeline.batch.jobs import JOB_STARTED_TOPIC

        self._where: dict[str, dict] = {}  # worker address -> the last job-started event from it
        self._lost: queue.SimpleQueue = queue.SimpleQueue()

        def started(event) -> None:
            _, msg = event
            self._where[msg.get("worker")] = msg

        def scheduler_event(event) -> None:
            _, msg = event
            if isinstance(msg, dict) and msg.get("action") == "remove-worker" and msg.get("processing-tasks"):
                self._lost.put(msg)

        self.client.subscribe_topic(JOB_STARTED_TOPIC, started)
        self.client.subscribe_topic("all", scheduler_event)

    def lost_jobs(self) -> list[tuple[str, str, str | None]]:
        """``(task key, what happened, recording)`` of each task on a worker that left, since the last call.

        ``recording`` names the recording whose job the worker had started last
        (None: unknown): a task of another recording was only waiting on that
        worker, lost nothing and runs elsewhere.
        """
        lost = getattr(self, "_lost", None)
        out = []
        while lost is not None and not lost.empty():
            msg = lost.get()
            where = self._where.get(msg["worker"], {})
            text = f"its worker {msg['worker']}"
            if where.get("slurm_job"):
                text += f" (SLURM job {where['slurm_job']} on {where.get('host')}"
                state = _slurm_job_state(where["slurm_job"])
                text += f", now {state})" if state else ")"
            text += " left the cluster while running it"
            text += " (the job was cancelled, reached its time limit or was preempted)" if msg.get("expected") \
                else " (the worker process died or its node was lost)"
            out += [(str(key), text, where.get("recording")) for key in msg["processing-tasks"]]
        return out

    def waiting_for_workers(self) -> str | None:
        """Why no job can run yet (a Dask client without workers: its SLURM jobs pending, and why); else None."""
        if self.client is None:
            return None
        try:
            if self.client.scheduler_info(n_workers=1).get("n_workers", 0):
                return None
        except Exception:  # noqa: BLE001 - no answer is reported like no worker
            logger.debug("asking the scheduler for its workers failed", exc_info=True)
        jobs = [getattr(job, "job_id", None) for job in getattr(getattr(self.client, "cluster", None), "workers",
                                                                {}).values()]
        jobs = [str(j) for j in jobs if j]
        text = "no Dask worker is connected"
        if jobs:
            text += "; " + _slurm_wait_reasons(jobs)
        return text

    def workers_alive(self) -> bool | None:
        """Whether a worker process of this machine's process pool still runs (None: not a process pool)."""
        if not isinstance(self.executor, cf.ProcessPoolExecutor):
            return None
        for pid in list(getattr(self.executor, "_processes", None) or {}):
            try:
                os.kill(pid, 0)  # the signal 0 sends nothing: whether the process (or its zombie) is there
            except ProcessLookupError:
                continue
            except OSError:
                return True
            return True
        return False

    def can_rebuild(self) -> bool:
        return self._rebuild is not None

    def rebuild(self) -> None:
        """Replace the broken executor, once its workers have ended (:func:`_end_broken_pool`)."""
        _end_broken_pool(self.executor)
        self.executor = self._rebuild()
        self.rebuilds += 1
        # The replacement is the batch's own, whoever made the broken one: close it at the end.
        self.owned = True
        self._close = None
        logger.warning("a worker died and broke the process pool; started a new pool")

    def close(self, *, stopped: bool = False, before_jobs: bool = False) -> None:
        """End the executor (one the batch owns) and its workers; ``stopped``: the batch was stopped, and its
        workers get :data:`STOPPED_POOL_GRACE_SECONDS` to end before they are killed; ``before_jobs`` as well:
        no job was sent to them (a stop while the batch started), so they have nothing to keep and are killed
        at once (a worker still importing its modules on a busy machine took seconds to take its end)."""
        if stopped and before_jobs and self.owned and isinstance(self.executor, cf.ProcessPoolExecutor):
            for process in list((getattr(self.executor, "_processes", None) or {}).values()):
                process.kill()  # one already ended and reaped is left alone
            self.executor.shutdown(wait=False, cancel_futures=True)
            return
        # Unsubscribe before the client goes: the scheduler sends its "remove-client" event to every
        # subscriber of "all", and sending it to this closing client logged a CommClosedError traceback.
        if self.client is not None and getattr(self, "_where", None) is not None:
            from hdmea.pipeline.batch.jobs import JOB_STARTED_TOPIC

            for topic in (JOB_STARTED_TOPIC, "all"):
                try:
                    self.client.unsubscribe_topic(topic)
                except Exception:  # noqa: BLE001 - a client already closed has nothing to unsubscribe
                    logger.debug("unsubscribing from %s failed", topic, exc_info=True)
        if self._close is not None:
            self._close()
        elif self.owned and stopped and isinstance(self.executor, cf.ProcessPoolExecutor):
            # After a stop every job has reported (or never started): a worker whose exit does not come (a
            # thread its stopped job left that the interpreter's exit joins, a queue a signal cut short)
            # must not hold the batch's end for ever; it is ended once the grace is over.
            _end_broken_pool(self.executor, STOPPED_POOL_GRACE_SECONDS, "the stopped batch")
        elif self.owned:
            self.executor.shutdown(wait=True, cancel_futures=True)


#: seconds between two looks of :func:`started_aside`'s wait at a signal (one that arrives just as a wait on a
#: lock begins runs its handler only when the wait ends)
START_LOOK_SECONDS = 0.1
#: seconds a stopped :func:`started_aside` waits for a start still running to end, so that what it made is ended
#: on the stopped thread (a start that takes longer, a fork server importing its modules, is ended on its own)
ABANDONED_START_SECONDS = 0.5


def started_aside(start: Callable[[], Any], end: Callable[[Any], None]) -> Any:
    """What ``start()`` returns, started on a thread of its own while this thread waits for it.

    A stop signal raises in this thread within :data:`ABANDONED_START_SECONDS` (a pool's first worker waits for
    its fork server's imports, seconds on a busy machine, inside a call that no signal cuts short); ``start``
    runs on to its end, and what it made is then ended by ``end``, so nothing it started is left behind
    half-made: here, when the start ends within that wait, else on the start's own thread.
    """
    import threading

    state: dict[str, Any] = {}
    lock = threading.Lock()
    done = threading.Event()

    def run() -> None:
        try:
            made = start()
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
            state["error"] = exc
            done.set()
            return
        with lock:
            state["made"] = made
            abandoned = state.get("abandoned", False)
        if not abandoned:
            # the waiting thread takes it (returned, or ended on a stop): held here too, it could be let go of
            # last on this thread, whose cleanup of a pool's semaphores would then race the process's exit
            del made
        done.set()
        if abandoned:
            end(made)

    try:
        # inside: a stop that lands while the thread starts (its start waits for it) ends what it makes too
        threading.Thread(target=run, name="hdmea-batch-start", daemon=True).start()
        while not done.wait(START_LOOK_SECONDS):
            pass  # a signal that arrives just as a wait begins is taken at the next look, not at the wait's end
    except BaseException:
        try:
            # A start about to end is ended here, before this thread goes on to the process's exit.  Ended on its
            # own thread beside that exit, a pool's queue could be cut between unlinking its semaphore and telling
            # the resource tracker, which then printed "leaked semaphore" warnings after the stop line.
            done.wait(ABANDONED_START_SECONDS)
        finally:
            with lock:
                state["abandoned"] = True
                made = state.pop("made", None)
        if made is not None:
            end(made)
        raise
    if "error" in state:
        raise state["error"]
    return state.pop("made")  # held by this thread alone from here


def _slurm_wait_reasons(job_ids: Sequence[str]) -> str:
    """Each worker job's state and SLURM's reason for it, and the nodes that cannot take jobs, as one line."""
    import subprocess

    def run(*argv: str) -> str:
        try:
            return subprocess.run(list(argv), capture_output=True, text=True, timeout=10, check=False).stdout
        except (OSError, subprocess.SubprocessError):
            return ""

    jobs = [line.split(None, 2) for line in run("squeue", "-h", "-j", ",".join(job_ids), "-o", "%i %T %r")
            .splitlines() if line.strip()]
    text = ", ".join(f"SLURM job {j[0]} {j[1].lower()}" + (f" ({j[2]})" if len(j) > 2 and j[2] != "None" else "")
                     for j in jobs) or f"SLURM jobs {', '.join(job_ids)} not in the queue"
    unavailable = [line.split(None, 2) for line in run(
        "sinfo", "-h", "-N", "-t", "drain,drained,draining,down,fail,maint,reserved", "-o", "%N %T %E"
    ).splitlines() if line.strip()]
    if unavailable:
        text += "; nodes not taking jobs: " + ", ".join(
            f"{n[0]} {n[1]}" + (f" ({n[2]})" if len(n) > 2 and n[2] != "none" else "") for n in unavailable)
    return text


def _slurm_job_state(job_id: str) -> str | None:
    """``"CANCELLED"``, ``"TIMEOUT"``... of a SLURM job, as ``scontrol`` says (None: unknown)."""
    import re
    import subprocess

    try:
        text = subprocess.run(["scontrol", "-o", "show", "job", str(job_id)], capture_output=True, text=True,
                              timeout=10, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    found = re.search(r"JobState=(\S+)", text)
    return found.group(1) if found else None


#: seconds the other workers of a broken process pool get to end on the pool's SIGTERM (a job checkpoints)
BROKEN_POOL_GRACE_SECONDS = 30.0
#: seconds the workers of a stopped batch's pool get to end once their jobs have reported (then killed)
STOPPED_POOL_GRACE_SECONDS = 3.0


def _end_broken_pool(executor: Any, grace: float = BROKEN_POOL_GRACE_SECONDS,
                     which: str = "the broken pool") -> None:
    """Shut a broken pool down and wait until its workers have ended and been reaped (SIGKILL after ``grace``).

    The pool fails its futures before it terminates and reaps its workers, which still run
    (or remain as zombies) holding their claims: a retry sent at once found them held.
    """
    thread = getattr(executor, "_executor_manager_thread", None)
    processes = list((getattr(executor, "_processes", None) or {}).values())
    try:
        executor.shutdown(wait=False, cancel_futures=True)
    except Exception:  # noqa: BLE001 - a broken pool may fail to shut down; it is replaced anyway
        logger.debug("shutting down the broken pool failed", exc_info=True)
    if thread is None:
        return
    thread.join(grace)  # its manager thread ends once it has terminated and joined every worker
    if thread.is_alive():
        logger.warning("workers of %s still running after %.0f s: killed", which, grace)
        for process in processes:
            process.kill()  # one already ended and reaped is left alone
        thread.join(grace)


def _outcome(future: Any) -> tuple[Any, BaseException | None]:
    try:
        return future.result(), None
    except BaseException as exc:  # noqa: BLE001 - any way a worker can fail is sorted by the batch
        return None, exc

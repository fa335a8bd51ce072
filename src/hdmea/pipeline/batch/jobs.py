"""One recording's job: held by its claim, skipped when finished, run otherwise, its failure caught and sorted.

The job takes its recording's claim (:func:`~hdmea.pipeline.batch.recordings.job_claim`)
before it reads the finished-marker and keeps it until the marker is written,
so two batches sharing an output folder never compute one recording twice: the
second finds it held (status ``"held"``, naming the holder, not computed and not
counted as done) or, once the first has finished, finished (``"skipped"``, naming
the batch that computed it).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import logging
import os
import socket
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path

from h5stream.errors import StaleClaimWarning, WriterClaimError
from h5stream.files import WriterClaim
from hdmea.config import PipelineConfig
from hdmea.pipeline.batch.failures import HELD, classify_error, describe_error, error_type
from hdmea.pipeline.batch.preemption import Preempted, job_thread, shielded, stop_on_signals
from hdmea.pipeline.batch.recordings import (
    Recording,
    check_finished,
    checkpoint_path_for,
    done_marker_path,
    job_claim,
    output_state,
    recording_identity,
    write_done_marker,
)
from hdmea.pipeline.batch.workers import WorkerSetup, take_setup_seconds
from hdmea.pipeline.preflight import CreatedFolders
from hdmea.pipeline.run import run_pipeline
from hdmea.progress import SAID_AT_THE_END, recording_context

__all__ = ["JobFunction", "JobCall", "run_job", "run_pipeline_job"]

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

#: ``job(recording, output, config) -> dict`` of details for the summary.
JobFunction = Callable[[Recording, Path, PipelineConfig], dict]


@dataclasses.dataclass(frozen=True)
class JobCall:
    """What a worker runs for one recording (picklable; no state of the driver)."""

    job: JobFunction
    setup: WorkerSetup | None = None
    #: the batch the jobs belong to (:func:`~hdmea.pipeline.batch.recordings.new_batch_id`), in their markers
    batch: str | None = None

    def __call__(self, recording: Recording, output: Path, config: PipelineConfig,
                 attempt: int) -> dict:
        announce_start(recording.name)
        # The worker's one-time setup stays outside the recording's own time.
        setup_seconds = take_setup_seconds(self.setup)
        # A worker whose job holds its main thread (a process pool's) takes SIGTERM from the batch's driver.
        with stop_on_signals(), job_thread():
            outcome = run_job(recording, output, config, job=self.job, attempt=attempt, batch=self.batch)
        outcome["worker_setup_seconds"] = setup_seconds
        return outcome


#: Topic of the event a job on a Dask worker sends as it starts: which worker, host and SLURM job runs it.
JOB_STARTED_TOPIC = "hdmea-job-started"


def announce_start(name: str) -> None:
    """On a Dask worker, tell the batch's driver where recording ``name`` runs (nothing elsewhere).

    When the worker then leaves (its SLURM job cancelled, timed out or its
    node lost), the driver names that job in the recording's failed attempt.
    """
    if "distributed" not in sys.modules:
        return  # not a Dask worker (which has it loaded); importing it would cost a process pool's worker 0.5 s
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):  # not on a Dask worker
        return
    worker.log_event(JOB_STARTED_TOPIC, {"recording": name, "worker": worker.address,
                                         "host": socket.gethostname(),
                                         "slurm_job": os.environ.get("SLURM_JOB_ID")})


def run_job(recording: Recording, output: str | os.PathLike, config: PipelineConfig, *,
            job: JobFunction | None = None, attempt: int = 1, batch: str | None = None) -> dict:
    """Run ``job`` for one recording unless its output is already finished or another process holds it.

    Returns an outcome dict: ``status`` ("done", "skipped", "held" or "failed"),
    ``seconds``, ``kind`` and ``error`` for failures, ``detail`` from the job.
    A skipped recording names the batch that finished it (``finished_by``, the
    ``batch`` its job was given); a held one names its holder (``holder``: the
    claim's host, pid and time, None for another program's HDF5 lock) in
    ``error``: it was not computed here.
    Exceptions that a worker can survive are caught and returned, sorted by
    :func:`classify_error`; only the death of the process escapes.  A job
    stopped by a signal (:class:`~hdmea.pipeline.batch.preemption.Preempted`)
    returns ``status="preempted"`` with ``checkpoint`` (the file its finished
    steps were kept in, or None), ``steps_done`` and ``message``.
    """
    try:
        return _run_claimed(recording, Path(output), config, job=job, attempt=attempt, batch=batch)
    except Preempted as stop:
        stop.recording = stop.recording or recording.name
        with recording_context(recording.name):
            logger.warning("%s", stop, extra=SAID_AT_THE_END)
        return {"status": "preempted", "seconds": 0.0, "signal": stop.signal_name,
                "checkpoint": None if stop.checkpoint is None else str(stop.checkpoint),
                "steps_done": stop.steps_done, "message": str(stop), "pid": os.getpid()}


def _run_claimed(recording: Recording, output: Path, config: PipelineConfig, *,
                 job: JobFunction | None, attempt: int, batch: str | None) -> dict:
    """The job under its recording's claim, held from before the marker is read until after it is written."""
    with recording_context(recording.name):
        claim = job_claim(output)
        try:
            # The claim lives beside the output: its folder is made now (and taken back below when
            # the job leaves it empty), as the pipeline would make it for the output.
            folders = CreatedFolders(output.parent)
            with warnings.catch_warnings():
                # A claim of a job whose process died (a killed worker) is cleared, and logged, by acquire.
                warnings.filterwarnings("ignore", category=StaleClaimWarning)
                claim.acquire()
        except WriterClaimError as exc:
            return _held(exc)
        except OSError as exc:  # the output folder cannot be made or written: the user's setup
            kind = classify_error(exc)
            logger.error("failed before starting (%s error): %s", kind, describe_error(exc))
            return {"status": "failed", "seconds": 0.0, "kind": kind, "error": describe_error(exc),
                    "error_type": error_type(exc), "pid": os.getpid()}
        outcome = None
        try:
            outcome = _run_job(recording, output, config, job=job, attempt=attempt, batch=batch)
            return outcome
        finally:
            with shielded():  # a stop arriving now finds the job's outcome decided: it changes nothing
                claim.release()
                if outcome is None or outcome["status"] != "done":
                    folders.remove_if_empty()


def _held(exc: WriterClaimError, seconds: float = 0.0) -> dict:
    """The outcome of a recording another process holds: not computed here, its holder named."""
    holder = exc.holder
    who = ("another program, which has its output open for writing (HDF5 file lock)" if exc.other_program
           else WriterClaim.describe(holder))
    text = f"held by {who}; not computed by this process ({exc.path})"
    logger.warning("%s", text)
    return {"status": "held", "seconds": seconds, "kind": HELD, "error": text, "error_type": error_type(exc),
            "holder": holder, "pid": os.getpid()}


def _run_job(recording: Recording, output: Path, config: PipelineConfig, *,
             job: JobFunction | None, attempt: int, batch: str | None) -> dict:
    """Skip, or run and mark finished; called under the recording's claim and log context."""
    job = job if job is not None else run_pipeline_job
    digest = config.digest()
    finished = check_finished(output, config, recording)
    marker = finished.marker
    if marker is not None:
        logger.info("already finished at %s by %s, skipped", marker.get("finished_at"),
                    marker.get("batch") or "an earlier run")
        return {"status": "skipped", "seconds": 0.0, "detail": marker.get("detail", {}),
                "pid": os.getpid(), "finished_by": marker.get("batch"),
                "job_seconds": marker.get("seconds", 0.0)}
    if finished.redo is not None:
        logger.warning("computed again: %s", finished.redo)
    if finished.replace_output:  # ours by its marker, damaged since: replaced, not refused as in the way
        config = dataclasses.replace(config, output=dataclasses.replace(config.output, overwrite=True))
    # Taken before the job reads its inputs: the marker names the recording the output came from.
    inputs = recording_identity(recording)
    started = time.perf_counter()
    logger.info("started (attempt %d)", attempt)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=StaleClaimWarning)  # logged by the claim itself
            _refuse_if_written_elsewhere(output)
        done_marker_path(output).unlink(missing_ok=True)
        with warnings.catch_warnings():
            # A worker killed mid-write leaves its writer claim behind; the next
            # attempt clears it (the claim's pid is gone), which is expected here
            # and logged by the claim itself.
            warnings.filterwarnings("ignore", category=StaleClaimWarning)
            detail = job(recording, output, config) or {}
    except Exception as exc:  # noqa: BLE001 - every failure is reported, sorted by kind
        seconds = time.perf_counter() - started
        kind = classify_error(exc)
        if kind == HELD:  # the output or its checkpoint held by a program that is not a job of a batch
            return _held(exc, seconds)
        logger.error("failed after %.2f s (%s error): %s", seconds, kind, describe_error(exc))
        logger.debug("%s", traceback.format_exc())
        return {"status": "failed", "seconds": seconds, "kind": kind, "error": describe_error(exc),
                "error_type": error_type(exc), "pid": os.getpid()}
    with shielded():  # the output is complete: a stop now waits for its marker (and changes nothing)
        return _mark_done(recording, output, finished.redo, inputs, digest, started, attempt, batch, detail)


def _mark_done(recording: Recording, output: Path, redo: str | None, inputs: dict, digest: str, started: float,
               attempt: int, batch: str | None, detail: dict) -> dict:
    seconds = time.perf_counter() - started
    write_done_marker(output, {
        "recording": recording.name,
        "cmcr": str(recording.cmcr),
        "cmtr": str(recording.cmtr),
        "inputs": inputs,
        "output": output_state(output),
        "config_digest": digest,
        "finished_at": _dt.datetime.now(_dt.timezone.utc).isoformat(),
        "finished_unix": time.time(),
        "seconds": seconds,
        "attempt": attempt,
        "batch": batch,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "detail": detail,
    })
    logger.info("finished in %.2f s", seconds)
    outcome = {"status": "done", "seconds": seconds, "detail": detail, "pid": os.getpid()}
    if redo is not None:
        outcome["note"] = f"computed again: {redo}"
    return outcome


def _refuse_if_written_elsewhere(output: Path) -> None:
    """Raise :class:`WriterClaimError` when a live process writes ``output`` or its checkpoint.

    This job holds the recording's claim, so no job of any batch writes these
    files now: a writer claim on them was left by a job whose process died
    (cleared here, with the files it left, and logged) or is held by a program
    outside the batches (``hdmea run``, a script, another program with HDF5's
    lock on the file), which the job reports as held before computing anything.
    """
    for target in (output, checkpoint_path_for(output)):
        claim = WriterClaim(target)
        if claim.path.exists() or target.exists():
            claim.acquire()  # clears a dead writer's claim; raises naming a live one
            claim.release()


def run_pipeline_job(recording: Recording, output: Path, config: PipelineConfig, *,
                     preflight: bool = True) -> dict:
    """The default job: the whole pipeline for one recording (:func:`run_pipeline`).

    ``preflight=False`` when the caller has just made the checks before the
    first step itself (``hdmea run``), so that they run, and warn, once.
    """
    report = run_pipeline(recording.cmcr, recording.cmtr, output, config, dataset_id=recording.name,
                          preflight=preflight)
    return report.as_dict()

"""Batch runs: one idempotent job per recording, on any executor.

:func:`run_batch` sends one job per recording to a ``concurrent.futures``
executor (a Dask ``Client`` works too; by default a Dask ``LocalCluster`` when
``distributed`` is installed, else a process pool that is rebuilt when a worker
dies).  Each job

- holds its recording's claim (``<out>.job.claim``) for its whole run: a
  recording another process holds (a job of another batch sharing the output
  folder, or a program writing its output) is reported ``held``, naming the
  holder, and is neither computed nor retried nor counted as done;
- skips a recording whose output is already finished: the job writes
  ``<out>.done`` (atomically, after the output file itself was committed) with
  the configuration digest; a rerun with the same configuration skips it;
- resumes a half-finished recording from its checkpoint ``<out>.checkpoint.h5``;
- reports its own failures, sorted into *user* errors (permissions, a
  read-only filesystem, a full disk, a missing path: failed once, with what to
  do), *data* errors (a bad input file: failed once, with the reason) and
  *infrastructure* errors (a killed worker, out of memory, a transient I/O
  error): retried up to ``retries`` times; a claim another process holds is
  kind *held*, never retried at once.

Before any job, the driver skips the recordings already finished (returning at
once, without starting workers, when that is all of them) and checks the rest
(:mod:`hdmea.pipeline.preflight`): inputs, output folder, free space.

The same code runs on a cluster: pass a ``Client`` connected to a scheduler
(``scheduler="tcp://host:8786"``), or build a dask-jobqueue ``SLURMCluster``
with :func:`slurm_client`; SLURM job arrays need no scheduler at all and run
:func:`run_one` (``hdmea run-one --index $SLURM_ARRAY_TASK_ID``).

Modules, in the order a batch uses them:

- ``recordings``: :class:`Recording`, discovery, output paths and ``.done`` markers;
- ``failures``: data or infrastructure error (:func:`classify_error`);
- ``workers``: a worker process's one-time setup (thread limits, warm-up);
- ``jobs``: one recording's job (:func:`run_job`), skipped when already finished;
- ``prechecks``: before a recording runs: finished already, inputs readable, preflight;
- ``pool``: :class:`~hdmea.pipeline.batch.pool.Pool`, what the engine submits to, whatever runs the jobs;
- ``executors``: local Dask cluster, rebuilt process pool, given executors, SLURM, each as a pool;
- ``summary``: :class:`RecordingResult`, :class:`BatchSummary` and the folder's summary file (a merge);
- ``engine``: :func:`run_batch`;
- ``arrays``: :func:`run_one`, one recording of a SLURM job array in this process.

The pipeline of one recording (:func:`run_pipeline`, in :mod:`hdmea.pipeline.run`)
and its step table (:mod:`hdmea.steps.table`) are re-exported here.
"""

from __future__ import annotations

from hdmea.pipeline.batch.arrays import run_one
from hdmea.pipeline.batch.engine import run_batch
from hdmea.pipeline.batch.executors import slurm_client, slurm_cluster
from hdmea.pipeline.batch.failures import DATA, ERROR, HELD, INFRASTRUCTURE, USER, classify_error
from hdmea.pipeline.batch.jobs import JobFunction, run_job, run_pipeline_job
from hdmea.pipeline.batch.recordings import (
    DONE_SUFFIX,
    Recording,
    checkpoint_path_for,
    discover_recordings,
    done_marker_path,
    finished_marker,
    output_path_for,
    read_done_marker,
)
from hdmea.pipeline.batch.summary import BatchSummary, RecordingResult
from hdmea.pipeline.batch.workers import (
    WorkerSetup,
    available_cores,
    choose_layout,
    exit_without_teardown,
    free_workers,
    thread_environment,
    threads_per_worker,
)
from hdmea.pipeline.run import CHECKPOINT_SUFFIX, PipelineReport, StepRecord, run_pipeline
from hdmea.steps.table import STEPS

#: The step table under its former name here (see :data:`hdmea.steps.table.STEPS`).
PIPELINE_STEPS = STEPS

__all__ = [
    "Recording",
    "RecordingResult",
    "BatchSummary",
    "run_batch",
    "run_one",
    "run_job",
    "discover_recordings",
    "output_path_for",
    "done_marker_path",
    "finished_marker",
    "checkpoint_path_for",
    "read_done_marker",
    "classify_error",
    "slurm_client",
    "slurm_cluster",
    "run_pipeline",
    "PipelineReport",
    "StepRecord",
    "PIPELINE_STEPS",
    "USER",
    "DATA",
    "INFRASTRUCTURE",
    "HELD",
    "ERROR",
    "DONE_SUFFIX",
    "CHECKPOINT_SUFFIX",
    "JobFunction",
    "WorkerSetup",
    "available_cores",
    "choose_layout",
    "exit_without_teardown",
    "free_workers",
    "run_pipeline_job",
    "thread_environment",
    "threads_per_worker",
]

"""One recording of a batch in this process: a SLURM job array's task (``hdmea run-one``), no scheduler needed."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from hdmea.config import PipelineConfig
from hdmea.errors import ConfigError
from hdmea.pipeline.batch.engine import _preempted_detail
from hdmea.pipeline.batch.prechecks import _finished_results
from hdmea.pipeline.batch.jobs import JobFunction, run_job, run_pipeline_job
from hdmea.pipeline.batch.recordings import discover_recordings, new_batch_id, output_path_for
from hdmea.pipeline.batch.summary import RecordingResult
from hdmea.pipeline.preflight import CreatedFolders, check_run

__all__ = ["run_one"]


def run_one(
    recordings: str | os.PathLike | Iterable[Any],
    index: int,
    config: PipelineConfig | None,
    out_dir: str | os.PathLike,
    *,
    job: JobFunction | None = None,
) -> RecordingResult:
    """Run the job of recording number ``index`` in this process (one SLURM array task).

    The recordings are ordered as :func:`discover_recordings` orders them, so
    ``--array=0-(N-1)`` covers a directory of N recordings exactly once.
    """
    config = config if config is not None else PipelineConfig()
    items = discover_recordings(recordings)
    if not 0 <= index < len(items):
        raise ConfigError("recording index out of range", expected=f"0..{len(items) - 1}",
                          found=str(index), hint="use --array=0-%d" % (len(items) - 1))
    recording = items[index]
    out_dir = Path(out_dir)
    output = output_path_for(recording, out_dir)
    if not _finished_results([recording], [output], config):
        check_run([recording], [output], config,
                  open_files=job is None or job is run_pipeline_job).raise_if_any()
    folders = CreatedFolders(out_dir)
    outcome = run_job(recording, output, config, job=job, batch=new_batch_id())
    if outcome["status"] in ("failed", "held"):
        folders.remove_if_empty()
    result = RecordingResult(name=recording.name, output=output, attempts=1)
    result.status = outcome["status"]
    result.seconds = outcome.get("seconds", 0.0)
    result.detail = outcome.get("detail", {}) or {}
    result.kind = outcome.get("kind")
    result.error = outcome.get("error")
    result.error_type = outcome.get("error_type")
    result.holder = outcome.get("holder")
    result.finished_by = outcome.get("finished_by")
    result.note = outcome.get("note")
    if result.status == "preempted":
        result.error = outcome.get("message")
        result.error_type = None
        result.detail = _preempted_detail(outcome)
    return result

"""What a batch checks before it runs a recording: finished already, inputs readable, preflight.

:func:`_finished_results`: the recordings whose output is finished with this configuration (their
``.done`` marker, :func:`~hdmea.pipeline.batch.recordings.finished_marker`) are skipped, by a batch and by
one task of a job array (:mod:`hdmea.pipeline.batch.arrays`).  :func:`_check_inputs`: the inputs of the
others are read in separate processes first (:func:`_unverified_inputs`: files that crash or hang libhdf5
are found before the batch's own process opens them), then the rest pass the preflight checks
(:func:`hdmea.pipeline.preflight.check_run`).
"""

from __future__ import annotations

import concurrent.futures as cf
from collections.abc import Sequence
from pathlib import Path

from hdmea.config import PipelineConfig
from hdmea.pipeline.batch.failures import DATA, error_type, failure_words
from hdmea.pipeline.batch.recordings import Recording, finished_marker
from hdmea.pipeline.batch.summary import RecordingResult
from hdmea.pipeline.preflight import Problem, check_run, reason_text


def _finished_results(items: Sequence[Recording], outputs: Sequence[Path],
                      config: PipelineConfig) -> dict[int, RecordingResult]:
    """Recordings whose output is finished with this configuration, as skipped results (by index)."""
    finished = {}
    for i, (recording, output) in enumerate(zip(items, outputs)):
        marker = finished_marker(output, config, recording)
        if marker is not None:
            finished[i] = RecordingResult(name=recording.name, output=output, status="skipped",
                                          detail=marker.get("detail", {}) or {})
    return finished


def _check_inputs(items: Sequence[Recording], outputs: Sequence[Path], todo: list[int], config: PipelineConfig,
                  *, verify: bool, open_files: bool):
    """(index -> problems of inputs that fail the separate reading process, the report of
    :func:`check_run` for the other recordings of ``todo``)."""
    # Inputs that crash or hang libhdf5 are found in a separate process, before this process opens them.
    unverified = _unverified_inputs(items, todo) if verify else {}
    rest = [i for i in todo if i not in unverified]
    # The inputs of a custom job may be anything: only the pipeline's are opened.
    report = check_run([items[i] for i in rest], [outputs[i] for i in rest], config, open_files=open_files)
    return unverified, report


#: recordings one reading process checks before a second process is worth its start
VERIFY_RECORDINGS_PER_PROCESS = 16


def _unverified_inputs(items: Sequence[Recording], todo: list[int],
                       processes: int | None = None) -> dict[int, list[Problem]]:
    """Index -> problem of the recordings whose inputs fail :func:`hdmea.io.mcs.verify_recordings`.

    The recordings are dealt out to ``processes`` reading processes side by side
    (default: one per :data:`VERIFY_RECORDINGS_PER_PROCESS` recordings, at most the
    cores free now, :func:`h5stream.cores.free_cores`).  Each process is a fresh
    interpreter that imports the readers (a few hundred milliseconds of CPU) and
    then reads each file's structure and first and last rows (milliseconds per
    small recording): a process per core for a handful of recordings spent more
    on starting than on reading.
    """
    from h5stream.cores import free_cores
    from hdmea.io.mcs import verify_recordings

    recordings = [items[i] for i in todo]
    wanted = processes or min(-(-len(recordings) // VERIFY_RECORDINGS_PER_PROCESS), free_cores())
    n = max(1, min(wanted, len(recordings)))
    if n == 1:
        errors = verify_recordings(recordings)
    else:
        errors = {}
        with cf.ThreadPoolExecutor(n, thread_name_prefix="hdmea-batch-verify") as readers:
            for part in readers.map(verify_recordings, [recordings[k::n] for k in range(n)]):
                errors.update(part)
    out = {}
    for i in todo:
        error = errors.get(items[i].name)
        if error is not None:
            what = f"{failure_words(error)}: {reason_text(error)}"
            out[i] = [Problem(Path(error.path), what, error.hint or "restore the file from a good copy",
                              items[i].name, DATA, error_type=error_type(error))]
    return out

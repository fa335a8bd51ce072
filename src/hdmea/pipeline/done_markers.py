"""A finished job's marker, ``<out>.done``: where it lies, how it is read and written.

Apart from the batch runner (:mod:`hdmea.pipeline.batch.recordings` says what the marker holds and
when a job is finished), so that the checks before a run (:mod:`hdmea.pipeline.preflight`) can tell an
output a batch finished without importing the batch runner.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from h5stream.files import write_bytes_atomic

__all__ = ["DONE_SUFFIX", "done_marker_path", "read_done_marker", "write_done_marker"]

DONE_SUFFIX = ".done"


def done_marker_path(output: str | os.PathLike) -> Path:
    output = Path(output)
    return output.with_name(output.name + DONE_SUFFIX)


def read_done_marker(output: str | os.PathLike) -> dict | None:
    """The finished-marker of ``output`` (None when absent, empty, unparsable or the output is gone).

    None means "not done": the job runs again.  A marker is not fsynced
    (:func:`write_done_marker`), so after a machine crash it may be missing or
    empty; that only costs the job's work again.
    """
    marker = done_marker_path(output)
    if not Path(output).exists():
        return None
    try:
        record = json.loads(marker.read_bytes().decode("utf-8"))
    except (OSError, ValueError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        return None
    return record if isinstance(record, dict) else None


def write_done_marker(output: str | os.PathLike, record: dict) -> Path:
    """Write the finished-marker of ``output``: readers see the whole record or none of it.

    Atomic (a rename) but not fsynced: jobs are idempotent, so a marker lost in
    a machine crash only makes its job run again (:func:`read_done_marker`
    takes a missing, empty or torn marker as "not done"), while the two fsyncs
    of a durable write cost milliseconds per recording.  The output itself was
    committed durably before.
    """
    text = json.dumps(record, indent=1, sort_keys=True, default=str)
    return write_bytes_atomic(done_marker_path(output), text.encode("utf-8"), durable=False)

"""How each recording of a batch ended, the batch's summary, and the folder's summary file.

Several batches may share one output folder (two users, or a batch started
again while the first still runs).  Each batch's :class:`BatchSummary` says
what that batch did: a recording it computed is ``done``, one another process
held while it ran is ``held`` (naming the holder), one another batch had
finished is ``skipped`` (naming that batch).  The folder's summary file
(``batch_summary.json``) is a merge: :meth:`BatchSummary.write_json` reads the
file, adds this batch and writes it back atomically while holding a lock, so
no batch's rows are lost whatever the order in which they end.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

from h5stream.errors import StaleClaimWarning, WriterClaimError
from h5stream.files import WriterClaim, write_bytes_atomic

__all__ = ["RecordingResult", "BatchSummary", "merge_summaries", "SUMMARY_VERSION"]

#: version of the folder's summary file: 2 adds ``batches`` (each batch's own rows) and a ``batch`` per row
SUMMARY_VERSION = 2

#: statuses that say what happened to a recording's output; ``skipped`` and ``held`` say another process decided it
DECISIVE = ("done", "failed", "preempted")

#: seconds a batch waits for another batch to finish writing the folder's summary before it gives up
MERGE_WAIT_SECONDS = 60.0


@dataclasses.dataclass
class RecordingResult:
    """How one recording of a batch ended."""

    name: str
    output: Path
    #: done | skipped (finished before, ``finished_by`` names the batch) | held (another process held it;
    #: not computed here, ``holder`` names it) | failed | preempted (stopped by a signal; resumable)
    status: str = "pending"
    seconds: float = 0.0
    attempts: int = 0
    kind: str | None = None
    #: what failed in plain words and the error's own message (no exception class names)
    error: str | None = None
    #: the class name of the error behind ``error`` (for scripts and debugging; None: no exception)
    error_type: str | None = None
    errors: list[str] = dataclasses.field(default_factory=list)
    #: the class name of each attempt's error, one per entry of ``errors`` (None where none was raised)
    error_types: list[str | None] = dataclasses.field(default_factory=list)
    detail: dict = dataclasses.field(default_factory=dict)
    #: one-time setup of the worker (thread limits, warm-up) paid before this job; not in ``seconds``
    worker_setup_seconds: float = 0.0
    #: the claim of the process that held the recording (host, pid, time), for ``held``
    holder: dict | None = None
    #: the batch whose job finished the recording, for ``skipped`` (None: unknown, an older marker)
    finished_by: str | None = None
    #: for ``done``: why an output that had its finished-marker was computed again (another configuration,
    #: another recording of the same name, an output damaged since); None otherwise
    note: str | None = None

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["output"] = str(self.output)
        return d


@dataclasses.dataclass
class BatchSummary:
    """Every recording of a batch with its status, time, attempts and error."""

    results: list[RecordingResult]
    seconds: float
    executor: str = ""
    #: starting the executor (and, for a local Dask cluster, setting its workers up); part of ``seconds``
    startup_seconds: float = 0.0
    #: each worker's one-time setup (thread limits, warm-up), where it is known
    worker_setup_seconds: list[float] = dataclasses.field(default_factory=list)
    #: the signal that stopped the batch before its end (its unfinished recordings are "preempted")
    stopped_by: str | None = None
    #: this batch's name (host:pid:random), also in the finished-markers of the recordings it computed
    batch_id: str | None = None
    #: how the batch used the machine: cores it could use, worker processes, threads per job, and
    #: cores kept busy (recordings side by side x threads each); empty for a cluster the batch did not start
    layout: dict = dataclasses.field(default_factory=dict)

    def _with(self, status: str) -> list[RecordingResult]:
        return [r for r in self.results if r.status == status]

    @property
    def done(self) -> list[RecordingResult]:
        return self._with("done")

    @property
    def skipped(self) -> list[RecordingResult]:
        return self._with("skipped")

    @property
    def held(self) -> list[RecordingResult]:
        """Recordings another process held while this batch ran: not computed here, not failed."""
        return self._with("held")

    @property
    def failed(self) -> list[RecordingResult]:
        return self._with("failed")

    @property
    def preempted(self) -> list[RecordingResult]:
        return self._with("preempted")

    @property
    def ok(self) -> bool:
        """No recording failed or was stopped (a held one is another process's work, not a failure)."""
        return not self.failed and not self.preempted

    def __getitem__(self, name: str) -> RecordingResult:
        for r in self.results:
            if r.name == name:
                return r
        raise KeyError(name)

    def table(self) -> str:
        """A plain-text table, one line per recording."""
        width = max([len(r.name) for r in self.results] + [9])
        lines = [f"{'recording':<{width}}  {'status':<7}  {'time s':>8}  {'tries':>5}  error"]
        for r in self.results:
            err = "" if r.error is None else (f"[{r.kind}] {r.error}" if r.kind else r.error)
            if r.status == "skipped" and r.finished_by:
                err = f"finished by batch {r.finished_by}"
            elif r.status == "done" and r.note:
                err = r.note
            lines.append(f"{r.name:<{width}}  {r.status:<7}  {r.seconds:8.2f}  {r.attempts:>5}  {err}")
        stopped = (f", {len(self.preempted)} preempted (stopped by {self.stopped_by})"
                   if self.preempted or self.stopped_by else "")
        held = (f", {len(self.held)} held by other processes (not computed by this batch)"
                if self.held else "")
        lines.append(
            f"{len(self.done)} done, {len(self.skipped)} skipped{held}, {len(self.failed)} failed{stopped} "
            f"in {self.seconds:.2f} s ({self.executor})"
        )
        if self.layout.get("busy_cores"):
            lines.append(_layout_line(self.layout))
        if self.batch_id:
            lines.append(f"batch {self.batch_id}")
        return "\n".join(lines)

    def as_dict(self) -> dict:
        """This batch alone: what it did, its executor and layout, one row per recording."""
        return {"batch_id": self.batch_id, "seconds": self.seconds, "executor": self.executor,
                "startup_seconds": self.startup_seconds, "worker_setup_seconds": self.worker_setup_seconds,
                "stopped_by": self.stopped_by, "layout": self.layout,
                "results": [r.as_dict() for r in self.results]}

    def write_json(self, path: str | os.PathLike) -> Path:
        """Merge this batch into the folder's summary ``path`` (:func:`merge_summaries`); returns ``path``.

        Under a lock (``<path>.merge.claim``, waited for up to
        :data:`MERGE_WAIT_SECONDS`), the file is read, this batch added and the
        result written durably (fsynced, then renamed over ``path``): a batch
        ending at the same moment adds its own rows after this one, never over them.
        """
        path = Path(path)
        with _merge_lock(path):
            try:
                earlier = json.loads(path.read_bytes().decode("utf-8"))
            except FileNotFoundError:
                earlier = None
            except (OSError, ValueError):
                earlier = None  # unreadable: replaced (a torn file cannot come from this writer)
            merged = merge_summaries(earlier if isinstance(earlier, dict) else None, self.as_dict())
            return write_bytes_atomic(path, json.dumps(merged, indent=1, default=str).encode("utf-8"))


def _layout_line(layout: dict) -> str:
    return (f"layout: {layout.get('workers')} worker(s) x {layout.get('threads_per_worker')} thread(s) "
            f"= {layout.get('busy_cores')} of {layout.get('cores')} cores busy")


@contextlib.contextmanager
def _merge_lock(path: Path) -> Iterator[None]:
    claim = WriterClaim(path.with_name(path.name + ".merge"))
    deadline = time.monotonic() + MERGE_WAIT_SECONDS
    while True:
        try:
            with warnings.catch_warnings():
                # the lock of a batch that died while merging is cleared (its pid is gone)
                warnings.filterwarnings("ignore", category=StaleClaimWarning)
                claim.acquire()
            break
        except WriterClaimError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)
    try:
        yield
    finally:
        claim.release()


def merge_summaries(earlier: dict | None, batch: dict) -> dict:
    """The folder's summary with ``batch`` (:meth:`BatchSummary.as_dict`) added to ``earlier``.

    ``batches`` keeps every batch's own rows, in the order the batches ended.
    ``results`` has one row per recording (each with the ``batch`` it comes
    from): the latest row that decided the recording (done, failed, preempted);
    a later ``skipped`` or ``held`` row (another process decided it) replaces
    only a row that decided nothing.  For readers of version 1, the top level
    also has ``seconds``, ``executor``, ``startup_seconds``,
    ``worker_setup_seconds`` and ``stopped_by`` of the batch that wrote last
    (``written_by``).  A version-1 file (one batch, no ``batches``) counts as one
    earlier batch.
    """
    batches = []
    if earlier is not None:
        if isinstance(earlier.get("batches"), list):
            batches = [b for b in earlier["batches"] if isinstance(b, dict)]
        elif isinstance(earlier.get("results"), list):
            batches = [{**{k: v for k, v in earlier.items() if k != "results"}, "batch_id": None,
                        "results": earlier["results"]}]
    batches.append(batch)
    rows: dict[str, dict] = {}
    for entry in batches:
        for row in entry.get("results") or []:
            if not isinstance(row, dict) or "name" not in row:
                continue
            row = {**row, "batch": entry.get("batch_id")}
            old = rows.get(row["name"])
            if old is None or row.get("status") in DECISIVE or old.get("status") not in DECISIVE:
                rows[row["name"]] = row
    return {"version": SUMMARY_VERSION, "results": list(rows.values()), "batches": batches,
            "written_by": batch.get("batch_id"),
            **{k: batch.get(k) for k in ("seconds", "executor", "startup_seconds", "worker_setup_seconds",
                                         "stopped_by")}}

"""How each recording of a batch ended, and the batch's summary file."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

from h5stream.files import write_bytes_atomic

__all__ = ["RecordingResult", "BatchSummary"]


@dataclasses.dataclass
class RecordingResult:
    """How one recording of a batch ended."""

    name: str
    output: Path
    status: str = "pending"  # done | skipped | failed | preempted (stopped by a signal; resumable)
    seconds: float = 0.0
    attempts: int = 0
    kind: str | None = None
    error: str | None = None
    errors: list[str] = dataclasses.field(default_factory=list)
    detail: dict = dataclasses.field(default_factory=dict)
    #: one-time setup of the worker (thread limits, warm-up) paid before this job; not in ``seconds``
    worker_setup_seconds: float = 0.0

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

    def _with(self, status: str) -> list[RecordingResult]:
        return [r for r in self.results if r.status == status]

    @property
    def done(self) -> list[RecordingResult]:
        return self._with("done")

    @property
    def skipped(self) -> list[RecordingResult]:
        return self._with("skipped")

    @property
    def failed(self) -> list[RecordingResult]:
        return self._with("failed")

    @property
    def preempted(self) -> list[RecordingResult]:
        return self._with("preempted")

    @property
    def ok(self) -> bool:
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
            lines.append(f"{r.name:<{width}}  {r.status:<7}  {r.seconds:8.2f}  {r.attempts:>5}  {err}")
        stopped = (f", {len(self.preempted)} preempted (stopped by {self.stopped_by})"
                   if self.preempted or self.stopped_by else "")
        lines.append(
            f"{len(self.done)} done, {len(self.skipped)} skipped, {len(self.failed)} failed{stopped} "
            f"in {self.seconds:.2f} s ({self.executor})"
        )
        return "\n".join(lines)

    def as_dict(self) -> dict:
        return {"seconds": self.seconds, "executor": self.executor, "startup_seconds": self.startup_seconds,
                "worker_setup_seconds": self.worker_setup_seconds, "stopped_by": self.stopped_by,
                "results": [r.as_dict() for r in self.results]}

    def write_json(self, path: str | os.PathLike) -> Path:
        """Write the summary durably (fsynced, then renamed over ``path``); returns ``path``."""
        return write_bytes_atomic(path, json.dumps(self.as_dict(), indent=1, default=str).encode("utf-8"))

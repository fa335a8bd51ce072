"""Shared measuring tools for the benchmark suite.

Every benchmark module ``benchmarks/bench_*.py`` exposes ``run(size) -> list[Row]``
(``size`` is ``"small"`` or ``"full"``) for the runner (``python -m benchmarks``)
and pytest functions that run the same code once at small size.

Fairness rules: a write is timed to durable bytes (fsync) on both sides; a read
is timed from uncached pages (``posix_fadvise(DONTNEED)`` first) on both sides.
Peak memory is the resident set of a fresh subprocess (``ru_maxrss``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from h5stream.files import fsync_path as fsync_file  # noqa: F401  (the benchmark modules' fsync)

SIZES = ("small", "full")


@dataclasses.dataclass
class Row:
    """One line of the benchmark table.

    ``ratio`` is how many times better ours is than the peer (for times:
    peer / ours; for throughputs: ours / peer).  ``goal`` is the ratio to reach
    (``None`` when the row only reports).  ``lower_is_better`` flips the goal test
    for rows whose ratio must stay *under* the goal (e.g. memory).
    """

    benchmark: str
    peer: str
    peer_value: float
    ours: float
    unit: str
    ratio: float
    goal: float | None
    lower_is_better: bool = False
    details: str = ""

    @property
    def holds(self) -> bool | None:
        if self.goal is None or not np.isfinite(self.ratio):
            return None
        return self.ratio <= self.goal if self.lower_is_better else self.ratio >= self.goal

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["holds"] = self.holds
        return d


@dataclasses.dataclass
class Timing:
    """Seconds of repeated rounds."""

    rounds: list[float]

    @property
    def min(self) -> float:
        return min(self.rounds)

    @property
    def median(self) -> float:
        return statistics.median(self.rounds)

    def __str__(self) -> str:
        return f"min {self.min:.3f} s, median {self.median:.3f} s over {len(self.rounds)}"


def timed_row(benchmark: str, peer: str, peer_time: Timing, ours_time: Timing, goal: float | None,
              details: str = "") -> Row:
    """A row comparing two timings: the fastest rounds, ratio peer / ours.

    ``details`` starts with both timings and the ratio of their medians;
    ``details`` given here follows.
    """
    text = f"ours {ours_time}; peer {peer_time}; median ratio {peer_time.median / ours_time.median:.2f}"
    return Row(benchmark=benchmark, peer=peer, peer_value=peer_time.min, ours=ours_time.min, unit="s",
               ratio=peer_time.min / ours_time.min, goal=goal, details=f"{text}; {details}" if details else text)


def time_rounds(
    fn: Callable[[], object],
    rounds: int = 3,
    setup: Callable[[], object] | None = None,
    warmup: int = 0,
) -> Timing:
    """Time ``fn`` ``rounds`` times; ``setup`` runs untimed before each round."""
    for _ in range(warmup):
        if setup is not None:
            setup()
        fn()
    out = []
    for _ in range(rounds):
        if setup is not None:
            setup()
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return Timing(out)


def drop_page_cache(path: str | os.PathLike) -> None:
    """Evict a file's pages so the next read comes from the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fdatasync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def raw_write_seconds(arr: np.ndarray, path: str | os.PathLike) -> float:
    """Seconds to write ``arr`` with ``tofile`` and fsync: the disk's write limit."""
    t0 = time.perf_counter()
    arr.tofile(path)
    fsync_file(path)
    return time.perf_counter() - t0


def raw_read_seconds(path: str | os.PathLike, dtype) -> float:
    """Seconds to read a file with ``fromfile`` from uncached pages: the disk's read limit."""
    drop_page_cache(path)
    t0 = time.perf_counter()
    np.fromfile(path, dtype=dtype)
    return time.perf_counter() - t0


def peak_rss_mb(code: str, *, env: dict | None = None, timeout: float = 3600) -> tuple[float, str]:
    """Run ``code`` in a fresh Python and return (peak resident MB, its stdout).

    The code runs as a script; its peak is the child's own resident high-water mark.
    """
    # ru_maxrss of a child started by fork+exec inherits the parent's peak on Linux,
    # so the child's own high-water mark (VmHWM) is read where /proc has it.
    wrapper = textwrap.dedent(
        """
        import resource, sys
        exec(compile(sys.stdin.read(), "<bench>", "exec"))
        peak = None
        try:
            with open("/proc/self/status") as fh:
                for line in fh:
                    if line.startswith("VmHWM:"):
                        peak = int(line.split()[1])
        except OSError:
            pass
        if peak is None:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print("__PEAK_RSS_KB__", peak)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", wrapper],
        input=code,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"benchmark subprocess failed:\n{done.stderr}")
    peak = None
    lines = []
    for line in done.stdout.splitlines():
        if line.startswith("__PEAK_RSS_KB__"):
            peak = int(line.split()[1]) / 1024.0
        else:
            lines.append(line)
    return peak, "\n".join(lines)


def scratch_dir(prefix: str = "h5stream-bench-") -> tempfile.TemporaryDirectory:
    """A scratch directory on the same disk as the benchmark's files.

    ``H5STREAM_BENCH_DIR`` chooses the parent (default: the system temp dir).
    """
    parent = os.environ.get("H5STREAM_BENCH_DIR")
    if parent:
        Path(parent).mkdir(parents=True, exist_ok=True)
    return tempfile.TemporaryDirectory(prefix=prefix, dir=parent)


def format_table(rows: list[Row]) -> str:
    head = ["benchmark", "peer or limit", "peer", "ours", "ratio", "goal", "holds"]
    body = []
    for r in rows:
        goal = "-" if r.goal is None else (f"<= {r.goal:g}" if r.lower_is_better else f">= {r.goal:g}")
        holds = {True: "yes", False: "NO", None: "-"}[r.holds]
        body.append(
            [
                r.benchmark,
                r.peer,
                f"{r.peer_value:.4g} {r.unit}",
                f"{r.ours:.4g} {r.unit}",
                f"{r.ratio:.3g}",
                goal,
                holds,
            ]
        )
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths))]
    lines.append("  ".join("-" * w for w in widths))
    for b in body:
        lines.append("  ".join(str(x).ljust(w) for x, w in zip(b, widths)))
    return "\n".join(lines)


def main(run: Callable[[str], list[Row]]) -> None:
    """``python -m benchmarks.bench_<area> [small|full]``: one module's table, then each row's details."""
    started = time.perf_counter()
    rows = run(sys.argv[1] if len(sys.argv) > 1 else "small")
    print(format_table(rows))
    for row in rows:
        print(f"- {row.benchmark}: {row.details}")
    print(f"({time.perf_counter() - started:.0f} s)")


def write_json(rows: list[Row], path: str | os.PathLike, **meta) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        json.dump({"meta": meta, "rows": [r.as_dict() for r in rows]}, fh, indent=2)

"""Electrical images over a cached and an uncached raw file, over 1, 2 and all threads, against a
parallel read of the same bytes in the same run.

The raw file is :mod:`benchmarks.suite.bench_eimage`'s vendor layout (full size: 250,000 frames of 65 x 65
uint16, 2.1 GB, 135 units at 10 Hz; small: 12,000 frames, 20 units), written once.  Every
measurement runs in a fresh process (:mod:`benchmarks.suite._raw_reads`), all of them interleaved in
rounds whose order rotates, each after setting the file's state and checking it (the share of the
file the page cache holds, asked of the system, must be at least 0.95 for ``cached`` and at most
0.05 for ``uncached``; the run is refused otherwise):

* ``cached``: the file read whole first.  The electrical images with the pass's own choice of the
  path of held pieces (``auto``), with every held piece read directly (``direct``), and with every
  held piece copied from the page cache (``cached``); the raw rows alone read in parallel along
  each path (``read cached``: ``T`` copies at a time, ``read direct``).
* ``uncached``: the file's pages dropped (``posix_fadvise DONTNEED``; on a virtual machine the
  host may still hold them).  ``auto`` and ``direct`` (every piece read directly, as the pass did
  before it chose paths: pieces the cache lacks are always read directly, so the two should match),
  and ``read direct``.

Thread counts: 1, 2, 16 where the machine has 16 cores or more, and all cores.  Every run of one
thread count must give the same images (a digest, bit for bit); the details say whether the thread
counts agreed too.

Rows (times: min over the rounds, medians beside):
* per state and thread count, ``auto`` against the faster forced path (cached) or ``direct``
  (uncached): goal within :data:`PATH_SLACK` of it (ratio >= 1 / 1.15);
* per state and thread count, ``auto`` against the faster parallel read of the same bytes (the
  physical limit; no goal: how far the step is from the storage's speed);
* per state, the scaling from 1 thread to each other count (no goal below 16 threads); the cached
  file at 16 threads has a goal of :data:`GOAL_16_THREADS` x the 1-thread time, and says "not
  measured" where the machine has fewer than 16 cores.

Run: ``python -m benchmarks --size full --only eimage_scaling --cores "where"``.
"""

from __future__ import annotations

import math
import os
import statistics
from pathlib import Path

import pytest

from benchmarks.harness import Row, Timing, interleave, is_noisy, require_free_space, scratch_dir
from benchmarks.suite._raw_reads import EIMAGE, READ, child, make_resident, make_uncached, write_file

SIZES = {
    "small": dict(frames=12_000, units=20, rate_hz=10.0, rounds=1),  # 101 MB
    "full": dict(frames=250_000, units=135, rate_hz=10.0, rounds=3),  # 2.1 GB
}
#: the pass's own choice within this factor of the faster path forced
PATH_SLACK = 1.15
#: the cached file's electrical images at 16 threads at least this many times faster than at 1
GOAL_16_THREADS = 6.0
#: shares of the file the page cache must hold (cached) or may hold (uncached) before a run
CACHED_AT_LEAST, UNCACHED_AT_MOST = 0.95, 0.05

#: each state's sides, in the order of a round.  A state's first side at 1 thread runs right after the file
#: changed state in every round but one (the rounds rotate the sides by one), and on a virtual machine the first
#: run after a file was read into the cache again may pay for memory touched the first time (0.6-0.7 s in each of
#: its two fresh buffers' chunks, every other time, whatever the path): that place goes to a read alone, a side
#: without a goal, so that the timed choices all run on a settled file.
VARIANTS = {
    "cached": ("read cached", "auto", "direct", "cached", "read direct"),
    "uncached": ("read direct", "auto", "direct"),
}


def thread_counts(cores: int) -> list[int]:
    """1, 2, 16 where there are at least 16 cores, and all cores."""
    return sorted({1, 2, cores} | ({16} if cores >= 16 else set()))


class FileState:
    """Sets the raw file's state before a run and keeps the share of it the page cache held."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.held: dict[str, list[float]] = {"cached": [], "uncached": []}

    def set(self, state: str) -> None:
        held = make_resident(self.path) if state == "cached" else make_uncached(self.path)
        if held is None:
            raise RuntimeError(f"{self.path}: the system cannot say which pages the page cache holds, so the "
                               f"{state} runs cannot be checked; run on Linux without H5STREAM_PORTABLE=1")
        ok = held >= CACHED_AT_LEAST if state == "cached" else held <= UNCACHED_AT_MOST
        if not ok:
            raise RuntimeError(f"{self.path}: the page cache holds {held:.0%} of the file after making it {state} "
                               f"(expected {'>= ' + format(CACHED_AT_LEAST, '.0%') if state == 'cached' else '<= ' + format(UNCACHED_AT_MOST, '.0%')}); "
                               f"free memory for the file ({self.path.stat().st_size / 1e9:.1f} GB) or run a smaller size")
        self.held[state].append(held)


def measure(path: Path, spikes_path: Path, threads: list[int], rounds: int) -> tuple[dict, dict, FileState]:
    """Each side's :class:`Timing` and its last report, keyed ``(state, threads, variant)``."""
    from benchmarks.suite.bench_eimage import DATASET

    state_of = FileState(path)
    base = {"path": str(path), "spikes": str(spikes_path), "dataset": DATASET}
    reports: dict = {}
    sides, setup = {}, {}
    for state, variants in VARIANTS.items():
        for t in threads:
            for variant in variants:
                key = (state, t, variant)
                if variant.startswith("read "):
                    args = dict(base, threads=t, held=variant[5:])
                    code = READ
                else:
                    args = dict(base, threads=t, force=None if variant == "auto" else variant)
                    code = EIMAGE

                def side(key=key, code=code, args=args) -> float:
                    report = child(None, code, args)  # the library this run imports
                    reports.setdefault(key, []).append(report)
                    return report["seconds"]

                name = "|".join(map(str, key))
                sides[name] = side
                setup[name] = lambda state=state: state_of.set(state)
    timings = interleave(sides, rounds, setup=setup, self_timed=True)
    by_key = {tuple(int(p) if p.isdigit() else p for p in name.split("|")): t for name, t in timings.items()}
    for t in threads:  # the path taken must not change the images
        digests = {reports[(s, t, v)][i]["digest"] for s, vs in VARIANTS.items() for v in vs
                   if not v.startswith("read ") for i in range(len(reports[(s, t, v)]))}
        if len(digests) != 1:
            raise RuntimeError(f"{path}: the electrical images at {t} thread(s) differ between read paths "
                               f"({len(digests)} digests)")
    return by_key, reports, state_of


def _gbs(nbytes: int, seconds: float) -> str:
    return f"{nbytes / seconds / 1e9:.2f} GB/s"


def _row(benchmark: str, peer: str, peer_t: Timing, ours_t: Timing, goal: float | None, details: str) -> Row:
    return Row(benchmark=benchmark, peer=peer, peer_value=peer_t.min, ours=ours_t.min, unit="s",
               ratio=peer_t.min / ours_t.min, goal=goal, peer_median=peer_t.median, ours_median=ours_t.median,
               rounds=len(ours_t.rounds), noisy=is_noisy(peer_t, ours_t), before=ours_t.before, after=ours_t.after,
               details=details)


def _paths(report: dict) -> str:
    prof = report["profile"]
    return ", ".join(f"{k} {prof[k + '_bytes'] / 1e9:.2f} GB" for k in ("cached", "direct", "sliced")
                     if prof.get(k + "_bytes"))


def rows_of(timings: dict, reports: dict, state_of: FileState, threads: list[int], nbytes: int,
            cores: int, where: str) -> list[Row]:
    """The rows (see the module's docstring) from :func:`measure`'s results."""
    rows = []
    for state in VARIANTS:
        held = state_of.held[state]
        note = (f"{where}; raw file {nbytes / 1e9:.2f} GB, page cache held {min(held):.0%}-{max(held):.0%} of it "
                f"before each {state} run")
        for t in threads:
            auto = timings[(state, t, "auto")]
            fmt = {v: f"{v} {timings[(state, t, v)].min:.2f} / {timings[(state, t, v)].median:.2f} s "
                      f"({_gbs(nbytes, timings[(state, t, v)].min)})" for v in VARIANTS[state]}
            paths = f"paths of auto's last run: {_paths(reports[(state, t, 'auto')][-1])}"
            every = "; ".join(fmt.values())
            if state == "cached":
                forced = min((timings[(state, t, v)] for v in ("direct", "cached")), key=lambda x: x.min)
                which = "direct" if forced is timings[(state, t, "direct")] else "page-cache copies"
                rows.append(_row(f"eimage cached raw, {t} thread(s): own path choice vs the faster path forced",
                                 f"held pieces forced {which} (faster)", forced, auto, 1 / PATH_SLACK,
                                 f"min / median: {every}; {paths}; {note}"))
            else:
                rows.append(_row(f"eimage uncached raw, {t} thread(s): own path choice vs every piece direct",
                                 "every piece read directly (as before)", timings[(state, t, "direct")], auto,
                                 1 / PATH_SLACK, f"min / median: {every}; {paths}; {note}"))
            reads = [timings[(state, t, v)] for v in VARIANTS[state] if v.startswith("read ")]
            limit = min(reads, key=lambda x: x.min)
            rows.append(_row(f"eimage {state} raw, {t} thread(s) vs a parallel read of the same bytes",
                             f"faster parallel read, {t} thread(s) (physical limit)", limit, auto, None,
                             f"min / median: {every}; {note}"))
        one = timings[(state, 1, "auto")]
        for t in threads[1:]:
            goal = GOAL_16_THREADS if (state == "cached" and t == 16) else None
            rows.append(_row(f"eimage {state} raw, scaling 1 -> {t} threads", "1 thread", one,
                             timings[(state, t, "auto")], goal, f"speed-up of the minima; {note}"))
    if cores < 16:
        rows.append(Row(
            benchmark="eimage cached raw, scaling 1 -> 16 threads", peer="1 thread", peer_value=math.nan,
            ours=math.nan, unit="s", ratio=math.nan, goal=GOAL_16_THREADS,
            details=(f"not measured: this machine has {cores} cores; the row needs a node of at least 16 "
                     f"({where})"),
        ))
    return rows


def where_measured() -> str:
    """The machine's core count and where it was measured (``H5STREAM_BENCH_CORES_NOTE``, set by the runner's
    ``--cores``, else the host's name)."""
    from benchmarks.harness.run import CORES_NOTE_ENV, cores_meta

    cores = cores_meta(os.environ.get(CORES_NOTE_ENV))
    return (f"{cores['count']} cores ({cores['usable']} usable), {cores['note']}, 1-min load average "
            f"{os.getloadavg()[0]:.1f} at the end")


def run(size: str = "small") -> list[Row]:
    p = SIZES[size]
    cores = os.cpu_count() or 1
    threads = thread_counts(cores)
    with scratch_dir() as tmp:
        tmp = Path(tmp)
        require_free_space(tmp, int(p["frames"] * 65 * 65 * 2 * 1.1), f"eimage_scaling benchmark at size {size!r}")
        path, spikes_path = write_file(tmp, p["frames"], p["units"], p["rate_hz"])
        nbytes = path.stat().st_size
        timings, reports, state_of = measure(path, spikes_path, threads, p["rounds"])
    return rows_of(timings, reports, state_of, threads, nbytes, cores, where_measured())


def test_thread_counts_are_one_two_sixteen_and_all():
    assert thread_counts(1) == [1, 2]
    assert thread_counts(2) == [1, 2]
    assert thread_counts(8) == [1, 2, 8]
    assert thread_counts(16) == [1, 2, 16]
    assert thread_counts(64) == [1, 2, 16, 64]


@pytest.mark.slow
def test_eimage_scaling_small_rows():
    rows = run("small")
    names = [r.benchmark for r in rows]
    cores = os.cpu_count() or 1
    for t in thread_counts(cores):
        assert f"eimage cached raw, {t} thread(s): own path choice vs the faster path forced" in names
        assert f"eimage uncached raw, {t} thread(s) vs a parallel read of the same bytes" in names
    for row in rows:
        if "not measured" in row.details:
            assert cores < 16 and math.isnan(row.ours) and row.holds is None
            continue
        assert row.ours > 0 and row.peer_value > 0
        assert row.ratio == pytest.approx(row.peer_value / row.ours)
        assert row.ours <= row.ours_median and row.rounds >= 1
        assert f"{cores} cores" in row.details
    path_rows = [r for r in rows if "path" in r.benchmark and "parallel" not in r.benchmark]
    assert all(r.goal == pytest.approx(1 / PATH_SLACK) for r in path_rows)
    assert len(path_rows) == 2 * len(thread_counts(cores))


if __name__ == "__main__":  # python -m benchmarks.suite.bench_eimage_scaling [small|full]
    from benchmarks.harness import main

    main(run)

"""Many small recordings: a batch on two workers against the same recordings one after another.

Where :mod:`benchmarks.bench_batch` gives each recording several seconds of
kernels, here each recording is small (about 1 s of work on one core), so what
each job costs besides its kernels (the worker's start, imports, loading the
compiled kernels, opening and checking files, done markers, moving results)
decides the speed-up.  Both sides run the whole pipeline on the same synthetic
recordings (one recording hard-linked under every name), each in a fresh Python
process so that both pay their imports and their first-call costs: the
sequential side once, the batch side once per worker plus the cluster's start.

Goal: the batch (default executor, a Dask LocalCluster with 2 workers) at least
:data:`GOAL`x faster than the sequential process, best of interleaved rounds
(medians in the details).

Run: ``python -m benchmarks --size full --only batch_many``.
"""

from __future__ import annotations

import os
import statistics
from pathlib import Path

from benchmarks._harness import Row, interleave, scratch_dir, timed_row
from benchmarks.bench_batch import _BATCH, _SEQUENTIAL, _make_inputs, _python

#: the batch of small recordings is at least this many times faster than one after another
GOAL = 1.5

SIZES = {
    # recordings, synthetic parameters, rounds
    "small": (4, {"n_units": 3}, 1),
    # about 1 s of pipeline work per warm recording on one free core: 30 units, a 20 s
    # dense-noise movie (1,200 images), 0.5 s of raw data for the electrical images
    "full": (50, {"n_units": 30, "noise_images": 1200, "raw_seconds": 0.5}, 3),
}


def run(size: str = "small") -> list[Row]:
    n, params, rounds = SIZES[size]
    with scratch_dir() as tmp:
        tmp = Path(tmp)
        inputs = _make_inputs(tmp, n, params)
        results: dict[str, list[dict]] = {"seq": [], "dask": []}

        def side(kind: str):
            def go() -> float:
                out = tmp / f"{kind}-{len(results[kind])}"
                out.mkdir()
                result = (_python(_SEQUENTIAL, str(inputs), str(out), "1") if kind == "seq"
                          else _python(_BATCH, str(inputs), str(out), "1", kind))
                results[kind].append(result)
                return result["wall"]
            return go

        timings = interleave({kind: side(kind) for kind in results}, rounds, self_timed=True)
    seq = min(results["seq"], key=lambda r: r["wall"])
    par = min(results["dask"], key=lambda r: r["wall"])
    per_job = statistics.median(par["jobs"])
    # what the batch spends beyond its jobs, shared by 2 workers, per recording
    engine = (par["batch"] - par["startup"] - max(par["setup"] or [0.0]) - sum(par["jobs"]) / 2) / n
    return [timed_row(
        f"batch of {n} small recordings (~1 s of work each), 2 Dask workers",
        "same recordings one after another in one process", timings["seq"], timings["dask"], GOAL,
        details=(f"end-to-end wall time of fresh processes (imports, cluster start, worker warm-up included); "
                 f"in the best runs: sequential (all {os.cpu_count()} cores per kernel) jobs median "
                 f"{statistics.median(seq['jobs']):.2f} s, first (cold) {seq['jobs'][0]:.2f} s, sum "
                 f"{sum(seq['jobs']):.1f} s, wall {seq['wall']:.1f} s; batch ({par['executor']}) jobs median "
                 f"{per_job:.2f} s, sum {sum(par['jobs']):.1f} s, wall {par['wall']:.1f} s: process start + "
                 f"imports {par['wall'] - par['batch']:.2f} s, executor start and checks {par['startup']:.2f} s, "
                 f"worker set-up " + ", ".join(f"{t:.2f}" for t in par["setup"]) + " s, beyond the jobs "
                 f"{engine * 1000:.0f} ms per recording"),
    )]


def test_batch_many_small():
    rows = run("small")
    assert len(rows) == 1
    row = rows[0]
    assert row.goal == GOAL and row.ours > 0 and row.peer_value > 0
    assert row.ratio == row.peer_value / row.ours
    assert "LocalCluster" in row.details


if __name__ == "__main__":  # python -m benchmarks.bench_batch_many [small|full]
    from benchmarks._harness import main

    main(run)

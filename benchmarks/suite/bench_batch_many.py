"""Many small recordings: a batch against the same recordings one after another.

Where :mod:`benchmarks.suite.bench_batch` gives each recording several seconds of
kernels, here each recording is small (about 1 s of work on one core), so what
each job costs besides its kernels (the worker's start, imports, loading the
compiled kernels, opening and checking files, done markers, moving results)
decides the speed-up.  Both sides run the whole pipeline on the same synthetic
recordings (one recording hard-linked under every name), each in a fresh Python
process so that both pay their imports and their first-call costs: the
sequential side once, the batch side once per worker plus the cluster's start.

Goal: the batch (default executor, a process pool with a worker per free core) at least
:data:`GOAL`x faster than the sequential process, best of interleaved rounds
(medians in the details).  A second row, without a goal, runs the batch without
the inputs' pre-check in a separate process (``verify_inputs=False``): the
sequential side does not make it, and for small recordings it costs about as
much as their work.  A third row, also without a goal, is the bound of any
batch on this machine at the time (as in :mod:`benchmarks.suite.bench_batch`): two
warm jobs at once on one core each against the same two one after another on
all cores each; a batch free of every start-up cost reaches at most this
ratio, so a goal above it cannot hold here.  The details of each batch row
also give the CPU seconds of both sides (the processes and every child they
waited for), whose ratio bounds the speed-up on two free cores.

Run: ``python -m benchmarks --size full --only batch_many``.
"""

from __future__ import annotations

import os
import re
import statistics
from pathlib import Path

import pytest

from benchmarks.harness import Row, interleave, scratch_dir, timed_row
from benchmarks.suite.bench_batch import SCALING_ROUNDS, _SEQUENTIAL, _machine_scaling, _make_inputs, _python

#: small jobs per process in each shot of the machine's scaling (one job of ~0.7 s is too short a shot)
SCALING_JOBS = 4

# The batch side: the default executor (a process pool), with or without the inputs'
# pre-check in a separate process (``verify_inputs``, on by default).
_BATCH = """
import json, sys, time
t0 = time.perf_counter()
from hdmea.config import parse_config
from hdmea.pipeline.batch import run_batch
inputs, out, verify = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
config = parse_config({{"stimulus": {{"file": "{{dir}}/{{name}}.stimulus.json"}},
                        "steps": {{"compute_eimage_sta": True}}}})
summary = run_batch(inputs, config, out, show_progress=False, verify_inputs=verify)  # a worker per free core
assert summary.ok and len(summary.done) == len(summary.results), summary.table()
print(json.dumps({{"wall": time.perf_counter() - t0, "jobs": [r.seconds for r in summary.results],
                  "executor": summary.executor, "batch": summary.seconds, "startup": summary.startup_seconds,
                  "setup": summary.worker_setup_seconds}}))
"""

#: the batch of small recordings is at least this many times faster than one after another
GOAL = 1.5

SIZES = {
    # recordings, synthetic parameters, rounds
    "small": (4, {"n_units": 3}, 1),
    # about 1 s of pipeline work per warm recording on one free core (measured 0.85-1.06 s):
    # 50 units, a 50 s dense-noise movie (3,000 images), 1.2 s of raw data for the
    # electrical images
    "full": (50, {"n_units": 50, "noise_images": 3000, "raw_seconds": 1.2}, 3),
}


def run(size: str = "small") -> list[Row]:
    n, params, rounds = SIZES[size]
    with scratch_dir() as tmp:
        tmp = Path(tmp)
        inputs = _make_inputs(tmp, n, params)
        results: dict[str, list[dict]] = {"seq": [], "dask": [], "unverified": []}

        def side(kind: str):
            def go() -> float:
                out = tmp / f"{kind}-{len(results[kind])}"
                out.mkdir()
                result = (_python(_SEQUENTIAL, str(inputs), str(out), "1") if kind == "seq"
                          else _python(_BATCH, str(inputs), str(out), "1" if kind == "dask" else "0"))
                results[kind].append(result)
                return result["wall"]
            return go

        timings = interleave({kind: side(kind) for kind in results}, rounds, self_timed=True)
        (tmp / "scaling").mkdir()
        jobs, scaling_rounds = (SCALING_JOBS, SCALING_ROUNDS) if size == "full" else (1, 1)
        scaling = _machine_scaling(inputs, tmp / "scaling", "1", jobs=jobs, rounds=scaling_rounds)
    seq = min(results["seq"], key=lambda r: r["wall"])
    together, all_cores = scaling["together"], scaling["alone-all-cores"]
    return [
        timed_row(
            f"batch of {n} small recordings (~1 s of work each), default engine",
            "same recordings one after another in one process", timings["seq"], timings["dask"], GOAL,
            details=_details(seq, min(results["dask"], key=lambda r: r["wall"]), n),
        ),
        timed_row(
            f"batch of {n} small recordings, default engine, without the inputs' pre-check (verify_inputs=False)",
            "same recordings one after another in one process", timings["seq"], timings["unverified"], None,
            details="what the separate reading of every input before the first job costs (on by default): "
                    + _details(seq, min(results["unverified"], key=lambda r: r["wall"]), n),
        ),
        Row(
            benchmark=f"bound on any batch speed-up here (no engine): 2 x {jobs} warm small jobs, "
                      "2 processes at once, 1 core each",
            peer=f"the same {2 * jobs} jobs one after another, all cores each", peer_value=all_cores,
            ours=together, unit="s", ratio=all_cores / together, goal=None,
            details=f"one small job takes {scaling['alone'] / (2 * jobs):.2f} s on 1 core and "
                    f"{all_cores / (2 * jobs):.2f} s on {os.cpu_count()} (in-job speed-up "
                    f"{scaling['alone'] / all_cores:.2f}x); {jobs} in each of two processes at once on 1 "
                    f"core each take {together:.2f} s; best of {scaling_rounds} interleaved rounds; a batch without "
                    f"start-up costs reaches at most this ratio (1-min load average after it "
                    f"{os.getloadavg()[0]:.1f})",
        ),
    ]


def _workers(executor: str) -> int:
    """Jobs side by side on the executor the batch named ("process pool, 2 workers", "this process, ...")."""
    found = re.search(r"(\d+) workers?\b", executor)
    return int(found.group(1)) if found else 1


def _details(seq: dict, par: dict, n: int) -> str:
    """Where the time of the best sequential and batch runs went."""
    # what the batch spends beyond its jobs, shared by its workers, per recording
    engine = (par["batch"] - par["startup"] - sum(par["jobs"]) / _workers(par["executor"])) / n
    return (f"end-to-end wall time of fresh processes (imports, cluster start, worker warm-up included); "
            f"in the best runs: sequential (all {os.cpu_count()} cores per kernel) jobs median "
            f"{statistics.median(seq['jobs']):.2f} s, first (cold) {seq['jobs'][0]:.2f} s, sum "
            f"{sum(seq['jobs']):.1f} s, wall {seq['wall']:.1f} s; batch ({par['executor']}) jobs median "
            f"{statistics.median(par['jobs']):.2f} s, sum {sum(par['jobs']):.1f} s, wall {par['wall']:.1f} s: "
            f"process start + imports {par['wall'] - par['batch']:.2f} s, until the first job (executor start, "
            f"worker set-up " + ", ".join(f"{t:.2f}" for t in par["setup"]) + f" s, input checks) "
            f"{par['startup']:.2f} s, beyond the jobs after that {engine * 1000:.0f} ms per recording; CPU "
            f"seconds (processes and the children they waited for): sequential {seq['cpu']:.1f}, batch "
            f"{par['cpu']:.1f}: with 2 cores the batch cannot end before {par['cpu'] / 2:.1f} s, a speed-up of at most "
            f"{2 * seq['wall'] / par['cpu']:.2f}x over this sequential run")


@pytest.mark.slow
def test_batch_many_small():
    rows = run("small")
    assert len(rows) == 3
    row, unverified, bound = rows
    assert bound.goal is None and bound.peer_value > 0 and bound.ratio == bound.peer_value / bound.ours
    assert row.goal == GOAL and row.ours > 0 and row.peer_value > 0
    assert row.ratio == row.peer_value / row.ours
    assert unverified.goal is None and unverified.peer_value == row.peer_value and unverified.ours > 0
    for r in (row, unverified):  # a worker per free core: none when only one is free
        assert "process pool" in r.details or "this process" in r.details, r.details


if __name__ == "__main__":  # python -m benchmarks.suite.bench_batch_many [small|full]
    from benchmarks.harness import main

    main(run)

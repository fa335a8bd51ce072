"""The batch's fixed cost: what ``hdmea batch`` spends besides its recordings' jobs, for 1, 2 and 4 workers.

Eight tiny synthetic recordings (3 units each: tenths of a second of work), one
hard-linked under eight names, processed by ``hdmea batch --workers W`` in a
fresh process, as a user runs it.  The fixed cost is the command's wall time
less the span of its jobs (from the first job's start to the last job's end,
read from the ``.done`` markers: ``finished_unix - seconds`` and
``finished_unix``): the interpreter's start and the imports, the checks of the
inputs (read in a separate process), the workers' start and imports, and the
end of the batch.  It does not grow with the recordings; with the worker count
it should not grow either.

Goal: under :data:`GOAL_SECONDS` whatever the worker count.  The worker counts
run interleaved (1, 2, 4, then 4, 2, 1, ...); the details give each count's
minimum and median, the CPU seconds of the whole process tree, and the load
average, since on a machine that other programs keep busy every part of the
fixed cost stretches with the load.

A row times ``hdmea batch`` again over the 1-worker round's finished folder: nothing is computed, every
recording's finished-marker is checked (the configuration, the recording's identity by content, the
output's size and time) and the batch ends without starting a worker; its wall time is the fixed cost of a
rerun, with the same goal.

A last row times a batch of :data:`MANY` tiny recordings with 1 worker and with :data:`MANY` workers
(interleaved): on a node of at least :data:`MANY` cores the many workers' wall time should be at least
:data:`GOAL_MANY_SPEEDUP` x shorter.  On a machine with fewer cores it is not measured, and says so.

Run: ``python -m benchmarks --size full --only batch_fixed`` (or
``python -m benchmarks.suite.bench_batch_fixed full``).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks.harness import Row, scratch_dir
from benchmarks.suite.bench_batch import _TreeCPU

#: the batch's fixed cost stays under this many seconds, whatever the worker count
GOAL_SECONDS = 1.5

WORKERS = (1, 2, 4)

#: recordings (and workers) of the many-workers row, and the speed-up it asks of them over one worker
MANY, GOAL_MANY_SPEEDUP = 16, 3.0

SIZES = {
    # recordings, rounds (each round runs every worker count once)
    "small": (8, 1),
    "full": (8, 3),
}


def make_inputs(root: Path, n: int) -> tuple[Path, Path]:
    """``n`` tiny recordings (one, hard-linked under ``n`` names) and a configuration for them."""
    from hdmea.synthetic import generate_recording

    generate_recording(root / "base", "tiny", n_units=3, seed=5)
    inputs = root / "inputs"
    inputs.mkdir()
    for i in range(n):
        for suffix in (".cmcr", ".cmtr", ".stimulus.json"):
            os.link(root / "base" / f"tiny{suffix}", inputs / f"t{i}{suffix}")
    config = root / "batch.toml"
    config.write_text('[stimulus]\nfile = "{dir}/{name}.stimulus.json"\n')
    return inputs, config


def measure(inputs: Path, config: Path, out: Path, workers: int, env: dict | None = None,
            threads: bool = False) -> dict:
    """One ``hdmea batch --workers W`` in a fresh process: its wall time, fixed cost, jobs and CPU.

    ``threads``: also ``processes``, where the CPU went (:meth:`_TreeCPU.processes`).
    """
    shutil.rmtree(out, ignore_errors=True)
    env = {k: v for k, v in (env or os.environ).items() if not k.startswith("SLURM_")}
    started = time.time()
    with subprocess.Popen([sys.executable, "-m", "hdmea", "--log-level", "WARNING", "batch", str(inputs),
                           "--config", str(config), "--out", str(out), "--workers", str(workers)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) as proc:
        cpu = _TreeCPU(proc.pid, threads=threads)
        try:
            stdout, stderr = proc.communicate(timeout=600)
        finally:
            cpu_seconds = cpu.stop()
    ended = time.time()
    if proc.returncode != 0:
        raise RuntimeError(f"hdmea batch failed:\n{stdout[-2000:]}\n{stderr[-4000:]}")
    markers = [json.loads(m.read_text()) for m in out.glob("*.h5.done")]
    first = min(m["finished_unix"] - m["seconds"] for m in markers)
    last = max(m["finished_unix"] for m in markers)
    batch = json.loads((out / "batch_summary.json").read_text())
    own = batch["batches"][-1] if "batches" in batch else batch
    return {"workers": workers, "wall": ended - started, "fixed": (first - started) + (ended - last),
            "before_first_job": first - started, "after_last_job": ended - last, "span": last - first,
            "jobs": sum(m["seconds"] for m in markers), "cpu": cpu_seconds, "executor": own.get("executor"),
            "done": len(markers), "load": os.getloadavg()[0], **({"processes": cpu.processes()} if threads else {})}


def rerun_seconds(inputs: Path, config: Path, out: Path, env: dict | None = None) -> dict:
    """``hdmea batch`` again over ``out``, whose recordings are all finished: its wall time and CPU.

    Nothing is computed: each recording's finished-marker is checked (the configuration, the
    recording's identity by content, the output's size and time), no worker starts.
    """
    env = {k: v for k, v in (env or os.environ).items() if not k.startswith("SLURM_")}
    started = time.time()
    with subprocess.Popen([sys.executable, "-m", "hdmea", "--log-level", "WARNING", "batch", str(inputs),
                           "--config", str(config), "--out", str(out)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) as proc:
        cpu = _TreeCPU(proc.pid)
        try:
            stdout, stderr = proc.communicate(timeout=600)
        finally:
            cpu_seconds = cpu.stop()
    wall = time.time() - started
    if proc.returncode != 0:
        raise RuntimeError(f"hdmea batch failed:\n{stdout[-2000:]}\n{stderr[-4000:]}")
    batch = json.loads((out / "batch_summary.json").read_text())
    own = batch["batches"][-1] if "batches" in batch else batch
    skipped = sum(r["status"] == "skipped" for r in own["results"])
    return {"wall": wall, "cpu": cpu_seconds, "skipped": skipped, "load": os.getloadavg()[0]}


def rerun_row(inputs: Path, config: Path, out: Path, n: int, rounds: int) -> Row:
    """The wall time of a rerun over a finished folder (every marker checked, nothing to do)."""
    runs = []
    for _ in range(max(rounds, 1)):
        result = rerun_seconds(inputs, config, out)
        assert result["skipped"] == n, result
        runs.append(result)
    walls = [x["wall"] for x in runs]
    return Row(benchmark=f"batch rerun, {n} tiny recordings all finished (hdmea batch: every marker checked)",
               peer=f"goal {GOAL_SECONDS} s", peer_value=GOAL_SECONDS, ours=min(walls), unit="s",
               ratio=min(walls) / GOAL_SECONDS, goal=1.0, lower_is_better=True,
               ours_median=statistics.median(walls), rounds=len(runs),
               details=(f"wall s {', '.join(f'{x:.2f}' for x in walls)} (process start, imports, {n} markers "
                        f"checked: configuration, inputs' identity by content, output's size and time); CPU of "
                        f"the process tree {min(x['cpu'] for x in runs):.2f} s at best; 1-min load average "
                        f"{min(x['load'] for x in runs):.1f}-{max(x['load'] for x in runs):.1f}"))


def run(size: str = "small") -> list[Row]:
    n, rounds = SIZES[size]
    results: dict[int, list[dict]] = {w: [] for w in WORKERS}
    with scratch_dir() as tmp:
        tmp = Path(tmp)
        inputs, config = make_inputs(tmp, n)
        for r in range(rounds):
            for w in (WORKERS if r % 2 == 0 else WORKERS[::-1]):
                result = measure(inputs, config, tmp / f"out-{w}-{r}", w)
                assert result["done"] == n, result
                results[w].append(result)
        rerun = rerun_row(inputs, config, tmp / f"out-{WORKERS[0]}-0", n, rounds)
        many = many_workers_row(tmp / "many", rounds)
    rows = []
    for w, runs in results.items():
        best = min(runs, key=lambda x: x["fixed"])
        fixed = [x["fixed"] for x in runs]
        rows.append(Row(
            benchmark=f"batch fixed cost, {n} tiny recordings, {w} worker(s) (hdmea batch --workers {w})",
            peer=f"goal {GOAL_SECONDS} s", peer_value=GOAL_SECONDS, ours=best["fixed"], unit="s",
            ratio=best["fixed"] / GOAL_SECONDS, goal=1.0, lower_is_better=True, goal_sizes=("small", "full"),
            ours_median=statistics.median(fixed), rounds=len(runs),
            details=(f"{best['executor']}; fixed cost (wall less the jobs' span) min {min(fixed):.2f} s, median "
                     f"{statistics.median(fixed):.2f} s over {len(runs)} interleaved rounds; in the best run: wall "
                     f"{best['wall']:.2f} s = until the first job {best['before_first_job']:.2f} s (process start, "
                     f"imports, input checks, workers' start) + jobs' span {best['span']:.2f} s + after the last "
                     f"job {best['after_last_job']:.2f} s; jobs {best['jobs']:.2f} s in all; CPU of the process "
                     f"tree {best['cpu']:.2f} s; {os.cpu_count()} cores, 1-min load average "
                     f"{min(x['load'] for x in runs):.1f}-{max(x['load'] for x in runs):.1f} during the rounds"),
        ))
    return rows + [rerun, many]


def many_workers_row(root: Path, rounds: int, cores: int | None = None) -> Row:
    """:data:`MANY` tiny recordings with 1 worker against :data:`MANY` workers, wall seconds, interleaved;
    "not measured" on a machine of fewer than :data:`MANY` cores."""
    cores = (os.cpu_count() or 1) if cores is None else cores
    name = f"batch of {MANY} tiny recordings, {MANY} workers vs 1 worker (wall)"
    if cores < MANY:
        return Row(benchmark=name, peer="1 worker", peer_value=float("nan"), ours=float("nan"), unit="s",
                   ratio=float("nan"), goal=GOAL_MANY_SPEEDUP,
                   details=f"not measured: this machine has {cores} cores; the row needs a node of at least {MANY}")
    root.mkdir()
    inputs, config = make_inputs(root, MANY)
    walls: dict[int, list[float]] = {1: [], MANY: []}
    for r in range(rounds):
        for w in ((1, MANY) if r % 2 == 0 else (MANY, 1)):
            result = measure(inputs, config, root / f"out-{w}-{r}", w)
            assert result["done"] == MANY, result
            walls[w].append(result["wall"])
    one, many = walls[1], walls[MANY]
    return Row(benchmark=name, peer="1 worker", peer_value=min(one), ours=min(many), unit="s",
               ratio=min(one) / min(many), goal=GOAL_MANY_SPEEDUP, peer_median=statistics.median(one),
               ours_median=statistics.median(many), rounds=rounds,
               details=(f"wall s, 1 worker: {', '.join(f'{x:.2f}' for x in one)}; {MANY} workers: "
                        f"{', '.join(f'{x:.2f}' for x in many)}; {cores} cores"))


def test_many_workers_row_says_not_measured_below_sixteen_cores(tmp_path):
    row = many_workers_row(tmp_path / "many", 1, cores=MANY - 1)
    assert row.holds is None and row.goal == GOAL_MANY_SPEEDUP
    assert row.details.startswith(f"not measured: this machine has {MANY - 1} cores")
    assert not (tmp_path / "many").exists()  # nothing run, nothing written


@pytest.mark.slow
def test_batch_fixed_cost():
    rows = run("small")
    workers = rows[:len(WORKERS)]
    assert [r.benchmark.split("recordings, ")[1][:11] for r in workers] == [f"{w} worker(s)" for w in WORKERS]
    assert rows[-1].goal == GOAL_MANY_SPEEDUP and ((os.cpu_count() or 1) >= MANY) == (rows[-1].holds is not None)
    assert rows[-2].benchmark.startswith("batch rerun, 8 tiny recordings all finished") and rows[-2].ours > 0
    for row in rows[:-1]:
        assert row.lower_is_better and row.goal == 1.0 and row.peer_value == GOAL_SECONDS
        assert row.ours > 0 and row.ratio == row.ours / GOAL_SECONDS


if __name__ == "__main__":  # python -m benchmarks.suite.bench_batch_fixed [small|full]
    from benchmarks.harness import main

    main(run)

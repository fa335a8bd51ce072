"""Batch runs: the batch engine's default against the same recordings one after another.

Both sides run the whole pipeline (load, section times, spike sectioning, STA,
electrical images, features) on the same synthetic recordings, each in a fresh
Python process so that both pay their imports and JIT-cache loads: the
sequential side once, the batch side once per worker plus the cluster's start.
The speed-up is sequential wall time / batch wall time (best of interleaved
rounds, medians in the details), measured on the batch's own Dask LocalCluster
(``scheduler="local"``) and on the default executor (a process pool forked from
one server that imported the pipeline), each with the
engine's own choice of worker count: one per core free when the batch starts,
and no worker process at all (the recordings one after another in the batch's
process) when only one core is free.  A third row gives the machine's own two-process
scaling at the time (the same warm job in two plain processes at once).  A
fourth bounds what any engine can reach against this peer: the sequential side
runs every kernel of a job on all cores, so two jobs at once on one core each
gain only what those kernels leave idle (two warm jobs at once, one core each,
against the same two one after another on all cores each).

Goals: the Dask batch's speed-up within 10% of that bound (so the goal is 0.9 x
the bound measured in the same run) and within 5% of the process pool's (Dask
wall time at most 1/0.95 of the pool's); the engine's own cost under 5 ms per
recording.  A fixed speed-up goal (say 1.7x on 2 workers) cannot be met here:
the peer's kernels already use both cores.

The engine's own cost per recording is measured with a job that does nothing on
a running LocalCluster (submission, scheduling, done marker, result transfer).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from benchmarks.harness import POLICY, Row, interleave, scratch_dir, timed_row

#: the Dask batch's speed-up reaches at least this share of the measured bound
BOUND_SHARE = 0.9
#: the Dask batch's wall time is at most 1 / this share of the process pool's
POOL_SHARE = 0.95
#: the engine's own cost per recording, milliseconds
OVERHEAD_MS = 5.0

SIZES = {
    # recordings, synthetic parameters, electrical images, no-op jobs for the overhead, rounds of
    # no-op batches, rounds of the real batches
    "small": (2, {"n_units": 3}, False, 20, 1, 1),
    # full: the lab's median of 135 units, 12 min of dense noise, full step trials, 30 s of
    # raw sensor data for the electrical images (the lab uses 2 min): jobs whose kernels, not
    # the batch's fixed costs, decide its time, as the rows mean to measure.  A lab recording is
    # 20-30 min long with a 10 GB raw file (27-38 s of work each in the batch target); with 12 s
    # of raw data (5 s of work per job) the executor's start (1-3 s) and a job's spread were
    # 10-15% of the batch.  Three rounds of the real batches, not the runner's floor of two for
    # rows over a minute: the goal against the process pool is 5%, and on a shared machine one
    # side's two rounds differed by up to 20% (80 s and 97 s for the same pool batch), while the
    # two engines' warm batches differ by under 1% (measured: 32.4 and 31.9 s Dask, 31.8 and
    # 32.1 s pool for 6 recordings, jobs 9.8 s each).  A round of the four sides took 3.5 minutes
    # quiet in one morning, 6.5 in the night before (the host's speed, not the code).
    "full": (10, {"moderate": True, "n_units": 135, "n_silent_units": 5, "noise_images": 10800,
                  "raw_seconds": 30.0}, True, 200, 3, 3),
}


def _make_inputs(root: Path, n: int, params: dict) -> Path:
    """One synthetic recording hard-linked under ``n`` names (inputs are only read)."""
    from hdmea.synthetic import SyntheticConfig, generate_recording

    params = dict(params)
    config = SyntheticConfig.moderate() if params.pop("moderate", False) else None
    base = generate_recording(root / "base", "base", config=config, seed=1, **params)
    inputs = root / "inputs"
    inputs.mkdir()
    for i in range(n):
        name = f"rec{i:02d}"
        for src, suffix in ((base.cmcr_path, ".cmcr"), (base.cmtr_path, ".cmtr")):
            os.link(src, inputs / f"{name}{suffix}")
        (inputs / f"{name}.stimulus.json").write_text(base.stimulus_path.read_text())
    return inputs


_SEQUENTIAL = """
import dataclasses, json, sys, time
t0 = time.perf_counter()
from hdmea.config import parse_config
from hdmea.pipeline.batch import available_cores, discover_recordings, output_path_for, run_pipeline
inputs, out, eimage = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
config = parse_config({{"stimulus": {{"file": "{{dir}}/{{name}}.stimulus.json"}},
                        "steps": {{"compute_eimage_sta": eimage}}}})
# The fair peer: one process, the same library, every core for each kernel.
config = dataclasses.replace(config, batch=dataclasses.replace(config.batch, threads_per_job=available_cores()))
jobs, checkpoints = [], 0
for rec in discover_recordings(inputs):
    t = time.perf_counter()
    report = run_pipeline(rec.cmcr, rec.cmtr, output_path_for(rec, out), config, dataset_id=rec.name)
    jobs.append(time.perf_counter() - t)
    checkpoints += report.checkpoints
print(json.dumps({{"wall": time.perf_counter() - t0, "jobs": jobs, "checkpoints": checkpoints}}))
"""

_BATCH = """
import json, sys, time
t0 = time.perf_counter()
from hdmea.config import parse_config
from hdmea.pipeline.batch import run_batch
inputs, out, eimage, verify = sys.argv[1], sys.argv[2], sys.argv[3] == "1", sys.argv[5] == "verify"
# "pool": the default engine, a process pool forked from one server; "dask...": the batch's own LocalCluster
scheduler = None if sys.argv[4] == "pool" else "local"
config = parse_config({{"stimulus": {{"file": "{{dir}}/{{name}}.stimulus.json"}},
                        "steps": {{"compute_eimage_sta": eimage}}}})
# one worker per free core
summary = run_batch(inputs, config, out, show_progress=False, verify_inputs=verify, scheduler=scheduler)
assert summary.ok and len(summary.done) == len(summary.results), summary.table()
print(json.dumps({{"wall": time.perf_counter() - t0, "jobs": [r.seconds for r in summary.results],
                  "executor": summary.executor, "batch": summary.seconds, "startup": summary.startup_seconds,
                  "setup": summary.worker_setup_seconds,
                  "checkpoints": sum(r.detail.get("checkpoints", 0) for r in summary.results)}}))
"""

_OVERHEAD = """
import json, sys, time
from pathlib import Path
from hdmea.pipeline.batch import Recording, run_batch
from hdmea.pipeline.batch.executors import _dask_local_cluster, in_process_pool
from hdmea.pipeline.batch.workers import free_workers

def noop(recording, output, config):
    return {{}}

out, n, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
# The no-op job never opens its inputs; the batch checks only that they exist.
inputs = Path(out) / "inputs"
inputs.mkdir(parents=True, exist_ok=True)
recordings = [Recording(f"r{{i:04d}}", inputs / f"r{{i:04d}}.cmcr", inputs / f"r{{i:04d}}.cmtr") for i in range(n)]
for r in recordings:
    r.cmcr.touch()
    r.cmtr.touch()
# The executor the engine chooses for a batch of its own, kept running across the rounds so that
# its start is not part of the per-recording cost: a LocalCluster of a worker per free core (its
# timers, no dashboard), or, with one core free, this process's own thread.
workers = free_workers()
if workers >= 2:
    pool = _dask_local_cluster(workers)
    client = executor = pool.client
    client.run(lambda: __import__("hdmea.pipeline.batch"))
else:
    pool = in_process_pool()
    client, executor = None, pool.executor
try:
    times, plain = [], []
    for i in range(rounds):
        t = time.perf_counter()
        summary = run_batch(recordings, None, f"{{out}}/round{{i}}", executor=executor, job=noop,
                            show_progress=False)
        times.append(time.perf_counter() - t)
        assert len(summary.done) == len(summary.results)
        if client is not None:
            # Dask's own round trip for as many tasks, without the engine (interleaved with the batches).
            t = time.perf_counter()
            client.gather(client.map(noop, recordings, [None] * n, [None] * n, pure=False))
            plain.append(time.perf_counter() - t)
finally:
    pool.close()
print(json.dumps({{"times": times, "plain": plain, "n": len(summary.results), "executor": summary.executor,
                  "free_workers": workers}}))
"""


# The machine's own two-way scaling, without the engine: the same warm job in two
# plain processes released together, against two such jobs one after another.
_SCALING = """
import json, os, sys, time, dataclasses
from hdmea.config import parse_config
from hdmea.pipeline.batch import available_cores, discover_recordings, run_pipeline
inputs, out, eimage, mode, gate = sys.argv[1], sys.argv[2], sys.argv[3] == "1", sys.argv[4], sys.argv[5]
jobs = int(sys.argv[6])
config = parse_config({{"stimulus": {{"file": "{{dir}}/{{name}}.stimulus.json"}},
                        "steps": {{"compute_eimage_sta": eimage}}}})
threads = available_cores() if mode == "alone-all-cores" else 1
config = dataclasses.replace(config, batch=dataclasses.replace(config.batch, threads_per_job=threads))
rec = discover_recordings(inputs)[0]
def job(tag):
    path = f"{{out}}/{{tag}}-{{os.getpid()}}.h5"
    run_pipeline(rec.cmcr, rec.cmtr, path, config, dataset_id=rec.name)
    os.unlink(path)
job("warm")
open(gate + f".ready-{{os.getpid()}}", "w").close()
while not os.path.exists(gate):
    time.sleep(0.01)
t = time.perf_counter()
for i in range(jobs if mode == "together" else 2 * jobs):
    job(f"m{{i}}")
print(json.dumps({{"seconds": time.perf_counter() - t}}))
os._exit(0)
"""


#: interleaved rounds of the machine's scaling measurement (the bound's goal follows it: one shot
#: on a shared machine gave bounds from 0.5 to 1.05 for the same jobs)
SCALING_ROUNDS = 3


def _machine_scaling(inputs: Path, out: Path, flag: str, jobs: int = 1,
                     rounds: int = SCALING_ROUNDS) -> dict[str, float]:
    """Seconds of 2 x ``jobs`` warm jobs: one after another on one core each ("alone") and on all
    cores each ("alone-all-cores"), and in two processes at once on one core each ("together");
    the best of ``rounds`` interleaved rounds of the three."""
    import glob
    import time

    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2]) + os.pathsep + env.get("PYTHONPATH", "")
    code = textwrap.dedent(_SCALING).format()
    modes = (("alone", 1), ("alone-all-cores", 1), ("together", 2))

    def shot(mode: str, n: int, tag: str) -> float:
        gate = out / f"gate-{mode}-{tag}"
        procs = [subprocess.Popen([sys.executable, "-c", code, str(inputs), str(out), flag, mode, str(gate),
                                   str(jobs)], stdout=subprocess.PIPE, text=True, env=env) for _ in range(n)]
        while len(glob.glob(f"{gate}.ready-*")) < n:
            if any(p.poll() is not None for p in procs):
                raise RuntimeError("a scaling subprocess ended early")
            time.sleep(0.05)
        t = time.perf_counter()
        gate.touch()
        for p in procs:
            p.communicate(timeout=3600)
        return time.perf_counter() - t

    timings = interleave({mode: (lambda mode=mode, n=n: shot(mode, n, f"{time.monotonic_ns()}"))
                          for mode, n in modes}, rounds, self_timed=True)
    return {mode: timings[mode].min for mode, _ in modes}


def _descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (from ``/proc/<pid>/task/*/children``)."""
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children", encoding="ascii") as fh:
                    todo += [int(c) for c in fh.read().split()]
        except OSError:
            continue
    return found


class _TreeCPU:
    """CPU seconds of a process tree: every member's user + system time, sampled every
    ``interval`` seconds until :meth:`stop` (a member's last ``interval`` may be missed).

    ``threads``: each member's threads are sampled too, and :meth:`processes` says where the CPU went.
    """

    def __init__(self, pid: int, interval: float = 0.05, threads: bool = False) -> None:
        import threading

        self.pid, self.interval, self.threads = pid, interval, threads
        self.ticks: dict[tuple[int, int], int] = {}  # (pid, start time) -> latest ticks
        self.thread_ticks: dict[tuple[int, int], dict[str, int]] = {}  # (pid, start time) -> {tid: ticks}
        self.commands: dict[tuple[int, int], str] = {}  # (pid, start time) -> command line
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        for p in _descendants(self.pid):
            try:
                with open(f"/proc/{p}/stat", encoding="ascii", errors="replace") as fh:
                    fields = fh.read().rsplit(")", 1)[-1].split()
            except OSError:
                continue
            key = (p, int(fields[19]))
            self.ticks[key] = int(fields[11]) + int(fields[12])
            if self.threads:
                self._sample_threads(key)

    def _sample_threads(self, key: tuple[int, int]) -> None:
        p = key[0]
        if key not in self.commands:
            try:
                with open(f"/proc/{p}/cmdline", "rb") as fh:
                    self.commands[key] = fh.read().replace(b"\0", b" ").decode(errors="replace").strip()
            except OSError:
                pass
        try:
            tasks = os.listdir(f"/proc/{p}/task")
        except OSError:
            return
        seen = self.thread_ticks.setdefault(key, {})
        for task in tasks:
            try:
                with open(f"/proc/{p}/task/{task}/stat", encoding="ascii", errors="replace") as fh:
                    fields = fh.read().rsplit(")", 1)[-1].split()
            except OSError:  # the thread ended meanwhile
                continue
            seen[task] = int(fields[11]) + int(fields[12])

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return sum(self.ticks.values()) / os.sysconf("SC_CLK_TCK")

    def processes(self) -> list[dict]:
        """Each member (after :meth:`stop`, with ``threads``), the busiest first: its command line, CPU
        seconds, the threads seen and each thread's CPU seconds, the busiest first."""
        hz = os.sysconf("SC_CLK_TCK")
        members = [{"pid": key[0], "command": self.commands.get(key, "?"), "cpu": ticks / hz,
                    "threads": len(self.thread_ticks.get(key, {})),
                    "thread_cpu": sorted((t / hz for t in self.thread_ticks.get(key, {}).values()), reverse=True)}
                   for key, ticks in self.ticks.items()]
        return sorted(members, key=lambda m: -m["cpu"])


def _python(code: str, *args: str) -> dict:
    """The JSON the code prints last, with ``cpu``: CPU seconds of its process and of every
    process below it (the cluster's workers too), sampled every 50 ms."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    with subprocess.Popen([sys.executable, "-c", textwrap.dedent(code).format(), *args],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) as proc:
        cpu = _TreeCPU(proc.pid)
        try:
            out, err = proc.communicate(timeout=3600)
        finally:
            seconds = cpu.stop()
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark subprocess failed:\n{err[-4000:]}")
    result = json.loads(out.strip().splitlines()[-1])
    result["cpu"] = seconds
    return result


def run(size: str = "small") -> list[Row]:
    n, params, eimage, n_noop, rounds, batch_rounds = SIZES[size]
    rows = []
    with scratch_dir() as tmp:
        tmp = Path(tmp)
        inputs = _make_inputs(tmp, n, params)
        flag = "1" if eimage else "0"
        # Rounds interleave the sides (sequential, Dask, pool, Dask reading the inputs first) so
        # that a slow spell of the machine falls on all of them; each row compares the fastest run
        # of each side.  The sequential side reads no input ahead of its job, nor do the engine's
        # sides it is compared with: the input check in separate processes (the CLI's default)
        # is work of its own, measured as the last side.
        results: dict[str, list[dict]] = {"seq": [], "dask": [], "pool": [], "dask-verify": []}

        def side(kind: str):
            def go() -> float:
                out = tmp / f"{kind}-{len(results[kind])}"
                out.mkdir()
                engine, _, verify = kind.partition("-")
                result = (_python(_SEQUENTIAL, str(inputs), str(out), flag) if kind == "seq"
                          else _python(_BATCH, str(inputs), str(out), flag, engine, verify or "trust"))
                results[kind].append(result)
                return result["wall"]
            return go

        timings = interleave({kind: side(kind) for kind in results}, batch_rounds, self_timed=True)
        best = {kind: min(runs, key=lambda r: r["wall"]) for kind, runs in results.items()}
        (tmp / "scaling").mkdir()
        scaling_rounds = SCALING_ROUNDS if size == "full" else 1
        scaling = _machine_scaling(inputs, tmp / "scaling", flag, rounds=scaling_rounds)
        alone, together, all_cores = scaling["alone"], scaling["together"], scaling["alone-all-cores"]
        bound = all_cores / together
        seq = best["seq"]
        for kind, label in (("dask", "Dask LocalCluster engine (--scheduler local, a worker per free core)"),
                            ("pool", "default engine (process pool forked from one server, a worker per free core)"),
                            ("dask-verify", "Dask LocalCluster engine, every input read in a separate process first")):
            par = best[kind]
            setup = par["setup"]
            goal = BOUND_SHARE * bound if kind == "dask" else None
            rows.append(timed_row(
                f"batch of {n} recordings, {label}", "same recordings one after another in one process",
                timings["seq"], timings[kind], goal,
                details=(f"end-to-end wall time of fresh processes (imports, cluster start and worker warm-up "
                         f"included); "
                         + ("inputs read in a separate process before any job (verify_inputs, the CLI's default), "
                            "work the sequential side does not do; " if kind == "dask-verify" else
                            "no input read ahead of the jobs (verify_inputs=False), as on the sequential side; ")
                         + (f"goal {BOUND_SHARE:g} x the measured bound {bound:.2f}; " if goal else "")
                         + f"in the best runs: sequential (all {os.cpu_count()} cores per kernel) jobs min "
                         f"{min(seq['jobs']):.2f} s median {statistics.median(seq['jobs']):.2f} s, first (cold) "
                         f"{seq['jobs'][0]:.2f} s; batch ({par['executor']}; worker processes cap their kernels at "
                         f"their share of the cores) jobs min "
                         f"{min(par['jobs']):.2f} s median {statistics.median(par['jobs']):.2f} s (sum "
                         f"{sum(par['jobs']):.1f} s); executor start {par['startup']:.2f} s; worker set-up "
                         f"(thread caps + warm-up) " + ", ".join(f"{t:.2f}" for t in setup) + " s; "
                         f"process start + imports {par['wall'] - par['batch']:.2f} s; checkpoints written (a job "
                         f"checkpoints once 10 s of its work are unsaved, never after its last expensive step): "
                         f"sequential {seq['checkpoints']}, batch {par['checkpoints']}"),
            ))
        rows.append(timed_row(
            f"batch of {n} recordings, default engine against the engine without dask",
            "engine without dask (process pool)",
            timings["pool"], timings["dask"], POOL_SHARE,
            details=f"the default executor within {1 - POOL_SHARE:.0%} of the engine's fallback",
        ))
        rows.append(Row(
            benchmark="the machine's 2-process scaling (no engine): 2 warm jobs at once",
            peer="the same 2 jobs one after another", peer_value=alone, ours=together, unit="s",
            ratio=alone / together, goal=None,
            details="context for the batch speed-up: what two plain processes gain on this machine now "
                    f"(ideal 2.0; 1-min load average after it {os.getloadavg()[0]:.1f})",
        ))
        rows.append(Row(
            benchmark="bound on any batch speed-up here (no engine): 2 warm jobs at once, 1 core each",
            peer="the same 2 jobs one after another, all cores each", peer_value=all_cores, ours=together,
            unit="s", ratio=bound, goal=None,
            details="the sequential side runs each job's kernels on every core, so a batch can only gain what "
                    f"those kernels leave idle: one job takes {alone / 2:.2f} s on 1 core and {all_cores / 2:.2f} s "
                    f"on {os.cpu_count()} (in-job speed-up {alone / all_cores:.2f}x), and two at once on 1 core each "
                    f"take {together:.2f} s (best of {scaling_rounds} interleaved rounds); no engine, warm and free "
                    f"of start-up costs, exceeds this ratio "
                    f"(1-min load average after it {os.getloadavg()[0]:.1f})",
        ))
        # the no-op rounds are short: they follow the round policy like any short comparison
        over = _python(_OVERHEAD, str(tmp / "noop"), str(n_noop), str(POLICY.count(rounds, 0.0)))
        per = [t / over["n"] for t in over["times"]]
        plain = [t / over["n"] for t in over["plain"]]
        dask_alone = (f"; Dask's own round trip for as many no-op tasks on the same cluster (client.map + gather, "
                      f"no engine, interleaved): min {min(plain) * 1000:.1f} ms, median "
                      f"{statistics.median(plain) * 1000:.1f} ms per task" if plain else "")
        rows.append(Row(
            benchmark=f"engine overhead per recording ({n_noop} no-op jobs, the engine's executor already running)",
            peer="-", peer_value=float("nan"), ours=min(per) * 1000, unit="ms",
            ratio=min(per) * 1000, goal=OVERHEAD_MS, lower_is_better=True, ours_median=statistics.median(per) * 1000,
            rounds=len(per),
            details=f"{over['n']} recordings per round on the executor the engine chooses for a batch of its own "
                    f"({over['free_workers']} free core(s) when it started: {over['executor']}; a LocalCluster with "
                    "its timers and no dashboard, or with one core free this process's own thread), started "
                    f"before the rounds; min {min(per) * 1000:.1f} ms, median {statistics.median(per) * 1000:.1f} ms "
                    f"per recording over {len(per)} rounds (submission, scheduling, done marker, result transfer)"
                    + dask_alone,
        ))
    return rows


def test_tree_cpu_counts_a_grandchild_nobody_waited_for():
    """The cluster's workers are not reaped into the batch process's own CPU figures: sampled."""
    code = """
import os, subprocess, sys, time, json
burn = "import time\\nt = time.process_time()\\nwhile time.process_time() - t < 0.6:\\n    pass\\n"
child = subprocess.Popen([sys.executable, "-c", burn])
while True:  # ends once the grandchild has ended, without reaping it
    with open(f"/proc/{{child.pid}}/stat") as fh:
        if fh.read().rsplit(")", 1)[-1].split()[0] == "Z":
            break
    time.sleep(0.01)
print(json.dumps({{"own": time.process_time()}}))
os._exit(0)
"""
    result = _python(code)
    assert result["cpu"] >= result["own"] + 0.45


@pytest.mark.slow
def test_batch_benchmark_small():
    rows = run("small")
    dask_speed, pool_speed, verified, dask_pool, scaling, bound, overhead = rows
    assert dask_speed.goal == pytest.approx(BOUND_SHARE * bound.ratio) and pool_speed.goal is None
    # the like-for-like sides read no input ahead, as the sequential side; the CLI's default is measured apart
    assert "verify_inputs=False" in dask_speed.details and "verify_inputs=False" in pool_speed.details
    assert verified.goal is None and "verify_inputs, the CLI's default" in verified.details
    assert dask_pool.peer_value == pool_speed.ours and dask_pool.ours == dask_speed.ours and dask_pool.goal == POOL_SHARE
    assert overhead.goal == OVERHEAD_MS and overhead.lower_is_better and overhead.ratio == overhead.ours
    # a worker per free core, none (this process) when only one is free
    assert "LocalCluster" in dask_speed.details or "this process" in dask_speed.details, dask_speed.details
    assert "process pool" in pool_speed.details or "this process" in pool_speed.details, pool_speed.details
    for speed in (s for s in (dask_speed, pool_speed) if "this process" not in s.details):
        # every worker set itself up (thread caps, warm-up) once, outside the recordings' times
        setups = speed.details.split("worker set-up (thread caps + warm-up) ")[1].split(" s;")[0].split(", ")
        assert 1 <= len(setups) <= 2 and all(float(t) > 0 for t in setups), speed.details
    for speed in (dask_speed, pool_speed):
        assert speed.peer_value > 0 and speed.ours > 0 and speed.ratio == speed.peer_value / speed.ours
    assert scaling.peer_value > 0 and scaling.ours > 0
    assert bound.peer_value > 0 and bound.ours == scaling.ours and bound.ratio == bound.peer_value / bound.ours
    assert 0 < overhead.ours < 5000


if __name__ == "__main__":  # python -m benchmarks.suite.bench_batch [small|full]
    from benchmarks.harness import main

    main(run)

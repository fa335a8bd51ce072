"""Interleaved A/B of two source trees on a lab-shaped session written through ``session.units[...]``.

``python -m benchmarks.studies.ab_session_views OLD_TREE NEW_TREE [--rounds N] [--units N]`` from the repository
root (a tree: a source checkout with its compiled extensions built in place, as for
:mod:`benchmarks.harness.ab`).  Each round runs one fresh process per tree and workload, the trees' order
alternating round by round.  A process builds a session the way the lab's scripts do (per unit: an AP
tracking dict of nested scalars and two arrays, a label group written through the session, a geometry
dict), saves it and reports the seconds spent assigning, the seconds of ``save()`` (each also as the
process's CPU seconds, all threads: a figure the load of a shared machine moves far less), its own peak
resident memory (VmHWM) and how many of the values it wrote the saved file holds (read with h5py).

Workloads (each with ``memory_limit`` None and ``"32 MB"``, the latter spilling most arrays):

* ``built``: every dict is complete before it is assigned: both trees store the same content, so the
  difference is the cost of following assigned values;
* ``filled``: the geometry dict is assigned empty and filled afterwards (``d = {}; units[u][k] = d;
  d[...] = ...``): a tree that copies at assignment loses those values, and the table says how many.

Prints one Markdown table: medians over the rounds and new / old.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, sys, time
import h5py
import numpy as np
from hdmea.pipeline import create_session

target, n_units, limit, workload = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
limit = None if limit == "none" else limit
rng = np.random.default_rng(0)
s = create_session("bench", hdf5_path=target, memory_limit=limit)
s.add_units({f"unit_{i:03d}": {"spike_times": np.sort(rng.integers(0, 36_000_000, 3000)).astype(np.uint64),
                               "waveform": rng.random(50).astype(np.float32), "row": i % 65, "col": i // 65}
             for i in range(n_units)})
prediction = rng.random((20, 65, 65)).astype(np.float32)
t0, c0 = time.perf_counter(), time.process_time()
for i in range(n_units):
    u = f"unit_{i:03d}"
    ap = {"refined_soma": {"t": 12, "x": 30.5, "y": 31.25},
          "axon_initial_segment": {"t": 14, "x": 29.0, "y": 33.0},
          "prediction_sta_data": prediction + np.float32(i),
          "post_processed_data": {"axon_centroids": rng.random((40, 2)).astype(np.float32)},
          "soma_polar_coordinates": {k: float(i) + j for j, k in enumerate(
              ("radius", "angle", "cartesian_x", "cartesian_y", "theta_deg", "theta_deg_raw"))},
          "ap_pathway": {"slope": 0.5, "intercept": 1.0, "r_value": 0.9, "p_value": 0.01, "std_err": 0.1}}
    s.units[u]["features"]["ap_tracking"] = ap
    if "auto_label" not in s.units[u]:
        s.units[u]["auto_label"] = {}
    s.units[u]["auto_label"]["axon_type"] = "rgc" if i % 2 else "ac"
    geometry = {"center_row": float(i), "mask": np.ones((65, 65), dtype=bool), "area": i * 2.0}
    if workload == "built":
        s.units[u]["features"]["geometry"] = geometry
    else:
        g = {}
        s.units[u]["features"]["geometry"] = g
        g.update(geometry)  # filled after the assignment, as with a plain dict
assign_s, assign_cpu_s = time.perf_counter() - t0, time.process_time() - c0
t0, c0 = time.perf_counter(), time.process_time()
s.save()
save_s, save_cpu_s = time.perf_counter() - t0, time.process_time() - c0
hwm = [int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM")][0] / 1024
s.close()
with h5py.File(target, "r") as f:
    kept = sum("center_row" in f[f"units/{u}/features/geometry"] for u in f["units"])
    labels = sum("axon_type" in f[f"units/{u}/auto_label"] for u in f["units"])
print(json.dumps({"assign_s": assign_s, "assign_cpu_s": assign_cpu_s, "save_s": save_s, "save_cpu_s": save_cpu_s,
                  "hwm_mb": hwm, "geometry_kept": kept, "labels_kept": labels}))
"""


def run_once(tree: Path, workdir: Path, n_units: int, limit: str, workload: str) -> dict:
    target = workdir / f"ab_{os.getpid()}.h5"
    env = dict(os.environ, PYTHONPATH=f"{tree / 'src'}{os.pathsep}{tree}")
    out = subprocess.run([sys.executable, "-c", CHILD, str(target), str(n_units), limit, workload],
                         env=env, capture_output=True, text=True, check=True)
    target.unlink(missing_ok=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--units", type=int, default=300)
    args = parser.parse_args(argv)
    trees = {"old": args.old.resolve(), "new": args.new.resolve()}
    cases = [(w, lim) for w in ("built", "filled") for lim in ("none", "32MB")]
    results = {(side, case): [] for side in trees for case in cases}
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp:
        for r in range(args.rounds):
            order = ["old", "new"] if r % 2 == 0 else ["new", "old"]
            for case in cases:
                for side in order:
                    results[side, case].append(run_once(trees[side], Path(tmp), args.units, case[1], case[0]))
    print(f"{args.rounds} rounds, {args.units} units; medians (min in brackets)")
    print("| workload | memory_limit | figure | old | new | new / old |")
    print("| --- | --- | --- | --- | --- | --- |")
    for case in cases:
        for figure in ("assign_s", "assign_cpu_s", "save_s", "save_cpu_s", "hwm_mb", "geometry_kept", "labels_kept"):
            old, new = ([x[figure] for x in results[side, case]] for side in ("old", "new"))
            ratio = f"{statistics.median(new) / statistics.median(old):.3f}" if statistics.median(old) else "-"
            print(f"| {case[0]} | {case[1]} | {figure} | {statistics.median(old):.3f} ({min(old):.3f}) | "
                  f"{statistics.median(new):.3f} ({min(new):.3f}) | {ratio} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

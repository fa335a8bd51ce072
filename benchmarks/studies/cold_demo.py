"""Cold ``hdmea demo`` runs: each a fresh process with an empty numba cache, as an array task on a fresh node.

``python -m benchmarks.studies.cold_demo --runs 7`` runs ``hdmea demo`` (the console
script beside this Python, or ``python -m hdmea``) in ``--runs`` fresh
processes, one after the other, each with ``NUMBA_CACHE_DIR`` set to a new
empty temporary directory and its output in a new temporary directory, and
prints each run's wall seconds (from starting the process to its exit), the
seconds the demo itself reports for generating the recording and for the
pipeline, then the median and the maximum.  A run fails the benchmark when the
command fails, when the raw frame order was not decided on the demo recording,
or when anything was written into the numba cache (something was JIT-compiled).

Run it alone on the machine for figures worth recording (docs/guide/hpc.md
has the last ones).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def demo_command() -> list[str]:
    script = Path(sys.executable).with_name("hdmea")
    return [str(script)] if script.exists() else [sys.executable, "-m", "hdmea"]


def cold_run(command: list[str]) -> dict:
    """One cold demo in a fresh process; its wall seconds and what it reported."""
    scratch = Path(tempfile.mkdtemp(prefix="cold-demo-"))
    try:
        cache = scratch / "numba-cache"
        cache.mkdir()
        env = dict(os.environ, NUMBA_CACHE_DIR=str(cache))
        t0 = time.perf_counter()
        done = subprocess.run(command + ["demo", "--out", str(scratch / "demo")], env=env,
                              capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if done.returncode != 0:
            raise SystemExit(f"hdmea demo failed (exit {done.returncode}):\n{done.stdout}\n{done.stderr}")
        order = re.search(r"^raw frame order: (.*)$", done.stdout, re.M)
        if order is None or "margin" not in order.group(1) or re.search(r"^warning:", done.stdout, re.M):
            raise SystemExit(f"the demo did not decide the raw frame order:\n{done.stdout}")
        compiled = [p for p in cache.rglob("*") if p.is_file()]
        if compiled:
            raise SystemExit(f"the demo JIT-compiled something: {len(compiled)} file(s) in its numba cache, "
                             f"e.g. {compiled[0].relative_to(cache)}")
        generated = float(re.search(r"generated in ([0-9.]+) s", done.stdout).group(1))
        pipeline = float(re.search(r"total ([0-9.]+) s", done.stdout).group(1))
        steps = {m.group(1): float(m.group(2))
                 for m in re.finditer(r"^  (\w+) +ran +([0-9.]+) s$", done.stdout, re.M)}
        return {"wall": wall, "generate": generated, "pipeline": pipeline, "steps": steps}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.studies.cold_demo", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args(argv)
    command = demo_command()
    print(f"command: {' '.join(command)} demo --out <fresh temp dir>, NUMBA_CACHE_DIR=<fresh empty dir>")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    runs = []
    for i in range(args.runs):
        run = cold_run(command)
        runs.append(run)
        steps = ", ".join(f"{name} {seconds:.2f}" for name, seconds in run["steps"].items())
        print(f"run {i + 1}: {run['wall']:.2f} s wall (generating {run['generate']:.2f} s, "
              f"pipeline {run['pipeline']:.2f} s: {steps})", flush=True)
    walls = [r["wall"] for r in runs]
    print(f"wall seconds: {', '.join(f'{w:.2f}' for w in walls)}")
    print(f"median {statistics.median(walls):.2f} s, max {max(walls):.2f} s; "
          f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

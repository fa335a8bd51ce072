"""The batch's fixed cost, two source trees interleaved: ``hdmea batch --workers W`` on 8 tiny recordings.

``python -m benchmarks.studies.batch_fixed_ab --base OLD_SRC [--rounds R]`` from the repository root.
``OLD_SRC`` is the ``src`` folder of another checkout with its compiled extensions in place (for
example ``/work/main/src``, or a ``git worktree add DIR COMMIT`` with ``src/h5stream/_ext`` copied).

Each round runs, for 1, 2 and 4 workers, the old tree and this tree in fresh processes, in an order
that reverses round by round; every run is measured as in :mod:`benchmarks.suite.bench_batch_fixed` (wall
time less the span of the jobs, read from the done-markers; the CPU of the process tree).  Prints
every run, then per worker count the minimum and median of each side and the ratio of the medians; then
each side runs ``hdmea batch`` again over its own finished 1-worker folder (every finished-marker
checked, nothing computed), interleaved, and the same figures of those reruns' wall time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path

from benchmarks.suite.bench_batch_fixed import WORKERS, make_inputs, measure, rerun_seconds

HERE_SRC = str(Path(__file__).resolve().parents[2] / "src")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="the other tree's src folder (the 'before' side)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    trees = {"before": args.base, "after": HERE_SRC}
    with tempfile.TemporaryDirectory(prefix="h5stream-batch-ab-") as tmp:
        tmp = Path(tmp)
        inputs, config = make_inputs(tmp, 8)
        runs: dict[tuple[str, int], list[dict]] = {(k, w): [] for k in trees for w in WORKERS}
        order = [(k, w) for w in WORKERS for k in trees]
        for r in range(args.rounds):
            for side, w in (order if r % 2 == 0 else order[::-1]):
                x = measure(inputs, config, tmp / f"out-{side}-{w}-{r}", w,
                            {**os.environ, "PYTHONPATH": trees[side]})
                runs[(side, w)].append(x)
                print(f"round {r} {side:6} {w} worker(s): fixed {x['fixed']:.2f} s (first job at "
                      f"{x['before_first_job']:.2f} s, after the last {x['after_last_job']:.2f} s), wall "
                      f"{x['wall']:.2f} s, tree CPU {x['cpu']:.2f} s, load {x['load']:.1f}, {x['executor']}",
                      flush=True)
        for w in WORKERS:
            b, a = ([x["fixed"] for x in runs[(s, w)]] for s in ("before", "after"))
            bc, ac = ([x["cpu"] for x in runs[(s, w)]] for s in ("before", "after"))
            print(f"{w} worker(s): fixed cost before min {min(b):.2f} median {statistics.median(b):.2f} s, after "
                  f"min {min(a):.2f} median {statistics.median(a):.2f} s (ratio of medians "
                  f"{statistics.median(b) / statistics.median(a):.2f}); tree CPU median before "
                  f"{statistics.median(bc):.2f} s, after {statistics.median(ac):.2f} s")
        # A rerun over each side's own finished 1-worker folder: every marker checked, nothing computed.
        reruns: dict[str, list[dict]] = {k: [] for k in trees}
        for r in range(args.rounds):
            for side in (list(trees) if r % 2 == 0 else list(trees)[::-1]):
                x = rerun_seconds(inputs, config, tmp / f"out-{side}-{WORKERS[0]}-0",
                                  {**os.environ, "PYTHONPATH": trees[side]})
                assert x["skipped"] == 8, x
                reruns[side].append(x)
                print(f"round {r} {side:6} rerun of 8 finished: wall {x['wall']:.2f} s, tree CPU {x['cpu']:.2f} s, "
                      f"load {x['load']:.1f}", flush=True)
        b, a = ([x["wall"] for x in reruns[s]] for s in ("before", "after"))
        bc, ac = ([x["cpu"] for x in reruns[s]] for s in ("before", "after"))
        print(f"rerun of 8 finished recordings: wall before min {min(b):.2f} median {statistics.median(b):.2f} s, "
              f"after min {min(a):.2f} median {statistics.median(a):.2f} s (ratio of medians "
              f"{statistics.median(b) / statistics.median(a):.2f}); tree CPU median before "
              f"{statistics.median(bc):.2f} s, after {statistics.median(ac):.2f} s")


if __name__ == "__main__":
    main()

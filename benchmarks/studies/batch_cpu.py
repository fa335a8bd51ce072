"""Where a batch's CPU goes: ``hdmea batch --workers W`` on tiny recordings, per process and per thread.

``python -m benchmarks.studies.batch_cpu [--base OLD_SRC] [--workers 1 16] [--recordings 8] [--units 3]
[--rounds 2]`` from the repository root.  ``OLD_SRC``: the ``src`` folder of another checkout with its
compiled extensions in place (as for :mod:`benchmarks.studies.batch_fixed_ab`); with it, the two trees run
interleaved, in an order that reverses round by round.

Every run is :func:`benchmarks.suite.bench_batch_fixed.measure` (a fresh process; wall time, fixed cost,
the jobs' span, the CPU of the process tree) with each member process's threads sampled too.  Prints every
run, then, for each side's last run of each worker count, each process of the tree: its command line, CPU
seconds, threads and the CPU of its busiest threads.  Threads that spin while they wait (numpy's OpenBLAS
pool, an OpenMP runtime's) show as many threads of about equal CPU in a process that computes nothing
(the driver, the input checks' reading process, the workers' fork server).
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from benchmarks.suite.bench_batch_fixed import make_inputs, measure

HERE_SRC = str(Path(__file__).resolve().parents[2] / "src")


def _print_processes(processes: list[dict]) -> None:
    for p in processes:
        busy = [round(c, 2) for c in p["thread_cpu"] if c >= 0.05]
        print(f"    {p['cpu']:6.2f} s, {p['threads']:3d} threads, busiest {busy[:20]}: {p['command'][-70:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", help="another tree's src folder (the 'before' side); none: this tree alone")
    parser.add_argument("--workers", type=int, nargs="+", default=[1])
    parser.add_argument("--recordings", type=int, default=8)
    parser.add_argument("--units", type=int, default=3, help="units of the synthetic recording (3: tiny)")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    trees = {"after": HERE_SRC} if args.base is None else {"before": args.base, "after": HERE_SRC}
    with tempfile.TemporaryDirectory(prefix="h5stream-batch-cpu-") as tmp:
        tmp = Path(tmp)
        if args.units == 3:
            inputs, config = make_inputs(tmp, args.recordings)
        else:
            import hdmea.synthetic as synthetic

            made = synthetic.generate_recording
            synthetic.generate_recording = lambda d, name, n_units, seed: made(d, name, n_units=args.units, seed=seed)
            try:
                inputs, config = make_inputs(tmp, args.recordings)
            finally:
                synthetic.generate_recording = made
        order = [(side, w) for w in args.workers for side in trees]
        last: dict[tuple[str, int], dict] = {}
        for r in range(args.rounds):
            for side, w in (order if r % 2 == 0 else order[::-1]):
                root = os.pathsep.join([trees[side], str(Path(trees[side]).parent)])
                x = measure(inputs, config, tmp / f"out-{side}-{w}", w, {**os.environ, "PYTHONPATH": root},
                            threads=True)
                assert x["done"] == args.recordings, x
                last[(side, w)] = x
                print(f"round {r} {side:6} {w:2d} worker(s), {args.recordings} recordings: wall {x['wall']:.2f} s, "
                      f"fixed {x['fixed']:.2f} s, span {x['span']:.2f} s, jobs {x['jobs']:.2f} s, tree CPU "
                      f"{x['cpu']:.2f} s, load {x['load']:.1f}", flush=True)
        for (side, w), x in sorted(last.items(), key=lambda kv: (kv[0][1], kv[0][0])):
            print(f"{side} {w} worker(s), last run: tree CPU {x['cpu']:.2f} s")
            _print_processes(x["processes"])


if __name__ == "__main__":
    main()

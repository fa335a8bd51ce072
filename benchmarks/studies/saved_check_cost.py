"""What ``is_saved`` costs on a saved session: the arrays it holds in memory digested and compared with
what the save wrote of them (:mod:`hdmea.session._followed`), against a plain copy of the same arrays in
the same run.

``python -m benchmarks.studies.saved_check_cost [--units N] [--rounds N]`` from the repository root: a session
of N lab-shaped units (3,000 spike times and a 20x65x65 float32 STA each) is saved once; then each round
times ``session.is_saved`` and a copy of every array the session holds in memory.  Prints the resident
megabytes, the minimum and median of both, and their ratio.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from hdmea.pipeline import create_session
from hdmea.session._staged_tree import walk_datasets


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="h5stream-saved-check-"))
    try:
        rng = np.random.default_rng(0)
        s = create_session("bench", hdf5_path=folder / "bench.h5")
        s.add_units({f"unit_{i:03d}": {"spike_times": np.sort(rng.integers(0, 36_000_000, 3000)).astype(np.uint64),
                                       "sta": rng.random((20, 65, 65)).astype(np.float32)}
                     for i in range(args.units)})
        s.save()
        arrays = [d.data for _, d in walk_datasets(s.tree.root) if isinstance(d.data, np.ndarray)]
        check, copy = [], []
        for _ in range(args.rounds):
            start = time.perf_counter()
            if not s.is_saved:
                raise AssertionError("nothing changed, yet the session reads as unsaved")
            check.append(time.perf_counter() - start)
            start = time.perf_counter()
            for array in arrays:
                array.copy()
            copy.append(time.perf_counter() - start)
        print(f"{args.units} units, {s.resident_bytes / 1e6:.0f} MB held in memory, {args.rounds} rounds")
        print(f"is_saved on a saved session: min {min(check):.3f} s, median {statistics.median(check):.3f} s")
        print(f"a plain copy of the same arrays: min {min(copy):.3f} s, median {statistics.median(copy):.3f} s")
        print(f"is_saved / copy (medians): {statistics.median(check) / statistics.median(copy):.2f}")
        s.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()

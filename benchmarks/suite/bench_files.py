"""Writing and reading one large float32 array through the file layer, against the raw disk.

Ours: ``create_atomic`` + one contiguous, uncompressed h5py dataset, timed until the
commit returns (flush, fsync, rename, directory fsync); read back with
``open_validated`` from uncached pages.  The limit: numpy ``tofile`` + fsync and
``fromfile`` of uncached pages, measured in the same run on the same disk,
interleaved round by round so both sides see the same contention.  Goal: the write
reaches 0.8 of the raw disk or better.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from benchmarks.harness import (
    POLICY,
    Row,
    Timing,
    drop_page_cache,
    raw_read_seconds,
    raw_write_seconds,
    scratch_dir,
    timed_row,
)
from h5stream.files import create_atomic, open_validated

SIZES_BYTES = {"small": 64 * 2**20, "full": 2**30}
ROUNDS = {"small": 2, "full": 5}
WRITE_GOAL = 0.8


def make_array(n_bytes: int) -> np.ndarray:
    """Log-normal float32 values: realistic bits (incompressible enough to be fair)."""
    rng = np.random.default_rng(0)
    return rng.lognormal(size=n_bytes // 4).astype(np.float32)


def write_ours(arr: np.ndarray, path: Path) -> float:
    """Seconds to write ``arr`` as a new file through the file layer, durable on return."""
    start = time.perf_counter()
    with create_atomic(path, overwrite=True) as f:
        f.create_dataset("values", data=arr)
    return time.perf_counter() - start


def read_ours(path: Path) -> tuple[float, np.ndarray]:
    """Seconds to read the array back through ``open_validated`` from uncached pages."""
    drop_page_cache(path)
    start = time.perf_counter()
    with open_validated(path) as f:
        values = f["values"][()]
    return time.perf_counter() - start, values


def _remove(path: Path) -> None:
    if path.exists():
        path.unlink()


def measure(size: str, rounds: int | None = None) -> dict[str, Timing]:
    """Interleaved rounds of raw and layered writes and reads; checks the data read back."""
    arr = make_array(SIZES_BYTES[size])
    rounds = rounds or POLICY.count(ROUNDS[size], 0.0)  # the runner's minimum and --rounds
    times: dict[str, list[float]] = {"raw_write": [], "raw_read": [], "ours_write": [], "ours_read": []}
    with scratch_dir() as scratch:
        raw_path = Path(scratch) / "raw.bin"
        ours_path = Path(scratch) / "ours.h5"
        for _ in range(rounds):
            _remove(raw_path)  # a fresh file every round on both sides
            times["raw_write"].append(raw_write_seconds(arr, raw_path))
            times["raw_read"].append(raw_read_seconds(raw_path, arr.dtype))
            _remove(raw_path)
            _remove(ours_path)
            times["ours_write"].append(write_ours(arr, ours_path))
            seconds, values = read_ours(ours_path)
            times["ours_read"].append(seconds)
            if not np.array_equal(values, arr):
                raise AssertionError("the array read back differs from the array written")
            del values
            _remove(ours_path)
        leftovers = sorted(os.listdir(scratch))
        if leftovers:
            raise AssertionError(f"the file layer left files behind: {leftovers}")
    return {key: Timing(value) for key, value in times.items()}


def rows_from(size: str, timings: dict[str, Timing]) -> list[Row]:
    n_mb = SIZES_BYTES[size] / 1e6
    label = "1 GB" if size == "full" else f"{SIZES_BYTES[size] // 2**20} MB"

    def rates(ours: Timing, raw: Timing) -> str:
        return f"{n_mb / ours.min:.0f} MB/s best; raw {n_mb / raw.min:.0f} MB/s best"

    write_ours_t, write_raw_t = timings["ours_write"], timings["raw_write"]
    read_ours_t, read_raw_t = timings["ours_read"], timings["raw_read"]
    return [
        timed_row(f"files: write {label} float32, create_atomic (fsync)", "numpy tofile + fsync",
                  write_raw_t, write_ours_t, WRITE_GOAL, rates(write_ours_t, write_raw_t)),
        timed_row(f"files: read {label} float32, open_validated (uncached)", "numpy fromfile (uncached)",
                  read_raw_t, read_ours_t, None, rates(read_ours_t, read_raw_t)),
    ]


def run(size: str) -> list[Row]:
    """Benchmark rows at ``size`` ("small" or "full")."""
    return rows_from(size, measure(size))


def test_write_through_the_file_layer(benchmark, tmp_path):
    arr = make_array(4 * 2**20)
    target = tmp_path / "values.h5"
    benchmark(write_ours, arr, target)
    seconds, values = read_ours(target)
    assert seconds > 0
    np.testing.assert_array_equal(values, arr)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["values.h5"]


def test_rows_at_small_size():
    timings = measure("small", rounds=1)
    rows = rows_from("small", timings)
    assert [r.goal for r in rows] == [WRITE_GOAL, None]
    for row in rows:
        assert row.ours > 0 and row.peer_value > 0
        assert row.ratio == row.peer_value / row.ours
        assert "median" in row.details and "min" in row.details

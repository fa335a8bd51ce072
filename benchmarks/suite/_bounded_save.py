"""The memory-bounded save: sessions larger than their memory budget, each staged and saved in a fresh process.

Sessions of 1, 2, 4 and 8 GB (full size; 32 and 64 MB at small size) are staged with a 512 MB budget (8 MB
at small size), spilling past it, and saved: the rows give the process's peak resident memory (VmHWM,
goal: budget + 300 MB, flat whatever the session's size) and the throughput of staging and saving against
the raw disk (``tofile`` + fsync of the same number of bytes).  ``bounded_rows("huge")`` or
``H5STREAM_BENCH_HUGE=1`` adds a 50 GB session.  Part of :mod:`benchmarks.suite.bench_store`'s rows.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import h5py
import numpy as np

from benchmarks.harness import Row, peak_rss_mb

BOUNDED = {"small": ((32, 64), 8), "full": ((1024, 2048, 4096, 8192), 512)}  # (session MB, budget MB)
HUGE_MB = 50 * 1024
CHUNK_BYTES = 32 * 2**20  # one staged unit in the bounded benchmark


BOUNDED_CODE = """
import os, time
import numpy as np
from hdmea.pipeline import create_session

target = {target!r}
n_units = {n_units}
values_per_unit = {values_per_unit}
s = create_session("bounded", hdf5_path=target, memory_limit={budget})
base = np.arange(values_per_unit, dtype=np.uint64)
staging_s = 0.0
for i in range(n_units):
    spikes = base + np.uint64(i)  # fresh data per unit, made outside the timed calls
    t0 = time.perf_counter()
    s.add_units({{f"unit_{{i:05d}}": {{"spike_times": spikes, "row": i, "col": 0, "global_id": i}}}})
    staging_s += time.perf_counter() - t0
    del spikes
staged, spilled = s.staged_bytes, s.spilled_bytes
t0 = time.perf_counter()
s.save()
save_s = time.perf_counter() - t0
# VmHWM is this process's own high-water mark; ru_maxrss would also carry the launching
# process's peak across exec on Linux.
hwm_kb = [int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM")][0]
print(staging_s, save_s, staged, spilled, hwm_kb / 1024)
"""


def _raw_write_seconds(total: int, path: Path) -> float:
    """tofile + fsync of ``total`` bytes in 256 MB pieces: the disk's sequential write rate."""
    piece = np.arange(min(total, 256 * 2**20) // 8, dtype=np.uint64)
    start = time.perf_counter()
    with open(path, "wb") as fh:
        written = 0
        while written < total:
            piece.tofile(fh)
            written += piece.nbytes
        fh.flush()
        os.fsync(fh.fileno())
    return time.perf_counter() - start


def bounded_rows(size: str, workdir: Path) -> list[Row]:
    sizes_mb, budget_mb = bounded_sizes(size), BOUNDED["full" if size == "huge" else size][1]
    chunk = min(CHUNK_BYTES, sizes_mb[0] * 2**20 // 8)
    rows = []
    # the child imports what this run imports (the installed package, with its compiled kernels)
    import_path = os.pathsep.join(p for p in sys.path if p)
    for session_mb in sizes_mb:
        target = workdir / f"bounded_{session_mb}.h5"
        code = BOUNDED_CODE.format(target=str(target), n_units=session_mb * 2**20 // chunk,
                                   values_per_unit=chunk // 8, budget=budget_mb * 2**20)
        maxrss, out = peak_rss_mb(code, env={"PYTHONPATH": import_path})
        stage_s, save_s, staged, spilled, peak = out.split()
        peak = float(peak)
        total_s = float(stage_s) + float(save_s)
        with h5py.File(target, "r") as f:
            assert len(f["units"]) == session_mb * 2**20 // chunk
        target.unlink()
        raw_path = workdir / "raw.bin"
        raw_s = _raw_write_seconds(int(staged), raw_path)
        raw_path.unlink()
        ours_rate = int(staged) / total_s / 1e6
        raw_rate = int(staged) / raw_s / 1e6
        rows.append(Row(f"bounded save {session_mb} MB, budget {budget_mb} MB", "budget + 300 MB",
                        budget_mb + 300, peak, "MB", peak / (budget_mb + 300), 1.0, lower_is_better=True,
                        details=f"peak RSS (VmHWM) {peak:.0f} MB; ru_maxrss {maxrss:.0f} MB (includes the "
                                f"launching process's peak); spilled {int(spilled) / 2**20:.0f} MB"))
        rows.append(Row(f"bounded save {session_mb} MB throughput", "raw tofile + fsync", raw_rate, ours_rate,
                        "MB/s", ours_rate / raw_rate, None,
                        details=f"ours: add_units (spills past the budget) {float(stage_s):.2f} s + save "
                                f"{float(save_s):.2f} s, data generation excluded; raw {raw_s:.2f} s"))
    return rows


def bounded_sizes(size: str) -> tuple[int, ...]:
    """The sessions (MB) of the memory-bounded rows at ``size`` (the 50 GB one with "huge" or
    ``H5STREAM_BENCH_HUGE=1``)."""
    sizes_mb = BOUNDED["full" if size == "huge" else size][0]
    if size == "huge" or os.environ.get("H5STREAM_BENCH_HUGE") == "1":
        sizes_mb = (*sizes_mb, HUGE_MB)
    return sizes_mb

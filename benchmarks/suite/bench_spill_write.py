"""The spill of a memory-budgeted session against the raw disk, interleaved array by array.

Spilling past the memory budget is what a large session's staging does for almost all of its time
(:mod:`benchmarks.suite.bench_session_huge`): each array is written into the spill file from private block
copies, digested on the way (:func:`h5stream.lowlevel.write_snapshots`).  On a disk shared with other work
a staging run and a ``dd`` measured after it see different disks; here the two write alternately, one
32 MB array each in turn (the order swapped every array), each into its own file, each side's time summed
over its arrays and its closing fsync: ``ours`` is a :class:`h5stream.staging.StagingArea` with a budget of
nothing (every array spills), ``dd`` the same arrays written with ``tofile``.  Each array is made fresh,
outside the timed calls.  Goal: the issue's ``staging_s + save_s`` at most 1.3 x ``dd_s``, for the part that
dominates it.

Run: ``python -m benchmarks --size full --only spill_write`` (8 GB a side; small: 256 MB).
"""

from __future__ import annotations

import os
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

from benchmarks.harness import Row, require_free_space, scratch_dir

#: bytes written by each side; bytes of one array
SIZES = {"small": 256 << 20, "full": 8 << 30}
ARRAY_BYTES = 32 << 20


def interleaved_seconds(total: int, folder: Path) -> dict:
    """Seconds of the spill and of ``tofile`` writing ``total`` bytes each, array by array in turn."""
    from h5stream.staging import StagingArea

    area = StagingArea(folder / "session.h5", memory_limit=0)
    base = np.arange(ARRAY_BYTES // 8, dtype=np.float64)
    seconds = {"ours": 0.0, "dd": 0.0}
    spilled = []
    with open(folder / "raw.bin", "wb") as raw:
        def ours(array):
            spilled.append(area.admit(array))

        sides = [("ours", ours), ("dd", lambda array: array.tofile(raw))]
        for i in range(max(1, total // ARRAY_BYTES)):
            for name, write in sides if i % 2 == 0 else sides[::-1]:
                array = base + float(i)  # fresh data, made outside the timed call
                start = time.perf_counter()
                write(array)
                seconds[name] += time.perf_counter() - start
                del array
        start = time.perf_counter()
        raw.flush()
        os.fsync(raw.fileno())
        seconds["dd"] += time.perf_counter() - start
    start = time.perf_counter()
    area.spill_file().flush()
    fd = os.open(area.spill_path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    seconds["ours"] += time.perf_counter() - start
    # the last array spilled reads back as written, and its digest is the CRC-32 of what it holds
    last, expected = spilled[-1], base + float(len(spilled) - 1)
    np.testing.assert_array_equal(area.spill_file()[last.name][()], expected)
    head = f"{expected.dtype.str}|{expected.shape}".encode("ascii")
    assert last.digest == f"{zlib.crc32(expected.tobytes(), zlib.crc32(head)) & 0xFFFFFFFF:08x}"
    seconds["bytes"] = area.spilled_bytes
    area.discard()
    os.unlink(folder / "raw.bin")
    return seconds


def run(size: str = "small") -> list[Row]:
    total = SIZES[size]
    with scratch_dir("h5stream-spill-") as d:
        require_free_space(d, int(2.2 * total), "the spill benchmark")
        found = interleaved_seconds(total, Path(d))
    ratio = found["ours"] / found["dd"]
    fields = {"spilled_gb": found["bytes"] / 2**30, "spill_s": found["ours"], "dd_s": found["dd"],
              "load_1min": os.getloadavg()[0]}
    return [Row(f"spill write {found['bytes'] / 2**30:.2f} GB, interleaved with dd",
                "dd: tofile + fsync of the same arrays", found["dd"], found["ours"], "s", ratio, 1.3,
                lower_is_better=True, fields=fields,
                details=f"spill {found['ours']:.2f} s, dd {found['dd']:.2f} s, "
                        f"32 MB arrays alternating; load {fields['load_1min']:.1f}")]


@pytest.mark.campaign  # writes 2 x 256 MB and fsyncs them
def test_bench_spill_write_small():
    rows = run("small")
    assert len(rows) == 1
    row = rows[0]
    assert row.fields["spilled_gb"] == pytest.approx(0.25)
    assert row.fields["spill_s"] > 0 and row.fields["dd_s"] > 0

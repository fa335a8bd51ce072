"""The cost of checking a copy: ``PipelineSession.load(K).save(T)`` with and without the check.

A save that copies arrays from a file read on demand (a loaded recording, ``hdmea migrate``) reads every
copy back and compares it with the digest the source's checksum manifest holds
(:meth:`h5stream.tree.filearray.FileArray.checked_copy_digest`).  The peer is the same copy without the
check: that method switched off for its rounds, so the source's digests are carried into the target
unread (what every copy did before the check).  (A source loaded with ``verify=False`` is no peer: its
arrays carry no digest, so the writer digests each copy by reading it back, as the check does.)  Both sides copy the same recording (units with large float32 arrays:
incompressible values, chunked and compressed by the writer as a session writes them) to a fresh target
each round, fsync and rename included, interleaved round by round.

Reported, no goal: the ratio is the share of a copy's time the check adds (1.0: free).

Run: ``python -m benchmarks --size full --only copy_verify``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from benchmarks.harness import POLICY, Row, Timing, scratch_dir, timed_row

#: (units, float32 values per unit's array)
SIZES = {"tiny": (2, 1 << 16), "small": (8, 1 << 20), "full": (32, 4 << 20)}
ROUNDS = {"tiny": 1, "small": 3, "full": 5}


def make_source(path: Path, size: str) -> int:
    """A recording of ``size``'s units, each with one large array; returns the bytes of array values."""
    from hdmea.pipeline import create_session

    n_units, n_values = SIZES[size]
    rng = np.random.default_rng(0)
    session = create_session("copy", output_dir=None)
    session.add_units({f"unit_{i:03d}": {"spike_times": np.arange(100, dtype=np.uint64) * (i + 1),
                                         "trace": rng.lognormal(size=n_values).astype(np.float32)}
                       for i in range(n_units)})
    session.save(path)
    session.close()
    return n_units * n_values * 4


def copy_seconds(source: Path, target: Path, checked: bool) -> float:
    """Seconds of ``PipelineSession.load(source).save(target)``, durable on return; ``checked=False``
    carries the source's digests unread (the check switched off)."""
    from h5stream.tree.filearray import FileArray
    from hdmea.pipeline import PipelineSession

    if target.exists():
        target.unlink()
    check = FileArray.checked_copy_digest
    if not checked:
        FileArray.checked_copy_digest = lambda self, copy: None
    try:
        start = time.perf_counter()
        session = PipelineSession.load(source)
        session.save(target)
        session.close()
        return time.perf_counter() - start
    finally:
        FileArray.checked_copy_digest = check


def measure(size: str, rounds: int | None = None) -> tuple[dict[str, Timing], int]:
    rounds = rounds or POLICY.count(ROUNDS[size], 0.0)
    times: dict[str, list[float]] = {"checked": [], "unchecked": []}
    with scratch_dir() as scratch:
        source = Path(scratch) / "K.h5"
        n_bytes = make_source(source, size)
        for r in range(rounds):
            for side in (("checked", "unchecked") if r % 2 == 0 else ("unchecked", "checked")):
                times[side].append(copy_seconds(source, Path(scratch) / f"T-{side}.h5", side == "checked"))
        for side in times:
            os.unlink(Path(scratch) / f"T-{side}.h5")
    return {k: Timing(v) for k, v in times.items()}, n_bytes


def rows_from(size: str, timings: dict[str, Timing], n_bytes: int) -> list[Row]:
    n_units, n_values = SIZES[size]
    mb = n_bytes / 1e6
    checked, unchecked = timings["checked"], timings["unchecked"]
    details = (f"{n_units} units x {n_values:,} float32 ({mb:.0f} MB of values); checked "
               f"{mb / checked.min:.0f} MB/s best, unchecked {mb / unchecked.min:.0f} MB/s best")
    return [timed_row(f"copy check: load + save of {mb:.0f} MB, every copied array read back against its digest",
                      "the same copy, digests carried unread", unchecked, checked, None, details)]


def run(size: str) -> list[Row]:
    return rows_from(size, *measure(size))


def test_copy_check_rows_at_a_tiny_size(tmp_path):
    timings, n_bytes = measure("tiny", rounds=1)
    (row,) = rows_from("tiny", timings, n_bytes)
    assert row.ours > 0 and row.peer_value > 0 and row.ratio == row.peer_value / row.ours

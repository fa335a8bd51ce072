"""The benchmark harness: what every benchmark of the suite measures with, and the tools around the suite.

Every benchmark module ``benchmarks/suite/bench_*.py`` exposes ``run(size) -> list[Row]``
(``size`` is ``"small"`` or ``"full"``) for the runner (``python -m benchmarks``, :mod:`benchmarks.harness.run`)
and pytest functions that run the same code once at small size.  The modules import their tools from here:

* :mod:`benchmarks.harness.rounds`: ours and the peer in interleaved rounds, the round policy, noise;
* :mod:`benchmarks.harness.machine`: the machine's state around a row, one core kept busy;
* :mod:`benchmarks.harness.table`: a row, its verdict, the printed table and its JSON;
* :mod:`benchmarks.harness.scratch`: scratch files, evicted pages, the raw disk's limits, peak memory;
* :mod:`benchmarks.harness.instructions`: instruction counts under Valgrind's callgrind.

Fairness rules: a write is timed to durable bytes (fsync) on both sides; a read
is timed from uncached pages (``posix_fadvise(DONTNEED)`` first) on both sides.
Peak memory is the resident set of a fresh subprocess (``ru_maxrss``).

The tools around the suite (each a ``python -m benchmarks.harness.X`` command): :mod:`~benchmarks.harness.ab`
(two source trees interleaved, row by row), :mod:`~benchmarks.harness.ab_counts` (their instruction counts),
:mod:`~benchmarks.harness.compare` (a quiet table against a busy one).
"""

from h5stream.files import fsync_path as fsync_file

from benchmarks.harness.machine import (
    DISK_SAMPLE_SECONDS,
    MachineState,
    busy_core,
    cpu_ticks,
    disk_busy_share,
    steal_share,
)
from benchmarks.harness.rounds import (
    MAX_ROUNDS_WHEN_NOISY,
    MIN_ROUNDS_LONG,
    MIN_ROUNDS_SHORT,
    NOISE_MARGIN,
    POLICY,
    RoundPolicy,
    Timing,
    checksum_cost,
    checksums_off,
    interleave,
    is_noisy,
    paired_ratio,
    set_round_policy,
    time_rounds,
)
from benchmarks.harness.scratch import (
    drop_page_cache,
    peak_rss_mb,
    raw_read_seconds,
    raw_write_seconds,
    require_free_space,
    scratch_dir,
)
from benchmarks.harness.table import (
    RATIO_STATISTICS,
    SIZES,
    TABLE_WIDTH,
    Row,
    format_details,
    format_table,
    main,
    results_dir,
    timed_row,
    write_json,
)

__all__ = [
    "DISK_SAMPLE_SECONDS", "MachineState", "busy_core", "cpu_ticks", "disk_busy_share", "steal_share",
    "MAX_ROUNDS_WHEN_NOISY", "MIN_ROUNDS_LONG", "MIN_ROUNDS_SHORT", "NOISE_MARGIN", "POLICY", "RoundPolicy",
    "Timing", "checksum_cost", "checksums_off", "interleave", "is_noisy", "paired_ratio", "set_round_policy",
    "time_rounds", "drop_page_cache", "peak_rss_mb", "raw_read_seconds", "raw_write_seconds",
    "require_free_space", "scratch_dir", "fsync_file", "SIZES", "Row", "format_table", "main", "timed_row",
    "RATIO_STATISTICS", "TABLE_WIDTH", "format_details", "results_dir",
    "write_json",
]

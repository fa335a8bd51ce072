"""The printed table: 120 columns, each row's name on a line and its figures on the next, the statistic of
its ratio named, and its details wrapped."""

from __future__ import annotations

import dataclasses

import pytest

from benchmarks.harness import (
    NOISE_MARGIN,
    TABLE_WIDTH,
    MachineState,
    Row,
    Timing,
    format_details,
    format_table,
    timed_row,
)


def figures(table: str, name: str) -> str:
    """The line of a row's figures in a printed table: the line after the one naming the row."""
    lines = table.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith(name + "  vs  "))
    return lines[at + 1]


def test_table_shows_min_median_noise_and_machine_state():
    row = timed_row("compare", "peer", Timing([2.0, 2.1, 2.2]), Timing([1.0, 1.5, 1.6]), goal=1.5)
    row.before, row.after = MachineState(0.5, 0.0), MachineState(1.25, 0.4)
    text = format_table([row])
    assert text.splitlines()[2] == "compare  vs  peer"
    line = figures(text, "compare")
    assert "2 / 2.1 s" in line and "1 / 1.5 s" in line and "NOISY" in line
    assert "load 0.5>1.2" in line and "disk 0%>40%" in line and " 3 " in line  # the rounds
    assert " 2 " in line and " min " in line  # the ratio of the minima (2.0 / 1.0), named so
    assert f"{NOISE_MARGIN:.0%}" in text


def test_the_table_fits_120_columns_and_names_the_ratios_statistic():
    long_name = "eimage cached, 1 thread: own choice vs faster forced path (page-cache copies), one core busy"
    rows = [timed_row(long_name, "the same pass with every held piece copied from the page cache",
                      Timing([0.51, 0.58, 0.6]), Timing([0.56, 0.59, 0.7]), goal=0.87, busy_goal=0.5),
            Row(benchmark="checksums on save, 400 units", peer="same save, checksums off", peer_value=1.0,
                ours=1.02, unit="s CPU", ratio=0.98, goal=1 / 1.05, ratio_of="rounds", peer_median=1.1,
                ours_median=1.12, rounds=9, before=MachineState(12.25, 1.0), after=MachineState(14.5, 1.0)),
            Row(benchmark="peak memory", peer="limit", peer_value=2048.0, ours=690.0, unit="MB", ratio=0.34,
                goal=1.0, lower_is_better=True, ratio_of="one", goal_sizes=("small", "full"), size="small")]
    rows[0].one_core_busy, rows[0].size = True, "full"
    text = format_table(rows, "size full, ONE CORE BUSY (a title long enough to wrap: " + "x" * 150 + ")")
    assert max(len(line) for line in text.splitlines()) <= TABLE_WIDTH == 120
    assert "rnd med" in figures(text, "checksums on save, 400 units")
    assert " one " in figures(text, "peak memory") and "<= 1 (small+full)" in figures(text, "peak memory")
    assert long_name in " ".join(line.strip() for line in text.splitlines())
    details = format_details([dataclasses.replace(rows[0], details="word " * 80)])
    assert max(len(line) for line in details.splitlines()) <= TABLE_WIDTH and details.count("word") == 80
    with pytest.raises(ValueError, match="ratio_of"):
        dataclasses.replace(rows[2], ratio_of="mean")

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
    # the ratio of the minima (2.0 / 1.0) / of the medians (2.1 / 1.5: no rounds' own ratios recorded), and the
    # verdict reads the minima's, as timed_row judges
    assert " 2 / 1.4 " in line and " sides " in line and " min " in line
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
    # minima 1.0 / 1.02; median: the rounds' own, as recorded; the verdict reads it
    assert " 0.98 / 0.98 " in figures(text, "checksums on save, 400 units")
    assert " rounds " in figures(text, "checksums on save, 400 units") and " med " in figures(text, "checksums on save, 400 units")
    assert " one " in figures(text, "peak memory") and "<= 1 (small+full)" in figures(text, "peak memory")
    assert long_name in " ".join(line.strip() for line in text.splitlines())
    details = format_details([dataclasses.replace(rows[0], details="word " * 80)])
    assert max(len(line) for line in details.splitlines()) <= TABLE_WIDTH and details.count("word") == 80
    with pytest.raises(ValueError, match="ratio_of"):
        dataclasses.replace(rows[2], ratio_of="mean")


def test_columns_past_the_width_go_to_one_line_of_their_own_in_every_row_and_a_shared_state_to_the_title():
    wide = [Row(benchmark=f"count {i}", peer="peer", peer_value=1.82e9 + i, ours=1.88e9, unit="instructions",
                ratio=(1.82e9 + i) / 1.88e9, goal=0.95, peer_median=1.83e9, ours_median=1.89e9, rounds=2,
                before=MachineState(float(i), 0.0), after=MachineState(2.0, 0.5)) for i in range(2)]
    text = format_table(wide, "title", legend=False)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= TABLE_WIDTH
    # header and both rows: their figures on one line, the machine under them at the same column
    under = [line for line in lines if "load " in line or line.strip() == "machine"]
    assert len(under) == 3 and len({line.index(line.strip()) for line in under}) == 1, under
    assert figures(text, "count 0").split()[8:11] == ["0.968", "/", "0.968"]  # 1.82e9 / 1.88e9, 1.83e9 / 1.89e9
    same = [dataclasses.replace(r, before=MachineState(1.0, 0.0)) for r in wide]
    titled = format_table(same, "title", legend=False).splitlines()
    assert titled[0] == "title; machine load 1.0>2.0 disk 0%>50%" and "machine" not in titled[1]


def test_the_ratios_are_taken_the_way_the_row_takes_its_own():
    # a share of a limit (ours / limit, lower is better): minima 690 / 2048, medians 700 / 2000
    share = Row(benchmark="peak memory", peer="limit", peer_value=2048.0, ours=690.0, unit="MB", ratio=690 / 2048,
                goal=1.0, lower_is_better=True, peer_median=2000.0, ours_median=700.0, rounds=3)
    assert share.min_ratio == pytest.approx(690 / 2048) and share.median_ratio == (pytest.approx(0.35), "sides")
    # a time judged by the rounds' own ratios: the minima's ratio is peer / ours
    rounds = dataclasses.replace(share, unit="s", lower_is_better=False, ratio=2.5, ratio_of="rounds")
    assert rounds.min_ratio == pytest.approx(2048 / 690) and rounds.median_ratio == (2.5, "rounds")
    assert (share.judged_by, rounds.judged_by) == ("min", "med")

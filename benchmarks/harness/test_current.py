"""The current table (:mod:`benchmarks.harness.current`): the newest record of each row, and the page that
shows it."""

from __future__ import annotations

import json
import re
from pathlib import Path

from benchmarks.harness import TABLE_WIDTH, Row
from benchmarks.harness.current import current, format_current, read_records
from benchmarks.harness.machine import MachineState

PAGE = Path(__file__).resolve().parents[2] / "docs" / "benchmarks.md"


def _record(folder: Path, name: str, date: str, rows: list[Row], *, modules=("bench_x",), busy=False, cpus=2):
    meta = {"date": date, "commit": "abc1234def", "size": "full", "modules": list(modules), "busy_core": busy,
            "cpus": cpus}
    (folder / name).write_text(json.dumps({"meta": meta, "rows": [r.as_dict() for r in rows]}))


def _row(name: str, ratio: float, **fields) -> Row:
    return Row(benchmark=name, peer="peer", peer_value=ratio, ours=1.0, unit="s", ratio=ratio, goal=2.0,
               peer_median=ratio * 1.1, ours_median=1.1, rounds=3, before=MachineState(1.0, 0.0),
               after=MachineState(2.0, 0.5), **fields)


def test_the_newest_record_gives_each_row_and_a_record_measured_again_whole_is_left_out(tmp_path):
    _record(tmp_path, "old.json", "2026-01-01T00:00:00+00:00", [_row("a", 1.0), _row("renamed since", 1.5)])
    _record(tmp_path, "new.json", "2026-02-01T00:00:00+00:00", [_row("a", 3.0)])
    _record(tmp_path, "busy.json", "2025-12-01T00:00:00+00:00", [_row("a", 0.5)], busy=True)
    _record(tmp_path, "both.json", "2025-11-01T00:00:00+00:00", [_row("b", 4.0), _row("a", 9.0)],
            modules=("bench_x", "bench_y"))
    groups = {record.name: {r.benchmark: r.ratio for r in rows} for record, rows in current(read_records(tmp_path))}
    # old.json is all bench_x, measured again by new.json: gone whole; both.json keeps b (bench_y not redone)
    assert groups == {"new.json": {"a": 3.0}, "busy.json": {"a": 0.5}, "both.json": {"b": 4.0}}
    assert [name for name in groups] == ["new.json", "busy.json", "both.json"]  # newest first
    head = format_current(read_records(tmp_path)).split("\n\n")[0].splitlines()
    # a, busy a and b are judged by a goal of 2: a (3.0) and b (4.0) hold, the busy a (0.5) misses
    assert head[0].startswith("3 rows from 3 records; 3 with a goal at their size: 2 hold it, 1 miss it")
    assert head[1:] == ["- a  vs  peer: 0.5 (min), goal >= 2 [busy.json]"]


def test_the_statistic_of_an_older_record_is_read_from_its_figures(tmp_path):
    paired = dict(_row("paired", 1.7).as_dict(), peer_value=1.5, details="median of the rounds' own ratios 1.70")
    medians = dict(_row("medians", 2.0).as_dict(), peer_value=2.2, ours=1.1)
    single = dict(_row("single", 0.5).as_dict(), peer_median=None, ours_median=None)
    for row in (paired, medians, single):
        row.pop("ratio_of")
    (tmp_path / "r.json").write_text(json.dumps({"meta": {"date": "2026", "modules": ["m"]},
                                                 "rows": [_row("minima", 2.0).as_dict(), paired, medians, single]}))
    ((_, rows),) = current(read_records(tmp_path))
    assert {r.benchmark: r.statistic for r in rows} == {"minima": "min", "paired": "rounds", "medians": "median",
                                                        "single": "one"}


def test_the_page_shows_the_current_table_of_the_records():
    text = PAGE.read_text(encoding="utf-8")
    block = re.search(r"^## The current table\n.*?^```text\n(.*?)^```\n", text, flags=re.S | re.M)
    assert block, "docs/benchmarks.md has no text block under '## The current table'"
    expected = format_current(read_records())
    assert block.group(1).rstrip("\n") == expected, (
        "docs/benchmarks.md's current table differs from the records: paste the output of "
        "`python -m benchmarks.harness.current` into it")
    assert max(len(line) for line in expected.splitlines()) <= TABLE_WIDTH
    assert max(len(line) for line in text.splitlines()) <= TABLE_WIDTH

"""Tests of the comparison of a quiet and a busy benchmark table (python -m benchmarks.harness.compare)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.harness import compare
from benchmarks.harness import MachineState, Row, write_json

ROOT = Path(__file__).resolve().parents[2]


def _row(name, ratio, goal, *, peer="peer", busy_goal=None, busy=False, lower=False, noisy=False):
    return Row(benchmark=name, peer=peer, peer_value=ratio, ours=1.0, unit="s", ratio=ratio, goal=goal,
               lower_is_better=lower, noisy=noisy, busy_goal=busy_goal, one_core_busy=busy,
               before=MachineState(0.5, 0.0), after=MachineState(1.5, 0.1))


def _table(path, rows, *, busy, commit="abc123"):
    write_json(rows, path, busy_core=busy, commit=commit, complete=True)
    return path


def test_verdicts_compared_row_by_row(tmp_path, capsys):
    quiet = _table(tmp_path / "q.json", [
        _row("steady", 2.0, 1.5),
        _row("flips", 1.6, 1.5),
        _row("memory", 0.4, 1.0, lower=True),
        # judged by its one-core goal only in the busy run: 1.1 misses 1.5 quiet ...
        _row("both cores", 1.1, 1.5, busy_goal=1.0),
        _row("report only", 1.0, None),
        _row("same name", 2.0, 1.5, peer="other peer"),
    ], busy=False)
    busy = _table(tmp_path / "b.json", [
        _row("steady", 1.8, 1.5, busy=True),
        _row("flips", 1.4, 1.5, busy=True),
        _row("memory", 0.5, 1.0, lower=True, busy=True),
        # ... and 1.1 holds its busy goal of 1.0: a different verdict
        _row("both cores", 1.1, 1.5, busy_goal=1.0, busy=True),
        _row("report only", 1.0, None, busy=True),
        _row("same name", 1.2, 1.5, peer="other peer", busy=True),
    ], busy=True)
    code = compare.main(["--quiet", str(quiet), "--busy", str(busy)])
    out = capsys.readouterr().out
    assert code == 1
    def named(label):
        return [line.split(None, 1)[1].split("  [")[0] for line in out.splitlines() if line.startswith(label + " ")]

    differ = named("DIFFER")
    assert sorted(differ) == ["both cores", "flips", "same name"]
    same = named("same")
    assert sorted(same) == ["memory", "steady"]
    assert "report only" not in out
    assert "1.6 >= 1.5: holds (L 0.5>1.5)" in out and "1.4 >= 1.5: misses" in out
    assert "1.1 >= 1: holds" in out  # the busy run's applied goal
    assert "verdicts: the same on 2 of 5 rows" in out and "3 differ" in out
    assert "WARNING" not in out


def test_agreeing_runs_exit_zero_and_later_tables_override(tmp_path, capsys):
    quiet = _table(tmp_path / "q.json", [_row("a", 2.0, 1.5), _row("b", 0.9, 1.5)], busy=False)
    # the busy run split in two tables (--only); the second measures "a" again and wins
    busy1 = _table(tmp_path / "b1.json", [_row("a", 1.0, 1.5, busy=True)], busy=True)
    busy2 = _table(tmp_path / "b2.json", [_row("a", 1.7, 1.5, busy=True), _row("b", 1.0, 1.5, busy=True)],
                   busy=True)
    code = compare.main(["--quiet", str(quiet), "--busy", str(busy1), str(busy2), "--markdown"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "| a | peer | 2 >= 1.5: holds (L 0.5>1.5) | 1.7 >= 1.5: holds (L 0.5>1.5) | yes |" in out
    assert "| b | peer | 0.9 >= 1.5: misses" in out and "verdicts: the same on 2 of 2 rows" in out


def test_one_sided_rows_and_mixed_commits_are_reported(tmp_path, capsys):
    quiet = _table(tmp_path / "q.json", [_row("a", 2.0, 1.5), _row("quiet only", 2.0, 1.5)], busy=False)
    busy = _table(tmp_path / "b.json", [_row("a", 2.0, 1.5, busy=True), _row("busy only", 2.0, 1.5, busy=True)],
                  busy=True, commit="def456")
    code = compare.main(["--quiet", str(quiet), "--busy", str(busy)])
    out = capsys.readouterr().out
    assert code == 1
    assert "measured in the quiet run only:\n  quiet only" in out
    assert "measured in the busy run only:\n  busy only" in out
    assert "WARNING: the tables were not all measured on one known commit" in out


def test_a_busy_side_without_busy_core_is_flagged(tmp_path, capsys):
    quiet = _table(tmp_path / "q.json", [_row("a", 2.0, 1.5)], busy=False)
    code = compare.main(["--quiet", str(quiet), "--busy", str(quiet)])
    assert code == 0
    assert "WARNING: a busy-side table was not measured with --busy-core" in capsys.readouterr().out


def test_a_file_that_is_not_a_table_names_itself(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"rows": []}))
    with pytest.raises(SystemExit, match="bad.json: not a benchmark table"):
        compare.main(["--quiet", str(bad), "--busy", str(bad)])


@pytest.mark.skipif(not (ROOT / ".git").exists(), reason="not a git checkout")
def test_the_runner_records_the_commit_it_measured():
    from benchmarks.harness.run import source_commit

    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    commit = source_commit()
    assert commit is not None and head.startswith(commit.removesuffix("-dirty"))


def test_command_line(tmp_path):
    quiet = _table(tmp_path / "q.json", [_row("a", 2.0, 1.5)], busy=False)
    busy = _table(tmp_path / "b.json", [_row("a", 1.0, 1.5, busy=True)], busy=True)
    done = subprocess.run([sys.executable, "-m", "benchmarks.harness.compare", "--quiet", str(quiet), "--busy", str(busy)],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 1 and "DIFFER  a" in done.stdout


def test_reads_a_table_written_by_hand(tmp_path, capsys):
    """A table in the runner's JSON layout written here field by field, not by the harness's writer."""
    def raw(name, ratio, goal, holds, busy):
        return {"benchmark": name, "peer": "p", "peer_value": 1.0, "ours": 1.0, "unit": "s", "ratio": ratio,
                "goal": goal, "applied_goal": goal, "holds": holds, "lower_is_better": False, "noisy": busy,
                "before": {"load_1min": 0.25, "disk_busy": 0.0},
                "after": {"load_1min": 3.0, "disk_busy": 0.5, "cpu_steal": 0.04}}
    quiet = tmp_path / "q.json"
    busy = tmp_path / "b.json"
    quiet.write_text(json.dumps({"meta": {"busy_core": False, "commit": "x"},
                                 "rows": [raw("r", 1.25, 1.2, True, False), raw("m FAILED", float("nan"), None,
                                                                               None, False)]}))
    busy.write_text(json.dumps({"meta": {"busy_core": True, "commit": "x"}, "rows": [raw("r", 1.1, 1.2, False, True)]}))
    assert compare.main(["--quiet", str(quiet), "--busy", str(busy)]) == 1
    out = capsys.readouterr().out
    assert "quiet: 1.25 >= 1.2: holds (L 0.2>3.0, stolen 4%)" in out
    assert "busy:  1.1 >= 1.2: misses, noisy (L 0.2>3.0, stolen 4%)" in out
    assert "FAILED" not in out and "verdicts: the same on 0 of 1 rows" in out

"""Tests of the interleaved A/B comparison of two trees (python -m benchmarks.harness.ab), on hand-made tables."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks.harness import ab


def _tables(tmp_path, side, rows_per_round):
    paths = []
    for r, rows in enumerate(rows_per_round):
        path = tmp_path / f"{side}-{r}.json"
        path.write_text(json.dumps({"meta": {}, "rows": rows}))
        paths.append(path)
    return paths


def _row(name, ours, peer, unit="s"):
    return {"benchmark": name, "peer": "p", "ours": ours, "peer_value": peer, "unit": unit, "lower_is_better": False}


def test_verdicts_follow_the_planted_ratios(tmp_path):
    rng = np.random.default_rng(3)
    old_rounds, new_rounds = [], []
    for _ in range(9):
        drift = rng.uniform(0.7, 1.6)  # the machine's state of this process: ours and peer move alike
        jitter = lambda: rng.uniform(0.99, 1.01)  # noqa: E731
        old_rounds.append([_row("same", drift * jitter(), drift), _row("slower", drift * jitter(), drift),
                           _row("rate", 100.0 * jitter(), 1.0, unit="MB/s"), _row("old only", 1.0, 1.0)])
        drift = rng.uniform(0.7, 1.6)
        new_rounds.append([_row("same", drift * jitter(), drift), _row("slower", 1.3 * drift * jitter(), drift),
                           _row("rate", 80.0 * jitter(), 1.0, unit="MB/s"), _row("new only", 1.0, 1.0)])
    rows = {r["benchmark"]: r for r in ab.compare(_tables(tmp_path, "old", old_rounds),
                                                  _tables(tmp_path, "new", new_rounds))}
    assert set(rows) == {"same", "slower", "rate"}
    assert rows["same"]["verdict"] == "within" and rows["same"]["vs_peer"] == pytest.approx(1.0, abs=0.02)
    # the drift of the processes is cancelled by the peer measured beside ours, not by the raw times
    assert rows["same"]["time_interval"][1] - rows["same"]["time_interval"][0] > 0.1
    assert rows["slower"]["verdict"] == "slower" and rows["slower"]["vs_peer"] == pytest.approx(1.3, abs=0.03)
    # a rate 20% lower is 1.25x slower
    assert rows["rate"]["verdict"] == "slower" and rows["rate"]["time"] == pytest.approx(1.25, abs=0.03)
    table = ab.markdown(list(rows.values()))
    assert table.count("\n") == 4 and "| slower |" in table


def test_too_few_rounds_leave_a_close_row_undecided(tmp_path):
    old = _tables(tmp_path, "old", [[_row("close", 1.0, 1.0)], [_row("close", 1.1, 1.0)]])
    new = _tables(tmp_path, "new", [[_row("close", 1.0, 1.0)], [_row("close", 1.12, 1.0)]])
    (row,) = ab.compare(old, new)
    assert row["verdict"] == "undecided" and row["rounds"] == (2, 2)


def test_instruction_counts_compare_the_last_repetition():
    from benchmarks.harness import ab_counts

    old = {"save": [120, 100], "load": [90, 80], "gone": [5, 5]}
    new = {"save": [130, 104], "load": [95, 90], "added": [7, 7]}
    rows = ab_counts.compare(old, new)
    assert [(label, ratio) for label, _, _, ratio in rows] == [("save", pytest.approx(1.04)),
                                                               ("load", pytest.approx(1.125))]
    table = ab_counts.markdown(rows)
    assert "| save | 0.0 M | 0.0 M | 1.040 |" in table and "1.125 **> 1.05**" in table


def test_a_tree_without_its_built_extensions_is_refused_before_any_round(tmp_path, capsys):
    (tmp_path / "src" / "h5stream" / "_ext").mkdir(parents=True)
    (tmp_path / "src" / "h5stream" / "__init__.py").write_text("")
    with pytest.raises(ValueError, match="build_ext --inplace"):
        ab.check_tree(tmp_path)
    with pytest.raises(ValueError, match="source checkout"):
        ab.check_tree(tmp_path / "src")
    assert ab.main([str(tmp_path), str(tmp_path), "--only", "files", "--out", str(tmp_path / "out")]) == 2
    assert "build_ext --inplace" in capsys.readouterr().err and not (tmp_path / "out").exists()
    (tmp_path / "ext").mkdir()
    (tmp_path / "ext" / "_eimage.pyx").write_text("")
    (tmp_path / "ext" / "_csr.pyx").write_text("")
    (tmp_path / "src" / "h5stream" / "_ext" / "_eimage.cpython-311-x86_64-linux-gnu.so").write_text("")
    with pytest.raises(ValueError, match=r"\(_csr missing\)"):  # one kernel of the tree's own list not built
        ab.check_tree(tmp_path)
    (tmp_path / "src" / "h5stream" / "_ext" / "_csr.cpython-311-x86_64-linux-gnu.so").write_text("")
    assert ab.check_tree(tmp_path) == tmp_path.resolve()

"""``python -m benchmarks --size small --check`` fails when a row with a goal at that size is made slower.

A slowdown is put into the save of h5scp's defaults (the row against AnnData's defaults, whose goal
names the small size): ``--check`` at small size then exits non-zero and prints that row, while the
rows against the original writer, whose goal names full size only, print no verdict.
"""

from __future__ import annotations

import json

import pytest

from benchmarks.suite import bench_h5scp_defaults as module
from benchmarks.harness import run as runner

#: seconds added to the save of h5scp's defaults: many times the whole small round trip of any side
SLOWDOWN = 3.0


@pytest.mark.slow  # 10 fresh processes per round: about a minute
def test_check_at_small_size_fails_on_a_row_made_slower(monkeypatch, tmp_path, capsys):
    setup, save, load_setup, load = module.SIDES["ours defaults"]
    monkeypatch.setitem(module.SIDES, "ours defaults", (setup, f"time.sleep({SLOWDOWN})\n" + save, load_setup, load))
    made = module.make_inputs
    # one container of the two: the second adds time, not a case
    monkeypatch.setattr(module, "make_inputs", lambda folder, n, p: dict(list(made(folder, n, p).items())[:1]))
    path = tmp_path / "t.json"
    code = runner.main(["--size", "small", "--only", "h5scp_defaults", "--check", "--rounds", "1", "--json", str(path)])
    out = capsys.readouterr().out
    rows = {r["benchmark"]: r for r in json.loads(path.read_text())["rows"]}
    slowed = rows["h5scp dense+sparse save+load, defaults vs anndata defaults"]
    assert code == 1 and slowed["benchmark"] in out
    assert slowed["size"] == "small" and slowed["holds"] is False and slowed["ours"] >= SLOWDOWN
    # the row against the original writer has a goal at full size only: a ratio, no verdict
    original = rows["h5scp dense+sparse save+load, defaults vs original writer"]
    assert original["goal"] == 1.8 and original["holds"] is None and original["ratio"] > 0
    assert original["benchmark"] not in out
    # the file-size row is not slowed: it holds (ours at most anndata's bytes)
    assert rows["h5scp dense+sparse file size, defaults vs anndata defaults"]["holds"] is True
    assert len(rows) == 5

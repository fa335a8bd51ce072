"""A stopped demo leaves no result of its own, and never an earlier one harmed.

A stop that arrived after the pipeline had published ``demo.h5``, while the demo checked it against the
planted truth, ended the command as stopped but left the file: running the same command again then refused
("a demo result exists already").
"""

from __future__ import annotations

import pytest

import hdmea.demo
import hdmea.pipeline.run
from hdmea.demo import run_demo


def _stop(*args, **kwargs):
    raise KeyboardInterrupt


def test_a_stop_after_the_result_is_published_leaves_none_and_the_demo_runs_again(tmp_path, monkeypatch):
    monkeypatch.setattr(hdmea.demo, "_check_against_truth", _stop)
    with pytest.raises(KeyboardInterrupt):
        run_demo(tmp_path / "d", n_units=2, eimage=False)
    assert not (tmp_path / "d" / "demo.h5").exists()
    monkeypatch.undo()
    result = run_demo(tmp_path / "d", n_units=2, eimage=False)  # the same call again: not refused
    assert result.output.is_file() and result.truth_check["units"] == 2


def test_a_stop_before_the_new_result_keeps_the_earlier_one(tmp_path, monkeypatch):
    first = run_demo(tmp_path / "d", n_units=2, eimage=False).output
    before = first.read_bytes()
    monkeypatch.setattr(hdmea.pipeline.run, "run_pipeline", _stop)
    with pytest.raises(KeyboardInterrupt):
        run_demo(tmp_path / "d", n_units=2, eimage=False, overwrite=True)
    assert first.read_bytes() == before

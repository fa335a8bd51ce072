"""Batches know their inputs: a finished-marker names the recording by content, and an output damaged since
its marker was written is computed again.

Real batches (``hdmea batch`` in a fresh process, as a user runs it) over two folders of recordings that share a
name: ``day1/r0.cmcr`` and ``day2/r0.cmcr`` are different recordings (another seed of the synthetic generator).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from h5stream.files.checksum_checks import check_file
from hdmea.synthetic import generate_recording

#: real batches in fresh processes: each test takes 10 to 30 s
pytestmark = pytest.mark.slow

CONFIG = '[stimulus]\nfile = "{dir}/{name}.stimulus.json"\n[steps]\nextract_features = false\n'


@pytest.fixture(scope="module")
def days(tmp_path_factory):
    root = tmp_path_factory.mktemp("days")
    truths = {}
    for day, seed in (("day1", 11), ("day2", 12)):
        rec = generate_recording(root / day, "r0", n_units=3, seed=seed)
        truths[day] = {u.mcs_unit_id: u.spike_times for u in rec.truth().units.values()}
    config = root / "batch.toml"
    config.write_text(CONFIG)
    return root, config, truths


def _batch(inputs: Path, config: Path, out: Path) -> tuple[dict, str]:
    """``hdmea batch INPUTS --out OUT``: the recording r0's row of the batch summary, and what it printed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    proc = subprocess.run([sys.executable, "-m", "hdmea", "--log-level", "WARNING", "batch", str(inputs),
                           "--config", str(config), "--out", str(out), "--workers", "1"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = json.loads((out / "batch_summary.json").read_text())
    own = summary["batches"][-1] if "batches" in summary else summary
    (row,) = [r for r in own["results"] if r["name"] == "r0"]
    return row, proc.stdout


def _spike_times(path: Path) -> dict[int, np.ndarray]:
    with h5py.File(path, "r") as f:
        return {int(f["units"][u].attrs["unit_num"]): f["units"][u]["spike_times"][()] for u in f["units"]}


def _holds(path: Path, truth: dict) -> bool:
    found = _spike_times(path)
    return found.keys() == truth.keys() and all(np.array_equal(found[k], truth[k]) for k in truth)


def test_a_same_named_recording_of_another_day_is_computed_again(days, tmp_path):
    root, config, truths = days
    assert not _holds_pair(truths)  # the two days' recordings differ
    out = tmp_path / "O"
    row, _ = _batch(root / "day1", config, out)
    assert row["status"] == "done" and _holds(out / "r0.h5", truths["day1"])
    marker = json.loads((out / "r0.h5.done").read_text())
    assert marker["inputs"]["cmcr"]["size"] == (root / "day1" / "r0.cmcr").stat().st_size
    # day 2's r0: not the recording the output came from, so computed again and said so
    row, printed = _batch(root / "day2", config, out)
    assert row["status"] == "done" and row["note"].startswith("computed again: another recording of the same name")
    assert "computed again: another recording of the same name" in printed and "r0.cmcr" in row["note"]
    assert _holds(out / "r0.h5", truths["day2"])
    # the same recording again, even moved to another folder: finished, skipped
    shutil.copytree(root / "day2", tmp_path / "moved")
    row, _ = _batch(tmp_path / "moved", config, out)
    assert row["status"] == "skipped" and row["note"] is None


def _holds_pair(truths) -> bool:
    a, b = truths["day1"], truths["day2"]
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_an_output_damaged_since_its_marker_is_computed_again(days, tmp_path):
    root, config, truths = days
    out = tmp_path / "O"
    _batch(root / "day1", config, out)
    output = out / "r0.h5"
    size = output.stat().st_size
    with open(output, "r+b") as fh:  # truncated since: its marker still says finished
        fh.truncate(size // 2)
    row, printed = _batch(root / "day1", config, out)
    assert row["status"] == "done" and "the output fails its own check" in row["note"]
    assert "computed again" in printed
    assert output.stat().st_size == size and check_file(output)["manifest"]
    assert _holds(output, truths["day1"])
    # finished again and untouched: skipped, at the cost of a stat
    row, _ = _batch(root / "day1", config, out)
    assert row["status"] == "skipped"


def test_an_output_changed_but_sound_is_kept(days, tmp_path):
    """An output a user added to with this package since (its own check passes) is not computed again."""
    from hdmea.pipeline import PipelineSession

    root, config, truths = days
    out = tmp_path / "O"
    _batch(root / "day1", config, out)
    output = out / "r0.h5"
    session = PipelineSession.load(output)
    session.put("metadata/lab_note", "checked by eye")
    session.save(output, overwrite=True)
    session.close()
    row, _ = _batch(root / "day1", config, out)
    assert row["status"] == "skipped"
    with h5py.File(output, "r") as f:
        assert "lab_note" in f["metadata"]


def test_hdmea_run_says_why_it_computes_a_finished_output_again(days, tmp_path):
    """``hdmea run`` over an output finished from another day's recording of the same name."""
    root, config, truths = days
    out = tmp_path / "r0.h5"
    for day in ("day1", "day2"):
        proc = subprocess.run([sys.executable, "-m", "hdmea", "--log-level", "WARNING", "run",
                               str(root / day / "r0.cmcr"), str(root / day / "r0.cmtr"), "--config", str(config),
                               "--out", str(out)], capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "computed again: another recording of the same name" in proc.stdout
    assert _holds(out, truths["day2"])

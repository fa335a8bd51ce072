"""The pipeline job resumes a half-finished recording from its checkpoint, and only with the same configuration."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from hdmea.config import parse_config
from hdmea.pipeline.batch import Recording, checkpoint_path_for, done_marker_path, run_job, run_pipeline
from hdmea.synthetic import generate_recording


class Preempted(Exception):
    pass


def _stop_after(name):
    def on_step(record):
        if record.name == name and record.status == "ran":
            raise Preempted(name)
    return on_step


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    src = tmp_path_factory.mktemp("resume")
    return generate_recording(src, "res", n_units=3, seed=8)


def _config(base, **steps):
    return parse_config({"stimulus": {"file": "{dir}/{name}.stimulus.json"},
                         "steps": {"features": False, **steps},
                         "output": {"checkpoint_min_seconds": 0.0}}, base_dir=base)


def test_resume_skips_the_checkpointed_steps(recording, tmp_path):
    config = _config(tmp_path)
    out = tmp_path / "res.h5"
    with pytest.raises(Preempted):
        run_pipeline(recording.cmcr_path, recording.cmtr_path, out, config, dataset_id="res",
                     on_step=_stop_after("section_spike_times"))
    checkpoint = checkpoint_path_for(out)
    assert checkpoint.exists() and not out.exists()
    report = run_pipeline(recording.cmcr_path, recording.cmtr_path, out, config, dataset_id="res")
    status = {s.name: s.status for s in report.steps}
    # Loading was checkpointed; the cheap steps after it were not, so they run again.
    assert status == {"load_recording": "resumed", "add_section_time": "ran", "section_spike_times": "ran",
                      "compute_sta": "ran", "eimage_sta": "off", "extract_features": "off"}
    assert report.resumed_from == checkpoint and not checkpoint.exists()
    fresh = run_pipeline(recording.cmcr_path, recording.cmtr_path, tmp_path / "fresh.h5", config,
                         dataset_id="res")
    assert fresh.resumed_from is None
    with h5py.File(out, "r") as a, h5py.File(tmp_path / "fresh.h5", "r") as b:
        for uid in b["units"]:
            np.testing.assert_array_equal(a["units"][uid]["spike_times"][()], b["units"][uid]["spike_times"][()])
            sta = "features/sta_dense_noise_15x15/sta"
            np.testing.assert_array_equal(a["units"][uid][sta][()], b["units"][uid][sta][()])


def test_checkpoint_of_another_configuration_is_not_reused(recording, tmp_path):
    out = tmp_path / "res.h5"
    with pytest.raises(Preempted):
        run_pipeline(recording.cmcr_path, recording.cmtr_path, out, _config(tmp_path), dataset_id="res",
                     on_step=_stop_after("load_recording"))
    other = _config(tmp_path, sta=False)
    report = run_pipeline(recording.cmcr_path, recording.cmtr_path, out, other, dataset_id="res")
    assert report.resumed_from is None
    assert [s.status for s in report.steps][:3] == ["ran", "ran", "ran"]


def test_failed_job_keeps_no_done_marker(recording, tmp_path):
    config = _config(tmp_path)
    rec = Recording.from_paths(recording.cmcr_path, recording.cmtr_path, name="res")
    out = tmp_path / "res.h5"

    def crash(recording_, output, config_):
        run_pipeline(recording_.cmcr, recording_.cmtr, output, config_, dataset_id=recording_.name,
                     on_step=_stop_after("load_recording"))

    outcome = run_job(rec, out, config, job=crash)
    assert outcome["status"] == "failed" and outcome["kind"] == "error" and "Preempted" in outcome["error"]
    assert not done_marker_path(out).exists() and checkpoint_path_for(out).exists()
    outcome = run_job(rec, out, config)
    assert outcome["status"] == "done"
    steps = {s["name"]: s["status"] for s in outcome["detail"]["steps"]}
    assert steps["load_recording"] == "resumed"
    assert done_marker_path(out).exists()

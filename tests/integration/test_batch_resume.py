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
                         "steps": {"extract_features": False, **steps},
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
                      "compute_sta": "ran", "compute_eimage_sta": "off", "extract_features": "off"}
    assert report.resumed_from == checkpoint and not checkpoint.exists()
    fresh = run_pipeline(recording.cmcr_path, recording.cmtr_path, tmp_path / "fresh.h5", config,
                         dataset_id="res")
    assert fresh.resumed_from is None
    with h5py.File(out, "r") as a, h5py.File(tmp_path / "fresh.h5", "r") as b:
        for uid in b["units"]:
            np.testing.assert_array_equal(a["units"][uid]["spike_times"][()], b["units"][uid]["spike_times"][()])
            sta = "features/sta_dense_noise_15x15/data"
            np.testing.assert_array_equal(a["units"][uid][sta][()], b["units"][uid][sta][()])


def test_checkpoint_of_another_configuration_is_not_reused(recording, tmp_path):
    out = tmp_path / "res.h5"
    with pytest.raises(Preempted):
        run_pipeline(recording.cmcr_path, recording.cmtr_path, out, _config(tmp_path), dataset_id="res",
                     on_step=_stop_after("load_recording"))
    other = _config(tmp_path, compute_sta=False)
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
    assert outcome["status"] == "failed" and outcome["kind"] == "error" and outcome["error_type"] == "Preempted"
    assert outcome["error"] == "an unexpected error in a step (a bug or a bad parameter): load_recording", outcome
    assert not done_marker_path(out).exists() and checkpoint_path_for(out).exists()
    outcome = run_job(rec, out, config)
    assert outcome["status"] == "done"
    steps = {s["name"]: s["status"] for s in outcome["detail"]["steps"]}
    assert steps["load_recording"] == "resumed"
    assert done_marker_path(out).exists()


def _record_former_names(path):
    """Rewrite a file's completed steps as the pipeline recorded them before the step table (eimage_sta).

    Files of that time carry no checksum manifest, so the rewritten file has none either.
    """
    with h5py.File(path, "r+") as f:
        if "h5stream_checksums" in f.attrs:
            del f.attrs["h5stream_checksums"]
        ds = f["pipeline/session_info/completed_steps"]
        names = [s.decode() for s in ds[()]]
        attrs = dict(ds.attrs)
        del f["pipeline/session_info/completed_steps"]
        former = [b"eimage_sta" if s == "compute_eimage_sta" else s.encode() for s in names]
        new = f["pipeline/session_info"].create_dataset("completed_steps", data=former,
                                                         dtype=h5py.string_dtype())
        new.attrs.update(attrs)
    return names


def _checkpoint_through(recording, out, config, last):
    """The checkpoint of a run of every step up to ``last``, written as run_pipeline writes one.

    run_pipeline itself keeps none after the last expensive step it runs (the electrical images
    here), but earlier versions did, and resumes from such files must go on working.
    """
    from hdmea.session.session import create_session
    from hdmea.pipeline.run import _off_reason
    from hdmea.steps.table import STEPS, StepContext

    session = create_session("res", hdf5_path=out)
    ctx = StepContext(cmcr=recording.cmcr_path, cmtr=recording.cmtr_path, output=out, config=config,
                      stimulus=config.stimulus.resolve("res", recording.cmcr_path.parent), session=session)
    try:
        for step in STEPS:
            if _off_reason(step, ctx) is None:
                step.call(ctx, step)
            if step.name == last:
                break
        return session.checkpoint(checkpoint_path_for(out), checkpoint_name=f"after_{last}@{config.digest()}")
    finally:
        session.close()


def test_checkpoint_that_recorded_former_step_names_resumes(recording, tmp_path):
    config = _config(tmp_path, compute_eimage_sta={"enabled": True, "max_spikes_per_unit": 50})
    out = tmp_path / "res.h5"
    checkpoint = _checkpoint_through(recording, out, config, "compute_eimage_sta")
    assert "compute_eimage_sta" in _record_former_names(checkpoint)
    with h5py.File(checkpoint, "r") as f:
        assert b"eimage_sta" in list(f["pipeline/session_info/completed_steps"][()])
    report = run_pipeline(recording.cmcr_path, recording.cmtr_path, out, config, dataset_id="res")
    status = {s.name: s.status for s in report.steps}
    assert report.resumed_from == checkpoint
    assert status["compute_eimage_sta"] == "resumed" and status["compute_sta"] == "resumed"
    with h5py.File(out, "r") as f:
        # New files record the current name, once.
        steps = [s.decode() for s in f["pipeline/session_info/completed_steps"][()]]
        assert steps.count("compute_eimage_sta") == 1 and "eimage_sta" not in steps
        assert "eimage_sta" in f["units"][next(iter(f["units"]))]["features"]


def test_finished_file_that_recorded_former_step_names_reads_with_the_current_ones(recording, tmp_path):
    from hdmea.session.target import open_target
    from hdmea.report.tree import recording_overview

    config = _config(tmp_path, compute_eimage_sta=True)
    out = tmp_path / "res.h5"
    run_pipeline(recording.cmcr_path, recording.cmtr_path, out, config, dataset_id="res")
    names = _record_former_names(out)
    with open_target(out, None, step="check") as target:
        assert target.completed_steps == names
        target.require_steps("compute_eimage_sta")
    with h5py.File(out, "r") as f:
        assert recording_overview(f)["completed_steps"] == names


def _checkpoint_names(out, seen):
    """An on_step hook recording, after each step, the name of the checkpoint on disk (None: none)."""
    from hdmea.session.session import PipelineSession

    def on_step(record):
        checkpoint = checkpoint_path_for(out)
        name = None
        if checkpoint.exists():
            session = PipelineSession.load(checkpoint)
            name = session.checkpoint_name.partition("@")[0]
            session.close()
        seen.append((record.name, name))
    return on_step


@pytest.mark.parametrize("eimage", [True, False])
def test_no_checkpoint_after_the_last_expensive_step(recording, tmp_path, eimage):
    """Only light steps and the final save follow the last expensive step that runs: no checkpoint there."""
    config = _config(tmp_path, compute_eimage_sta={"enabled": eimage, "max_spikes_per_unit": 50},
                     extract_features=True)
    out = tmp_path / "res.h5"
    seen = []
    report = run_pipeline(recording.cmcr_path, recording.cmtr_path, out, config, dataset_id="res",
                          on_step=_checkpoint_names(out, seen))
    last = "compute_eimage_sta" if eimage else "compute_sta"
    # checkpoint_min_seconds = 0: every other expensive step is checkpointed at once
    expected_last = "after_compute_sta" if eimage else "after_load_recording"
    assert dict(seen)[last] == expected_last and dict(seen)["extract_features"] == expected_last
    assert report.checkpoints == (2 if eimage else 1)
    assert not checkpoint_path_for(out).exists() and out.exists()


def test_a_run_stopped_in_the_light_steps_resumes_from_the_last_checkpoint(recording, tmp_path):
    config = _config(tmp_path, compute_eimage_sta={"enabled": True, "max_spikes_per_unit": 50},
                     extract_features=True)
    out = tmp_path / "res.h5"
    with pytest.raises(Preempted):
        run_pipeline(recording.cmcr_path, recording.cmtr_path, out, config, dataset_id="res",
                     on_step=_stop_after("extract_features"))
    report = run_pipeline(recording.cmcr_path, recording.cmtr_path, out, config, dataset_id="res")
    status = {s.name: s.status for s in report.steps}
    assert status == {"load_recording": "resumed", "add_section_time": "resumed", "section_spike_times": "resumed",
                      "compute_sta": "resumed", "compute_eimage_sta": "ran", "extract_features": "ran"}
    assert report.checkpoints == 0
    fresh = run_pipeline(recording.cmcr_path, recording.cmtr_path, tmp_path / "fresh.h5", config,
                         dataset_id="res")
    compared = []
    with h5py.File(out, "r") as a, h5py.File(tmp_path / "fresh.h5", "r") as b:
        def same(name, obj):
            if isinstance(obj, h5py.Dataset):
                np.testing.assert_array_equal(a["units"][name][()], obj[()], err_msg=name)
                compared.append(name)
        b["units"].visititems(same)
    assert any("eimage_sta" in name for name in compared) and any("sta_dense_noise" in name for name in compared)


def test_checkpoint_that_cannot_be_written_is_said_in_plain_words(tmp_path):
    """A stop whose checkpoint fails says why in words and the error's message, without its class name."""
    import errno

    from hdmea.pipeline.batch.preemption import Preempted as Stop
    from hdmea.pipeline.run import _checkpoint_on_stop

    where = tmp_path / "res.checkpoint.h5"

    class Session:
        completed_steps = ["load_recording"]

        def checkpoint(self, path, **kwargs):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))

    stop = Stop("SIGTERM")
    _checkpoint_on_stop(Session(), where, "digest", "res", None, stop, None)
    assert stop.checkpoint is None
    assert stop.checkpoint_error == (f"a path cannot be used: {where}: Permission denied (check the permissions "
                                     "of the path, or choose another output folder)"), stop.checkpoint_error
    assert stop.checkpoint_error in str(stop) and "PermissionError" not in str(stop), str(stop)

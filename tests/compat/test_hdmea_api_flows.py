"""The original pipeline's configuration, flows, loader, session form and filtering, called its way."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest


def test_packaged_config_files_in_the_original_format():
    from hdmea.pipeline.config import (
        DefaultsConfig, FlowConfig, StimulusConfig, load_defaults, load_flow_config, load_json_config,
        load_stimulus_config,
    )
    from hdmea.stimulus_files import PACKAGED_CONFIG_DIR

    raw = json.loads((PACKAGED_CONFIG_DIR / "flows" / "set6a_full.json").read_text())
    flow = load_flow_config("set6a_full", config_dir="/nonexistent")
    assert isinstance(flow, FlowConfig) and flow.name == raw["name"] == "set6a_full"
    assert flow.get_feature_sets() == raw["stages"]["features"]["feature_sets"]
    assert "perfect_dense_noise_15x15_15hz_r42_3min" in flow.get_feature_sets()
    stim = load_stimulus_config("step_up_5s_5i_3x")
    assert isinstance(stim, StimulusConfig)
    assert stim.section_kwargs == {"start_frame": 240, "trial_length_frame": 600, "repeat": 3}
    noise = load_stimulus_config("perfect_dense_noise_15x15_15hz_r42_3min")
    assert noise.section_kwargs["trial_length_frame"] == 10800  # 3 min at 60 Hz
    assert isinstance(load_defaults(), DefaultsConfig) and load_defaults().pipeline.random_seed == 42
    assert load_json_config(PACKAGED_CONFIG_DIR / "defaults.json")["paths"]["artifacts_dir"] == "artifacts"


def test_config_dir_first_and_bad_files(tmp_path):
    from hdmea.pipeline.config import load_flow_config, load_json_config, load_stimulus_config
    from hdmea.pipeline.flows import get_flow_info, list_available_flows
    from hdmea.utils.exceptions import ConfigurationError

    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "mine.json").write_text(json.dumps({
        "name": "mine", "stages": {"features": {"enabled": False, "feature_sets": ["baseline_127"]}}}))
    (tmp_path / "flows" / "broken.json").write_text("{not json")
    assert list_available_flows(tmp_path) == ["broken", "mine", "set6a_full"]
    assert load_flow_config("mine", tmp_path).get_feature_sets() == []  # stage disabled
    assert get_flow_info("mine", tmp_path)["stages"] == ["features"]
    with pytest.raises(ConfigurationError, match="broken.json.*not valid JSON"):
        load_flow_config("broken", tmp_path)
    with pytest.raises(ConfigurationError, match="no flow configuration 'absent'"):
        load_flow_config("absent", tmp_path)
    with pytest.raises(ConfigurationError, match="not found"):
        load_json_config(tmp_path / "none.json")
    (tmp_path / "stimuli").mkdir()
    (tmp_path / "stimuli" / "bad.json").write_text(json.dumps({"name": "bad", "movie_length_frames": 0}))
    with pytest.raises(ConfigurationError, match="movie_length_frames"):
        load_stimulus_config("bad", tmp_path)


@pytest.fixture(scope="module")
def flow_recording(tmp_path_factory):
    from hdmea.synthetic import SyntheticConfig, generate_recording

    out = tmp_path_factory.mktemp("flow_recording")
    return generate_recording(out, "rec", config=SyntheticConfig.tiny(), seed=5)


def test_run_flow_loads_and_extracts(flow_recording, tmp_path):
    from hdmea.pipeline.flows import run_flow
    from hdmea.pipeline.runner import FlowResult

    (tmp_path / "config" / "flows").mkdir(parents=True)
    (tmp_path / "config" / "flows" / "lab.json").write_text(json.dumps({
        "name": "lab", "stages": {"load": {"enabled": True}, "features": {"feature_sets": ["baseline_127"]}},
        "defaults": {"random_seed": 1}}))
    result = run_flow("lab", cmcr_path=flow_recording.cmcr_path, cmtr_path=flow_recording.cmtr_path,
                      dataset_id="R1", output_dir=tmp_path / "out", config_dir=tmp_path / "config")
    assert isinstance(result, FlowResult) and result.hdf5_path == tmp_path / "out" / "R1.h5"
    assert result.load_result.num_units == flow_recording.config.n_units
    from hdmea.io.hdf5_store import stage1_params_hash as params_hash

    with h5py.File(result.hdf5_path, "r") as f:
        assert f.attrs["stage1_params_hash"] == params_hash({"random_seed": 1})  # the flow's defaults
        units = sorted(f["units"])
    assert result.extraction_result is not None
    # the load stage disabled: the recording must exist already
    (tmp_path / "config" / "flows" / "noload.json").write_text(json.dumps({
        "name": "noload", "stages": {"load": {"enabled": False}, "features": {"feature_sets": []}}}))
    again = run_flow("noload", dataset_id="R1", output_dir=tmp_path / "out", config_dir=tmp_path / "config")
    assert again.hdf5_path == result.hdf5_path and again.load_result is None and again.success
    assert units


def test_run_flow_set6a_full(flow_recording, tmp_path):
    from hdmea.features import FeatureRegistry
    from hdmea.pipeline.config import load_flow_config
    from hdmea.pipeline.flows import run_flow

    wanted = load_flow_config("set6a_full").get_feature_sets()
    missing = [name for name in wanted if name not in FeatureRegistry.list_all()]
    if missing:
        pytest.skip(f"extractors not registered yet: {missing}")
    result = run_flow("set6a_full", cmcr_path=flow_recording.cmcr_path, cmtr_path=flow_recording.cmtr_path,
                      output_dir=tmp_path)
    assert result.load_result.stage1_completed and result.hdf5_path.exists()


def test_create_session_original_form_and_loader(flow_recording, tmp_path, monkeypatch):
    from hdmea.pipeline import create_session, load_hdf5_to_session, load_recording, load_session_from_hdf5

    monkeypatch.chdir(tmp_path)
    session = create_session(cmcr_path=flow_recording.cmcr_path, cmtr_path=flow_recording.cmtr_path)
    assert session.dataset_id == "rec"
    session = load_recording(cmcr_path=flow_recording.cmcr_path, cmtr_path=flow_recording.cmtr_path,
                             session=session)
    saved = session.save()
    session.close()
    assert saved.resolve() == (tmp_path / "artifacts" / "rec.h5").resolve()
    assert load_hdf5_to_session is load_session_from_hdf5
    reopened = load_session_from_hdf5(saved, dataset_id="renamed")
    assert reopened.dataset_id == "renamed" and "load_recording" in reopened.completed_steps
    reopened.close()
    from hdmea.utils.exceptions import ConfigurationError

    with pytest.raises(ConfigurationError, match="no_such_feature"):
        load_session_from_hdf5(saved, load_features=["no_such_feature"])


def test_highpass_filters_against_scipy_reference():
    from scipy.signal import butter, filtfilt, sosfiltfilt

    from hdmea.preprocess.filtering import (
        apply_highpass_filter_3d, apply_highpass_filter_3d_legacy, apply_highpass_filter_3d_simple,
    )
    from hdmea.utils.exceptions import ConfigurationError

    rng = np.random.default_rng(1)
    t = np.arange(4000) / 20000.0
    data = (rng.normal(0, 1, (4000, 5, 7)) + 50 * np.sin(2 * np.pi * 3 * t)[:, None, None]).astype(np.float32)
    sos = butter(2, 100 / 10000, btype="high", output="sos")
    ref = np.empty_like(data)
    for i in range(5):  # one electrode at a time, the obvious way
        for j in range(7):
            ref[:, i, j] = sosfiltfilt(sos, data[:, i, j].astype(np.float32))
    out = apply_highpass_filter_3d(data, 100.0, 20000.0, chunk_size=4, n_workers=2)
    assert out.dtype == np.float32 and out.shape == data.shape
    np.testing.assert_allclose(out, ref, atol=1e-3)
    np.testing.assert_allclose(apply_highpass_filter_3d_simple(data, 100.0, 20000.0), ref, atol=1e-3)
    b, a = butter(2, 100 / 10000, btype="high")
    legacy = apply_highpass_filter_3d_legacy(data, 100.0, 20000.0)
    assert legacy.dtype == np.float64
    np.testing.assert_allclose(legacy[:, 2, 3], filtfilt(b, a, data[:, 2, 3].astype(np.float64)), atol=1e-6)
    assert abs(out.mean()) < 1.0  # the 3 Hz drift is gone
    for bad in ({"cutoff_hz": 0}, {"cutoff_hz": 10000}, {"filter_order": 0}):
        kwargs = {"cutoff_hz": 100.0, "sampling_rate": 20000.0, "filter_order": 2, **bad}
        with pytest.raises(ConfigurationError):
            apply_highpass_filter_3d(data, **kwargs)


def test_firing_rate_helpers():
    from hdmea.preprocess.filtering import compute_firing_rate, filter_by_firing_rate, smooth_signal

    spikes_us = np.array([0, 50_000, 99_999, 100_000, 250_000, 1_049_999])
    rate = compute_firing_rate(spikes_us, duration_us=1_050_000, bin_rate_hz=10)
    # bins of 100 ms over 1.05 s: 11 bins, counts times 10 Hz
    expected = np.zeros(11, dtype=np.float32)
    for s in spikes_us:
        expected[int(s // 100_000)] += 10
    np.testing.assert_array_equal(rate, expected)
    assert compute_firing_rate(np.array([]), 1e6).size == 0
    assert filter_by_firing_rate(np.arange(10), duration_us=1e6) is True  # 10 Hz
    assert filter_by_firing_rate(np.arange(10), duration_us=1e6, max_rate_hz=5) is False
    assert filter_by_firing_rate(np.array([]), 1e6) is False
    x = np.zeros(11)
    x[5] = 1.0
    box = smooth_signal(x, window_size=5, method="boxcar")
    np.testing.assert_allclose(box, [0, 0, 0, .2, .2, .2, .2, .2, 0, 0, 0])
    tri = smooth_signal(x, window_size=5, method="triangular")  # kernel 1 2 2 1 over 6
    assert tri.sum() == pytest.approx(1.0) and tri.max() == pytest.approx(2 / 6)
    gauss = smooth_signal(x, window_size=5)
    assert gauss[5] == pytest.approx(1 / np.exp(-np.linspace(-2, 2, 5) ** 2).sum())
    assert smooth_signal(np.ones(3), window_size=5).tolist() == [1, 1, 1]

"""The lab pipeline's stimulus-driven extractors against a recording with planted tuning, and their kernels
against naive twins.

``SyntheticConfig.with_lab_stimuli()`` shows the lab's movies (gray screen,
light step, dense noise, a bar moving in 8 directions, green and blue steps,
frequency steps); its units have a planted ON/OFF kind, receptive field,
preferred direction (about half the responsive units, ON and OFF, direction selective), colour
weight and preferred frequency.

The original pipeline's ``moving_h_bar_s5_d8_3x``, ``perfect_dense_noise_...``,
``green_blue_3s_3i_3x`` and ``freq_step_5st_3x`` return seeded random numbers
or fixed multiples of one another (``dsi_off = 0.8 * dsi_on``, a receptive-field
centre drawn from ``rng.uniform``), so they have no figures to match: these
are checked against the planted truth and naive numpy only.
"""

from __future__ import annotations

import pickle

import h5py
import numpy as np
import pytest

from hdmea.features import section_by_direction
from hdmea.features.chromatic.green_blue import event_responses
from hdmea.features.direction.bar_geometry import DIRECTION_LIST, MovingBar
from hdmea.features.direction.moving_bar import direction_selectivity
from hdmea.steps.features import extract_features
from hdmea.features.frequency.chirp import response_amplitude
from hdmea.pipeline import add_section_time, compute_sta, create_session, load_recording, section_spike_times
from hdmea.synthetic import SyntheticConfig, generate_recording

from tests.filecompare import assert_files_equal

LAB_FEATURES = ["baseline_127", "step_up_5s_5i_3x", "perfect_dense_noise_15x15_15hz_r42_3min",
                "moving_h_bar_s5_d8_3x", "green_blue_3s_3i_3x", "freq_step_5st_3x"]
BAR = "moving_h_bar_s5_d8_3x"


def _attr(group, name):
    value = np.asarray(group.attrs[name]).reshape(-1)[0]
    return value.item() if hasattr(value, "item") else value


def _angle(a, b):
    d = abs(a - b) % 360
    return min(d, 360 - d)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    out = tmp_path_factory.mktemp("lab")
    rec = generate_recording(out, "lab", config=SyntheticConfig.with_lab_stimuli(), seed=3)
    h5 = out / "lab.h5"
    load_recording(rec.cmcr_path, rec.cmtr_path, output_path=h5, waveforms=False)
    add_section_time(h5, rec.stimulus_path)
    section_spike_times(h5)
    compute_sta(h5)
    result = extract_features(h5, features=LAB_FEATURES)
    return rec, rec.truth(), h5, result


@pytest.mark.slow
def test_every_lab_extractor_ran_on_every_unit(lab):
    rec, truth, _, result = lab
    assert result.units_extracted == {name: len(truth.units) for name in LAB_FEATURES}
    assert isinstance(result.features_extracted, list) and set(result.features_extracted) == set(LAB_FEATURES)
    assert not result.warnings and not result.units_failed


@pytest.mark.slow
def test_receptive_field_centres_and_polarity(lab):
    _, truth, h5, _ = lab
    with h5py.File(h5, "r") as f:
        for unit_id, unit in truth.units.items():
            g = f[f"units/{unit_id}/features/perfect_dense_noise_15x15_15hz_r42_3min"]
            if unit.kind == "silent":
                assert np.isnan(_attr(g, "sta_center_x")) and _attr(g, "sta_quality") == 0.0
                continue
            planted = np.unravel_index(np.argmax(unit.spatial_rf), unit.spatial_rf.shape)
            assert abs(_attr(g, "sta_center_y") - planted[0]) <= 1.0 and abs(_attr(g, "sta_center_x") - planted[1]) <= 1.0
            assert np.sign(_attr(g, "rf_amplitude")) == (1 if unit.kind == "on" else -1)
            assert 0 < _attr(g, "sta_quality") <= 1 and 0.5 < _attr(g, "rf_size_x") < 3.5
            assert _attr(g["sta_geometry"], "center_row") == _attr(g, "sta_center_y")


@pytest.mark.slow
def test_direction_selective_units_prefer_their_planted_direction(lab):
    _, truth, h5, _ = lab
    ds, other = [], []
    with h5py.File(h5, "r") as f:
        for unit_id, unit in truth.units.items():
            if unit.kind == "silent":
                continue
            g = f[f"units/{unit_id}/features/{BAR}"]
            assert bool(_attr(g, "rf_centre_known"))
            side = "on" if unit.kind == "on" else "off"  # the polarity the unit answers the bar with
            dsi = _attr(g, f"dsi_{side}")
            if unit.direction_selective:
                assert _angle(_attr(g, f"preferred_direction_{side}"), unit.preferred_direction_deg) <= 45, unit_id
                assert dsi > 0.4, (unit_id, dsi)
                ds.append(dsi)
            else:
                other.append(dsi)
            osi = _attr(g, f"osi_{side}")
            assert 0 <= osi <= 1 and 0 < _attr(g, f"{side}_p_value") <= 1
    assert ds and other and np.mean(ds) > np.mean(other) + 0.2, (ds, other)


@pytest.mark.slow
def test_colour_frequency_and_gray_screen(lab):
    rec, truth, h5, _ = lab
    fs = truth.sampling_rate
    with h5py.File(h5, "r") as f:
        for unit_id, unit in truth.units.items():
            features = f[f"units/{unit_id}/features"]
            gb, fq, base = features["green_blue_3s_3i_3x"], features["freq_step_5st_3x"], features["baseline_127"]
            if unit.kind == "silent":
                assert _attr(gb, "preferred_color") == "none" and _attr(fq, "peak_amplitude") == 0.0
                continue
            assert _attr(gb, "preferred_color") == ("green" if unit.green_weight > 0.5 else "blue"), unit_id
            assert _attr(fq, "preferred_frequency") == unit.preferred_frequency_hz, unit_id
            assert list(fq["frequencies"][()]) == list(rec.config.freq_list_hz)
            # gray screen: exactly the planted spikes inside the baseline movie's frames
            first = truth.section_frames["baseline_127"][0, 0] + rec.config.pre_margin_frames
            lo, hi = truth.frame_times[first], truth.frame_times[first + rec.config.baseline_frames]
            n = int(np.count_nonzero((unit.spike_times >= lo) & (unit.spike_times < hi)))
            assert _attr(base, "spike_count") == n
            assert _attr(base, "mean_firing_rate") == pytest.approx(n / ((int(hi) - int(lo)) / fs))


@pytest.mark.slow
def test_direction_sectioning_against_naive_windows_in_both_modes(lab, tmp_path):
    rec, truth, h5, _ = lab
    immediate = tmp_path / "immediate.h5"
    result = section_by_direction(h5, output_path=immediate)
    responsive = [u for u, t in truth.units.items() if t.kind != "silent"]
    assert result.units_processed == len(responsive) and result.skipped_units == sorted(set(truth.units) - set(responsive))
    # deferred: the same steps staged in a session give the same file
    session = create_session("lab")
    load_recording(rec.cmcr_path, rec.cmtr_path, waveforms=False, session=session)
    add_section_time(None, rec.stimulus_path, session=session)
    section_spike_times(session=session)
    compute_sta(session=session)
    extract_features(features=LAB_FEATURES, session=session)
    assert section_by_direction(session=session) is session
    deferred = tmp_path / "deferred.h5"
    session.save(deferred)
    assert_files_equal(immediate, deferred)

    cfg = rec.config
    bar = MovingBar(bar_width_px=cfg.bar_width_px, speed_px=cfg.bar_speed_px, sweep_frames=cfg.bar_sweep_frames)
    frames = truth.frame_times.astype(np.int64)
    movie_first = int(truth.section_frames[BAR][0, 0]) + cfg.pre_margin_frames
    with h5py.File(immediate, "r") as f:
        for unit_id in responsive:
            g = f[f"units/{unit_id}/spike_times_sectioned/{BAR}/direction_section"]
            row, col = int(_attr(g, "cell_center_row")), int(_attr(g, "cell_center_col"))
            spikes = truth.units[unit_id].spike_times.astype(np.int64)
            for d, direction in enumerate(DIRECTION_LIST):
                # naive: the first and the first uncovered sweep frame of the bar at the centre pixel, frame by frame
                s = (col - 150) * np.cos(np.deg2rad(direction)) - (row - 150) * np.sin(np.deg2rad(direction))
                edge = -bar.half_diagonal + bar.speed_px * np.arange(bar.sweep_frames)
                covered = np.flatnonzero((s <= edge) & (edge < s + bar.bar_width_px))
                on, off = covered[0], covered[-1] + 1
                bounds = g[f"{direction}/section_bounds"][()]
                assert bounds.shape == (cfg.bar_repeat, 2)
                for rep in range(cfg.bar_repeat):
                    sweep = rep * cfg.bar_trial_frames + d * cfg.bar_sweep_frames
                    assert tuple(bounds[rep]) == (sweep + on - 10, sweep + off + 10)
                    lo = frames[movie_first + sweep + on - 10]
                    hi = frames[movie_first + sweep + off + 10 + 1]  # the end frame is kept whole
                    expected = spikes[(spikes >= lo) & (spikes < hi)]
                    np.testing.assert_array_equal(g[f"{direction}/trials/{rep}"][()], expected)


@pytest.mark.slow
def test_direction_sectioning_from_the_labs_pickle(lab, tmp_path):
    rec, truth, h5, _ = lab
    geometry = tmp_path / "geometry.h5"
    section_by_direction(h5, output_path=geometry, padding_frames=0)
    # the lab's file: per-pixel on/off frames of all 24 sweeps, keyed by int(centre * 20)
    from hdmea.features.direction.moving_bar import unit_rf_centre
    from hdmea.features.dsgc_direction import convert_center_15_to_300

    unit_id = next(u for u, t in truth.units.items() if t.kind != "silent")
    with h5py.File(geometry, "r") as f:
        g = f[f"units/{unit_id}/spike_times_sectioned/{BAR}/direction_section"]
        on = [0] * 24
        off = [0] * 24
        for d, direction in enumerate(DIRECTION_LIST):
            for rep, (a, b) in enumerate(g[f"{direction}/section_bounds"][()]):
                on[rep * 8 + d], off[rep * 8 + d] = int(a), int(b)
        expected = {str(d): [g[f"{d}/trials/{r}"][()] for r in range(3)] for d in DIRECTION_LIST}
        centre = unit_rf_centre(f[f"units/{unit_id}"])
    key = convert_center_15_to_300(*centre)
    path = tmp_path / "on_off.pkl"
    path.write_bytes(pickle.dumps({key: {"on_peak_location": on, "off_peak_location": off}}))
    from_pickle = tmp_path / "pickle.h5"
    result = section_by_direction(h5, output_path=from_pickle, on_off_dict_path=path, padding_frames=0,
                                  unit_ids=[unit_id])
    assert result.units_processed == 1
    with h5py.File(from_pickle, "r") as f:
        g = f[f"units/{unit_id}/spike_times_sectioned/{BAR}/direction_section"]
        for d in DIRECTION_LIST:
            for r in range(3):
                np.testing.assert_array_equal(g[f"{d}/trials/{r}"][()], expected[str(d)][r])


# ----------------------------------------------------------------------------- kernels against naive twins


def test_bar_crossing_frames_match_the_coverage_of_check_centres():
    bar = MovingBar(sweep_frames=100)
    for direction in DIRECTION_LIST:
        covered = bar.coverage((15, 15), direction)
        for row, col in ((0, 0), (7, 7), (3, 12), (14, 2)):
            on, off = bar.crossing_frames((row + 0.5) * 20, (col + 0.5) * 20)
            d = DIRECTION_LIST.index(direction)
            frames = np.flatnonzero(covered[:, row, col])
            assert (frames[0], frames[-1] + 1) == (on[d], off[d]), (direction, row, col)
    # a bar moving right reaches the left column first; moving up (90) reaches the bottom row first
    on, _ = bar.crossing_frames(150, 10)
    on2, _ = bar.crossing_frames(150, 290)
    assert on[0] < on2[0] and on[4] > on2[4]
    on, _ = bar.crossing_frames(290, 150)
    assert on[2] < bar.crossing_frames(10, 150)[0][2]
    with pytest.raises(ValueError, match="shorter"):
        MovingBar(sweep_frames=20)


def test_direction_selectivity_by_hand():
    responses = np.array([[10, 2, 1, 1, 2, 1, 1, 2], [12, 2, 1, 1, 0, 1, 1, 2]], dtype=float)
    out = direction_selectivity(responses, n_shuffles=200, seed=1)
    curve = responses.mean(axis=0)
    assert out["preferred_direction"] == 0.0 and out["dsi"] == pytest.approx((11 - 1) / (11 + 1))
    angles = np.deg2rad(DIRECTION_LIST)
    assert out["osi"] == pytest.approx(abs(sum(curve * np.exp(2j * angles))) / curve.sum())
    assert 0.05 < out["p_value"] < 0.2  # two repetitions: a tenth of the shuffles pair the large ones again
    three = direction_selectivity(np.vstack([responses, [11, 1, 2, 1, 1, 2, 1, 1]]), n_shuffles=200, seed=1)
    assert three["p_value"] < 0.02 and three["p_value"] >= 1 / 201
    flat = direction_selectivity(np.ones((3, 8)), n_shuffles=50)
    assert flat["dsi"] == 0.0 and flat["p_value"] == 1.0
    assert direction_selectivity(np.zeros((3, 8)))["p_value"] == 1.0


def test_event_responses_by_hand():
    trials = [np.array([-400e3, 100e3, 200e3, 3.1e6]), np.array([50e3, 3.2e6, 3.3e6])]
    got = event_responses(trials, [0.0, 3e6], 500e3)
    # event 0: 3 spikes after, 1 before over 2 trials x 0.5 s; event 3 s: 3 after, 0 before
    assert list(got) == pytest.approx([(3 - 1) / 1.0, 3 / 1.0])
    assert list(event_responses(trials, [10e6], 500e3)) == [0.0]


def test_response_amplitude_against_a_direct_fourier_sum():
    rng = np.random.default_rng(5)
    f, T, base, depth = 2.0, 4.0, 20.0, 0.5
    # an inhomogeneous Poisson train by thinning, three trials
    trials = []
    for _ in range(3):
        t = np.sort(rng.uniform(0, T, rng.poisson(base * (1 + depth) * T)))
        keep = rng.random(t.size) < (1 + depth * np.sin(2 * np.pi * f * t)) / (1 + depth)
        trials.append(t[keep] * 1e6)
    amp = response_amplitude(trials, f, 0.0, T * 1e6)
    t = np.concatenate(trials) / 1e6
    direct = 2 / (3 * T) * abs(np.sum(np.exp(-2j * np.pi * f * t)))  # T is a whole number of cycles
    assert amp == pytest.approx(direct, rel=1e-9)
    assert amp == pytest.approx(base * depth, rel=0.35)
    # a constant rate over a step that is not a whole number of cycles has no amplitude
    even = [np.linspace(0, 3e6, 300, endpoint=False) + 5e3]  # 100 Hz, 1.5 cycles of 0.5 Hz
    leak = 2 / 3.0 * abs(np.sum(np.exp(-2j * np.pi * 0.5 * even[0] / 1e6)))
    assert leak > 30 and response_amplitude(even, 0.5, 0.0, 3e6) < 0.1


@pytest.mark.slow
def test_moving_bar_timed_by_the_labs_pickle_equals_the_geometry(lab, tmp_path):
    import shutil

    from hdmea.features.direction.moving_bar import unit_rf_centre
    from hdmea.features.dsgc_direction import convert_center_15_to_300

    rec, truth, h5, _ = lab
    cfg = rec.config
    bar = MovingBar(bar_width_px=cfg.bar_width_px, speed_px=cfg.bar_speed_px, sweep_frames=cfg.bar_sweep_frames)
    table = {}
    with h5py.File(h5, "r") as f:
        for unit_id, unit in truth.units.items():
            if unit.kind == "silent":
                continue
            centre = unit_rf_centre(f[f"units/{unit_id}"])
            on, off = bar.crossing_frames((centre[0] + 0.5) * 20, (centre[1] + 0.5) * 20)
            sweeps = [r * cfg.bar_trial_frames + d * cfg.bar_sweep_frames for r in range(3) for d in range(8)]
            table[convert_center_15_to_300(*centre)] = {
                "on_peak_location": [s + on[i % 8] for i, s in enumerate(sweeps)],
                "off_peak_location": [s + off[i % 8] for i, s in enumerate(sweeps)]}
    path = tmp_path / "on_off.pkl"
    path.write_bytes(pickle.dumps(table))
    copy = tmp_path / "pickle.h5"
    shutil.copy(h5, copy)
    result = extract_features(copy, features=[BAR], config_overrides={"on_off_dict_path": str(path)}, force=True)
    assert result.units_extracted[BAR] == len(truth.units)
    with h5py.File(h5, "r") as a, h5py.File(copy, "r") as b:
        for unit_id in truth.units:
            for key in ("tuning_curve_on", "tuning_curve_off"):
                np.testing.assert_array_equal(a[f"units/{unit_id}/features/{BAR}/{key}"][()],
                                              b[f"units/{unit_id}/features/{BAR}/{key}"][()])

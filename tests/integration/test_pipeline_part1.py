"""load_recording -> add_section_time -> section_spike_times on synthetic recordings, both modes."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from hdmea.errors import ConfigError, MissingStepError, RecordingFormatError
from hdmea.io import hdf5_store as store
from hdmea.io.section_time import add_section_time
from hdmea.io.spike_sectioning import SectionResult, section_spike_times
from hdmea.pipeline import create_session
from hdmea.steps.load import LargeRecordingWarning, LoadResult, load_recording
from hdmea.session.session import PipelineSession

from tests.filecompare import TIMESTAMP_ATTRS, assert_files_equal
from tests.reference import section_trials_naive

PAD = (0.25, 0.1)


def _stored(f: h5py.File, path: str):
    """A value as the recording store reads it back (typed lists of text)."""
    return store.decode_node(store.node_from_h5(f[path]))


def _run_immediate(rec, out: Path, pad=PAD):
    loaded = load_recording(rec.cmcr_path, rec.cmtr_path, hdf5_path=out)
    assert isinstance(loaded, LoadResult) and loaded.num_units == len(rec.truth().units)
    assert add_section_time(out, rec.stimulus_path) is True
    result = section_spike_times(out, pad_margin=pad)
    assert isinstance(result, SectionResult)
    return result


def _run_session(rec, out: Path, pad=PAD):
    session = create_session("rec", hdf5_path=out)
    s = load_recording(rec.cmcr_path, rec.cmtr_path, session=session)
    assert s is session
    assert add_section_time(stimulus=rec.stimulus, session=session) is session
    assert section_spike_times(pad_margin=pad, session=session) is session
    session.save(out)
    return session


@pytest.fixture(scope="module")
def immediate_file(tiny_recording, tmp_path_factory):
    out = tmp_path_factory.mktemp("immediate") / "rec.h5"
    _run_immediate(tiny_recording, out)
    return out


def test_units_frame_and_section_times_equal_truth(immediate_file, tiny_truth):
    with h5py.File(immediate_file, "r") as f:
        assert sorted(f["units"]) == sorted(tiny_truth.units)
        for key, u in tiny_truth.units.items():
            g = f[f"units/{key}"]
            np.testing.assert_array_equal(g["spike_times"][()], u.spike_times)
            assert g["spike_times"].dtype == np.uint64 and g["waveform"].dtype == np.float32
            assert (g.attrs["row"], g.attrs["col"], g.attrs["global_id"]) == (u.row, u.col, u.sensor_id)
            assert key == f"unit_{u.mcs_unit_id:03d}" and g.attrs["unit_num"] == u.mcs_unit_id
            assert g.attrs["original_name"] == f"Unit_{u.mcs_unit_id}"
            assert g.attrs["spike_count"] == u.spike_times.size
        np.testing.assert_array_equal(f["stimulus/frame_time/default"][()], tiny_truth.frame_times)
        for movie, expected in tiny_truth.section_times.items():
            got = f[f"stimulus/section_time/{movie}"][()]
            assert got.dtype == np.int64  # as the original (tests/data/lab_layout)
            np.testing.assert_array_equal(got, expected)
        assert f["stimulus/light_reference/raw_ch2"].dtype == np.float32
        steps = _stored(f, "pipeline/session_info/completed_steps")
    assert list(steps) == ["load_recording", "add_section_time", "section_spike_times"]


def test_sectioned_trials_equal_naive_reference(immediate_file, tiny_recording, tiny_truth):
    cfg = tiny_recording.config
    tc = cfg.step_trial
    fs = cfg.sampling_rate
    ft = tiny_truth.frame_times.astype(np.int64)
    with h5py.File(immediate_file, "r") as f:
        for movie, frames in tiny_truth.section_frames.items():
            bounds = []
            for first, _ in frames:  # every occurrence of the movie
                if movie == cfg.step_movie:
                    for n in range(tc.repeat):
                        s = first + cfg.pre_margin_frames + tc.start_frame + n * tc.trial_length_frame
                        bounds.append((ft[s], ft[s + tc.trial_length_frame]))
                else:
                    s = first + cfg.pre_margin_frames
                    bounds.append((ft[s], ft[s + cfg.noise_movie_length]))
            bounds = np.asarray(bounds, dtype=np.int64)
            bounds[:, 0] -= int(round(PAD[0] * fs))
            bounds[:, 1] += int(round(PAD[1] * fs))
            naive = section_trials_naive([u.spike_times for u in tiny_truth.units.values()], bounds)
            for r, key in enumerate(tiny_truth.units):
                g = f[f"units/{key}/spike_times_sectioned/{movie}"]
                np.testing.assert_array_equal(g["trial_bounds"][()], bounds.astype(np.uint64))
                off = g["trial_offsets"][()]
                values = g["spike_times"][()]
                assert off.size == bounds.shape[0] + 1 and off[-1] == values.size
                for t in range(bounds.shape[0]):
                    np.testing.assert_array_equal(values[off[t]:off[t + 1]], naive[r][t])
                assert g.attrs["n_occurrences"] == frames.shape[0]
        # the step movie is shown twice: both occurrences are sectioned
        for key in tiny_truth.units:
            g = f[f"units/{key}/spike_times_sectioned/{cfg.step_movie}"]
            assert g["trial_bounds"].shape[0] == 2 * tc.repeat


def test_spikes_on_trial_bounds_and_silent_units(immediate_file, tiny_truth):
    with h5py.File(immediate_file, "r") as f:
        silent = [k for k, u in tiny_truth.units.items() if u.kind == "silent"]
        assert silent
        for key in silent:
            for movie in f[f"units/{key}/spike_times_sectioned"]:
                g = f[f"units/{key}/spike_times_sectioned/{movie}"]
                assert g["spike_times"].shape == (0,)
                assert np.all(g["trial_offsets"][()] == 0)


def test_immediate_and_deferred_files_are_equal(tiny_recording, tmp_path):
    a = tmp_path / "immediate.h5"
    b = tmp_path / "deferred.h5"
    _run_immediate(tiny_recording, a)
    _run_session(tiny_recording, b)
    assert_files_equal(a, b, ignore_attrs=TIMESTAMP_ATTRS)


def test_steps_need_their_inputs(tiny_recording, tmp_path):
    session = create_session("rec")
    with pytest.raises(MissingStepError, match="load_recording"):
        add_section_time(stimulus=tiny_recording.stimulus, session=session)
    load_recording(tiny_recording.cmcr_path, tiny_recording.cmtr_path, session=session)
    with pytest.raises(MissingStepError, match="add_section_time"):
        section_spike_times(session=session)
    out = tmp_path / "r.h5"
    load_recording(tiny_recording.cmcr_path, tiny_recording.cmtr_path, hdf5_path=out)
    before = out.read_bytes()
    with pytest.raises(MissingStepError, match="add_section_time"):
        section_spike_times(out)
    assert out.read_bytes() == before  # a failed step leaves the file as it was


def test_memory_warning_is_logged_recorded_and_says_how_to_budget(tiny_recording, tmp_path, caplog):
    out = tmp_path / "w.h5"
    with caplog.at_level(logging.WARNING, logger="hdmea.steps.load"):
        with pytest.warns(LargeRecordingWarning, match="memory_limit"):
            result = load_recording(tiny_recording.cmcr_path, tiny_recording.cmtr_path, hdf5_path=out,
                                    memory_threshold=1024)
    assert result.warnings and "memory_limit" in result.warnings[0]
    assert any("memory_limit" in r.getMessage() for r in caplog.records)
    session = PipelineSession("rec", memory_warning=1024)
    with pytest.warns(LargeRecordingWarning):
        load_recording(tiny_recording.cmcr_path, tiny_recording.cmtr_path, session=session)
    assert any("memory_limit" in w for w in session.warnings)
    # a session with a memory budget spills what passes it: nothing to warn about
    budgeted = PipelineSession("rec", memory_limit=1024, memory_warning=None)
    load_recording(tiny_recording.cmcr_path, tiny_recording.cmtr_path, session=budgeted)
    assert not any("memory_limit" in w for w in budgeted.warnings)
    with h5py.File(out, "r") as f:
        stored = _stored(f, "pipeline/session_info/warnings")
    assert any("memory_limit" in w for w in stored)


def test_rerun_skips_unless_forced(tiny_recording, tmp_path):
    out = tmp_path / "r.h5"
    load_recording(tiny_recording.cmcr_path, tiny_recording.cmtr_path, hdf5_path=out)
    again = load_recording(tiny_recording.cmcr_path, tiny_recording.cmtr_path, hdf5_path=out)
    assert again.skipped
    forced = load_recording(tiny_recording.cmcr_path, tiny_recording.cmtr_path, hdf5_path=out, force=True)
    assert not forced.skipped
    other = tmp_path / "other.h5"
    other.write_bytes(b"someone else's file")
    with pytest.raises(FileExistsError):
        load_recording(tiny_recording.cmcr_path, tiny_recording.cmtr_path, hdf5_path=other)
    assert other.read_bytes() == b"someone else's file"
    assert add_section_time(out, tiny_recording.stimulus_path) is True
    assert add_section_time(out, tiny_recording.stimulus_path) is False
    assert add_section_time(out, tiny_recording.stimulus_path, force=True) is True


def test_analog_mode_sections_start_at_the_light_steps(tiny_recording, tiny_truth, tmp_path):
    out = tmp_path / "a.h5"
    load_recording(tiny_recording.cmcr_path, tiny_recording.cmtr_path, hdf5_path=out)
    assert add_section_time(out, mode="analog", movie_name="flashes", threshold=15000.0,
                            section_duration_s=0.5) is True
    cfg = tiny_recording.config
    tc = cfg.step_trial
    ft = tiny_truth.frame_times.astype(np.int64)
    onsets = []
    for first, _ in tiny_truth.section_frames[cfg.step_movie]:
        for n in range(tc.repeat):
            onsets.append(ft[first + cfg.pre_margin_frames + tc.start_frame + n * tc.trial_length_frame
                             + tc.trial_length_frame // 10])
    with h5py.File(out, "r") as f:
        got = f["stimulus/section_time/flashes"][()]
    np.testing.assert_array_equal(got[:, 0], onsets)
    np.testing.assert_array_equal(got[:, 1] - got[:, 0], 10000)
    # analog sections are one trial each
    section_spike_times(out, movie_names=["flashes"])
    with h5py.File(out, "r") as f:
        for unit in f["units"]:
            g = f[f"units/{unit}/spike_times_sectioned/flashes"]
            np.testing.assert_array_equal(g["trial_bounds"][()], got)


def test_bad_arguments(tiny_recording, tmp_path):
    with pytest.raises(ConfigError):
        load_recording(None, None)
    out = tmp_path / "b.h5"
    load_recording(tiny_recording.cmcr_path, tiny_recording.cmtr_path, hdf5_path=out)
    with pytest.raises(ConfigError):
        add_section_time(out, tiny_recording.stimulus_path, mode="nonsense")
    add_section_time(out, tiny_recording.stimulus_path)
    with pytest.raises(ConfigError):
        section_spike_times(out, pad_margin=(-1, 0))
    with pytest.raises(ConfigError, match="no section times"):
        section_spike_times(out, movie_names=["not_shown"])
    # the pair given in the wrong order (by suffix) is refused before either file is opened
    with pytest.raises(ConfigError) as swapped:
        load_recording(tiny_recording.cmtr_path, tiny_recording.cmcr_path, hdf5_path=tmp_path / "swap.h5")
    message = str(swapped.value)
    assert "takes the raw recording (.cmcr) first and its spike sorting (.cmtr) second" in message
    assert f"{tiny_recording.cmtr_path} first and {tiny_recording.cmcr_path} second (swapped)" in message
    assert f"swap them: {tiny_recording.cmcr_path} first, then {tiny_recording.cmtr_path}" in message
    assert not (tmp_path / "swap.h5").exists()
    # a file whose content does not fit its role (a raw recording named as the spike sorting) is refused
    # by the reader's own check, which the suffix check cannot see
    renamed = tmp_path / "raw_named_as_sorting.cmtr"
    shutil.copyfile(tiny_recording.cmcr_path, renamed)
    with pytest.raises(RecordingFormatError) as wrong_role:
        load_recording(tiny_recording.cmcr_path, renamed, hdf5_path=tmp_path / "role.h5")
    message = str(wrong_role.value)
    assert str(renamed) in message and "not a CMOS-MEA-Tools file" in message
    assert "expected 'CMOS-MEA-Tools', found 'CMOS-MEA-Control'" in message
    assert "pass the .cmcr as the raw file and the .cmtr as the spike-sorting file" in message
    assert not (tmp_path / "role.h5").exists()


def test_spikes_exactly_on_trial_bounds_in_the_step(tiny_recording, tiny_truth):
    session = create_session("rec")
    load_recording(tiny_recording.cmcr_path, tiny_recording.cmtr_path, session=session)
    add_section_time(stimulus=tiny_recording.stimulus, session=session)
    cfg = tiny_recording.config
    tc = cfg.step_trial
    ft = tiny_truth.frame_times.astype(np.int64)
    starts = [ft[first + cfg.pre_margin_frames + tc.start_frame + n * tc.trial_length_frame]
              for first, _ in tiny_truth.section_frames[cfg.step_movie] for n in range(tc.repeat)]
    bounds = np.asarray([(s, ft[np.searchsorted(ft, s) + tc.trial_length_frame]) for s in starts])
    # spikes on every start (kept), one before (dropped), on every end (dropped), one before the end (kept)
    planted = np.unique(np.concatenate([bounds[:, 0], bounds[:, 0] - 1, bounds[:, 1], bounds[:, 1] - 1]))
    first = session.unit_ids()[0]
    session.put(f"units/{first}/spike_times", planted.astype(np.uint64))
    section_spike_times(movie_names=[cfg.step_movie], session=session)
    g = session.get(f"units/{first}/spike_times_sectioned/{cfg.step_movie}")
    naive = section_trials_naive([planted], bounds)[0]
    off = g["trial_offsets"]
    for t in range(bounds.shape[0]):
        got = g["spike_times"][off[t]:off[t + 1]]
        np.testing.assert_array_equal(got, naive[t])
        np.testing.assert_array_equal(got, [bounds[t, 0], bounds[t, 1] - 1])


def test_one_source_file_is_enough(tiny_recording, tiny_truth, tmp_path):
    units_only = load_recording(None, tiny_recording.cmtr_path, hdf5_path=tmp_path / "u.h5", sampling_rate=20000)
    assert units_only.num_units == len(tiny_truth.units)
    with h5py.File(tmp_path / "u.h5", "r") as f:
        assert "light_reference" not in f["stimulus"]
        assert sorted(f["units"]) == sorted(tiny_truth.units)
        for key, unit in tiny_truth.units.items():
            np.testing.assert_array_equal(f[f"units/{key}/spike_times"][()], unit.spike_times)
    raw_only = load_recording(tiny_recording.cmcr_path, None, hdf5_path=tmp_path / "r.h5")
    assert raw_only.num_units == 0
    with h5py.File(tmp_path / "r.h5", "r") as f:
        assert f["stimulus/light_reference/raw_ch1"].shape == (tiny_truth.n_samples,)
    with pytest.raises(ConfigError, match="disagrees"):
        load_recording(tiny_recording.cmcr_path, tiny_recording.cmtr_path, hdf5_path=tmp_path / "x.h5",
                       sampling_rate=10000)

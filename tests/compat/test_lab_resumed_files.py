"""What the original writes for a unit without spikes, how long its firing rates are, and what its ways of
resuming a session save: ours against the original's measured facts (tests/data/lab_layout/).

- a unit that never fires gets an all-NaN electrical image and STA, as the original's (no figure is drawn
  from no data);
- ``firing_rate_10hz`` ends one second after the unit's last spike after ``load_recording_with_eimage_sta``
  (the original's reads no duration there: 3,019 to 3,023 bins on the manifests' recording), at the
  ``.cmcr``'s stated duration after ``load_recording``;
- ``load_session_from_hdf5`` records ``load_from_hdf5`` and reads the vendor's one-value records as one
  value (saved 0-d, as in ``resumed_from_hdf5_u6.json``), spike times as they are;
- a list assigned directly under a unit is an attribute of the unit (``script_values_u6.json``).
"""

from __future__ import annotations

import math

import h5py
import numpy as np
import pytest

from tests.lab_layout import load_manifest


def _naive_rate(spikes_s: np.ndarray, n_bins: int) -> np.ndarray:
    """Spikes in each 100 ms bin from 0, times 10: one bin at a time."""
    return np.array([10.0 * np.count_nonzero((spikes_s >= k / 10) & (spikes_s < (k + 1) / 10))
                     for k in range(n_bins)])


@pytest.fixture(scope="module")
def loaded(tiny_recording, tmp_path_factory):
    """The tiny recording (6 units, one silent) loaded both ways the original offers, each in a session."""
    from hdmea.pipeline import create_session, load_recording, load_recording_with_eimage_sta

    rec = tiny_recording
    with_images = load_recording_with_eimage_sta(rec.cmcr_path, rec.cmtr_path,
                                                 session=create_session(dataset_id="rec"))
    plain = load_recording(rec.cmcr_path, rec.cmtr_path, session=create_session(dataset_id="rec"))
    out = tmp_path_factory.mktemp("loaded")
    return (rec, with_images.save(output_path=out / "with_images.h5"), plain.save(output_path=out / "plain.h5"))


def test_firing_rates_end_where_the_originals_loaders_end_them(loaded):
    rec, with_images, plain = loaded
    with h5py.File(rec.cmcr_path, "r") as f:
        duration_us = float(np.asarray(f.attrs["LB.RecordingDuration"]).reshape(-1)[0])
    fs = rec.config.sampling_rate
    lengths = set()
    for path, n_bins in ((with_images, None), (plain, math.ceil(duration_us / 1e5))):
        with h5py.File(path, "r") as f:
            for name, unit in f["units"].items():
                spikes_s = unit["spike_times"][()].astype(np.float64) / fs
                if not spikes_s.size:  # as the original: no spikes, no firing rate
                    assert "firing_rate_10hz" not in unit
                    continue
                want = n_bins if n_bins is not None else math.ceil((spikes_s[-1] + 1.0) * 10)
                rate = unit["firing_rate_10hz"][()]
                assert rate.dtype == np.float32 and rate.shape == (want,), (path.name, name)
                np.testing.assert_array_equal(rate, _naive_rate(spikes_s, want))
                if n_bins is None:
                    lengths.add(want)
    assert len(lengths) > 1  # each unit's own length, as the original's


def test_another_end_of_the_firing_rates_is_refused(tiny_recording):
    from hdmea.errors import ConfigError
    from hdmea.pipeline import create_session, load_recording

    with pytest.raises(ConfigError, match="firing_rate_until must be one of 'recording', 'last_spike'"):
        load_recording(tiny_recording.cmcr_path, tiny_recording.cmtr_path, session=create_session("rec"),
                       firing_rate_until="end")


def test_a_unit_that_never_fires_gets_nan_images_as_the_originals(loaded, tiny_truth):
    _, with_images, _ = loaded
    silent = [u for u, t in tiny_truth.units.items() if t.kind == "silent"]
    assert silent
    with h5py.File(with_images, "r") as f:
        for name in f["units"]:
            image = f[f"units/{name}/features/eimage_sta/data"][()]
            used = int(f[f"units/{name}/features/eimage_sta/metadata/n_spikes_used"][()])
            assert np.isnan(image).all() == (used == 0) == (name in silent), name
    # the original's session file on the manifests' recording: its silent unit's image and STA all NaN, and
    # only that unit's
    manifest = load_manifest("session_steps_u6.json")
    unused = {p.split("/")[1] for p, v in manifest["values"].items()
              if p.endswith("eimage_sta/metadata/n_spikes_used") and v == 0}
    nan_units = {p.split("/")[1] for p, fact in manifest["arrays"].items() if fact["nan"] == "all"}
    assert unused == nan_units == {"unit_006"}


def _plain_resumable_file(path):
    """A session file as the original's session writes one, made with plain h5py: 1-element vendor records,
    a trial with one spike, a unit with one spike."""
    with h5py.File(path, "w") as f:
        f.attrs["dataset_id"] = "rec"
        unit = f.create_group("units/unit_002")
        unit.attrs["unit_num"] = 2
        unit["spike_times"] = np.array([400], dtype=np.uint64)
        unit["unit_meta/unitid"] = np.array([2], dtype=np.int32)
        unit["unit_meta/snr"] = np.array([7.5], dtype=np.float32)
        unit["unit_meta/peaks"] = np.arange(3.0)
        trials = unit.create_group("spike_times_sectioned/step/trials_spike_times")
        trials["0"] = np.array([400], dtype=np.int64)
        f["metadata/acquisition_rate"] = 20000.0
        f.create_dataset("pipeline/session_info/completed_steps", data=["load_recording_with_eimage_sta"],
                         dtype=h5py.string_dtype())


def test_load_session_from_hdf5_resumes_as_the_originals_loader(tmp_path):
    from hdmea.pipeline import load_session_from_hdf5

    source = tmp_path / "rec.h5"
    _plain_resumable_file(source)
    session = load_session_from_hdf5(source)
    assert set(session.completed_steps) == {"load_recording_with_eimage_sta", "load_from_hdf5"}
    saved = session.save(output_path=tmp_path / "resumed" / "rec.h5")
    with h5py.File(saved, "r") as f:
        steps = {s.decode() for s in f["pipeline/session_info/completed_steps"][()]}
        assert steps == {"load_recording_with_eimage_sta", "load_from_hdf5"}
        meta = f["units/unit_002/unit_meta"]
        assert meta["unitid"].shape == () and int(meta["unitid"][()]) == 2
        assert meta["snr"].shape == () and float(meta["snr"][()]) == 7.5
        np.testing.assert_array_equal(meta["peaks"][()], np.arange(3.0))
        # spike times keep their rank: the lab reads a trial with f[...][:]
        assert f["units/unit_002/spike_times"][:].tolist() == [400]
        assert f["units/unit_002/spike_times_sectioned/step/trials_spike_times/0"][:].tolist() == [400]
    # the original's resumed file: every unit_meta record 0-d
    paths = load_manifest("resumed_from_hdf5_u6.json")["paths"]
    meta_ranks = {p: {e[2] for e in v} for p, v in paths.items() if p.startswith("units/<unit>/unit_meta/")}
    assert meta_ranks["units/<unit>/unit_meta/unitid"] == {0} and meta_ranks["units/<unit>/unit_meta/snr"] == {0}
    assert load_manifest("resumed_from_hdf5_u6.json")["loaded_steps"] == load_manifest(
        "resumed_from_hdf5_u6.json")["completed_steps"]


def test_a_list_under_a_unit_is_an_attribute_and_stays_one_through_resumes(tmp_path):
    from hdmea.pipeline import PipelineSession, create_session, load_session_from_hdf5

    s = create_session("rec", hdf5_path=tmp_path / "rec.h5")
    s.add_units({"unit_002": {"spike_times": np.arange(3, dtype=np.uint64)}})
    mine = [1, 2]
    s.units["unit_002"]["lab_list"] = mine
    s.units["unit_002"]["lab_number"] = 3
    mine.append(4)  # the caller's list, changed afterwards: saved with the change
    first = s.save()
    assert s.is_saved
    wanted = load_manifest("script_values_u6.json")["paths"]
    assert wanted["units/<unit>@lab_list"] == [["attribute", "i", 1]]
    for path in (first, PipelineSession.load(first).save(output_path=tmp_path / "a" / "rec.h5"),
                 load_session_from_hdf5(first).save(output_path=tmp_path / "b" / "rec.h5")):
        with h5py.File(path, "r") as f:
            unit = f["units/unit_002"]
            assert "lab_list" not in unit and unit.attrs["lab_list"].tolist() == [1, 2, 4]
            assert unit.attrs["lab_number"] == 3
    assert PipelineSession.load(first).units["unit_002"]["lab_list"] == [1, 2, 4]

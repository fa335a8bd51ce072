"""The lab pipeline's feature registry: an extractor class written as its README shows runs unchanged.

The class below is written the way the original pipeline's ``features/README.md``
tells a lab to write one (``extract(self, unit_data, stimulus_data,
config=None)``, no ``metadata``), registered with
``@FeatureRegistry.register``, and run by ``extract_features`` in both modes.
Its outputs are checked against values computed here from the file with plain
h5py, and the two modes must give equal files.
"""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from hdmea.features import ExampleFeatureExtractor, FeatureRegistry
from hdmea.features.base import ArrayAdapter, DictAdapter, FeatureExtractor
from hdmea.steps.features import extract_features
from hdmea.pipeline import add_section_time, create_session, load_recording, section_spike_times

from tests.filecompare import assert_files_equal

BUILTIN_NAMES = {"baseline_127", "step_up_5s_5i_3x", "example_feature"}


@pytest.fixture
def restored_registry():
    """The lab's own test pattern: keep a copy of the registry and put it back afterwards."""
    original = FeatureRegistry._registry.copy()
    yield
    FeatureRegistry._registry = original


def _readme_extractor():
    @FeatureRegistry.register("my_feature_name")
    class MyFeatureExtractor(FeatureExtractor):
        name = "my_feature_name"
        version = "1.0.0"
        required_inputs = ["spike_times", "stimulus/light_reference"]
        output_schema = {"my_value": {"dtype": "float64", "unit": "Hz"},
                         "isi_us": {"dtype": "float64[]", "unit": "us"}}
        runtime_class = "fast"

        def extract(self, unit_data, stimulus_data, config=None):
            spikes = unit_data["spike_times"][:]
            scale = (config or {}).get("scale", 1.0)
            light = stimulus_data["light_reference"]["raw_ch1"][:]
            return {"my_value": float(spikes.size) * scale, "isi_us": np.diff(spikes.astype(np.float64)),
                    "light_samples": int(light.size), "summary": {"first": int(spikes[0]) if spikes.size else -1}}

    return MyFeatureExtractor


def _loaded(rec, h5=None, session=None):
    load_recording(rec.cmcr_path, rec.cmtr_path, output_path=h5, waveforms=False, session=session)
    add_section_time(h5, rec.stimulus_path, session=session)
    section_spike_times(h5, session=session)


def test_readme_extractor_runs_unchanged_in_both_modes(tiny_recording, tmp_path, restored_registry):
    cls = _readme_extractor()
    assert FeatureRegistry.get("my_feature_name") is cls and cls.name == "my_feature_name"
    immediate = tmp_path / "immediate.h5"
    _loaded(tiny_recording, immediate)
    result = extract_features(immediate, features=["my_feature_name"], config_overrides={"scale": 2.0})
    assert result.features_extracted == ["my_feature_name"]  # the lab pipeline's list of names
    assert type(result.features_extracted) is list
    assert not result.features_failed and not result.features_skipped and not result.warnings

    session = create_session(tiny_recording.cmcr_path.stem)
    _loaded(tiny_recording, session=session)
    assert extract_features(features=["my_feature_name"], config_overrides={"scale": 2.0}, session=session) is session
    deferred = tmp_path / "deferred.h5"
    session.save(deferred)
    assert_files_equal(immediate, deferred)

    with h5py.File(immediate, "r") as f:
        light = f["stimulus/light_reference/raw_ch1"].shape[0]
        for unit_id in f["units"]:
            spikes = f[f"units/{unit_id}/spike_times"][()]
            g = f[f"units/{unit_id}/features/my_feature_name"]
            assert float(np.asarray(g.attrs["my_value"]).reshape(-1)[0]) == 2.0 * spikes.size
            np.testing.assert_array_equal(g["isi_us"][()], np.diff(spikes.astype(np.float64)))
            assert int(np.asarray(g.attrs["light_samples"]).reshape(-1)[0]) == light
            first = int(np.asarray(g["summary"].attrs["first"]).reshape(-1)[0])
            assert first == (int(spikes[0]) if spikes.size else -1)
            assert g.attrs["extractor_version"] == "1.0.0" and g.attrs["feature_name"] == "my_feature_name"
        assert "my_feature_name" in json.loads(f.attrs["features_extracted"])

    # cached: same version and config; a new config is a new result
    again = extract_features(immediate, features=["my_feature_name"], config_overrides={"scale": 2.0})
    assert again.features_skipped == ["my_feature_name"] and not again.features_extracted
    changed = extract_features(immediate, features=["my_feature_name"], config_overrides={"scale": 3.0})
    assert changed.units_extracted == {"my_feature_name": len(again_units(immediate))}


def again_units(h5):
    with h5py.File(h5, "r") as f:
        return list(f["units"])


def test_failing_unit_and_missing_inputs_are_reported_not_fatal(tiny_recording, tmp_path, restored_registry):
    @FeatureRegistry.register("fails_on_silent")
    class FailsOnSilent(FeatureExtractor):
        version = "2.0.0"
        required_inputs = ["spike_times"]

        def extract(self, unit_data, stimulus_data, config=None, metadata=None):
            spikes = unit_data["spike_times"][:]
            if spikes.size == 0:
                raise ValueError("no spikes")
            rate = float(metadata["sampling_rate"][:].flat[0])
            return {"duration_s": float(spikes[-1] - spikes[0]) / rate}

    @FeatureRegistry.register("needs_absent_input")
    class NeedsAbsent(FeatureExtractor):
        required_inputs = ["no_such_dataset"]

        def extract(self, unit_data, stimulus_data, config=None):
            raise AssertionError("must not run")

    h5 = tmp_path / "r.h5"
    _loaded(tiny_recording, h5)
    truth = tiny_recording.truth()
    result = extract_features(h5, features=["fails_on_silent", "needs_absent_input"])
    silent = [u for u, t in truth.units.items() if t.kind == "silent"]
    assert result.units_failed == {"fails_on_silent": len(silent)}
    assert result.units_extracted == {"fails_on_silent": len(truth.units) - len(silent)}
    assert result.features_extracted == ["fails_on_silent"]
    assert result.features_failed == ["needs_absent_input"]
    assert result.features_missing_inputs == {"needs_absent_input": len(truth.units)}
    assert any(f"Failed fails_on_silent for {silent[0]}" in w and "no spikes" in w for w in result.warnings)
    with h5py.File(h5, "r") as f:
        for unit_id, unit in truth.units.items():
            assert ("fails_on_silent" in f[f"units/{unit_id}/features"]) == (unit.kind != "silent")
            if unit.kind != "silent":
                got = float(np.asarray(f[f"units/{unit_id}/features/fails_on_silent"].attrs["duration_s"]).reshape(-1)[0])
                assert got == pytest.approx((int(unit.spike_times[-1]) - int(unit.spike_times[0])) / 20000.0)


def test_registry_behaves_as_the_lab_pipeline_documents(restored_registry):
    assert BUILTIN_NAMES <= set(FeatureRegistry.list_all())
    assert FeatureRegistry.list_all() == sorted(FeatureRegistry.list_all())
    assert FeatureRegistry.get("example_feature") is ExampleFeatureExtractor

    @FeatureRegistry.register("metadata_test")
    class MetadataExtractor(FeatureExtractor):
        version = "2.0.0"
        required_inputs = ["spike_times"]
        output_schema = {"value": {"dtype": "float64"}}
        runtime_class = "slow"

        def extract(self, unit_data, stimulus_data, config=None):
            return {"value": 1.0}

    meta = FeatureRegistry.get_metadata("metadata_test")
    assert meta == {"name": "metadata_test", "version": "2.0.0", "required_inputs": ["spike_times"],
                    "output_schema": {"value": {"dtype": "float64"}}, "runtime_class": "slow", "description": ""}
    assert FeatureRegistry.is_registered("metadata_test") and not FeatureRegistry.is_registered("nope")
    with pytest.raises(ValueError, match="already registered by MetadataExtractor"):
        @FeatureRegistry.register("metadata_test")
        class Other(FeatureExtractor):
            def extract(self, unit_data, stimulus_data, config=None):
                return {}
    with pytest.raises(KeyError, match="Unknown feature: 'nope'.*baseline_127"):
        FeatureRegistry.get("nope")
    with pytest.raises(TypeError):
        class Incomplete(FeatureExtractor):  # extract is abstract
            pass
        Incomplete()
    assert set(FeatureRegistry.get_all_metadata()) == set(FeatureRegistry.list_all())


def test_restoring_the_registry_copy_removes_test_registrations():
    assert not FeatureRegistry.is_registered("my_feature_name")
    assert not FeatureRegistry.is_registered("metadata_test")


def test_adapters_read_like_h5py():
    data = DictAdapter({"spike_times": np.array([1, 2, 3]), "rate": 20000.0, "nested": {"x": [4, 5]}})
    assert list(data["spike_times"][:]) == [1, 2, 3] and data["spike_times"][0] == 1
    assert float(data["rate"][:]) == 20000.0 and data["rate"][0] == 20000.0 and data["rate"].shape == ()
    assert list(data["nested"]["x"][:]) == [4, 5] and list(data["nested/x"][:]) == [4, 5]
    assert "rate" in data and "nested/x" in data and "absent" not in data
    with pytest.raises(IndexError):
        data["rate"][3]
    with pytest.raises(KeyError):
        data["absent"]
    assert ArrayAdapter(np.arange(6).reshape(2, 3)).shape == (2, 3)
    assert ArrayAdapter([1, 2]).size == 2 and ArrayAdapter(7).flat[0] == 7
    # validate_inputs on a plain dict view
    ex = ExampleFeatureExtractor()
    assert ex.validate_inputs(data) == [] and ex.validate_inputs(DictAdapter({})) == ["spike_times"]


def test_function_style_extractors_are_classes_of_the_same_registry(tiny_recording):
    from hdmea.features.base import StoredGroup
    from hdmea.features.extractors import RecordingInputs, UnitInputs, firing_rate
    from hdmea.pipeline import runner

    assert runner.extract_features is extract_features
    cls = FeatureRegistry.get("firing_rate")
    assert issubclass(cls, FeatureExtractor) and cls.version == "1"
    session = create_session(tiny_recording.cmcr_path.stem)
    _loaded(tiny_recording, session=session)
    movie = tiny_recording.config.step_movie
    unit_id = session.unit_ids()[0]
    got = cls(config={"movie": movie}).extract(StoredGroup(session, f"units/{unit_id}"), None)
    direct = firing_rate(UnitInputs(unit_id, RecordingInputs(session)), movie=movie, frame_time="default")
    np.testing.assert_array_equal(got["rate_hz"], direct["rate_hz"])
    assert got["n_trials"] == direct["n_trials"] == 2 * tiny_recording.config.step_trial.repeat
    with pytest.raises(TypeError, match="extract_features"):
        cls(config={"movie": movie}).extract(DictAdapter({"spike_times": np.arange(3)}), None)


def test_stimulus_extractors_without_their_inputs_are_skipped_and_named(tiny_recording, tmp_path):
    h5 = tmp_path / "no_inputs.h5"
    _loaded(tiny_recording, h5)  # sectioned, but no moving-bar movie and no STA
    names = ["moving_h_bar_s5_d8_3x", "perfect_dense_noise_15x15_15hz_r42_3min", "green_blue_3s_3i_3x"]
    result = extract_features(h5, features=names)
    n = len(again_units(h5))
    assert result.features_missing_inputs == {name: n for name in names}
    assert result.features_failed == names and not result.units_failed and not result.features_extracted
    assert len(result.warnings) == 3
    assert "spike_times_sectioned/moving_h_bar_s5_d8_3x" in result.warnings[0]
    assert "features/sta_perfect_dense_noise_15x15_15hz_r42_3min" in result.warnings[1]


def test_stored_group_reads_a_file_and_a_session_alike(tiny_recording, tmp_path):
    from hdmea.features.base import ArrayAdapter, StoredGroup
    from hdmea.pipeline.session import PipelineSession

    h5 = tmp_path / "views.h5"
    _loaded(tiny_recording, h5)
    movie = tiny_recording.config.step_movie
    with h5py.File(h5, "r") as f:  # what plain h5py reads
        unit_id = sorted(f["units"])[0]
        plain = f[f"units/{unit_id}"]
        expected = dict(name=plain.name, keys=sorted(plain.keys()), row=int(np.asarray(plain.attrs["row"]).reshape(-1)[0]),
                        spikes=plain["spike_times"][()],
                        bounds=plain[f"spike_times_sectioned/{movie}/trial_bounds"][()],
                        rate=float(f["metadata/sampling_rate"][0]))
    session = PipelineSession.load(h5)
    try:
        view = StoredGroup(session, f"units/{unit_id}")
        assert view.name == expected["name"] and sorted(view.keys()) == expected["keys"]
        assert int(np.asarray(view.attrs["row"]).reshape(-1)[0]) == expected["row"]
        spikes = view["spike_times"]
        assert isinstance(spikes, ArrayAdapter) and spikes.dtype == expected["spikes"].dtype
        np.testing.assert_array_equal(spikes[:], expected["spikes"])
        np.testing.assert_array_equal(np.asarray(spikes), expected["spikes"])
        sectioned = view[f"spike_times_sectioned/{movie}"]
        assert isinstance(sectioned, StoredGroup) and "trial_offsets" in sectioned and "nope" not in sectioned
        np.testing.assert_array_equal(sectioned["trial_bounds"][()], expected["bounds"])
        assert sectioned.get("nope") is None and dict(sectioned.items()).keys() == set(sectioned.keys())
        rate = StoredGroup(session, "metadata")["sampling_rate"]
        assert float(rate[:].flat[0]) == expected["rate"] == 20000.0
        with pytest.raises(KeyError, match="no member 'nope'"):
            view["nope"]
    finally:
        session.close()

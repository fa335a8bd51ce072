"""The lab's analysis code reading our files as it reads the original's: its idioms, with plain h5py.

The lab's scripts read a scalar as ``float(f[p][()])`` or ``int(f[p][()])`` (52 such reads outside
``history/``), guard optional parts with ``if path in f``, and read ``source_files``, ``hdmea_version`` and
``pipeline`` attributes.  The original's session mode writes every scalar 0-d (measured:
``tests/data/lab_layout/unified_session_u6.json``); its immediate mode writes 1-element arrays, and so do
the store functions here.
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from hdmea.pipeline import PipelineSession, create_session
from tests.lab_layout import load_manifest

SESSION_MANIFEST = load_manifest("unified_session_u6.json")["paths"]


def _lab_session(tmp_path):
    s = create_session("2024.08.08-10.40.20-Rec", hdf5_path=tmp_path / "rec.h5")
    s.add_units({f"unit_{uid:03d}": {"spike_times": np.arange(uid, 1000 * uid, 97, dtype=np.uint64),
                                     "waveform": np.zeros(50, np.float32), "row": 5, "col": 7, "unit_num": uid}
                 for uid in (4, 12, 1003)})
    s.add_metadata({"acquisition_rate": 20000.0, "sample_interval": 5e-05, "dataset_id": s.dataset_id})
    for uid in s.units.keys():
        s.units[uid]["features"]["eimage_sta"] = {"data": np.zeros((50, 65, 65), np.float32)}
        s.units[uid]["features"]["eimage_sta"]["geometry"] = {"center_row": 12.5, "center_col": np.float64(30.0),
                                                              "area": 7.0, "size_x": 2.0}
        s.units[uid]["auto_label"] = {"axon_type": "rgc"}
        s.units[uid]["features"]["sta_noise"] = {"data": np.ones((60, 15, 15))}
        s.units[uid]["features"]["sta_noise"]["sta_geometry"] = {"peak_frame": np.int64(44), "lnl": {
            "n_spikes": 321, "r_squared": np.float32(0.5)}}
    s.metadata["rf_sta_geometry"] = {"frame_range": [10, 14], "threshold_fraction": 0.5,
                                     "lnl_fitting_enabled": True, "sta_feature_name": "sta_noise"}
    s.set_source_files(cmcr_path=tmp_path / "rec.cmcr", cmtr_path=tmp_path / "rec-.cmtr")
    s.completed_steps.add("extract_soma_geometry")
    return s


def test_every_scalar_of_a_session_file_reads_as_the_lab_reads_it(tmp_path):
    s = _lab_session(tmp_path)
    path = s.save()
    with h5py.File(path, "r") as f:
        assert float(f["metadata/acquisition_rate"][()]) == 20000.0
        assert float(f["metadata/sample_interval"][()]) == 5e-05
        assert f["metadata/dataset_id"][()].decode() == s.dataset_id
        assert float(f["metadata/rf_sta_geometry/threshold_fraction"][()]) == 0.5
        assert bool(f["metadata/rf_sta_geometry/lnl_fitting_enabled"][()]) is True
        np.testing.assert_array_equal(f["metadata/rf_sta_geometry/frame_range"][()], [10, 14])
        for u in f["units"]:
            g = f[f"units/{u}/features/eimage_sta/geometry"]
            assert (float(g["center_row"][()]), float(g["center_col"][()]), float(g["area"][()])) == (12.5, 30.0, 7.0)
            assert f[f"units/{u}/auto_label/axon_type"][()].decode() == "rgc"
            geo = f[f"units/{u}/features/sta_noise/sta_geometry"]
            assert int(geo["peak_frame"][()]) == 44 and int(geo["lnl/n_spikes"][()]) == 321
            assert float(geo["lnl/r_squared"][()]) == 0.5
        # every scalar dataset of the file is 0-d, as the original's session mode writes it
        ranks = []
        f.visititems(lambda name, obj: ranks.append((name, obj.shape)) if isinstance(obj, h5py.Dataset)
                     and obj.attrs.get("h5stream_type") in ("int", "float", "bool", "str", "npscalar") else None)
        assert ranks and all(shape == () for _, shape in ranks), [r for r in ranks if r[1] != ()]
        # the session mode's own records
        assert f.attrs["hdmea_version"] and f.attrs["dataset_id"] == s.dataset_id
        assert f["pipeline"].attrs["stage1_completed"] == True  # noqa: E712  (numpy bool)
        assert f["pipeline"].attrs["stage1_timestamp"] == f["pipeline/session_info"].attrs["saved_at"]
        assert "source_files" in f
        assert f["source_files"].attrs["cmcr_path"] == str(tmp_path / "rec.cmcr")
        assert f["source_files"].attrs["cmtr_path"] == str(tmp_path / "rec-.cmtr")
    for p, kinds in (("@hdmea_version", "attribute"), ("pipeline@stage1_completed", "attribute"),
                     ("source_files@cmcr_path", "attribute"), ("metadata/acquisition_rate", "dataset")):
        assert [e[0] for e in SESSION_MANIFEST[p]] == [kinds]  # what the original writes there
    for p in ("metadata/acquisition_rate", "units/<unit>/features/eimage_sta/geometry/center_row",
              "units/<unit>/auto_label/axon_type", "units/<unit>/features/sta_<movie>/sta_geometry/lnl/n_spikes"):
        assert SESSION_MANIFEST[p][0][2] == 0


def test_a_session_file_loads_back_with_the_exact_values_and_saves_the_same(tmp_path):
    s = _lab_session(tmp_path)
    path = s.save()
    again = PipelineSession.load(path)
    geometry = again.units["unit_1003"]["features"]["eimage_sta"]["geometry"]
    assert geometry["center_row"] == 12.5 and type(geometry["center_row"]) is float
    assert type(geometry["center_col"]) is np.float64
    lnl = again.units["unit_012"]["features"]["sta_noise"]["sta_geometry"]["lnl"]
    assert lnl["n_spikes"] == 321 and type(lnl["n_spikes"]) is int and type(lnl["r_squared"]) is np.float32
    assert again.metadata["rf_sta_geometry"]["lnl_fitting_enabled"] is True
    assert again.metadata["dataset_id"] == s.dataset_id
    assert again.source_files["cmcr_path"] == tmp_path / "rec.cmcr"
    out = again.save(tmp_path / "again.h5")
    with h5py.File(out, "r") as f:
        assert f["metadata/acquisition_rate"].shape == () and f["metadata/dataset_id"].shape == ()
        assert f["metadata/dataset_id"].dtype.kind == "O"  # still variable-length text


def test_a_1_element_scalar_of_an_earlier_file_still_loads(tmp_path):
    s = _lab_session(tmp_path)
    path = s.save()
    with h5py.File(path, "a") as f:  # as an earlier version wrote it: the scalar a 1-element array, no checksums
        value = f["metadata/acquisition_rate"][()]
        attrs = dict(f["metadata/acquisition_rate"].attrs)
        del f["metadata/acquisition_rate"]
        f["metadata/acquisition_rate"] = np.array([value])
        f["metadata/acquisition_rate"].attrs.update(attrs)
        del f.attrs["h5stream_checksums"]
    again = PipelineSession.load(path)
    assert again.metadata["acquisition_rate"] == 20000.0 and type(again.metadata["acquisition_rate"]) is float


def test_a_unit_dict_without_spike_times_is_stored_and_a_step_needing_them_names_the_unit(tmp_path):
    from hdmea.errors import MissingInputError
    from hdmea.io import section_spike_times

    # the lab's manual-label tool and geometry sessions: session.units[uid] = {...} without spike times
    s = create_session("labels", hdf5_path=tmp_path / "labels.h5")
    s.units["unit_004"] = {"auto_label": {}}
    s.units["unit_004"]["auto_label"]["axon_type"] = "rgc"
    s.units["unit_012"] = {"features": {"eimage_sta": {"geometry": {"center_row": 3.0}}}, "row": 3, "col": 9}
    path = s.save()
    with h5py.File(path, "r") as f:
        assert f["units/unit_004/auto_label/axon_type"][()].decode() == "rgc"
        assert float(f["units/unit_012/features/eimage_sta/geometry/center_row"][()]) == 3.0
        assert "spike_times" not in f["units/unit_004"] and f["units/unit_012"].attrs["row"] == 3
    again = PipelineSession.load(path)
    assert again.units["unit_004"]["auto_label"] == {"axon_type": "rgc"}
    # a step that needs spike times says which unit has none
    s = _lab_session(tmp_path)
    s.units["unit_777"] = {"auto_label": {"axon_type": "ac"}}
    s.stimulus["section_time"] = {"iprgc_test": np.array([[0, 5000]], dtype=np.int64)}
    s.metadata["sampling_rate"] = 20000.0
    s.completed_steps.add("load_recording")
    s.completed_steps.add("add_section_time")
    with pytest.raises(MissingInputError, match="unit_777") as info:
        section_spike_times(session=s, pad_margin=(0.0, 0.0))
    assert "section_spike_times" in str(info.value)


def test_unknown_unit_ids_are_kept_in_the_sessions_warnings(tiny_recording):
    from hdmea.pipeline import load_recording_with_eimage_sta

    s = create_session("rec", output_dir=None)
    s = load_recording_with_eimage_sta(tiny_recording.cmcr_path, tiny_recording.cmtr_path, session=s,
                                       duration_s=0.05, unit_ids=["9999", "unit_8888"])
    assert "Unit 9999 not found in CMTR" in s.warnings and "Unit unit_8888 not found in CMTR" in s.warnings
    # unit and system metadata, as the original loads them by default
    assert {"add_cmtr_unit_info", "add_sys_meta_info"} <= set(s.completed_steps)
    some = next(iter(s.units.keys()))
    assert int(np.ravel(s.units[some]["unit_meta"]["row"])[0]) == s.units[some]["row"]
    assert s.metadata["cmcr_meta"]["ProgramName"] == "CMOS-MEA-Control"
    s.close()


def test_load_recording_with_eimage_sta_records_its_own_name_as_the_original(tiny_recording, tmp_path):
    """The original's file lists ``load_recording_with_eimage_sta`` (not the ``load_recording`` and
    ``compute_eimage_sta`` it runs here); the steps after it find what they need done, in both modes."""
    from hdmea.io import section_spike_times
    from hdmea.pipeline import add_section_time, load_recording_with_eimage_sta

    def steps_of(path):
        with h5py.File(path, "r") as f:
            return [s.decode() for s in f["pipeline/session_info/completed_steps"][()]]

    s = create_session("rec", hdf5_path=tmp_path / "s.h5")
    s = load_recording_with_eimage_sta(tiny_recording.cmcr_path, tiny_recording.cmtr_path, session=s,
                                       duration_s=0.05)
    assert list(s.completed_steps) == ["add_cmtr_unit_info", "add_sys_meta_info", "load_recording_with_eimage_sta"]
    s.stimulus["section_time"] = {"iprgc_test": np.array([[0, 500]], dtype=np.int64)}
    s.completed_steps.add("add_section_time")
    section_spike_times(session=s, pad_margin=(0.0, 0.0))  # needs load_recording: found done
    assert "section_spike_times" in s.completed_steps and "load_recording" not in s.completed_steps
    path = s.save()
    assert "load_recording" not in steps_of(path) and "compute_eimage_sta" not in steps_of(path)
    result = load_recording_with_eimage_sta(tiny_recording.cmcr_path, tiny_recording.cmtr_path, dataset_id="imm",
                                            output_dir=tmp_path / "imm", duration_s=0.05)
    assert steps_of(result.hdf5_path) == ["add_cmtr_unit_info", "add_sys_meta_info", "load_recording_with_eimage_sta"]
    movies = {"iprgc_test": 1}
    (tmp_path / "pl.csv").write_text('playlist_name,movie_names\np,"[\'iprgc_test.mov\']"\n')
    (tmp_path / "len.csv").write_text("movie_name,movie_length\n" + "".join(f"{k},{v}\n" for k, v in movies.items()))
    add_section_time(result.hdf5_path, "p", playlist_file_path=tmp_path / "pl.csv",
                     movie_length_file_path=tmp_path / "len.csv")  # needs load_recording: found done
    assert steps_of(result.hdf5_path)[-1] == "add_section_time"
    # a second call over the same file is the same recording loaded again (not a foreign file)
    again = load_recording_with_eimage_sta(tiny_recording.cmcr_path, tiny_recording.cmtr_path, dataset_id="imm",
                                           output_dir=tmp_path / "imm", duration_s=0.05, force=True)
    assert steps_of(again.hdf5_path) == ["add_cmtr_unit_info", "add_sys_meta_info", "load_recording_with_eimage_sta"]

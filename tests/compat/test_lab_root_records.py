"""The root attributes ``source_files`` and ``features_extracted``: JSON text, as the original writes them.

The original's immediate mode (measured: tests/data/lab_layout/immediate_store_u6.json, both a 0-d text
attribute) stores ``json.dumps({"cmcr_path", "cmtr_path", "cmcr_exists", "cmtr_exists"})`` and
``json.dumps([feature names])``; the lab reads them with ``json.loads``.  Files written by earlier versions of
ours hold lists there: they are still read, and a write of ours brings them to the JSON form.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from h5stream.errors import FormatError

from hdmea.io import hdf5_store as store
from hdmea.pipeline import PipelineSession, create_session
from tests.lab_layout import load_manifest


def test_the_store_writes_them_as_the_originals_json_text(tiny_recording, tmp_path):
    from hdmea.pipeline import load_recording

    manifest = load_manifest("immediate_store_u6.json")["paths"]
    assert manifest["@source_files"] == [["attribute", "str", 0]] == manifest["@features_extracted"]
    path = load_recording(tiny_recording.cmcr_path, tiny_recording.cmtr_path, "rec", output_dir=tmp_path).hdf5_path
    with store.open_recording_hdf5(path, "r+") as f:
        unit = store.list_units(f)[0]
        store.write_feature_to_unit(f, unit, "step_up", {"a": np.ones(2)})
        store.write_feature_to_unit(f, unit, "baseline", {"a": np.ones(2)})
        store.write_feature_to_unit(f, unit, "step_up", {"a": np.zeros(2)})
    with h5py.File(path, "r") as f:
        for name in ("source_files", "features_extracted"):
            aid = f.attrs.get_id(name)
            assert aid.shape == () and h5py.check_string_dtype(aid.dtype).length is None
        assert json.loads(f.attrs["source_files"]) == {
            "cmcr_path": str(tiny_recording.cmcr_path), "cmtr_path": str(tiny_recording.cmtr_path),
            "cmcr_exists": True, "cmtr_exists": True}
        assert json.loads(f.attrs["features_extracted"]) == ["step_up", "baseline"]  # appended once, in order


def test_an_earlier_files_lists_are_read_and_rewritten_as_json(tiny_recording, tmp_path):
    from hdmea.pipeline import load_recording

    path = load_recording(tiny_recording.cmcr_path, tiny_recording.cmtr_path, "rec", output_dir=tmp_path).hdf5_path
    with h5py.File(path, "a") as f:  # as earlier versions of ours wrote them: lists of text, with type tags
        f.attrs["source_files"] = np.array([str(tiny_recording.cmcr_path), str(tiny_recording.cmtr_path)],
                                           dtype=h5py.string_dtype())
        f.attrs["features_extracted"] = np.array(["old_feature"], dtype=h5py.string_dtype())
        del f.attrs["h5stream_checksums"]
    with h5py.File(path, "r") as f:
        assert store.source_paths(f.attrs["source_files"]) == [str(tiny_recording.cmcr_path),
                                                               str(tiny_recording.cmtr_path)]
        assert store.feature_names(f.attrs["features_extracted"]) == ["old_feature"]
    session = PipelineSession.load(path)
    assert session.source_files["cmtr_path"] == tiny_recording.cmtr_path
    out = session.save(tmp_path / "again.h5")
    with store.open_recording_hdf5(path, "r+") as f:
        store.write_feature_to_unit(f, store.list_units(f)[0], "new_feature", {"a": np.ones(2)})
    with h5py.File(path, "r") as f:
        assert json.loads(f.attrs["features_extracted"]) == ["old_feature", "new_feature"]
    with h5py.File(out, "r") as f:
        assert json.loads(f.attrs["source_files"])["cmcr_path"] == str(tiny_recording.cmcr_path)
        assert json.loads(f.attrs["features_extracted"]) == ["old_feature"]


def test_a_session_saves_json_text_and_loads_it_back(tmp_path):
    s = create_session("rec", hdf5_path=tmp_path / "rec.h5")
    s.add_units({"unit_004": {"spike_times": np.arange(3, dtype=np.uint64)}})
    s.add_feature("unit_004", "score", 0.5)
    s.set_source_files(cmcr_path="/data/rec.cmcr", cmtr_path=None)
    path = s.save()
    with h5py.File(path, "r") as f:
        assert json.loads(f.attrs["source_files"]) == {"cmcr_path": "/data/rec.cmcr", "cmtr_path": None,
                                                       "cmcr_exists": True, "cmtr_exists": False}
        assert json.loads(f.attrs["features_extracted"]) == ["score"]
        assert f["source_files"].attrs["cmcr_path"] == "/data/rec.cmcr"  # the session mode's group
    again = PipelineSession.load(path)
    assert dict(again.source_files) == {"cmcr_path": Path("/data/rec.cmcr")}


def test_a_damaged_json_attribute_is_a_format_error_naming_it():
    with pytest.raises(FormatError, match="source_files"):
        store.source_paths("{not json")
    assert store.source_paths(None) == ["", ""] and store.feature_names(None) == []

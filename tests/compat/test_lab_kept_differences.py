"""The differences from the original the guide's table keeps beyond the corrected defects, each with why the
lab's reads of the file are not touched.

- live views (``session.units`` is no ``dict``): a session's object only; the file is plain HDF5;
- unit order: a session iterates its units in name order (the original: in the order inserted); both files
  list ``/units`` in name order (HDF5 without creation-order tracking, as h5py makes groups by default; the
  original's measured file lists ``unit_002, unit_003, unit_004, unit_006, unit_017, unit_018``, ours too);
- ``session.add_feature`` with a dict stores the dict as the feature group (the original: below ``data``);
  no line of the lab's analysis code calls ``add_feature`` (``session_calls`` of lab_reads.json), and a value
  that is not a dict is stored as the original stores it;
- frame times ``uint64`` and section times ``int64``: as the original (the manifests' dtype kinds ``u``, ``i``);
- electrical images ``float32`` (the original's session file: ``float64``, the same dtype kind; its
  immediate-mode file: ``float32``): half the bytes, and every read of them in the lab's code takes the whole
  array's values, none converts or checks its type;
- a resumed session keeps a stored bool a bool and a unit's list attribute an attribute (the original's
  resumes turn the bool ``skip_highpass`` into the text ``"True"``/``"False"``, which is true under ``if``,
  and move the list into a dataset, where the first file's ``.attrs[...]`` read no longer finds it).
"""

from __future__ import annotations

import copy
import json

import h5py
import numpy as np

from hdmea.pipeline import PipelineSession, create_session
from tests.lab_layout import MANIFEST_DIR, load_manifest


def _session(tmp_path):
    s = create_session("rec", hdf5_path=tmp_path / "rec.h5")
    # inserted out of name order, as the original's loader inserts Unit_10 before Unit_2
    s.add_units({name: {"spike_times": np.arange(3, dtype=np.uint64) * (i + 1)}
                 for i, name in enumerate(["unit_010", "unit_002", "unit_1003"])})
    return s


def test_units_are_listed_in_name_order_in_the_file_as_in_the_originals(tmp_path):
    s = _session(tmp_path)
    assert list(s.units) == ["unit_002", "unit_010", "unit_1003"]  # name order, not insertion order
    path = s.save()
    with h5py.File(path, "r") as f:
        assert list(f["units"]) == list(s.units)
        # no creation order kept: h5py lists by name, as it lists the original's file
        assert f["units"].id.get_create_plist().get_link_creation_order() == 0
    assert list(PipelineSession.load(path).units) == list(s.units)


def test_live_views_give_plain_dicts_and_leave_the_file_plain(tmp_path):
    s = _session(tmp_path)
    s.units["unit_002"]["auto_label"] = {"axon_type": "rgc"}
    plain = s.units.to_dict()
    assert type(plain) is dict and type(plain["unit_002"]) is dict
    assert json.loads(json.dumps({u: d["auto_label"] for u, d in plain.items() if "auto_label" in d})) == {
        "unit_002": {"axon_type": "rgc"}}
    assert type(copy.deepcopy(s.units)) is dict
    path = s.save()
    with h5py.File(path, "r") as f:  # the lab's reads see a plain file
        assert f["units/unit_002/auto_label/axon_type"][()].decode() == "rgc"


def test_add_feature_with_a_dict_is_not_in_the_labs_code_and_other_values_are_stored_as_the_original(tmp_path):
    reads = json.loads((MANIFEST_DIR / "lab_reads.json").read_text())
    assert reads["session_calls"] == [] and reads["files"] >= 60  # scanned code holds no add_feature call
    s = _session(tmp_path)
    s.add_feature("unit_002", "score", np.arange(4.0), {"version": "1"})
    s.add_feature("unit_010", "fit", {"trace": np.arange(3.0), "peak": 1.5}, {"version": "1"})
    path = s.save()
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(f["units/unit_002/features/score/data"][()], np.arange(4.0))  # as the original
        assert f["units/unit_002/features/score/metadata/version"][()].decode() == "1"
        np.testing.assert_array_equal(f["units/unit_010/features/fit/trace"][()], np.arange(3.0))  # kept layout
        assert float(f["units/unit_010/features/fit"].attrs["peak"]) == 1.5


def test_frame_and_section_times_have_the_originals_dtypes():
    paths = load_manifest("unified_session_u6.json")["paths"]
    assert paths["stimulus/frame_times/default"] == [["dataset", "u", 1]]
    assert paths["metadata/frame_timestamps"] == [["dataset", "u", 1]]
    assert paths["stimulus/section_time/<movie>"] == [["dataset", "i", 2]]
    # ours: the same dtype kinds (test_lab_unified_pipeline finds no path of another dtype kind)


def test_electrical_images_are_float32_and_no_lab_read_depends_on_their_type():
    arrays = load_manifest("session_steps_u6.json")["arrays"]
    originals = {fact["dtype"] for path, fact in arrays.items() if path.endswith("/eimage_sta/data")}
    assert originals == {"f8"}  # measured: the original's session mode stores float64
    immediate = load_manifest("immediate_store_u6.json")["arrays"]
    assert {fact["dtype"] for path, fact in immediate.items() if path.endswith("/eimage_sta/data")} == {"f4"}
    reads = [r for r in json.loads((MANIFEST_DIR / "lab_reads.json").read_text())["reads"]
             if (r["path"] or "").endswith("eimage_sta/data")]
    assert len(reads) >= 20
    # each is a test of presence or a whole-array read: the values, never float()/int() or the dtype
    assert {(r["idiom"], r.get("access") or "", r.get("conversion") or "") for r in reads} <= {
        ("in", "", ""), ("subscript", "[:]", ""), ("subscript", "[()]", ""), ("subscript", "", "")}


def test_resumes_keep_a_bool_and_a_units_list_attribute_where_the_original_changes_them(tmp_path):
    first, resumed = load_manifest("script_values_u6.json"), load_manifest("resumed_saved_u6.json")
    flag = "units/<unit>/features/eimage_sta/metadata/skip_highpass"
    assert first["paths"][flag] == [["dataset", "b", 0]] and resumed["paths"][flag] == [["dataset", "str", 0]]
    assert "units/<unit>@lab_list" in first["paths"] and "units/<unit>/lab_list" in resumed["paths"]
    s = create_session("rec", hdf5_path=tmp_path / "rec.h5")
    s.add_units({"unit_002": {"spike_times": np.arange(3, dtype=np.uint64)}})
    s.units["unit_002"]["flags"] = {"skip_highpass": False}
    s.units["unit_002"]["lab_list"] = [1, 2]
    path = PipelineSession.load(s.save()).save(output_path=tmp_path / "resumed" / "rec.h5")
    with h5py.File(path, "r") as f:
        flag = f["units/unit_002/flags/skip_highpass"]
        assert flag.dtype == np.bool_ and not flag[()]  # the original's resume: b"False", true under if
        assert f["units/unit_002"].attrs["lab_list"].tolist() == [1, 2]

"""Features staged as rows (:class:`hdmea.features.base.FeatureRows`, ``add_features(..., rows=...)``): each unit's
group equals the one :func:`hdmea.io._store_nodes.feature_node` makes of the unit's dict, in a session and in a
file (read back with plain h5py), rows of other values than floats and bools included."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from hdmea.features.base import FeatureRows
from hdmea.io import hdf5_store as store
from hdmea.pipeline import create_session
from hdmea.session.target import open_target

NAMES = ("flag", "peak", "latency_ms", "ratio")
META = {"version": "1.0.0", "params_hash": "abc123", "feature_name": "step", "extracted_at": "2026-01-01T00:00:00"}


def _rows(rng, n):
    rows = {}
    for u in range(n):
        row = [bool(rng.integers(0, 2)), float(rng.normal()), float("nan") if u % 4 == 0 else float(rng.uniform()),
               -0.0 if u % 5 == 0 else float(rng.uniform(-1, 1))]
        if u % 6 == 3:
            row[1] = np.arange(u, dtype=np.float32)  # an array: a dataset, as feature_node stores it
        if u % 7 == 5:
            row[2] = u  # an int: an attribute of another type
        rows[f"unit_{u:03d}"] = tuple(row)
    return FeatureRows(NAMES, rows)


def _same_attrs(got: dict, want: dict) -> None:
    assert list(got) == list(want)
    for key, value in want.items():
        other = got[key]
        assert type(other) is type(value), key
        if isinstance(value, np.ndarray):
            assert other.dtype == value.dtype and other.tobytes() == value.tobytes(), key
        elif isinstance(value, float):
            assert other.hex() == value.hex() or (value != value and other != other), key
        else:
            assert other == value, key


def test_feature_rows_read_as_a_mapping_of_each_units_dict():
    rows = _rows(np.random.default_rng(1), 9)
    assert list(rows) == [f"unit_{u:03d}" for u in range(9)] and len(rows) == 9 and "unit_004" in rows
    assert rows["unit_002"] == dict(zip(NAMES, rows.rows["unit_002"]))
    assert rows.get("unit_999") is None and "unit_999" not in rows


def test_row_nodes_equal_feature_node_of_each_units_dict():
    rows = _rows(np.random.default_rng(2), 15)
    nodes = store.feature_row_nodes("step", rows.names, list(rows.rows.values()), META)
    for unit, node in zip(rows, nodes):
        want = store.feature_node("step", rows[unit], META)
        _same_attrs(node.attrs, want.attrs)
        assert sorted(node.children) == sorted(want.children)
    # keys that are no plain names, or twice the same: every row as its dict, through feature_node
    odd = store.feature_row_nodes("step", ("a", "a", "b"), [(1.0, 2.0, True)], META)
    _same_attrs(odd[0].attrs, store.feature_node("step", {"a": 2.0, "b": True}, META).attrs)
    with pytest.raises(store.UnsafeNameError):
        store.feature_row_nodes("bad/name", NAMES, [], META)


def _session_with_units(n):
    session = create_session("rows")
    session.add_units({f"unit_{u:03d}": {"spike_times": np.arange(3, dtype=np.uint64)} for u in range(n)})
    session.mark_step_complete("load_recording")
    return session


def test_a_session_and_a_file_store_rows_as_each_units_dict(tmp_path):
    rows = _rows(np.random.default_rng(3), 12)
    units = list(rows)
    staged = [(u, rows.rows[u]) for u in units[::2]]  # half as rows, half as dicts, in one call
    dicts = [(u, rows[u], META) for u in units[1::2]]
    files = {}
    for mode in ("rows", "dicts"):
        session = _session_with_units(12)
        with open_target(None, session, step="extract_features") as target:
            if mode == "rows":
                target.add_features("step", dicts, rows=(rows.names, staged, META))
            else:
                target.add_features("step", dicts + [(u, rows[u], META) for u in units[::2]])
        files[mode] = tmp_path / f"{mode}.h5"
        session.save(output_path=files[mode])
    # immediate mode: the file's target writes the rows unit by unit
    files["immediate"] = tmp_path / "immediate.h5"
    _session_with_units(12).save(output_path=files["immediate"])
    with open_target(files["immediate"], None, step="extract_features") as target:
        target.add_features("step", dicts, rows=(rows.names, staged, META))

    def read(path):
        with h5py.File(path, "r") as f:
            return {u: (dict(f[f"units/{u}/features/step"].attrs),
                        {k: f[f"units/{u}/features/step/{k}"][()] for k in f[f"units/{u}/features/step"]})
                    for u in f["units"]}

    want = read(files["dicts"])
    assert len(want) == 12
    for mode in ("rows", "immediate"):
        got = read(files[mode])
        assert list(got) == list(want)
        for unit in want:
            _same_attrs(got[unit][0], want[unit][0])
            _same_attrs(got[unit][1], want[unit][1])
    # what was written is each unit's row, as plain h5py reads it
    with h5py.File(files["rows"], "r") as f:
        for unit, row in rows.rows.items():
            node = f[f"units/{unit}/features/step"]
            for name, value in zip(NAMES, row):
                read_back = node[name][()] if isinstance(value, np.ndarray) else node.attrs[name]
                assert np.array_equal(read_back, value, equal_nan=True), (unit, name)
            assert node.attrs["params_hash"] == META["params_hash"] and node.attrs["name"] == "step"


def test_rows_of_a_unit_the_session_lacks_stage_nothing():
    session = _session_with_units(3)
    rows = _rows(np.random.default_rng(4), 4)  # unit_003 is no unit of the session
    with open_target(None, session, step="extract_features") as target:
        with pytest.raises(store.UnknownUnitError):
            target.add_features("step", [], rows=(rows.names, list(rows.rows.items()), META))
    assert not any(session.has(f"units/{u}/features/step") for u in ("unit_000", "unit_001", "unit_002"))

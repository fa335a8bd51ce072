"""Many small values taken in at once: a group of pieces held as one table until its children are read,
staged as one array while everything fits and piece by piece (spilling) past the budget, and a session's
``set_nodes`` / a target's ``put_many`` against the same values stored one call at a time."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from h5stream.errors import UnsafeNameError
from h5stream.staging import StagingArea
from h5stream.tree import Dataset, FileArray, Group, Pieces, PiecesGroup, put_node
from hdmea.pipeline import create_session
from hdmea.session._staged_tree import admit_datasets, node_nbytes, release_datasets
from hdmea.session.target import open_target


def _pieces(n_trials: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, dict]:
    rng = np.random.default_rng(seed)
    sizes = rng.integers(0, 9, n_trials)
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    values = np.sort(rng.integers(0, 10**6, int(offsets[-1]))).astype(np.int64)
    return values, offsets, {k: values[offsets[k]:offsets[k + 1]].copy() for k in range(n_trials)}


def test_a_group_of_pieces_is_built_once_when_first_read():
    values, offsets, as_dict = _pieces(50)
    group = put_node(Pieces(values, offsets))
    assert isinstance(group, PiecesGroup) and isinstance(group, Group) and group.pieces is not None
    assert group.tag == "dict" and group.keys == list(range(50))
    children = group.children
    assert group.pieces is None and group.children is children  # built once, then an ordinary group
    assert list(children) == [str(k) for k in range(50)]
    for k, expected in as_dict.items():
        assert isinstance(children[str(k)], Dataset)
        np.testing.assert_array_equal(children[str(k)].data, expected)
    replaced = PiecesGroup(Pieces(values, offsets))
    replaced.children = {"0": Dataset(np.arange(3))}  # set before it was built: the table is gone
    assert replaced.pieces is None and list(replaced.children) == ["0"]


def test_staging_counts_a_table_once_and_releases_what_it_counted_built_or_not(tmp_path):
    values, offsets, _ = _pieces(200)
    for build_before_release in (False, True):
        area = StagingArea(tmp_path / "a.h5", memory_limit=None)
        table = put_node(Pieces(values, offsets))
        node = Group(children={"trials": table, "other": Dataset(np.arange(10, dtype=np.int64))})
        admit_datasets(area, node)
        assert table.pieces is not None  # taken in without building its 200 datasets
        assert area.resident_bytes == values.nbytes + 80
        assert node_nbytes(table) == sum(len(str(k)) for k in range(200)) + values.nbytes
        if build_before_release:
            assert len(table.children) == 200
        release_datasets(area, node)
        assert area.resident_bytes == 0 and area.spilled_bytes == 0
        area.discard()


def test_pieces_past_the_budget_are_staged_one_by_one_and_spill(tmp_path):
    values, offsets, as_dict = _pieces(300, seed=1)
    limit = values.nbytes // 2
    area = StagingArea(tmp_path / "b.h5", memory_limit=limit)
    table = put_node(Pieces(values, offsets))
    admit_datasets(area, table)
    assert table.pieces is None  # built: each piece staged as any dataset
    staged = [table.children[str(k)].data for k in range(300)]
    assert any(isinstance(d, FileArray) for d in staged) and area.resident_bytes <= limit
    assert area.resident_bytes + area.spilled_bytes == values.nbytes
    for k, data in enumerate(staged):  # nothing lost: the spilled pieces read back as they were
        np.testing.assert_array_equal(data.read() if isinstance(data, FileArray) else data, as_dict[k])
    release_datasets(area, table)
    assert area.resident_bytes == 0 and area.spilled_bytes == 0
    area.discard()


def _values(n_units: int) -> list[tuple[str, dict]]:
    items = []
    for u in range(n_units):
        values, offsets, _ = _pieces(40, seed=u)
        items.append((f"units/u{u}/sectioned/movie", {"trials": Pieces(values, offsets),
                                                      "spike_times": values.astype(np.uint64), "repeat": 3}))
    return items


def _tree_of(path) -> dict:
    found = {}

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset) and name.startswith("units"):
            found[name] = obj[()].tolist() if obj.shape else obj[()]
        if name.startswith("units"):
            found[name + "@"] = {k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in obj.attrs.items()}

    with h5py.File(path, "r") as f:
        f.visititems(visit)
    return found


@pytest.mark.parametrize("memory_limit", [None, 3_000])
def test_put_many_stores_what_puts_one_by_one_store(tmp_path, memory_limit):
    """The same session file whether a step stores each unit's value in its own call or all in one, within
    the budget or past it (spilled); replacing them all releases what they took."""
    files = {}
    for how in ("one by one", "at once"):
        s = create_session("rec", memory_limit=memory_limit)
        with open_target(None, s, step="probe") as t:
            t.put("units/u0/sectioned/movie", {"old": np.arange(1000)})  # replaced below
            if how == "at once":
                t.put_many(_values(6))
                t.put_many([(f"units/u{u}/sectioned/movie/_attrs", {"n_trials": 40}) for u in range(6)],
                           values=True)
            else:
                for path, value in _values(6):
                    t.put(path, value)
                for u in range(6):
                    t.put_values(f"units/u{u}/sectioned/movie/_attrs", {"n_trials": 40})
        if memory_limit is not None:
            assert s.spilled_bytes > 0 and s.resident_bytes <= memory_limit
        files[how] = s.save(tmp_path / f"{how}.h5")
        with open_target(None, s, step="probe") as t:
            t.put_many([(path, 1) for path, _ in _values(6)])
        assert s.resident_bytes == 0 and s.spilled_bytes == 0
        s.close()
    one, many = (_tree_of(files[how]) for how in ("one by one", "at once"))
    assert one == many and "units/u5/sectioned/movie/trials/39" in many
    values, offsets, _ = _pieces(40, seed=5)
    assert many["units/u5/sectioned/movie/trials/7"] == values[offsets[7]:offsets[8]].tolist()
    assert many["units/u2/sectioned/movie/_attrs/n_trials"] == 40


def test_put_many_refuses_the_root_before_changing_anything():
    s = create_session("rec")
    with open_target(None, s, step="probe") as t:
        with pytest.raises(UnsafeNameError, match="root"):
            t.put_many([("units/u0/x", 1), ("/", 2)])
    assert not s.has("units/u0")


def test_sectioning_under_a_small_budget_saves_every_trial(tiny_recording, tiny_truth, tmp_path):
    """The step's trials, taken in at once, spill past a small budget and every one is saved."""
    from hdmea.pipeline import add_section_time, load_recording, section_spike_times

    s = create_session("rec", hdf5_path=tmp_path / "rec.h5", memory_limit=4_000)
    load_recording(tiny_recording.cmcr_path, tiny_recording.cmtr_path, session=s)
    add_section_time(stimulus=tiny_recording.stimulus_path, session=s)
    section_spike_times(session=s)
    assert s.spilled_bytes > 0
    s.save()
    movie = tiny_truth.step_movie
    with h5py.File(tmp_path / "rec.h5", "r") as f:
        for name, unit in tiny_truth.units.items():
            g = f[f"units/{name}/spike_times_sectioned/{movie}"]
            bounds = g["trials_start_end"][()]
            spikes = unit.spike_times.astype(np.int64)
            assert len(g["trials_spike_times"]) == bounds.shape[0] == int(g["_attrs/n_trials"][()]) >= 2
            for k, (a, b) in enumerate(bounds):  # the naive cut of the planted train
                np.testing.assert_array_equal(g[f"trials_spike_times/{k}"][()], spikes[(spikes >= a) & (spikes < b)])


def _units_session(memory_limit=None):
    s = create_session("rec", memory_limit=memory_limit)
    s.add_units({f"u{i}": {"spike_times": np.arange(i, 50 * (i + 1), 5)} for i in range(5)})
    return s


def test_add_features_stores_what_add_feature_stores_unit_by_unit(tmp_path):
    results = [(f"u{i}", {"rate": float(i), "trace": np.linspace(0, i, 30), "flag": bool(i % 2)},
                {"version": "1", "params_hash": "h", "extracted_at": "t"}) for i in range(5)]
    files = {}
    for how in ("one by one", "at once"):
        s = _units_session()
        if how == "at once":
            s.add_features("resp", results)
        else:
            for unit_id, data, meta in results:
                s.add_feature(unit_id, "resp", data, meta)
        assert s.get("units/u3/features/resp")["rate"] == 3.0
        files[how] = s.save(tmp_path / f"{how}.h5")
        s.close()
    assert _tree_of(files["one by one"]) == _tree_of(files["at once"])
    with h5py.File(files["at once"], "r") as f:
        np.testing.assert_array_equal(f["units/u4/features/resp/trace"][()], np.linspace(0, 4, 30))
        assert "resp" in f.attrs["features_extracted"]


def test_add_features_refuses_an_unknown_unit_before_staging_any():
    s = _units_session()
    results = [("u0", {"rate": 1.0}, {}), ("u9", {"rate": 2.0}, {})]
    with pytest.raises(KeyError, match="u9"):
        s.add_features("resp", results)
    assert not s.has("units/u0/features/resp")

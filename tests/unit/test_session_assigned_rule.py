"""The rule for values the caller assigned into a session: every change made through any reference the
caller may still hold, before ``save()``, ``checkpoint()`` or ``ensure_saved()``, is in the file that call
writes (or the call raises a typed error naming the path); the memory limit never costs a change; and
``is_saved`` is true only when the file holds what the caller sees.  Every file is read back with plain
h5py; the race is checked against the file's own checksum manifest."""

from __future__ import annotations

import gc
import threading

import h5py
import numpy as np
import pytest

from hdmea.pipeline import PipelineSession, create_session
from hdmea.session import _followed


def _session(tmp_path, memory_limit=None, n_units=4):
    s = create_session("rec", hdf5_path=tmp_path / "rec.h5", memory_limit=memory_limit)
    s.add_units({f"unit_{i:03d}": {"spike_times": np.arange(5, dtype=np.uint64) * (i + 1)} for i in range(n_units)})
    return s


def _read(path, name):
    with h5py.File(path, "r") as f:
        value = f[name][()]
    if isinstance(value, np.ndarray) and value.dtype.kind == "O":
        return [v.decode() if isinstance(v, bytes) else v for v in value.tolist()]
    return value


@pytest.mark.parametrize("memory_limit", [None, "1KB"])
def test_an_array_changed_then_dropped_before_the_save_keeps_its_change(tmp_path, memory_limit):
    s = _session(tmp_path, memory_limit)
    a = np.zeros(1000)
    s.units["unit_000"]["x"] = a
    a[:] = 7
    del a
    gc.collect()
    s.units["unit_001"]["y"] = np.ones(3)  # a later assignment, where the session lets go of what was dropped
    s.save()
    np.testing.assert_array_equal(_read(tmp_path / "rec.h5", "units/unit_000/x"), np.full(1000, 7.0))


@pytest.mark.parametrize("memory_limit", [None, "1KB"])
def test_a_text_array_changed_then_dropped_keeps_its_change(tmp_path, memory_limit):
    s = _session(tmp_path, memory_limit)
    names = np.array(["on", "off", "on_off"], dtype=object)
    s.units["unit_000"]["labels"] = names
    names[1] = "changed"
    del names
    gc.collect()
    s.save()
    assert _read(tmp_path / "rec.h5", "units/unit_000/labels") == ["on", "changed", "on_off"]


def test_the_labs_sta_loop_under_a_small_memory_limit_saves_every_unit(tmp_path):
    """Assign ``sta``, then ``sta += ...``, unit after unit: each unit's earlier array is dropped by the loop."""
    s = _session(tmp_path, "64KB", n_units=6)
    for i in range(6):
        sta = np.zeros((30, 15, 15))
        s.units[f"unit_{i:03d}"]["sta"] = sta
        sta += i + 1
    del sta
    assert s.spilled_bytes > 0
    assert s.resident_bytes <= 64_000
    s.save()
    for i in range(6):
        np.testing.assert_array_equal(_read(tmp_path / "rec.h5", f"units/unit_{i:03d}/sta"),
                                      np.full((30, 15, 15), float(i + 1)))


def test_what_the_session_holds_of_dropped_values_stays_within_the_budget(tmp_path):
    """Arrays the caller let go of are not kept in memory by the session (measured by weak references)."""
    import weakref

    s = _session(tmp_path, "64KB", n_units=40)
    refs = []
    for i in range(40):
        sta = np.zeros((30, 15, 15))
        s.units[f"unit_{i:03d}"]["sta"] = sta
        sta += i
        refs.append(weakref.ref(sta))
    del sta
    s.units["unit_000"]["note"] = "last"  # an assignment: the session checks what the caller dropped
    gc.collect()
    assert sum(r() is not None for r in refs) <= 2
    assert s.resident_bytes <= 64_000
    s.save()
    assert _read(tmp_path / "rec.h5", "units/unit_039/sta")[0, 0, 0] == 39.0


@pytest.mark.parametrize("memory_limit", [None, 1])
@pytest.mark.parametrize("how", ["assigned", "read back", "inside a dict", "text"])
def test_an_in_place_change_after_a_save_is_seen_by_is_saved_and_ensure_saved(tmp_path, memory_limit, how):
    s = _session(tmp_path, memory_limit)
    a = np.array(["a", "b"], dtype=object) if how == "text" else np.zeros(50)
    if how == "inside a dict":
        s.units["unit_000"]["d"] = {"a": a}
        name = "units/unit_000/d/a"
    else:
        s.units["unit_000"]["a"] = a
        name = "units/unit_000/a"
    assert s.save() == tmp_path / "rec.h5"
    assert s.is_saved
    if how == "read back":
        del a  # only the session holds the array now; the change comes through what a read gives back
        s.units["unit_000"]["a"][:] = 9
    else:
        a[:] = "z" if how == "text" else 9
    assert not s.is_saved
    assert s.ensure_saved() == tmp_path / "rec.h5"
    expected = ["z", "z"] if how == "text" else np.full(50, 9.0)
    np.testing.assert_array_equal(_read(tmp_path / "rec.h5", name), expected)
    assert s.is_saved
    assert s.ensure_saved() == tmp_path / "rec.h5"


def test_a_change_after_a_checkpoint_is_in_the_next_checkpoint(tmp_path):
    s = _session(tmp_path)
    a = np.zeros(20)
    s.units["unit_000"]["a"] = a
    s.checkpoint(tmp_path / "ck1.h5")
    a[3] = 5
    s.checkpoint(tmp_path / "ck2.h5")
    assert _read(tmp_path / "ck1.h5", "units/unit_000/a")[3] == 0
    assert _read(tmp_path / "ck2.h5", "units/unit_000/a")[3] == 5


def _churn(array, stop):
    k = 0
    while not stop.is_set():
        array[: array.size // 4] = k
        k += 1


@pytest.mark.parametrize("memory_limit", [None, "1MB"])
def test_a_save_racing_a_thread_that_changes_an_array_writes_a_file_that_passes_its_own_checksums(
        tmp_path, memory_limit):
    for run in range(3):
        s = _session(tmp_path, memory_limit, n_units=1)
        a = np.zeros(2_000_000)
        s.units["unit_000"]["a"] = a
        stop = threading.Event()
        thread = threading.Thread(target=_churn, args=(a, stop))
        thread.start()
        try:
            path = s.save(overwrite=True)
        finally:
            stop.set()
            thread.join()
        loaded = PipelineSession.load(path)  # every value checked against the file's digests
        saved = np.asarray(loaded.units["unit_000"]["a"])
        loaded.close()
        assert saved.shape == a.shape and not saved[a.size // 4:].any()
        # the session knows whether the file holds what the caller sees now
        assert s.is_saved == bool(np.array_equal(saved, a))
        s.close()


def test_the_release_decision_is_calibrated_on_this_interpreter():
    """The one place that decides when the session lets go of a value found, at import, how this
    interpreter counts references; a value held by the caller is never let go."""
    assert _followed.RELEASE.calibrated, _followed.RELEASE.reason
    box = {"inner": {"x": np.zeros(3)}}
    holder = _followed.RELEASE.probe(box)
    assert _followed.RELEASE.held_elsewhere(holder)  # ``box`` here
    inner = box["inner"]
    del box
    assert _followed.RELEASE.held_elsewhere(holder)  # ``inner`` here
    array = inner["x"]
    del inner
    assert _followed.RELEASE.held_elsewhere(holder)  # ``array`` here
    view = array[1:]
    del array
    assert _followed.RELEASE.held_elsewhere(holder)  # a view of the array
    del view
    assert not _followed.RELEASE.held_elsewhere(holder)


def test_a_text_array_read_back_is_read_only_so_an_edit_cannot_vanish(tmp_path):
    s = _session(tmp_path)
    s.units["unit_000"]["labels"] = np.array(["on", "off"], dtype=object)  # not held by the caller
    s.units["unit_001"]["note"] = "x"  # a later assignment: the session lets go of the text array
    given = s.units["unit_000"]["labels"]
    with pytest.raises(ValueError):
        given[0] = "changed"  # a converted copy: the edit would be lost, so it raises
    s.save()
    assert _read(tmp_path / "rec.h5", "units/unit_000/labels") == ["on", "off"]


def test_a_session_nobody_holds_is_freed_at_once(tmp_path):
    """Nothing the session holds refers back to it (its tree access, its followed values): dropped, it is
    freed by reference counting alone and the file it was loaded from is closed."""
    import weakref

    s = _session(tmp_path)
    s.units["unit_000"]["d"] = {"a": np.zeros(3)}
    s.save()
    s.close()
    loaded = PipelineSession.load(tmp_path / "rec.h5")
    assert loaded.tree.node(["units", "unit_000", "d"]) is not None
    ref = weakref.ref(loaded)
    gc.disable()
    try:
        del loaded
        assert ref() is None
    finally:
        gc.enable()
    with h5py.File(tmp_path / "rec.h5", "r+") as f:  # not held open by the dropped session
        f.attrs["edited"] = 1


def test_where_the_counts_do_not_add_up_nothing_is_let_go_and_nothing_is_lost(tmp_path, monkeypatch):
    """The fallback: with the release decision uncalibrated (another interpreter), every assigned value is
    held until the session saves or closes, and each change is saved."""
    import weakref

    monkeypatch.setattr(_followed.RELEASE, "calibrated", False)
    s = _session(tmp_path, "64KB", n_units=6)
    refs = []
    for i in range(6):
        sta = np.zeros((30, 15, 15))
        s.units[f"unit_{i:03d}"]["sta"] = sta
        sta += i + 1
        refs.append(weakref.ref(sta))
    del sta
    s.units["unit_000"]["note"] = "last"
    gc.collect()
    assert all(r() is not None for r in refs)  # held: never let go on counts that were not checked
    s.save()
    for i in range(6):
        np.testing.assert_array_equal(_read(tmp_path / "rec.h5", f"units/unit_{i:03d}/sta"),
                                      np.full((30, 15, 15), float(i + 1)))

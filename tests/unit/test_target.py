"""StepTarget / open_target: the same step code in session mode and immediate mode, same files."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest

from h5stream.errors import SourceNotFoundError, StaleClaimWarning, WriterClaimError
from hdmea.errors import MissingStepError
from hdmea.pipeline import create_session
from hdmea.session.target import StepTarget, open_target

from tests.filecompare import assert_files_equal, compare_files


def _load(path, session):
    units = {f"unit_{i:03d}": {"spike_times": np.arange(i, 40 * (i + 1), 7), "waveform": np.full(8, i),
                               "row": i, "col": 0, "global_id": i} for i in range(4)}
    units["unit_003"]["spike_times"] = np.array([], dtype=np.uint64)
    with open_target(path, session, step="load_recording", create=session is None, dataset_id="rec") as t:
        t.add_units(units)
        t.add_stimulus(light_reference={"raw": np.ones(4)}, frame_times={"default": np.arange(0, 400, 10)},
                       section_times={"step_up": np.array([[0, 100], [200, 300]])})
        t.add_metadata({"sampling_rate": 20000.0, "device": {"name": "MEA", "ids": [1, 2]}})
        t.set_attrs("", {"stage1_completed": True})
        t.mark_step_complete()
    return units


def _section(path, session):
    with open_target(path, session, step="section_spike_times") as t:
        t.require_steps("load_recording")
        bounds = t.get("stimulus/section_time/step_up").astype(np.int64)
        for uid in t.unit_ids():
            spikes = t.get(f"units/{uid}/spike_times").astype(np.int64)
            values, offsets = [], [0]
            for start, end in bounds:
                inside = spikes[(spikes >= start) & (spikes < end)]
                values.append(inside)
                offsets.append(offsets[-1] + len(inside))
            t.put(f"units/{uid}/spike_times_sectioned/step_up", {
                "spike_times": np.concatenate(values).astype(np.uint64),
                "trial_offsets": np.array(offsets, dtype=np.int64),
                "trial_bounds": bounds.astype(np.uint64),
                "pad_margin": (0.0, 0.0),
            })
            t.add_feature(uid, "count", {"n": int(len(spikes))}, {"version": "1", "params_hash": "p",
                                                                   "extracted_at": "t"})
        t.mark_step_complete()


def test_session_mode_does_no_file_io(tmp_path):
    s = create_session("rec")
    _load(tmp_path / "never.h5", s)
    _section(tmp_path / "never.h5", s)
    assert list(tmp_path.iterdir()) == []
    assert s.completed_steps == ["load_recording", "section_spike_times"]


def test_both_modes_write_equal_files(tmp_path):
    _load(tmp_path / "imm.h5", None)
    _section(tmp_path / "imm.h5", None)
    s = create_session("rec", hdf5_path=tmp_path / "def.h5")
    _load(None, s)
    _section(None, s)
    s.save()
    assert_files_equal(tmp_path / "imm.h5", tmp_path / "def.h5")
    # The comparison is not blind: a changed value shows.
    with h5py.File(tmp_path / "def.h5", "r+") as f:
        f["units/unit_000/spike_times_sectioned/step_up/spike_times"][0] = 999
    assert any("values differ" in d for d in compare_files(tmp_path / "imm.h5", tmp_path / "def.h5"))


@pytest.mark.parametrize("mode", ["session", "file"])
def test_generic_access(tmp_path, mode):
    s = create_session("rec") if mode == "session" else None
    path = tmp_path / "r.h5"
    units = _load(path, s)
    with open_target(path, s, step="probe") as t:
        assert isinstance(t, StepTarget) and t.is_deferred == (mode == "session")
        assert t.unit_ids() == sorted(units)
        got = t.get("units/unit_001/spike_times")
        assert got.dtype == np.uint64
        np.testing.assert_array_equal(got, units["unit_001"]["spike_times"])
        assert t.get("metadata/sampling_rate") == 20000.0 and type(t.get("metadata/sampling_rate")) is float
        assert t.get("metadata/device") == {"name": "MEA", "ids": [1, 2]}
        assert t.has("units/unit_000") and not t.has("units/unit_999")
        assert t.get("units/unit_999", None) is None
        with pytest.raises(KeyError):
            t.get("units/unit_999")
        assert t.keys("stimulus") == ["frame_time", "light_reference", "section_time"]
        assert t.attrs("units/unit_002") == {"row": 2, "col": 0, "global_id": 2,
                                              "spike_count": len(units["unit_002"]["spike_times"])}
        t.set_attrs("units/unit_002", {"quality": 0.75, "label": "good"})
        assert t.attrs("units/unit_002")["label"] == "good"
        t.put("units/unit_002/extra", {"a": np.arange(3), "b": 2, "c": {"d": "e"}})
        assert t.get("units/unit_002/extra")["c"] == {"d": "e"}
        t.put("units/unit_002/extra", np.ones(2))  # replaces what was there
        np.testing.assert_array_equal(t.get("units/unit_002/extra"), np.ones(2))
        assert t.attrs("")["stage1_completed"] is True
        assert t.completed_steps == ["load_recording"]
        with pytest.raises(MissingStepError, match="section_spike_times"):
            t.require_steps("load_recording", "section_spike_times")
        t.add_warning("probe ran")


@pytest.mark.parametrize("mode", ["session", "file"])
def test_missing_step_names_the_step(tmp_path, mode):
    s = create_session("rec") if mode == "session" else None
    _load(tmp_path / "r.h5", s)
    with pytest.raises(MissingStepError) as info:
        with open_target(tmp_path / "r.h5", s, step="compute_sta") as t:
            t.require_steps("add_section_time")
    assert "compute_sta" in str(info.value) and "add_section_time" in str(info.value)


def test_immediate_exception_changes_nothing(tmp_path):
    path = tmp_path / "r.h5"
    _load(path, None)
    before = path.read_bytes()
    with pytest.raises(RuntimeError):
        with open_target(path, None, step="broken") as t:
            t.put("units/unit_000/junk", np.ones(3))
            t.mark_step_complete()
            raise RuntimeError("kernel failed")
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["r.h5"]


def test_immediate_errors(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        with open_target(tmp_path / "missing.h5", None, step="x"):
            pass
    assert isinstance(info.value, SourceNotFoundError)
    _load(tmp_path / "r.h5", None)
    with pytest.raises(FileExistsError):
        with open_target(tmp_path / "r.h5", None, step="load_recording", create=True, dataset_id="rec"):
            pass
    with open_target(tmp_path / "r.h5", None, step="a"):
        with pytest.raises(WriterClaimError, match="already open for writing"):
            with open_target(tmp_path / "r.h5", None, step="b"):
                pass
    with pytest.raises(ValueError):
        with open_target(None, None, step="x"):
            pass


def test_session_dataset_id_must_match():
    s = create_session("rec")
    with pytest.raises(Exception, match="not 'other'"):
        with open_target(None, s, step="x", dataset_id="other"):
            pass


def test_crash_in_later_step_keeps_earlier_steps(tmp_path, child_env):
    """A process killed inside step 2 (immediate mode) leaves step 1's file complete and readable."""
    path = tmp_path / "r.h5"
    script = textwrap.dedent(f"""
        import os, signal
        import numpy as np
        from tests.unit.test_target import _load
        from hdmea.session.target import open_target
        _load({str(path)!r}, None)
        with open_target({str(path)!r}, None, step="section_spike_times") as t:
            for i in range(50):
                t.put(f"units/unit_000/big_{{i}}", np.ones(100_000))
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env=child_env)
    assert done.returncode == -9, done.stderr
    reference = tmp_path / "ref.h5"
    _load(reference, None)
    assert_files_equal(path, reference)
    with pytest.warns(StaleClaimWarning):  # the claim of the dead writer is cleared, with a warning
        with open_target(path, None, step="section_spike_times") as t:
            assert t.completed_steps == ["load_recording"]
            assert not t.has("units/unit_000/big_0")
    leftovers = [p.name for p in tmp_path.iterdir() if ".partial-" in p.name]
    assert len(leftovers) <= 1  # the dead writer's partial file; never the target
    for name in leftovers:
        os.unlink(tmp_path / name)

"""Files written with positional unit names (unit_000, ...) renamed to the lab's names (unit_<UnitID>).

The input is the frozen golden recording written by an earlier version of this package (positional
names, UnitID in global_id); every check reads both files with plain h5py.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from hdmea.interop.unit_rename import UnitRenameError, rename_positional_units

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "golden" / "hdmea_recording.h5"


def _old_units(path):
    with h5py.File(path, "r") as f:
        return {u: (dict(f[f"units/{u}"].attrs), f[f"units/{u}/spike_times"][()], f[f"units/{u}/waveform"][()])
                for u in f["units"]}


def test_positional_names_become_unit_ids_with_a_record(tmp_path):
    old = _old_units(GOLDEN)
    assert sorted(old) == ["unit_000", "unit_001", "unit_002"]
    result = rename_positional_units(GOLDEN, tmp_path / "renamed.h5")
    expected = {name: f"unit_{int(attrs['global_id']):03d}" for name, (attrs, _, _) in old.items()}
    assert result.renamed == expected == {"unit_000": "unit_001", "unit_001": "unit_005", "unit_002": "unit_009"}
    with h5py.File(tmp_path / "renamed.h5", "r") as f:
        assert sorted(f["units"]) == sorted(expected.values())
        for name, (attrs, spikes, waveform) in old.items():
            g = f[f"units/{expected[name]}"]
            np.testing.assert_array_equal(g["spike_times"][()], spikes)  # the unit's own data, nobody else's
            np.testing.assert_array_equal(g["waveform"][()], waveform)
            assert g.attrs["unit_num"] == attrs["global_id"]
            assert g.attrs["global_id"] == attrs["sensor_id"] == g.attrs["sensor_id"]
            assert g.attrs["original_name"] == f"Unit_{int(attrs['global_id'])}"
            assert g.attrs["row"] == attrs["row"] and g.attrs["col"] == attrs["col"]
        record = f["pipeline/unit_renames"]
        pairs = dict(zip([v.decode() for v in record["old_name"][()]], [v.decode() for v in record["new_name"][()]]))
        assert pairs == expected
        np.testing.assert_array_equal(record["unit_num"][()], [1, 5, 9])
        assert "positional unit_<index>" in record.attrs["rule"] and record.attrs["source"] == str(GOLDEN)
    # the source is untouched
    assert sorted(_old_units(GOLDEN)) == sorted(old)
    # a file already named by UnitID is left alone
    again = rename_positional_units(tmp_path / "renamed.h5", tmp_path / "twice.h5")
    assert again.already_named and not (tmp_path / "twice.h5").exists()


def test_names_that_are_not_positions_are_refused(tmp_path):
    swapped = tmp_path / "swapped.h5"
    shutil.copy(GOLDEN, swapped)
    with h5py.File(swapped, "r+") as f:  # unit_000 now holds UnitID 5's data and unit_001 UnitID 1's
        f.move("units/unit_000", "units/tmp")
        f.move("units/unit_001", "units/unit_000")
        f.move("units/tmp", "units/unit_001")
    with pytest.raises(UnitRenameError, match="not the positions of their UnitIDs"):
        rename_positional_units(swapped, tmp_path / "out.h5")
    assert not (tmp_path / "out.h5").exists()
    no_id = tmp_path / "no_id.h5"
    shutil.copy(GOLDEN, no_id)
    with h5py.File(no_id, "r+") as f:
        del f["units/unit_002"].attrs["global_id"]
    with pytest.raises(UnitRenameError, match="no integer global_id"):
        rename_positional_units(no_id, tmp_path / "out.h5")
    assert not (tmp_path / "out.h5").exists()


def test_hdmea_migrate_renames_a_recording_file(tmp_path):
    done = subprocess.run([sys.executable, "-m", "hdmea", "migrate", str(GOLDEN), str(tmp_path / "new.h5")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "3 units renamed" in done.stdout and "unit_000 -> unit_001" in done.stdout
    with h5py.File(tmp_path / "new.h5", "r") as f:
        assert sorted(f["units"]) == ["unit_001", "unit_005", "unit_009"]


def test_hdmea_migrate_of_an_hdf5_file_it_did_not_write_says_what_it_is_and_what_to_give(tmp_path):
    foreign = tmp_path / "other.h5"
    with h5py.File(foreign, "w") as f:  # an HDF5 file of another program: no format attribute, no dataset_id
        f["signal"] = np.arange(10.0)
        f.create_group("meta")
    done = subprocess.run([sys.executable, "-m", "hdmea", "migrate", str(foreign), str(tmp_path / "new.h5")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr
    said = done.stderr
    assert str(foreign) in said and "not a recording file: nothing to migrate" in said, said
    assert "not written by hdmea or hdmea_processing" in said and "holding meta, signal at its top" in said, said
    assert "hdmea migrate takes a recording file (.h5) written by hdmea" in said, said  # what to give instead
    assert "hdmea run REC.cmcr REC.cmtr --out REC.h5" in said, said
    assert not (tmp_path / "new.h5").exists()


KILLED_IN_THE_SECOND_STAGE = """
import pathlib, sys, threading

import hdmea.interop.layout_upgrade as upgrade


def second_stage(*args, **kwargs):  # the units were renamed into the staged file: the upgrade starts and hangs
    pathlib.Path(sys.argv[3]).touch()
    threading.Event().wait()


upgrade.upgrade_layout = second_stage
upgrade.upgrade_h5_recording(sys.argv[1], sys.argv[2])
"""


def test_a_migrate_killed_in_its_second_stage_leaves_only_what_the_next_writer_removes(tmp_path):
    """The staged file of the renamed units, complete, stayed beside the target as ``NEW.h5.renamed.h5`` until the
    next migrate; it is now a leftover of a dead process that the next writer of the target removes."""
    from h5stream.errors import StaleFilesWarning
    from h5stream.files import create_atomic

    target, marker = tmp_path / "out" / "new.h5", tmp_path / "second-stage"
    target.parent.mkdir()
    child = subprocess.Popen([sys.executable, "-c", KILLED_IN_THE_SECOND_STAGE, str(GOLDEN), str(target),
                              str(marker)], stderr=subprocess.PIPE, text=True)
    try:
        while not marker.exists():  # until the second stage runs
            assert child.poll() is None, child.stderr.read()
            with pytest.raises(subprocess.TimeoutExpired):
                child.wait(timeout=0.05)
    finally:
        child.kill()
        child.communicate()
    left = sorted(p.name for p in target.parent.iterdir())
    assert len(left) == 1 and left[0].startswith("new.h5.staged-") and left[0].endswith(".h5"), left
    with pytest.warns(StaleFilesWarning, match=left[0]):  # removed, and named
        with create_atomic(target) as out:  # the next writer of the target: any command's save
            out["x"] = np.arange(3)
    assert sorted(p.name for p in target.parent.iterdir()) == ["new.h5"]

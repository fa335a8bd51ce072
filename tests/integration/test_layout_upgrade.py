"""``hdmea migrate OLD.h5 NEW.h5`` brings a recording of an earlier version to the original's layout.

The earlier file is ``tests/data/golden/hdmea_recording.h5``, written by the code of commit 13946ca
(ragged sectioned spikes, 1-element scalars, units named by position); it is read back with plain h5py
and checked against naive cuts of its own spike trains.  A file holding unit metadata in the earlier form
whose .cmtr cannot be found is refused, nothing written.
"""

from __future__ import annotations

import json

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from hdmea.interop.layout_upgrade import LayoutUpgradeError, upgrade_layout

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "golden" / "hdmea_recording.h5"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_an_earlier_recording_is_written_in_the_originals_layout(tmp_path):
    old = tmp_path / "old.h5"
    shutil.copy(GOLDEN, old)
    before = _digest(old)
    result = upgrade_layout(old, tmp_path / "new.h5")
    assert _digest(old) == before  # the source is never changed
    with h5py.File(old, "r") as a, h5py.File(result.output, "r") as f:
        fs = float(f["metadata/sampling_rate"][()])  # a 0-d scalar now
        assert f["metadata/sampling_rate"].shape == () and "hdmea_version" in f.attrs
        movies = 0
        for unit in f["units"]:
            spikes = a[f"units/{unit}/spike_times"][()].astype(np.int64)
            for movie in f[f"units/{unit}/spike_times_sectioned"]:
                g = f[f"units/{unit}/spike_times_sectioned/{movie}"]
                old_group = a[f"units/{unit}/spike_times_sectioned/{movie}"]
                n = int(g["_attrs/n_trials"][()])
                assert n == old_group["trial_bounds"].shape[0] == g["trials_start_end"].shape[0]
                pad = float(old_group.attrs["pad_margin_before_s"]), float(old_group.attrs["pad_margin_after_s"])
                assert list(g["_attrs/pad_margin"][()]) == list(pad)
                trials = []
                for k, (start, end) in enumerate(old_group["trial_bounds"][()].astype(np.int64)):
                    got = f[f"units/{unit}/spike_times_sectioned/{movie}/trials_spike_times/{k}"][()]
                    np.testing.assert_array_equal(got, spikes[(spikes >= start) & (spikes < end)])
                    trials.append(got)
                np.testing.assert_array_equal(g["full_spike_times"][()], np.unique(np.concatenate(trials)))
                np.testing.assert_array_equal(g["trials_start_end"][()] + [[-int(round(pad[0] * fs)),
                                                                            int(round(pad[1] * fs))]],
                                              old_group["trial_bounds"][()].astype(np.int64))
                movies += 1
            if len(spikes):
                rate = f[f"units/{unit}/firing_rate_10hz"][()]
                assert rate.sum() / 10 == len(spikes) and rate.dtype == np.float32
        assert movies >= 3
        raw = f["stimulus/light_reference/raw_ch1"][()]
        block = int(fs / 10)
        np.testing.assert_allclose(f["stimulus/light_reference/10hz_ch1"][()],
                                   raw[:len(raw) // block * block].reshape(-1, block).mean(axis=1), rtol=1e-6)
        record = f["pipeline/layout_upgrade"].attrs
        assert record["source"] == str(old) and "spike_times_sectioned" in record["mapped"][0]
    again = upgrade_layout(result.output, tmp_path / "again.h5")
    assert again.already_current and not (tmp_path / "again.h5").exists()


def test_unit_metadata_of_an_earlier_form_needs_its_cmtr(tiny_recording, tmp_path):
    from hdmea.pipeline import load_recording

    path = load_recording(tiny_recording.cmcr_path, tiny_recording.cmtr_path, "rec", output_dir=tmp_path).hdf5_path
    with h5py.File(path, "a") as f:  # unit_meta as earlier versions wrote it: the table row as attributes
        for unit in f["units"]:
            g = f[f"units/{unit}"].create_group("unit_meta")
            g.attrs["snr"], g.attrs["row"] = 5.0, int(f[f"units/{unit}"].attrs["row"])
        f.attrs["source_files"] = [str(tmp_path / "gone.cmcr"), str(tmp_path / "gone.cmtr")]
        del f.attrs["h5stream_checksums"]  # edited by hand: as a file written before checksums
    with pytest.raises(LayoutUpgradeError, match=r"\.cmtr") as info:
        upgrade_layout(path, tmp_path / "new.h5")
    assert "cmtr_path" in str(info.value) and not (tmp_path / "new.h5").exists()
    result = upgrade_layout(path, tmp_path / "new.h5", cmtr_path=tiny_recording.cmtr_path)
    rows = {}
    with h5py.File(tiny_recording.cmtr_path, "r") as cmtr:
        for name, group in cmtr["Spike Sorter"].items():
            if name.startswith("Unit "):
                rows[int(group.attrs["UnitID"])] = group["Unit_Info"][0]
    with h5py.File(result.output, "r") as f:
        for unit in f["units"]:
            meta = f[f"units/{unit}/unit_meta"]
            row = rows[int(f[f"units/{unit}"].attrs["unit_num"])]
            assert int(meta["row"][0]) == row["Row"] and float(meta["snr"][0]) == row["SNR"]
            assert meta["attr_id.type"][()].decode() == "SpikeSorterUnit"
        # the earlier file's [cmcr, cmtr] list becomes the original's JSON text
        assert json.loads(f.attrs["source_files"])["cmcr_path"] == str(tmp_path / "gone.cmcr")


def test_the_command_renames_positional_units_and_upgrades(tmp_path):
    old = tmp_path / "old.h5"
    shutil.copy(GOLDEN, old)
    done = subprocess.run([sys.executable, "-m", "hdmea", "migrate", str(old), str(tmp_path / "new.h5")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "units renamed" in done.stdout and "parts mapped" in done.stdout
    with h5py.File(tmp_path / "new.h5", "r") as f:
        assert "pipeline/unit_renames" in f and "pipeline/layout_upgrade" in f
        for unit in f["units"]:
            assert unit == f"unit_{int(f[f'units/{unit}'].attrs['unit_num']):03d}"
            assert all("trials_spike_times" in f[f"units/{unit}/spike_times_sectioned/{m}"]
                       for m in f[f"units/{unit}/spike_times_sectioned"])
    assert not list(tmp_path.glob("*.renamed.h5"))


@pytest.mark.parametrize("kind", ["hdf5 of another program", "not hdf5"])
def test_migrate_of_a_file_it_did_not_write_says_what_the_file_is_and_what_to_give(kind, tmp_path):
    """An HDF5 file another program wrote (plain h5py here), or no HDF5 file at all: the command says what the
    file is and what migrate takes, and writes nothing (it said "cannot resume from this file")."""
    source = tmp_path / "other.h5"
    if kind == "not hdf5":
        source.write_text("a text file\n")
    else:
        with h5py.File(source, "w") as f:
            f["traces"] = np.arange(12).reshape(3, 4)
            f.attrs["creator"] = "another program"
    done = subprocess.run([sys.executable, "-m", "hdmea", "migrate", str(source), str(tmp_path / "new.h5")],
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 1, done.stderr
    said = done.stderr.strip()
    assert len(said.splitlines()) == 1 and "Traceback" not in said, said
    assert said.startswith(f"hdmea migrate: {source}: not ")
    assert "cannot resume" not in said
    assert ("holding traces at its top" in said) if kind != "not hdf5" else ("not an HDF5 file" in said)
    assert "hdmea run REC.cmcr REC.cmtr" in said and ".zarr store" in said
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.h5"]

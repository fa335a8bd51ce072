"""NWB export of an analysed recording, read back with pynwb and checked by nwbinspector."""

from __future__ import annotations

import sys

import h5py
import numpy as np
import pytest

pynwb = pytest.importorskip("pynwb")

from h5stream.errors import TargetExistsError  # noqa: E402
from hdmea.cli import main  # noqa: E402
from hdmea.interop import MissingExtraError  # noqa: E402
from hdmea.interop.nwb import PITCH_UM, export  # noqa: E402

SESSION = dict(subject=dict(species="Mus musculus", age="P60D", sex="F"), experimenter=["Doe, Jane"],
               lab="Retina lab", institution="Example institute", experiment_description="light steps and noise",
               keywords=["retina", "HD-MEA"])


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    """An analysed recording from the whole pipeline (6 units, one silent; eimages, STAs, features)."""
    from hdmea.demo import run_demo

    out = tmp_path_factory.mktemp("nwb_demo")
    result = run_demo(out / "demo", n_units=6, seed=3)
    return result.output


@pytest.fixture(scope="module")
def exported(analysed, tmp_path_factory):
    out = tmp_path_factory.mktemp("nwb_out") / "rec.nwb"
    result = export(analysed, out, **SESSION)
    return out, result


def _unit_rows(nwb):
    names = list(nwb.units["unit_name"].data[:])
    return {name: i for i, name in enumerate(names)}


@pytest.mark.slow  # runs the whole pipeline for the module's recording (~6 s)
def test_units_spike_times_electrodes_and_waveforms_equal_the_recording(analysed, exported):
    out, result = exported
    with h5py.File(analysed, "r") as f, pynwb.NWBHDF5IO(out, "r") as io:
        nwb = io.read()
        fs = float(f["metadata/sampling_rate"][()])
        ours = sorted(f["units"])
        rows = _unit_rows(nwb)
        assert sorted(rows) == ours and result.n_units == len(ours)
        assert list(nwb.units.id[:]) == [int(u.split("_")[-1]) for u in nwb.units["unit_name"].data[:]]
        # units keep the lab's names: unit_<UnitID>, with the UnitID and the vendor name as columns
        for uid in ours:
            i = rows[uid]
            assert nwb.units["unit_num"][i] == f["units"][uid].attrs["unit_num"] == int(uid.split("_")[-1])
            assert nwb.units["original_name"][i] == f"Unit_{int(uid.split('_')[-1])}"
        total = 0
        for uid in ours:
            g = f["units"][uid]
            i = rows[uid]
            samples = g["spike_times"][()]
            seconds = nwb.units["spike_times"][i]
            total += samples.size
            assert seconds.dtype == np.float64
            np.testing.assert_array_equal(np.rint(np.asarray(seconds) * fs).astype(np.uint64), samples)
            np.testing.assert_array_equal(nwb.units["waveform_mean"][i], g["waveform"][()])
            electrode = nwb.units["electrodes"][i]
            row, col = int(g.attrs["row"]), int(g.attrs["col"])
            assert list(electrode["chip_row"]) == [row - 1] and list(electrode["chip_col"]) == [col - 1]
            assert list(electrode["sensor_id"]) == [int(g.attrs["sensor_id"])]
            assert list(electrode["rel_x"]) == [(col - 1) * PITCH_UM]
            assert list(electrode["rel_y"]) == [(row - 1) * PITCH_UM]
            assert nwb.units["row"][i] == row and nwb.units["global_id"][i] == g.attrs["global_id"]
            assert nwb.units["quality_SNR"][i] == g.attrs["quality_SNR"]
        assert total == result.n_spikes
        assert any(f["units"][u]["spike_times"].shape[0] == 0 for u in ours)  # the silent unit is exported too
        assert len(nwb.electrodes) == 65 * 65


def test_features_map_to_unit_columns(analysed, exported):
    out, _ = exported
    with h5py.File(analysed, "r") as f, pynwb.NWBHDF5IO(out, "r") as io:
        nwb = io.read()
        rows = _unit_rows(nwb)
        for uid, i in rows.items():
            feats = f["units"][uid]["features"]
            rf = feats["rf_dense_noise_15x15"].attrs
            for key in ("centre_row", "centre_col", "sigma_checks", "radius_checks"):
                np.testing.assert_array_equal(nwb.units[f"rf_dense_noise_15x15__{key}"][i], rf[key])
            assert nwb.units["rf_dense_noise_15x15__polarity"][i] == rf["polarity"]
            step = feats["step_response_step_up_5s_5i_3x"].attrs
            assert nwb.units["step_response_step_up_5s_5i_3x__polarity"][i] == step["polarity"]
            assert nwb.units["step_response_step_up_5s_5i_3x__on_off_index"][i] == step["on_off_index"]
            rate = feats["firing_rate_step_up_5s_5i_3x"]
            np.testing.assert_array_equal(nwb.units["firing_rate_step_up_5s_5i_3x__mean_rate_hz"][i],
                                          rate["mean_rate_hz"][()])
            np.testing.assert_array_equal(nwb.units["firing_rate_step_up_5s_5i_3x__rate_hz"][i], rate["rate_hz"][()])
            assert nwb.units["firing_rate_step_up_5s_5i_3x__n_trials"][i] == rate.attrs["n_trials"]
        assert "firing_rate_step_up_5s_5i_3x__params_hash" not in nwb.units.colnames


def test_intervals_light_reference_and_images_equal_the_recording(analysed, exported):
    out, result = exported
    with h5py.File(analysed, "r") as f, pynwb.NWBHDF5IO(out, "r") as io:
        nwb = io.read()
        fs = float(f["metadata/sampling_rate"][()])
        assert sorted(nwb.intervals) == sorted(f["stimulus/section_time"]) == sorted(result.intervals)
        step = nwb.intervals["step_up_5s_5i_3x"].to_dataframe()
        sec = f["units/unit_001/spike_times_sectioned/step_up_5s_5i_3x"]
        bounds = sec["trial_bounds"][()]
        np.testing.assert_array_equal(np.rint(step["start_time"].to_numpy() * fs), bounds[:, 0])
        np.testing.assert_array_equal(np.rint(step["stop_time"].to_numpy() * fs), bounds[:, 1])
        repeat = int(sec.attrs["repeat"])
        np.testing.assert_array_equal(step["trial_index"].to_numpy(), np.arange(len(bounds)) % repeat)
        np.testing.assert_array_equal(step["occurrence"].to_numpy(), np.arange(len(bounds)) // repeat)
        sections = f["stimulus/section_time/step_up_5s_5i_3x"][()]
        np.testing.assert_array_equal(np.rint(step["section_start_time"].to_numpy() * fs),
                                      sections[step["occurrence"].to_numpy(), 0])
        for name in ("raw_ch1", "raw_ch2"):
            ts = nwb.acquisition[f"light_reference_{name}"]
            assert ts.rate == fs
            np.testing.assert_array_equal(ts.data[:], f[f"stimulus/light_reference/{name}"][()])
        frames = nwb.acquisition["frame_times_default"]
        np.testing.assert_array_equal(np.rint(frames.timestamps[:] * fs), f["stimulus/frame_time/default"][()])
        ei = nwb.processing["ecephys"]["eimage_sta"]
        sta = nwb.processing["misc"]["sta_dense_noise_15x15"]
        rows = _unit_rows(nwb)
        for k, unit_row in enumerate(ei["unit"].data[:]):
            uid = nwb.units["unit_name"][unit_row]
            ours = f[f"units/{uid}/features/eimage_sta/data"][()]
            assert np.isnan(ours).any() or ours.shape == (50, 65, 65)
            np.testing.assert_array_equal(ei["data"][k], ours)  # NaN where not recorded, equal as NaN
            assert ei["n_spikes_used"][k] == f[f"units/{uid}/features/eimage_sta"].attrs["n_spikes_used"]
        for k, unit_row in enumerate(sta["unit"].data[:]):
            uid = nwb.units["unit_name"][unit_row]
            np.testing.assert_array_equal(sta["data"][k], f[f"units/{uid}/features/sta_dense_noise_15x15/data"][()])
        assert len(ei) == len(rows)
        assert "0-based" in ei["data"].description and "NaN" in ei["data"].description


def test_session_metadata_and_inspector(analysed, exported):
    from nwbinspector import Importance, inspect_nwbfile

    out, _ = exported
    with h5py.File(analysed, "r") as f, pynwb.NWBHDF5IO(out, "r") as io:
        nwb = io.read()
        assert nwb.session_id == f.attrs["dataset_id"]
        assert nwb.identifier.startswith(f.attrs["dataset_id"])
        assert nwb.lab == SESSION["lab"] and nwb.subject.species == "Mus musculus"
        assert nwb.session_start_time.tzinfo is not None
    messages = list(inspect_nwbfile(nwbfile_path=out))
    serious = [m for m in messages if m.importance in (Importance.CRITICAL, Importance.BEST_PRACTICE_VIOLATION)]
    assert serious == [], [m.message for m in serious]


def test_inspector_flags_missing_subject_fields(analysed, tmp_path):
    """Without species and age the file is valid NWB but the inspector asks for them (the check can fail)."""
    from nwbinspector import Importance, inspect_nwbfile

    out = tmp_path / "bare.nwb"
    export(analysed, out)
    serious = {m.check_function_name for m in inspect_nwbfile(nwbfile_path=out)
               if m.importance in (Importance.CRITICAL, Importance.BEST_PRACTICE_VIOLATION)}
    assert "check_subject_age" in serious and "check_subject_species_exists" in serious


def test_write_is_atomic(analysed, tmp_path, monkeypatch):
    out = tmp_path / "rec.nwb"
    out.write_bytes(b"earlier")
    with pytest.raises(TargetExistsError):
        export(analysed, out)
    assert out.read_bytes() == b"earlier"

    def broken_write(self, *args, **kwargs):
        raise RuntimeError("disk went away")

    monkeypatch.setattr(pynwb.NWBHDF5IO, "write", broken_write)
    with pytest.raises(RuntimeError, match="disk went away"):
        export(analysed, out, overwrite=True)
    assert out.read_bytes() == b"earlier"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rec.nwb"]


def test_missing_extra_names_the_install(analysed, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pynwb", None)
    with pytest.raises(MissingExtraError, match=r'pip install "h5stream\[nwb\]"'):
        export(analysed, tmp_path / "x.nwb")
    assert not (tmp_path / "x.nwb").exists()


def test_cli_export_nwb(analysed, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["export-nwb", "--help"])
    assert exc.value.code == 0 and "--species" in capsys.readouterr().out
    out = tmp_path / "cli.nwb"
    code = main(["export-nwb", str(analysed), str(out), "--species", "Mus musculus", "--age", "P60D",
                 "--lab", "Retina lab"])
    assert code == 0 and out.exists()
    with pynwb.NWBHDF5IO(out, "r") as io:
        assert io.read().lab == "Retina lab"
    code = main(["export-nwb", str(tmp_path / "missing.h5"), str(tmp_path / "m.nwb")])
    err = capsys.readouterr().err
    # A missing input is a usage error (exit 2): the message names the file, what was expected, what was
    # found and what to do.
    assert code == 2 and "export-nwb" in err and str(tmp_path / "missing.h5") in err
    assert "no such file" in err and "expected a recording file" in err and "found nothing" in err
    assert "Check the path" in err and "hdmea demo --out DIR" in err
    assert not (tmp_path / "m.nwb").exists()


def test_partial_features_fill_with_nan_and_uneven_arrays_are_listed(tmp_path):
    """A feature on some units only: NaN (numbers) or "" (text) elsewhere; arrays of differing shapes are named."""
    from hdmea.io import hdf5_store as store

    rec = tmp_path / "partial.h5"
    with store.create_recording_hdf5(rec, "partial") as f:
        store.write_units(f, {
            "a": {"spike_times": np.array([10, 20_000], np.uint64), "row": 1, "col": 1},
            "b": {"spike_times": np.array([5], np.uint64), "row": 65, "col": 65},
        })
        store.write_metadata(f, {"sampling_rate": 20_000.0})
        store.write_feature_to_unit(f, "a", "extra", {"score": 0.5, "label": "x", "curve": np.arange(3.0)})
        store.write_feature_to_unit(f, "b", "other", {"trace": np.arange(4.0)})
        store.write_feature_to_unit(f, "a", "other", {"trace": np.arange(2.0)})
    out = tmp_path / "partial.nwb"
    result = export(rec, out, **SESSION)
    assert any("other/trace" in s for s in result.skipped)
    with pynwb.NWBHDF5IO(out, "r") as io:
        nwb = io.read()
        assert list(nwb.units["unit_name"].data[:]) == ["a", "b"]
        assert list(nwb.units.id[:]) == [0, 1]  # no number in the ids: positions
        assert nwb.units["extra__score"][0] == 0.5 and np.isnan(nwb.units["extra__score"][1])
        assert list(nwb.units["extra__label"].data[:]) == ["x", ""]
        np.testing.assert_array_equal(nwb.units["extra__curve"][0], np.arange(3.0))
        assert np.isnan(nwb.units["extra__curve"][1]).all()
        assert "other/trace" in nwb.notes
        np.testing.assert_array_equal(nwb.units["spike_times"][0], [10 / 20_000, 1.0])
        assert list(nwb.units["electrodes"][1]["sensor_id"]) == [65 * 65]


def test_export_leaves_no_container_alive_and_the_collector_as_it_was(analysed, tmp_path):
    """pynwb's containers (reference cycles holding the exported arrays) are freed when the export returns,
    and Python's garbage collector is on again (off stays off)."""
    import gc

    def alive() -> int:
        return sum(1 for obj in gc.get_objects() if isinstance(obj, (pynwb.NWBFile, pynwb.misc.Units)))

    assert gc.isenabled()
    gc.collect()
    before = alive()
    export(analysed, tmp_path / "a.nwb", **SESSION)
    assert gc.isenabled() and alive() == before
    gc.disable()
    try:
        export(analysed, tmp_path / "b.nwb", **SESSION)
        assert not gc.isenabled()
    finally:
        gc.enable()

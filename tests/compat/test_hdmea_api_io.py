"""The original pipeline's ``.cmcr``/``.cmtr`` reader functions, against plain h5py reads and planted truth."""

from __future__ import annotations

import logging
import shutil

import h5py
import numpy as np
import pytest


@pytest.fixture(scope="module")
def rec(tmp_path_factory):
    from hdmea.synthetic import SyntheticConfig, generate_recording

    return generate_recording(tmp_path_factory.mktemp("io"), "rec", config=SyntheticConfig.tiny(raw_seconds=0.2),
                              seed=4)


def test_load_cmcr_data(rec):
    from hdmea.io.cmcr import load_cmcr_data

    data = load_cmcr_data(rec.cmcr_path)
    assert data["acquisition_rate"] == rec.truth().sampling_rate
    light = data["light_reference"]
    assert sorted(light) == ["10hz_ch1", "10hz_ch2", "1khz_ch1", "1khz_ch2", "raw_ch1", "raw_ch2"]
    raw = light["raw_ch1"].astype(np.float64)
    n = raw.size // 2000
    naive = [raw[i * 2000:(i + 1) * 2000].mean() for i in range(n)]  # 100 ms blocks at 20 kHz
    np.testing.assert_allclose(light["10hz_ch1"], naive, rtol=1e-5)
    assert light["1khz_ch2"].size == light["raw_ch2"].size // 20
    assert data["metadata"]["recording_duration_s"] > 0


def test_sensor_data_centred_not_wrapped(rec):
    from hdmea.io.cmcr import get_sensor_data_info, load_cmcr_data, load_sensor_data, load_sensor_data_chunked

    info = get_sensor_data_info(rec.cmcr_path)
    zero = load_cmcr_data(rec.cmcr_path)["metadata"]["sensor"]["ad_zero"]
    with h5py.File(rec.cmcr_path, "r") as f:
        stored = f["Acquisition/Sensor Data/SensorData 1 1"][()]
    assert stored.dtype == np.uint16 and stored.max() > 32767  # a plain int16 cast would wrap these
    assert info["shape"] == (stored.shape[0], 65, 65) and info["n_samples"] == stored.shape[0]
    assert info["n_electrodes"] == 4225 and info["duration_s"] == pytest.approx(stored.shape[0] / 20000.0)
    data = load_sensor_data(rec.cmcr_path, duration_samples=300)
    assert data.dtype == np.int16 and data.shape == (300, 65, 65)
    # the same values as the stored frames minus the ADC zero (positions are in chip orientation)
    for t in (0, 150, 299):
        np.testing.assert_array_equal(np.sort(data[t].ravel()),
                                      np.sort(stored[t].astype(np.int64).ravel() - int(zero)))
    assert load_sensor_data(rec.cmcr_path, duration_s=0.01).shape[0] == 200
    chunks = list(load_sensor_data_chunked(rec.cmcr_path, chunk_duration_s=0.03, max_samples=1500))
    assert [(s, e, t) for _, s, e, t in chunks] == [(0, 600, 1500), (600, 1200, 1500), (1200, 1500, 1500)]
    np.testing.assert_array_equal(np.concatenate([c for c, *_ in chunks])[:300], data)


def test_load_cmtr_data_against_planted_units(rec):
    from hdmea.io.cmtr import load_cmtr_data

    data = load_cmtr_data(rec.cmtr_path)
    truth = rec.truth()
    assert data["acquisition_rate"] == truth.sampling_rate
    planted = {u.mcs_unit_id: u for u in truth.units.values()}
    assert sorted(data["units"]) == [f"unit_{k:03d}" for k in sorted(planted)]
    for key, unit in data["units"].items():
        p = planted[unit["unit_num"]]
        # the original's units: spike times in microseconds; here rows and columns from the unit table
        np.testing.assert_array_equal(unit["spike_times"],
                                      np.rint(p.spike_times.astype(np.float64) * 1e6 / truth.sampling_rate))
        assert (unit["row"], unit["col"], unit["global_id"]) == (p.row, p.col, p.sensor_id)
        assert unit["waveform"].shape == p.waveform.shape and unit["original_name"] == f"Unit_{p.mcs_unit_id}"


def test_finding_and_matching_files(rec, tmp_path, caplog):
    from hdmea.io.cmcr import find_cmcr_file_from_cmtr
    from hdmea.io.cmtr import get_cmtr_recording_id, validate_cmcr_cmtr_match

    assert find_cmcr_file_from_cmtr(rec.cmtr_path) == rec.cmcr_path
    shutil.copy(rec.cmcr_path, tmp_path / "2025.04.10-Rec.cmcr")
    (tmp_path / "2025.04.10-Rec-.cmtr").write_bytes(b"")
    (tmp_path / "2025.04.10-Rec_sorted.cmtr").write_bytes(b"")
    assert find_cmcr_file_from_cmtr(tmp_path / "2025.04.10-Rec-.cmtr") == tmp_path / "2025.04.10-Rec.cmcr"
    assert find_cmcr_file_from_cmtr(tmp_path / "2025.04.10-Rec_sorted.cmtr") == tmp_path / "2025.04.10-Rec.cmcr"
    assert find_cmcr_file_from_cmtr(tmp_path / "zzz.cmtr") is None
    shutil.copy(rec.cmtr_path, tmp_path / "with_id.cmtr")
    with h5py.File(tmp_path / "with_id.cmtr", "r+") as f:
        f.attrs["RecordingID"] = "JIANG009"
    assert get_cmtr_recording_id(tmp_path / "with_id.cmtr") == "JIANG009"
    assert get_cmtr_recording_id(rec.cmtr_path) is None
    assert get_cmtr_recording_id(tmp_path / "2025.04.10-Rec-.cmtr") is None  # unreadable: None, as before
    with caplog.at_level(logging.WARNING):
        validate_cmcr_cmtr_match(tmp_path / "a_raw.cmcr", tmp_path / "a_sorted.cmtr")
        assert "differ" not in caplog.text
        validate_cmcr_cmtr_match(tmp_path / "a.cmcr", tmp_path / "b.cmtr")
    assert "CMCR and CMTR file names differ: a vs b" in caplog.text


def test_missing_files_raise_file_not_found(tmp_path):
    from hdmea.io.cmcr import load_cmcr_data, load_sensor_data
    from hdmea.io.cmtr import load_cmtr_data

    for call in (load_cmcr_data, load_sensor_data, load_cmtr_data):
        with pytest.raises(FileNotFoundError, match="not found"):
            call(tmp_path / "none.cmcr")


def test_parquet_feature_export(rec, tmp_path):
    pytest.importorskip("pyarrow")
    duckdb = pytest.importorskip("duckdb")
    from hdmea.io.parquet_export import export_features_to_parquet, get_export_metadata, read_exported_features
    from hdmea.pipeline import add_section_time, compute_sta, load_recording
    from hdmea.utils.exceptions import ConfigurationError

    paths = []
    for name in ("a", "b"):
        h5 = load_recording(rec.cmcr_path, rec.cmtr_path, name, output_dir=tmp_path).hdf5_path
        add_section_time(h5, stimulus=rec.stimulus)
        compute_sta(h5, stimulus=rec.stimulus, n_lags=12)
        paths.append(h5)
    out = export_features_to_parquet(paths, tmp_path / "x" / "features.parquet")
    feature = f"sta_{rec.config.noise_movie}"
    table = duckdb.sql(f"select * from '{out}' order by dataset_id, unit_id").df()  # read by a third party
    assert len(table) == 2 * rec.config.n_units
    assert list(table.columns[:5]) == ["dataset_id", "unit_id", "row", "col", "spike_count"]
    with h5py.File(paths[0], "r") as f:
        for _, row in table[table.dataset_id == "a"].iterrows():
            unit = f[f"units/{row.unit_id}"]
            sta = unit[f"features/{feature}/data"][()].astype(np.float64)
            assert row.spike_count == unit["spike_times"].shape[0]
            assert row[f"{feature}__data_mean"] == pytest.approx(sta.mean(), nan_ok=True)  # NaN: a unit without spikes
            assert row[f"{feature}__data_max"] == pytest.approx(sta.max(), nan_ok=True)
            assert row[f"{feature}__n_spikes_used"] == unit[f"features/{feature}"].attrs["n_spikes_used"]
    assert read_exported_features(out).shape == table.shape
    meta = get_export_metadata(out)
    assert meta["num_rows"] == len(table) and meta["file_metadata"]["hdmea_export_version"] == "1.0.0"
    assert meta["file_metadata"]["source_zarrs"] == ",".join(str(p) for p in paths)
    only = read_exported_features(export_features_to_parquet(paths, tmp_path / "y.parquet", features=[feature],
                                                             include_metadata=False))
    assert "dataset_id" not in only.columns and all(c.startswith(feature) or c.startswith("_") for c in only)
    with pytest.raises(ConfigurationError, match="no_such"):
        export_features_to_parquet(paths, tmp_path / "z.parquet", features=["no_such"])


def test_metadata_and_unit_table_steps(rec, tmp_path):
    from hdmea.io.cmcr import add_sys_meta_info
    from hdmea.io.cmtr import add_cmtr_unit_info, update_hdf5_with_cmtr_unit_info
    from hdmea.pipeline import create_session, load_recording

    h5 = load_recording(rec.cmcr_path, rec.cmtr_path, "m", output_dir=tmp_path).hdf5_path
    first = add_sys_meta_info(hdf5_path=h5)
    assert first["cmcr_fields"] > 0 and first["cmtr_fields"] > 0
    assert add_sys_meta_info(hdf5_path=h5) == {"hdf5_path": h5, "cmcr_fields": 0, "cmtr_fields": 0}  # kept
    assert update_hdf5_with_cmtr_unit_info(h5)["units_updated"] == rec.config.n_units
    table = None
    with h5py.File(rec.cmtr_path, "r") as f:  # the unit table, read with plain h5py
        def find(name, obj):
            nonlocal table
            if isinstance(obj, h5py.Dataset) and obj.dtype.names and "UnitID" in obj.dtype.names:
                table = obj[()]
        f.visititems(find)
        cmtr_attrs = set(f.attrs)
    rows = {int(r["UnitID"]): r for r in table}
    # the original's layout (tests/data/lab_layout/immediate_store_u6.json): the vendor's root attributes as
    # 1-element datasets under their own names, each unit's fields as 1-element datasets
    with h5py.File(h5, "r") as f, h5py.File(rec.cmcr_path, "r") as cmcr:
        assert set(f["metadata/cmtr_meta"]) >= cmtr_attrs - {"h5stream_checksums"}
        assert set(f["metadata/cmcr_meta"]) >= set(cmcr.attrs) | {"recording_duration_s"}
        duration = int(np.ravel(cmcr.attrs["LB.RecordingDuration"])[0])
        assert int(f["metadata/cmcr_meta/LB.RecordingDuration"][0]) == duration
        assert float(f["metadata/cmcr_meta/recording_duration_s"][0]) == duration / 1e6
        for unit in f["units"]:
            meta = f[f"units/{unit}/unit_meta"]
            row = rows[int(meta["unitid"][0])]
            assert (meta["snr"][0], meta["row"][0], meta["column"][0]) == (row["SNR"], row["Row"], row["Column"])
            assert meta.attrs["attr_id.type"] == "SpikeSorterUnit"
    session = create_session("m", output_dir=None)
    session = load_recording(rec.cmcr_path, rec.cmtr_path, session=session)
    assert add_sys_meta_info(session=session) is session
    assert add_cmtr_unit_info(session=session) is session
    assert {"add_sys_meta_info", "add_cmtr_unit_info"} <= set(session.completed_steps)
    session.close()

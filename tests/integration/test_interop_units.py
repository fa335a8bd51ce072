"""The exporters' one-pass reading of a recording's units against plain h5py and the tree's own reader."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from hdmea.errors import RecordingFormatError
from hdmea.io._unit_scan import UnitObjects, scan_units
from hdmea.io import hdf5_store as store

FS = 20_000.0


def _same(a, b) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    return type(a) is type(b) and a == b


@pytest.fixture()
def recording(tmp_path):
    """Units with attributes of every kind the store writes, features with scalars and arrays, a silent unit."""
    rec = tmp_path / "attrs.h5"
    with store.create_recording_hdf5(rec, "attrs") as f:
        store.write_units(f, {
            "unit_1": {"spike_times": np.array([3, 9, 2**40], np.uint64), "row": 2, "col": 3, "flag": True,
                       "label": "\u00fcn\u00eft", "vals": [1, 2, 3], "i32": np.int32(7), "f32": np.float32(1.5),
                       "none": None, "big": list(range(20_000)), "waveform": np.arange(5, dtype=np.float32)},
            "unit_2": {"spike_times": np.zeros(0, np.uint64), "row": 1, "col": 1, "x": 0.25,
                       "waveform": -np.arange(5, dtype=np.float32)},
            "unit_3": {"spike_times": np.array([1], np.uint64), "row": 65, "col": 65,
                       "waveform": np.full(5, 0.125, dtype=np.float32)},
        })
        store.write_metadata(f, {"sampling_rate": FS})
        store.write_feature_to_unit(f, "unit_1", "feat", {"score": 0.5, "text": "x", "ok": False, "tags": ["a", "b"],
                                                         "curve": np.arange(3.0), "nested": {"k": 1}})
        store.write_feature_to_unit(f, "unit_3", "feat", {"score": 2.0, "long": "y" * 100_000})
    return rec


@pytest.mark.parametrize("native", [True, False], ids=["direct-calls", "h5py"])
def test_attributes_equal_the_tree_reader_and_h5py(recording, native, monkeypatch):
    from h5stream import batch_attrs as _native_attrs

    if native:
        assert _native_attrs.bindings() is not None  # h5py's libhdf5 is found on the platforms we test
    else:
        monkeypatch.setattr(_native_attrs, "_bindings", None)
    with h5py.File(recording, "r") as f:
        scan = scan_units(f, recording)
        assert scan.ids == ["unit_1", "unit_2", "unit_3"]
        for uid, attrs, features in zip(scan.ids, scan.attrs, scan.features):
            group = f["units"][uid]
            reference = store.read_attrs(group)[0]
            assert attrs.keys() == reference.keys()
            assert all(_same(attrs[k], reference[k]) for k in reference), uid
            assert sorted(features) == sorted(group["features"])
            for name, (feature_attrs, datasets) in features.items():
                stored = group["features"][name]
                reference = store.read_attrs(stored)[0]
                assert feature_attrs.keys() == reference.keys()
                assert all(_same(feature_attrs[k], reference[k]) for k in reference), name
                # Hidden members hold large attributes (read with the attributes), never feature arrays.
                assert sorted(datasets) == sorted(k for k, v in stored.items()
                                                  if isinstance(v, h5py.Dataset) and not k.startswith("__"))
        # Plain h5py's values of the plain attributes.
        assert scan.attrs[0]["row"] == f["units/unit_1"].attrs["row"] and type(scan.attrs[0]["row"]) is int
        assert scan.attrs[0]["label"] == "\u00fcn\u00eft" and scan.attrs[0]["flag"] is True
        assert scan.attrs[0]["big"] == list(range(20_000))  # stored as a hidden object, read back
        assert scan.features[2]["feat"][0]["long"] == "y" * 100_000
        assert list(scan.spike_counts) == [3, 0, 1]
        assert scan.members[0] >= {"spike_times", "waveform", "features"}


def test_spike_seconds_and_waveforms_equal_plain_h5py(recording):
    with h5py.File(recording, "r") as f:
        scan = scan_units(f, recording)
        trains = [f["units"][u]["spike_times"][()] for u in scan.ids]
        np.testing.assert_array_equal(scan.spike_seconds(FS), np.concatenate(trains) / FS)
        np.testing.assert_array_equal(scan.stacked_waveforms((5,)),
                                      [f["units"][u]["waveform"][()] for u in scan.ids])


def _scan_through_the_open_time_walk(path):
    """scan_units fed by the objects the open-time safety scan kept open, and the file (to close)."""
    held = UnitObjects()
    f = store.open_recording_hdf5(path, "r", verify=False, visit=held)
    assert held.objects, "the scan's visitor kept the units' objects"
    return scan_units(f, path, held), f, held


def _assert_same_scan(a, b) -> None:
    assert a.ids == b.ids and a.members == b.members
    assert list(a.spike_counts) == list(b.spike_counts) and a.waveform_shapes == b.waveform_shapes
    for x, y in zip(a.attrs, b.attrs):
        assert x.keys() == y.keys() and all(_same(x[k], y[k]) for k in x)
    for x, y in zip(a.features, b.features):
        assert x.keys() == y.keys()
        for name in x:
            assert x[name][0].keys() == y[name][0].keys()
            assert all(_same(x[name][0][k], y[name][0][k]) for k in x[name][0])
            assert {k: (d.name, d[()].tolist()) for k, d in x[name][1].items()} == {
                k: (d.name, d[()].tolist()) for k, d in y[name][1].items()}


def test_units_taken_from_the_safety_scan_equal_a_fresh_walk(recording):
    """The objects the open-time scan keeps open give what scan_units reads on its own, and nothing stays open."""
    via_scan, f, held = _scan_through_the_open_time_walk(recording)
    with f, h5py.File(recording, "r", locking=False) as plain:
        fresh = scan_units(plain, recording)
        _assert_same_scan(via_scan, fresh)
        np.testing.assert_array_equal(via_scan.spike_seconds(FS), fresh.spike_seconds(FS))
        np.testing.assert_array_equal(via_scan.stacked_waveforms((5,)), fresh.stacked_waveforms((5,)))
        assert not held.objects  # taken by the walk or closed by it


def test_units_reached_through_extra_links_are_opened_by_the_walk(recording, tmp_path):
    """A unit whose group or dataset the scan reached first under another name, and soft links, still read."""
    rec = tmp_path / "links.h5"
    rec.write_bytes(recording.read_bytes())
    with h5py.File(rec, "a") as f:
        f["aaa_first"] = f["units/unit_3"]  # a second hard link, walked before /units: unit_3 is not held
        f["units/unit_1/alias"] = h5py.SoftLink("/units/unit_1/waveform")
        del f["units/unit_2/features"]
        f["units/unit_2/features"] = f["units/unit_1/features"]  # the same features group twice
    via_scan, f, _held = _scan_through_the_open_time_walk(rec)
    with f, h5py.File(rec, "r", locking=False) as plain:
        fresh = scan_units(plain, rec)
        _assert_same_scan(via_scan, fresh)
        assert "alias" in via_scan.members[0] and "feat" in via_scan.features[1]
        assert via_scan.attrs[2]["row"] == 65 and via_scan.features[2]["feat"][0]["score"] == 2.0


def test_spike_seconds_of_other_integer_files(tmp_path):
    """Samples past 2**63 take the unsigned conversion; int64 trains divide as numpy does; mixed types stream."""
    rec = tmp_path / "ints.h5"
    with h5py.File(rec, "w") as f:
        f.create_dataset("units/a/spike_times", data=np.array([1, 2**63 + 5, 2**64 - 1], np.uint64))
        f.create_dataset("units/b/spike_times", data=np.array([7, 2**62], np.uint64))
    with h5py.File(rec, "r") as f:
        scan = scan_units(f, rec)
        expected = np.concatenate([f["units/a/spike_times"][()], f["units/b/spike_times"][()]]) / FS
        np.testing.assert_array_equal(scan.spike_seconds(FS), expected)
    with h5py.File(rec, "a") as f:
        del f["units/b/spike_times"]
        f.create_dataset("units/b/spike_times", data=np.array([-3, 11], np.int64))
    with h5py.File(rec, "r") as f:
        scan = scan_units(f, rec)
        assert scan.spike_dtypes == {np.dtype(np.uint64), np.dtype(np.int64)}
        assert scan.spike_seconds(FS) is None  # one of each: the export reads them train by train


def test_listed_runs_between_the_trains_and_the_attributes(recording):
    """``listed`` sees every spike train listed (and readable) before any attribute is read."""
    seen = []

    def listed(scan):
        seen.append((list(scan.spike_counts), len(scan.attrs), len(scan.features), scan.spike_seconds(FS)))

    with h5py.File(recording, "r") as f:
        scan = scan_units(f, recording, listed=listed)
        trains = np.concatenate([f["units"][u]["spike_times"][()] for u in scan.ids]) / FS
    assert len(seen) == 1
    counts, n_attrs, n_features, seconds = seen[0]
    assert counts == [3, 0, 1] and n_attrs == n_features == 0
    np.testing.assert_array_equal(seconds, trains)
    assert len(scan.attrs) == len(scan.features) == 3


def test_dataset_shapes_and_types_by_direct_calls_equal_h5py(tmp_path):
    """The direct library calls give h5py's shape of every dataspace and h5py's dtype of plain numbers only."""
    from h5stream import batch_attrs as _native_attrs

    lib = _native_attrs.bindings()
    assert lib is not None
    rec = tmp_path / "kinds.h5"
    with h5py.File(rec, "w") as f:
        f.create_dataset("scalar", data=np.int64(3))
        f.create_dataset("empty", data=h5py.Empty("f8"))
        f.create_dataset("big_endian", data=np.zeros((2, 3), ">u8"))
        f.create_dataset("f4", data=np.zeros(4, "<f4"))
        f.create_dataset("i2", data=np.zeros((1, 2, 3), "<i2"))
        f.create_dataset("u8", data=np.zeros(0, "<u8"), maxshape=(None,), chunks=(4,))
        f.create_dataset("bool", data=np.array([True]))
        f.create_dataset("text", data=["a"], dtype=h5py.string_dtype())
        f.create_dataset("pair", data=np.zeros(2, [("a", "<i4"), ("b", "<f8")]))
    numbers = {"scalar", "empty", "f4", "i2", "u8"}
    with h5py.File(rec, "r") as f:
        for name, ds in f.items():
            shape, dtype = _native_attrs.dataset_shape_and_dtype(lib, ds.id.id)
            assert shape == ds.id.shape, name
            assert dtype == (ds.dtype if name in numbers else None), name


def test_unit_without_spike_times_is_named(tmp_path):
    rec = tmp_path / "bad.h5"
    with h5py.File(rec, "w") as f:
        f.create_dataset("units/a/spike_times", data=np.array([1], np.uint64))
        f.create_group("units/b/features")
    with h5py.File(rec, "r") as f, pytest.raises(RecordingFormatError, match="spike_times") as info:
        scan_units(f, rec)
    assert info.value.obj == "/units/b" and str(rec) in str(info.value)


def test_whole_columns_and_streamed_columns_write_the_same_values(recording, tmp_path, monkeypatch):
    """The export's two ways of writing spike times and waveforms, read back with pynwb, equal plain h5py's."""
    pynwb = pytest.importorskip("pynwb")
    from hdmea.interop import nwb

    subject = {"species": "Mus musculus", "age": "P60D"}
    whole = nwb.export(recording, tmp_path / "whole.nwb", subject=subject)
    monkeypatch.setattr(nwb, "WHOLE_COLUMN_BYTES", 0)
    streamed = nwb.export(recording, tmp_path / "streamed.nwb", subject=subject, compression=None)
    assert whole.n_spikes == streamed.n_spikes == 4
    with h5py.File(recording, "r") as f:
        trains = [f["units"][u]["spike_times"][()] / FS for u in ("unit_1", "unit_2", "unit_3")]
        waveforms = [f["units"][u]["waveform"][()] for u in ("unit_1", "unit_2", "unit_3")]
    for out in ("whole.nwb", "streamed.nwb"):
        with pynwb.NWBHDF5IO(tmp_path / out, "r") as io:
            units = io.read().units
            for i, train in enumerate(trains):
                np.testing.assert_array_equal(units["spike_times"][i], train)
            np.testing.assert_array_equal(units["waveform_mean"].data[:], waveforms)


@pytest.mark.parametrize("implementation", ["zlib", "auto"])
@pytest.mark.parametrize("n", [1, 131_072, 300_001, 4_000_001])
def test_threaded_gzip_chunks_are_the_bytes_hdf5_writes(tmp_path, n, implementation):
    """With the zlib kernel each chunk equals the one HDF5's own shuffle + deflate pipeline stores (edge chunk
    included); with any kernel (libdeflate when installed) h5py reads the values back."""
    from h5stream.writer.columns import fill_column

    column = np.sort(np.random.default_rng(n).integers(0, 10**9, n)).astype(np.float64) / FS
    settings = dict(shape=column.shape, dtype=column.dtype, chunks=(min(n, 131_072),), compression="gzip",
                    compression_opts=1, shuffle=True)
    with h5py.File(tmp_path / "gz.h5", "w") as f:
        reference = f.create_dataset("reference", **settings)
        reference[...] = column
        ours = f.create_dataset("ours", **settings)
        fill_column(ours, column, 1, threads=3, implementation=implementation)
        chunk = settings["chunks"][0]
        if implementation == "zlib":
            for k in range(-(-n // chunk)):
                assert ours.id.read_direct_chunk((k * chunk,)) == reference.id.read_direct_chunk((k * chunk,))
        np.testing.assert_array_equal(ours[()], column)
        other = f.create_dataset("other", shape=column.shape, dtype=column.dtype, chunks=settings["chunks"],
                                 compression="gzip", compression_opts=4)  # not our pipeline: h5py writes it
        fill_column(other, column, 1)
        np.testing.assert_array_equal(other[()], column)


@pytest.mark.parametrize("kind", ["times", "random", "counts"])
def test_planes_that_do_not_compress_are_stored_and_inflate_as_hdf5s_chunks(tmp_path, kind):
    """With libdeflate, the leading byte planes that do not compress are stored blocks of the zlib stream:
    every chunk inflates to the bytes HDF5's own pipeline compresses, and h5py reads the values back."""
    import zlib

    from h5stream.native import libdeflate
    from h5stream.writer.columns import CompressedColumn

    if libdeflate.raw_deflate() is None:
        pytest.skip("libdeflate is not installed")
    rng = np.random.default_rng(7)
    n, chunk = 300_001, 65_536
    if kind == "times":  # spike times of many units: the low bytes are noise, the high ones repeat
        column = np.concatenate([np.sort(rng.integers(0, 24_000_000, 5_000)) for _ in range(n // 5_000)])
        column = np.concatenate([column, np.arange(n - column.size)]).astype(np.float64) / FS
    elif kind == "random":  # no plane compresses: every plane stored
        column = rng.integers(0, 2**64 - 1, n, dtype=np.uint64, endpoint=True)
    else:  # small counts: every plane compresses, nothing stored
        column = rng.integers(0, 50, n).astype(np.int64)
    expected_stored = {"times": (1, 7), "random": (8, 8), "counts": (0, 0)}[kind]
    settings = dict(shape=column.shape, dtype=column.dtype, chunks=(chunk,), compression="gzip",
                    compression_opts=1, shuffle=True)
    with h5py.File(tmp_path / "planes.h5", "w") as f:
        reference = f.create_dataset("reference", **settings)
        reference[...] = column
        ours = f.create_dataset("ours", **settings)
        compressed = CompressedColumn(column, chunk, 1, threads=2, implementation="libdeflate")
        stored_planes = compressed.stored_planes
        assert expected_stored[0] <= stored_planes <= expected_stored[1]
        compressed.fill(ours)
        for k in range(-(-n // chunk)):
            _mask, theirs = reference.id.read_direct_chunk((k * chunk,))
            _mask, mine = ours.id.read_direct_chunk((k * chunk,))
            assert zlib.decompress(mine) == zlib.decompress(theirs), k
        np.testing.assert_array_equal(ours[()], column)


def test_background_compression_stops_when_the_export_fails(recording, tmp_path, monkeypatch):
    """An export that fails after the spike times' compression started leaves no thread and no file behind;
    the next export writes the values."""
    pynwb = pytest.importorskip("pynwb")
    import threading

    from hdmea.interop import nwb

    def failing_write(self, *args, **kwargs):
        raise RuntimeError("write failed")

    out = tmp_path / "out.nwb"
    subject = {"species": "Mus musculus", "age": "P60D"}
    with monkeypatch.context() as patch:
        patch.setattr(pynwb.NWBHDF5IO, "write", failing_write)
        with pytest.raises(RuntimeError, match="write failed"):
            nwb.export(recording, out, subject=subject)
    assert not [t for t in threading.enumerate() if t.name.startswith("gzip-column")]
    assert not out.exists() and not list(tmp_path.glob("out.nwb*"))
    nwb.export(recording, out, subject=subject)
    with h5py.File(recording, "r") as f, pynwb.NWBHDF5IO(out, "r") as io:
        expected = np.concatenate([f["units"][u]["spike_times"][()] for u in ("unit_1", "unit_2", "unit_3")]) / FS
        stored = io.read().units["spike_times"].target.data
        assert stored.compression == "gzip" and stored.shuffle
        np.testing.assert_array_equal(stored[()], expected)


def _seal(path) -> None:
    """Give the file a checksum manifest of everything in it (digests read back by the checksums module)."""
    from h5stream import checksums

    with h5py.File(path, "a") as f:
        checksums.seal(f, checksums.Recorder(walk=True))


@pytest.mark.parametrize("whole", [True, False], ids=["whole-columns", "streamed"])
@pytest.mark.parametrize("damage", ["spike_times", "waveform", "attribute", "feature attribute"])
def test_export_checks_what_it_reads_against_the_checksum_manifest(recording, tmp_path, monkeypatch, whole, damage):
    """A value changed after the manifest was written is a ChecksumError naming it; nothing is written."""
    pytest.importorskip("pynwb")
    from h5stream.errors import ChecksumError
    from hdmea.interop import nwb

    if not whole:
        monkeypatch.setattr(nwb, "WHOLE_COLUMN_BYTES", 0)
    subject = {"species": "Mus musculus", "age": "P60D"}
    _seal(recording)
    nwb.export(recording, tmp_path / "intact.nwb", subject=subject)  # the sealed file passes
    with h5py.File(recording, "a") as f:
        if damage == "spike_times":
            f["units/unit_1/spike_times"][1] = 10
            obj = "/units/unit_1/spike_times"
        elif damage == "waveform":
            f["units/unit_3/waveform"][2] = 0.25
            obj = "/units/unit_3/waveform"
        elif damage == "attribute":
            f["units/unit_2"].attrs["x"] = 0.5
            obj = "/units/unit_2/@x"
        else:
            f["units/unit_1/features/feat"].attrs["score"] = 0.75
            obj = "/units/unit_1/features/feat/@score"
    out = tmp_path / "damaged.nwb"
    with pytest.raises(ChecksumError) as info:
        nwb.export(recording, out, subject=subject)
    assert info.value.obj == obj and str(recording) in str(info.value)
    assert not out.exists() and list(tmp_path.glob("damaged*")) == []
    nwb.export(recording, out, subject=subject, verify=False)  # the data as stored
    assert out.exists()


def test_cli_export_refuses_a_damaged_value_unless_told_not_to_verify(recording, tmp_path, capsys):
    pytest.importorskip("pynwb")
    from hdmea.cli import main

    _seal(recording)
    with h5py.File(recording, "a") as f:
        f["units/unit_1/spike_times"][0] = 4
    out = tmp_path / "cli.nwb"
    args = ["export-nwb", str(recording), str(out), "--species", "Mus musculus", "--age", "P60D"]
    assert main(args) != 0
    assert "/units/unit_1/spike_times" in capsys.readouterr().err and not out.exists()
    assert main(args + ["--no-verify"]) == 0 and out.exists()

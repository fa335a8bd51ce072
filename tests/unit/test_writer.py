"""The array writer: parallel gzip through direct chunk writes, chunk policy, batched small objects."""

from __future__ import annotations

import shutil
import subprocess

import h5py
import numpy as np
import pytest

from h5stream.errors import EncodingError
from h5stream.writer import WriteOptions, choose_chunks, write_array, write_many

from tests.reference import deflate_chunk_reference, padded_chunk_reference


def _chunk_offsets(shape, chunks):
    grid = [range(0, s, c) for s, c in zip(shape, chunks)]
    return [tuple(x) for x in np.array(np.meshgrid(*grid, indexing="ij")).reshape(len(shape), -1).T]


def _lognormal_with_nan(shape, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.lognormal(size=shape).astype(np.float32)
    a[rng.random(shape) < 0.3] = np.nan
    return a


CASES = [
    ((100, 33), np.float32, (7, 5), False, 4),
    ((100, 33), np.float32, (7, 5), True, 6),
    ((1000,), np.int16, (64,), True, 1),
    ((9, 8, 7), np.float64, (4, 3, 7), False, 9),
    ((50, 20), np.uint8, (50, 20), False, 0),
    ((3, 2), np.int64, (8, 8), True, 4),
]


@pytest.mark.parametrize("shape,dtype,chunks,shuffle,level", CASES)
def test_parallel_gzip_chunks_equal_hdf5_filter_and_reference(h5, shape, dtype, chunks, shuffle, level):
    a = _lognormal_with_nan(shape).astype(np.float64)
    if np.dtype(dtype).kind != "f":
        a = np.nan_to_num(a * 10, nan=0.0)
    a = a.astype(dtype)
    options = WriteOptions.build(compression="gzip", level=level, chunks=chunks, shuffle=shuffle, n_threads=2)
    ours = write_array(h5, "ours", a, options)
    # Chunked layouts end with HDF5's Fletcher32 filter: HDF5 computing it is the reference.
    theirs = h5.create_dataset(
        "theirs", data=a, chunks=ours.chunks, compression="gzip", compression_opts=level, shuffle=shuffle,
        fletcher32=True,
    )
    assert np.array_equal(ours[()], a, equal_nan=True)
    for origin in _chunk_offsets(a.shape, ours.chunks):
        mask, raw = ours.id.read_direct_chunk(origin)
        assert mask == 0
        assert raw == theirs.id.read_direct_chunk(origin)[1]
        expected = deflate_chunk_reference(padded_chunk_reference(a, origin, ours.chunks), level, shuffle)
        assert raw[:-4] == expected


def test_serial_equals_parallel(h5):
    a = _lognormal_with_nan((300, 70), seed=3)
    datasets = [
        write_array(h5, f"t{n}", a, WriteOptions.build(compression="gzip", chunks=(16, 70), n_threads=n))
        for n in (1, 2, 3)
    ]
    for origin in _chunk_offsets(a.shape, (16, 70)):
        chunks = {ds.id.read_direct_chunk(origin)[1] for ds in datasets}
        assert len(chunks) == 1


def test_batches_and_fortran_input(h5, monkeypatch):
    import h5stream.writer.gzip as gzip_writer

    # Small batches exercise the double-buffered pipeline over many batches.
    monkeypatch.setattr(gzip_writer, "BATCH_BYTES", 1000)
    a = np.asfortranarray(_lognormal_with_nan((203, 31), seed=4))
    ds = write_array(h5, "f", a, WriteOptions.build(compression="gzip", chunks=(5, 8), n_threads=2))
    assert np.array_equal(ds[()], a, equal_nan=True)


def test_gzip_dataset_is_an_ordinary_deflate_dataset(h5):
    a = _lognormal_with_nan((64, 64))
    ds = write_array(h5, "x", a, WriteOptions.build(compression="gzip", shuffle=True))
    plist = ds.id.get_create_plist()
    filters = [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]
    assert filters == [h5py.h5z.FILTER_SHUFFLE, h5py.h5z.FILTER_DEFLATE, h5py.h5z.FILTER_FLETCHER32]
    assert ds.compression == "gzip" and ds.compression_opts == 4


@pytest.mark.skipif(shutil.which("h5dump") is None, reason="h5dump (hdf5-tools) not installed")
def test_h5dump_reads_parallel_gzip_output(tmp_path):
    path = tmp_path / "d.h5"
    a = np.arange(60, dtype=np.int32).reshape(12, 5)
    with h5py.File(path, "w") as f:
        write_array(f, "x", a, WriteOptions.build(compression="gzip", chunks=(5, 2), shuffle=True))
    out = tmp_path / "x.txt"
    done = subprocess.run(
        ["h5dump", "-d", "/x", "-o", str(out), "-y", "-w", "0", str(path)],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    values = [int(v) for v in out.read_text().replace(",", " ").split()]
    assert values == a.ravel().tolist()


def test_choose_chunks_policy():
    assert choose_chunks((1000, 700), 4) == (374, 700)  # ~1 MiB row blocks
    assert choose_chunks((10,), 8) == (10,)
    assert choose_chunks((5, 10_000_000), 4) == (1, 262_144)  # rows wider than a chunk are split
    assert choose_chunks((10, 10), 4, (3, 30)) == (3, 10)
    with pytest.raises(ValueError):
        choose_chunks((10, 10), 4, (3,))


def test_tiny_arrays_stay_contiguous_even_when_compressed(h5):
    ds = write_array(h5, "t", np.arange(100, dtype=np.int32), WriteOptions.build(compression="gzip"))
    assert ds.chunks is None and ds.compression is None
    ds = write_array(h5, "u", np.arange(100, dtype=np.int32), WriteOptions.build(compression="gzip", chunks=(10,)))
    assert ds.chunks == (10,) and ds.compression == "gzip"


def test_uncompressed_is_contiguous_unless_chunks_given(h5):
    ds = write_array(h5, "a", np.zeros((500, 500)), WriteOptions())
    assert ds.chunks is None
    ds = write_array(h5, "b", np.zeros((500, 500)), WriteOptions.build(chunks=(10, 500)))
    assert ds.chunks == (10, 500)


def test_write_array_refuses_objects(h5):
    with pytest.raises(EncodingError, match="dtype"):
        write_array(h5, "o", np.array([None]), WriteOptions())


def test_write_many_builds_a_tree_in_one_pass(h5):
    rng = np.random.default_rng(0)
    spikes = {i: np.sort(rng.random(rng.integers(0, 50))) for i in range(300)}
    objects = {}
    attrs = {}
    for i, s in spikes.items():
        objects[f"units/unit_{i:03d}/spike_times"] = s
        objects[f"units/unit_{i:03d}/waveform"] = rng.normal(size=(3, 4)).astype(np.float32)
        objects[f"units/unit_{i:03d}/features"] = None
        attrs[f"units/unit_{i:03d}"] = {"row": i // 10, "col": i % 10, "label": f"u{i}"}
    objects["big"] = np.arange(100_000, dtype=np.int64)
    objects["meta"] = {"n": np.int32(300), "name": np.array(b"chip")}
    created = write_many(h5, objects, attrs=attrs)
    assert created == 1 + 300 * 4 + 1 + 1 + 2
    for i in (0, 17, 299):
        g = h5[f"units/unit_{i:03d}"]
        assert np.array_equal(g["spike_times"][()], spikes[i])
        assert g["waveform"].shape == (3, 4)
        assert isinstance(g["features"], h5py.Group) and len(g["features"]) == 0
        assert g.attrs["row"] == i // 10 and g.attrs["label"] == f"u{i}"
    layout = h5["units/unit_001/waveform"].id.get_create_plist().get_layout()
    assert layout == h5py.h5d.COMPACT
    assert h5["big"].id.get_create_plist().get_layout() == h5py.h5d.CONTIGUOUS
    assert h5["meta/n"][()] == 300 and h5["meta/name"][()] == b"chip"


def test_write_many_refuses_bad_names_and_objects(h5):
    from h5stream.errors import UnsafeNameError

    with pytest.raises(UnsafeNameError):
        write_many(h5, {"a/../b": np.zeros(1)})
    with pytest.raises(EncodingError):
        write_many(h5, {"o": np.array([object()])})


@pytest.mark.parametrize("deflate", ["zlib", "libdeflate"])
def test_array_writes_and_nwb_columns_share_one_gzip_writer(h5, deflate, monkeypatch):
    """write_array's gzip path and the NWB column filler go through h5stream.writer.gzip.GzipChunks: with
    Fletcher32 (write_array's default) and without, with libdeflate's stored byte planes, every chunk
    inflates to what HDF5's own pipeline stores and h5py reads the values back."""
    import zlib

    from h5stream.native import libdeflate
    from h5stream.writer import gzip as gzip_writer
    from h5stream.writer.columns import fill_column

    if deflate == "libdeflate" and libdeflate.raw_deflate() is None:
        pytest.skip("libdeflate is not installed")
    stores = []
    real_store = gzip_writer.GzipChunks.store
    monkeypatch.setattr(gzip_writer.GzipChunks, "store", lambda self, dset: (stores.append(dset.name),
                                                                             real_store(self, dset))[1])
    rng = np.random.default_rng(11)
    # spike-time-like values: the low byte planes are noise (stored with libdeflate), the high ones repeat
    column = np.sort(rng.integers(0, 24_000_000, 100_003)).astype(np.float64) / 20_000.0
    chunk = 8_192
    ours = write_array(h5, "ours", column, WriteOptions.build(compression="gzip", level=1, chunks=(chunk,),
                                                              shuffle=True, n_threads=2, deflate=deflate))
    assert ours.fletcher32
    settings = dict(shape=column.shape, dtype=column.dtype, chunks=(chunk,), compression="gzip",
                    compression_opts=1, shuffle=True)
    reference = h5.create_dataset("reference", fletcher32=True, **settings)
    reference[...] = column
    filled = h5.create_dataset("filled", **settings)
    fill_column(filled, column, 1, threads=2, implementation=deflate)
    plain = h5.create_dataset("plain", **settings)
    plain[...] = column
    assert stores == ["/ours", "/filled"]
    for k in range(-(-column.size // chunk)):
        origin = (k * chunk,)
        with_sum, reference_sum = ours.id.read_direct_chunk(origin)[1], reference.id.read_direct_chunk(origin)[1]
        if deflate == "zlib":  # byte for byte HDF5's filter, checksum included
            assert with_sum == reference_sum, k
        # (libdeflate's stream differs in its bytes: its checksum is checked by h5py's read below)
        assert zlib.decompress(with_sum[:-4]) == zlib.decompress(reference_sum[:-4]), k
        assert zlib.decompress(filled.id.read_direct_chunk(origin)[1]) == \
            zlib.decompress(plain.id.read_direct_chunk(origin)[1]), k
    np.testing.assert_array_equal(ours[()], column)
    np.testing.assert_array_equal(filled[()], column)


def test_only_if_shrinks_to_stores_plain_what_a_sample_does_not_shrink(tmp_path):
    """gzip with ``only_if_shrinks_to``: an array whose sampled chunks keep more than that share of their
    bytes is stored plain (contiguous, its digest in the manifest), another compressed as asked."""
    from h5stream.writer import WriteOptions, write_array

    rng = np.random.default_rng(11)
    noise = rng.lognormal(size=(4000, 300))
    codes = (rng.random((4000, 300)) < 0.2).astype(np.int8)
    options = WriteOptions.build(compression="gzip", level=1, shuffle=True, only_if_shrinks_to=0.5)
    with h5py.File(tmp_path / "s.h5", "w") as f:
        write_array(f, "noise", noise, options)
        write_array(f, "codes", codes, options)
        write_array(f, "always", noise, WriteOptions.build(compression="gzip", level=1, shuffle=True))
        write_array(f, "under_a_chunk", codes[:1000], options)  # 0.3 MB: stored plain, no sample
    with h5py.File(tmp_path / "s.h5", "r") as f:
        assert f["under_a_chunk"].compression is None and np.array_equal(f["under_a_chunk"][()], codes[:1000])
        assert f["noise"].compression is None and f["noise"].chunks is None
        assert f["codes"].compression == "gzip" and f["codes"].shuffle and f["codes"].compression_opts == 1
        assert f["always"].compression == "gzip"
        assert np.array_equal(f["noise"][()], noise) and np.array_equal(f["codes"][()], codes)
    for bad in ({"compression": "lzf", "only_if_shrinks_to": 0.5}, {"compression": "gzip", "only_if_shrinks_to": 0},
                {"compression": None, "only_if_shrinks_to": 0.5}):
        with pytest.raises(ValueError, match="only_if_shrinks_to"):
            WriteOptions.build(**bad)


def test_the_sampled_share_is_that_of_zlib_on_the_shuffled_chunks():
    """The sample: the first, the last but one and the middle chunk, shuffled and deflated as HDF5's filters
    do (Python's zlib on numpy's byte planes as the reference)."""
    import zlib

    from h5stream.writer.gzip import GzipChunks

    rng = np.random.default_rng(12)
    array = np.round(rng.lognormal(size=(1000, 50)), 2)
    chunks = GzipChunks(array, (100, 50), 3, shuffle=True, implementation="zlib", threads=1)
    share = chunks.sampled_share(3)
    picks = [0, 4, 8]  # 10 chunks: first, middle, last but one
    raw = [array[i * 100:(i + 1) * 100].reshape(-1).view(np.uint8).reshape(-1, 8).T.tobytes() for i in picks]
    expected = sum(len(zlib.compress(r, 3)) for r in raw) / sum(len(r) for r in raw)
    assert share == pytest.approx(expected, abs=2e-3)
    assert 0.2 < share < 0.9


def test_gzip_options_built_directly_take_h5pys_default_level(h5):
    """``WriteOptions(compression="gzip")`` without a level (the dataclass built directly, not through
    ``build``) writes gzip at level 4, h5py's own default; h5py reads back the values written."""
    a = _lognormal_with_nan((3000, 300))
    options = WriteOptions(compression="gzip")
    assert options.level == 4
    assert WriteOptions.build(compression="gzip").level == options.level
    write_array(h5, "x", a, options)
    h5.create_dataset("h5py_default", data=a, compression="gzip")  # h5py's own choice of level
    ds = h5["x"]
    assert ds.compression == "gzip" and ds.compression_opts == h5["h5py_default"].compression_opts == 4
    np.testing.assert_array_equal(ds[()], a)
    assert WriteOptions(compression="gzip", level=7).level == 7
    assert WriteOptions().level is None

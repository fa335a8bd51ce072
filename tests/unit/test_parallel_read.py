"""Parallel read of gzip datasets: equal to h5py's filter and to a naive zlib reference."""

from __future__ import annotations


import h5py
import numpy as np
import pytest
import scipy.sparse as sp

from h5stream.elements import read_elem, write_elem
from h5stream.elements import parallel_read
from h5stream.elements.arrays import read_array_dataset
from h5stream.elements.parallel_read import parallel_deflate_layout, read_deflate_parallel
from h5stream.errors import FormatError

from tests.reference import inflate_dataset_reference


def _values(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        a = rng.lognormal(size=shape).astype(dtype)
        a[rng.random(shape) < 0.3] = np.nan
        return a
    if dtype.kind == "c":
        return (rng.normal(size=shape) + 1j * rng.normal(size=shape)).astype(dtype)
    if dtype.kind == "b":
        return rng.random(shape) < 0.4
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=shape, dtype=dtype.newbyteorder("="), endpoint=True).astype(dtype)


CASES = [
    # shape, dtype, chunks, shuffle
    ((100, 33), "f4", (7, 5), False),  # edge chunks on both axes
    ((100, 33), "f4", (7, 33), True),  # whole-row chunks, last one partial
    ((96, 33), "f8", (8, 33), False),  # whole-row chunks, none partial (in place)
    ((1000,), "i2", (64,), True),
    ((1001,), "u1", (1001,), False),  # one chunk
    ((9, 8, 7), "f8", (4, 3, 7), False),
    ((9, 8, 7), "c8", (2, 8, 7), True),
    ((3, 2), "i8", (3, 2), True),
    ((40, 6), "bool", (9, 6), True),
    ((50, 4), ">i4", (6, 4), True),  # big-endian storage kept as stored
    ((30, 5), "u8", (30, 1), False),
]


@pytest.mark.parametrize("shape, dtype, chunks, shuffle", CASES)
@pytest.mark.parametrize("level", [1, 9])
def test_equals_h5py_filter_and_reference(h5, shape, dtype, chunks, shuffle, level):
    a = _values(shape, dtype)
    ds = h5.create_dataset("x", data=a, chunks=chunks, compression="gzip", compression_opts=level, shuffle=shuffle)
    assert parallel_deflate_layout(ds) is not None
    want = ds[()]
    parallel = read_deflate_parallel(ds, n_threads=3)
    serial = read_deflate_parallel(ds, n_threads=1)
    for got in (parallel, serial, inflate_dataset_reference(ds)):
        assert got.dtype == want.dtype and got.shape == want.shape
        assert got.tobytes() == want.tobytes()
    assert a.astype(want.dtype).tobytes() == parallel.tobytes()


def test_read_elem_uses_parallel_path_for_arrays_and_sparse(h5, monkeypatch):
    calls = []
    original = parallel_read._read_kernel

    def counting(ds, out, layout, n_threads):
        calls.append(ds.name)
        return original(ds, out, layout, n_threads)

    monkeypatch.setattr(parallel_read, "_read_kernel", counting)
    dense = _values((300, 200), "f4")
    m = sp.random(400, 300, density=0.2, format="csr", random_state=1, dtype=np.float64)
    write_elem(h5, "X", dense, compression="gzip", chunks=(32, 200))
    write_elem(h5, "S", m, compression="gzip", chunks=(2048,), shuffle=True)
    np.testing.assert_array_equal(read_elem(h5["X"]), dense)
    back = read_elem(h5["S"])
    assert np.array_equal(back.data, m.data) and np.array_equal(back.indices, m.indices)
    assert np.array_equal(back.indptr, m.indptr)
    assert "/X" in calls and "/S/data" in calls and "/S/indices" in calls


@pytest.mark.parametrize(
    "make",
    [
        lambda g, a: g.create_dataset("x", data=a, chunks=(10, 10)),  # chunked, no filter
        lambda g, a: g.create_dataset("x", data=a, chunks=(10, 10), compression="lzf"),
        lambda g, a: g.create_dataset("x", data=a, chunks=(10, 10), fletcher32=True),  # checksum, no deflate
        lambda g, a: g.create_dataset("x", data=a),  # contiguous
        lambda g, a: g.create_dataset("x", data=a.astype("S8"), chunks=(10, 10), compression="gzip"),
    ],
)
def test_other_layouts_fall_back_to_h5py(h5, make):
    a = _values((25, 30), "f4")
    ds = make(h5, a)
    assert parallel_deflate_layout(ds) is None
    with pytest.raises(FormatError, match="deflate"):
        read_deflate_parallel(ds)
    # The array reader falls back to h5py for these and still gets the values.
    want = a.astype("S8") if ds.dtype.kind == "S" else a
    assert read_array_dataset(ds).tobytes() == want.tobytes()


def test_unwritten_chunks_and_empty_fall_back(h5):
    ds = h5.create_dataset("partial", shape=(40, 10), dtype="f4", chunks=(10, 10), compression="gzip", fillvalue=7)
    ds[:10] = 1.0
    assert parallel_deflate_layout(ds) is None
    empty = h5.create_dataset("empty", shape=(0, 5), maxshape=(None, 5), dtype="f4", chunks=(4, 5), compression="gzip")
    assert parallel_deflate_layout(empty) is None
    write_elem(h5, "e", np.zeros((0, 5), np.float32), compression="gzip")
    assert read_elem(h5["e"]).shape == (0, 5)


def test_corrupt_chunk_raises_format_error(h5):
    a = _values((40, 10), "f4")
    ds = h5.create_dataset("x", data=a, chunks=(10, 10), compression="gzip")
    ds.id.write_direct_chunk((10, 0), b"not deflate data")
    with pytest.raises(FormatError, match="does not decode"):
        read_deflate_parallel(ds, n_threads=2)


def test_out_argument_is_filled_and_checked(h5):
    a = _values((64, 8), "i4")
    ds = h5.create_dataset("x", data=a, chunks=(16, 8), compression="gzip")
    out = np.empty((64, 8), "i4")
    assert read_deflate_parallel(ds, out) is out
    np.testing.assert_array_equal(out, a)
    with pytest.raises(ValueError, match="C-contiguous"):
        read_deflate_parallel(ds, np.empty((64, 8), "i4", order="F"))


def test_in_memory_driver_reads_without_readahead(tmp_path):
    a = _values((200, 16), "f8")
    with h5py.File(tmp_path / "core.h5", "w", driver="core", backing_store=False) as f:
        ds = f.create_dataset("x", data=a, chunks=(16, 16), compression="gzip", shuffle=True)
        assert read_deflate_parallel(ds, n_threads=2).tobytes() == a.tobytes()


def test_userblock_file_reads_equal(tmp_path):
    a = _values((300, 10), "i4")
    with h5py.File(tmp_path / "ub.h5", "w", userblock_size=512) as f:
        f.create_dataset("x", data=a, chunks=(32, 10), compression="gzip")
    with h5py.File(tmp_path / "ub.h5", "r") as f:
        assert read_deflate_parallel(f["x"], n_threads=2).tobytes() == a.tobytes()


def test_a_dataset_of_one_chunk_is_read_without_asking_for_free_cores(tmp_path, monkeypatch):
    """One chunk is one thread's work: the free cores are not asked for (five samples of the load, 5 ms
    of each small array's read)."""
    asked = []
    real = parallel_read.resolve_threads
    monkeypatch.setattr(parallel_read, "resolve_threads", lambda n: asked.append(n) or real(n))
    values = np.arange(3000, dtype=np.float64).reshape(100, 30)
    with h5py.File(tmp_path / "c.h5", "w") as f:
        f.create_dataset("one", data=values, chunks=(100, 30), compression="gzip", shuffle=True)
        f.create_dataset("many", data=values, chunks=(10, 30), compression="gzip")
    with h5py.File(tmp_path / "c.h5", "r") as f:
        assert np.array_equal(read_deflate_parallel(f["one"]), values) and asked == []
        assert np.array_equal(read_deflate_parallel(f["many"]), values) and asked == [None]
        assert np.array_equal(read_deflate_parallel(f["one"], n_threads=2), values) and asked == [None, 2]

"""The libdeflate deflate kernel: zlib streams plain zlib and HDF5's filter decode, same interface as zlib's."""

from __future__ import annotations

import zlib

import h5py
import numpy as np
import pytest

from h5stream.compression import deflate_kernel
from h5stream.elements import read_elem, write_elem
from h5stream.native.libdeflate import KERNEL
from h5stream.writer import WriteOptions

pytestmark = pytest.mark.skipif(KERNEL is None, reason="libdeflate is not installed")


def _chunks(rng, n_chunks=5, nbytes=4096):
    values = rng.lognormal(size=(n_chunks, nbytes // 8))
    values[rng.random(values.shape) < 0.3] = np.nan
    return np.ascontiguousarray(values).view(np.uint8).reshape(n_chunks, nbytes)


@pytest.mark.parametrize("level", [0, 1, 4, 9])
@pytest.mark.parametrize("shuffle", [0, 8])
def test_deflate_chunks_decode_with_zlib(level, shuffle):
    src = _chunks(np.random.default_rng(level))
    bound = KERNEL.deflate_bound(src.shape[1])
    dst = np.empty((src.shape[0], bound), np.uint8)
    sizes = np.empty(src.shape[0], np.int64)
    assert KERNEL._deflate_chunks(src, dst, sizes, src.shape[0], level, shuffle, 1) == 0
    for i in range(src.shape[0]):
        raw = np.frombuffer(zlib.decompress(dst[i, : sizes[i]].tobytes()), np.uint8)
        if shuffle:  # HDF5's shuffle: byte j of every element in plane j
            raw = raw.reshape(8, -1).T.reshape(-1)
        assert np.array_equal(raw, src[i])


def test_inflate_matches_zlib_and_rejects_damage():
    src = _chunks(np.random.default_rng(1), n_chunks=1)[0]
    stored = np.frombuffer(zlib.compress(src.tobytes(), 4), np.uint8)
    out = np.empty_like(src)
    assert KERNEL._inflate_chunk(memoryview(stored), out, np.empty(0, np.uint8), True, 0) == src.size
    assert np.array_equal(out, src)
    assert KERNEL._inflate_chunk(stored[:-9], out, np.empty(0, np.uint8), True, 0) < 0
    short = np.empty(src.size - 1, np.uint8)
    assert KERNEL._inflate_chunk(stored, short, np.empty(0, np.uint8), True, 0) < 0
    # an unfiltered chunk is copied; one shorter than the chunk is damage
    assert KERNEL._inflate_chunk(src, out, np.empty(0, np.uint8), False, 0) == src.size
    assert KERNEL._inflate_chunk(src[:10], out, np.empty(0, np.uint8), False, 0) < 0


def test_deflate_kernel_choice():
    assert deflate_kernel("libdeflate") is KERNEL and deflate_kernel("auto") is KERNEL
    assert deflate_kernel() is not KERNEL  # the default stays zlib: chunks identical to HDF5's filter
    with pytest.raises(ValueError, match="unknown deflate implementation"):
        deflate_kernel("brotli")
    with pytest.raises(ValueError, match="deflate must be one of"):
        WriteOptions.build(compression="gzip", deflate="nope")


@pytest.mark.parametrize("shuffle", [False, True])
def test_files_written_with_libdeflate_read_with_plain_h5py(tmp_path, shuffle):
    rng = np.random.default_rng(2)
    values = rng.lognormal(size=(3000, 257))
    values[rng.random(values.shape) < 0.3] = np.nan
    path = tmp_path / "f.h5"
    with h5py.File(path, "w") as f:
        write_elem(f, "x", values, compression="gzip", compression_opts=4, shuffle=shuffle, deflate="libdeflate")
    with h5py.File(path, "r") as f:
        ds = f["x"]
        assert ds.compression == "gzip" and ds.compression_opts == 4 and ds.shuffle == shuffle
        assert np.array_equal(ds[()], values, equal_nan=True)  # HDF5's own filter decodes it
        assert np.array_equal(read_elem(ds), values, equal_nan=True)  # and the parallel reader

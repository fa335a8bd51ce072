"""The compression table: each codec writes the HDF5 filter it names, and the compiled kernel fails loudly."""

from __future__ import annotations

import sys

import h5py
import numpy as np
import pytest

from h5stream.compression import CODECS, deflate_kernel, get_codec
from h5stream.writer import WriteOptions, write_array


def _filter_ids(ds: h5py.Dataset) -> list[int]:
    dcpl = ds.id.get_create_plist()
    return [dcpl.get_filter(i)[0] for i in range(dcpl.get_nfilters())]


@pytest.mark.parametrize("name", sorted(CODECS))
def test_each_codec_writes_its_filter_id_and_reads_back(h5, name):
    codec = CODECS[name]
    if codec.plugin is not None:
        pytest.importorskip("hdf5plugin")
    data = np.arange(200_000, dtype=np.int32).reshape(1000, 200)
    ds = write_array(h5, name, data, WriteOptions.build(compression=name, shuffle=True))
    ids = _filter_ids(ds)
    # The codec is the last transform; HDF5's Fletcher32 checksum (id 3) follows it on the stored bytes.
    assert ids[-2:] == [codec.filter_id, h5py.h5z.FILTER_FLETCHER32]
    # HDF5's own shuffle filter (id 2) is added only for codecs that do not shuffle inside.
    assert (h5py.h5z.FILTER_SHUFFLE in ids) == (not codec.shuffles_inside)
    np.testing.assert_array_equal(ds[()], data)


def test_levels_defaults_and_refusals():
    assert WriteOptions.build(compression="gzip").level == 4
    assert WriteOptions.build(compression="GZIP", level=9).level == 9
    with pytest.raises(ValueError, match="gzip level must be 0-9"):
        WriteOptions.build(compression="gzip", level=10)
    with pytest.raises(ValueError, match="lzf takes no level"):
        WriteOptions.build(compression="lzf", level=1)
    with pytest.raises(ValueError, match="unknown compression 'brotli'.*'gzip'"):
        get_codec("brotli")


def test_gzip_is_the_codec_with_the_parallel_kernel():
    assert [c.name for c in CODECS.values() if c.parallel_kernel] == ["gzip"]
    assert hasattr(deflate_kernel(), "_deflate_chunks")


def test_a_broken_kernel_raises_instead_of_falling_back(monkeypatch, h5):
    monkeypatch.setitem(sys.modules, "h5stream._ext._compress", None)  # the import fails
    with pytest.raises(ImportError, match="rebuild it"):
        deflate_kernel()
    with pytest.raises(ImportError, match="_compress"):
        write_array(h5, "x", np.zeros((1000, 100)), WriteOptions.build(compression="gzip"))


def _hdf5_filter_checksum(tmp_path, data: np.ndarray) -> int:
    """The Fletcher32 value HDF5's own filter stores after a one-chunk dataset of ``data``."""
    with h5py.File(tmp_path / "f32.h5", "w") as f:
        ds = f.create_dataset("d", data=data, chunks=(data.size,), fletcher32=True)
        _, stored = ds.id.read_direct_chunk((0,))
    return int.from_bytes(stored[-4:], "little")


def test_compiled_fletcher32_equals_the_hdf5_filter(tmp_path):
    from h5stream._ext._compress import fletcher32

    rng = np.random.default_rng(7)
    payloads = [np.zeros(n, np.uint8) for n in (1, 2, 31, 32, 33, 4096)]
    payloads += [np.full(n, 255, np.uint8) for n in (1, 3, 32, 513, 2 * 65535, (1 << 20) + 1)]
    payloads += [rng.integers(0, 256, int(n), dtype=np.uint8) for n in (5, 63, 64, 65, 8191, 8193, 300_001)]
    payloads += [(rng.random(50_001) < 0.001).astype(np.uint8) * np.uint8(255)]  # sparse, odd length
    for data in payloads:
        expected = _hdf5_filter_checksum(tmp_path, data)
        assert fletcher32(data) == expected, data.size
        assert fletcher32(data, False) == expected, data.size  # the portable loop, where AVX2 exists
    assert fletcher32(np.zeros(0, np.uint8)) == 0

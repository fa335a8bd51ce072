"""The codec table: each codec writes the HDF5 filter it names, and the compiled kernel fails loudly."""

from __future__ import annotations

import sys

import h5py
import numpy as np
import pytest

from h5stream.codecs import CODECS, deflate_kernel, get_codec
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

"""A whole load checks every value it returns: a byte flipped inside a large layer's stored values is a
checksum error naming the file and the object, and unchecked (``verify=False``) the flip shows in that
one cell only.  The reference: the arrays the container was built from, and the cell the flip was planted in.
"""

from __future__ import annotations

import pickle

import h5py
import numpy as np
import polars as pl
import pytest
from scipy import sparse

from h5scp import Assay, ScpContainer, ScpMatrix
from h5scp.io import load_hdf5, save_hdf5
from h5scp.io.exceptions import IOChecksumError


def _container(X) -> ScpContainer:
    obs = pl.DataFrame({"_index": [f"s{i}" for i in range(X.shape[0])]})
    var = pl.DataFrame({"_index": [f"p{j}" for j in range(X.shape[1])]})
    return ScpContainer(obs, {"proteins": Assay(var, {"l0": ScpMatrix(X)})})


def _flip(path, at: int) -> None:
    with open(path, "r+b") as fh:
        fh.seek(at)
        byte = fh.read(1)
        fh.seek(at)
        fh.write(bytes([byte[0] ^ 0x10]))


@pytest.mark.parametrize("kind", ["dense", "csr"])
def test_a_flipped_byte_of_a_large_layer_is_a_checksum_error_naming_it(tmp_path, kind):
    rng = np.random.default_rng(3)
    if kind == "dense":  # 8.8 MB, stored contiguously (random values do not compress)
        X = rng.lognormal(size=(1100, 1000))
        X[rng.random(X.shape) < 0.3] = np.nan
        name, cell = "/assays/proteins/layers/l0/X", 123 * 1000 + 456
    else:
        X = sparse.random(1100, 5000, density=0.1, format="csr", random_state=4)
        X.data[:] = rng.lognormal(size=X.data.size)
        name, cell = "/assays/proteins/layers/l0/X/data", 54_321
    path = tmp_path / "c.h5"
    save_hdf5(_container(X), path)
    with h5py.File(path, "r") as f:
        ds = f[name]
        assert ds.chunks is None and ds.compression is None  # the values' bytes lie in the file as they are
        at = ds.id.get_offset() + 8 * cell + 3
    _flip(path, at)
    with pytest.raises(IOChecksumError) as info:
        load_hdf5(path)
    assert str(path) in str(info.value) and name in str(info.value)
    damaged = load_hdf5(path, verify=False).assays["proteins"].layers["l0"].X
    if kind == "dense":
        differs = ~((damaged == X) | (np.isnan(damaged) & np.isnan(X)))
        assert [tuple(i) for i in np.argwhere(differs)] == [(123, 456)]
    else:
        assert np.flatnonzero(damaged.data != X.data).tolist() == [cell]
        np.testing.assert_array_equal(damaged.indices, X.indices)
    _flip(path, at)  # flipped back: loads whole and equal
    intact = load_hdf5(path).assays["proteins"].layers["l0"].X
    if kind == "dense":
        np.testing.assert_array_equal(intact, X)
    else:
        assert (intact != X).nnz == 0


@pytest.mark.parametrize("flip", [False, True])
def test_a_layer_digested_while_it_is_read_is_checked_slab_by_slab(tmp_path, monkeypatch, flip):
    """A large layer is read in slabs, its CRC computed on a second thread as they arrive: the values are the
    container's, the digest is the whole layer's (a flip in the last slab is caught), and the path was taken."""
    from h5stream.elements import arrays

    monkeypatch.setattr(arrays, "DIGEST_WHILE_READING_BYTES", 1 << 20)
    # (a file with piece digests is read piece by piece instead, :func:`h5stream.checksums.read_whole_checked`:
    # the slab path is the one of files written before piece digests and of datasets it leaves to h5py)
    monkeypatch.setattr(arrays, "WHOLE_READ_BYTES", 1 << 62)
    monkeypatch.setattr(arrays, "SLAB_BYTES", 100_000)  # 12 rows of 1,000 float64 per slab: 92 slabs, the last short
    digested = []
    real = arrays._read_digesting
    monkeypatch.setattr(arrays, "_read_digesting", lambda ds: digested.append(ds.name) or real(ds))
    rng = np.random.default_rng(5)
    X = rng.lognormal(size=(1100, 1000))
    path = tmp_path / "c.h5"
    save_hdf5(_container(X), path)
    name = "/assays/proteins/layers/l0/X"
    if flip:
        with h5py.File(path, "r") as f:
            at = f[name].id.get_offset() + 8 * (1099 * 1000 + 999) + 2  # the last cell: the short last slab
        _flip(path, at)
        with pytest.raises(IOChecksumError) as info:
            load_hdf5(path)
        assert name in str(info.value)
    else:
        got = load_hdf5(path).assays["proteins"].layers["l0"].X
        np.testing.assert_array_equal(got, X)
        # on small pages (a mapping of its own): an ordinary array that outlives the file, writable, picklable
        path.unlink()
        assert got.flags.writeable and got.flags.c_contiguous
        got[0, 0] = -1.0
        np.testing.assert_array_equal(pickle.loads(pickle.dumps(got))[1:], X[1:])
    assert name in digested


@pytest.mark.parametrize("kind", ["dense", "csr"])
def test_a_large_layer_is_read_straight_into_its_array_piece_by_piece(tmp_path, monkeypatch, kind):
    """A large layer stored as one plain run with piece digests goes from the file into the returned array
    with every piece checked as it lands (:func:`h5stream.checksums.read_whole_checked`, taken here): the
    values are the container's; a flip in its last cell is a checksum error naming the layer and its rows."""
    from h5stream.checksums import _pieces

    taken = []
    real = _pieces.read_whole_checked
    monkeypatch.setattr("h5stream.checksums.read_whole_checked",
                        lambda ds, manifest, threads=None: taken.append(ds.name) or real(ds, manifest, threads))
    rng = np.random.default_rng(6)
    if kind == "dense":  # 8.8 MB
        X = rng.lognormal(size=(1100, 1000))
        name, last = "/assays/proteins/layers/l0/X", 1100 * 1000 - 1
    else:  # data 4.4 MB
        X = sparse.random(1100, 5000, density=0.1, format="csr", random_state=7)
        X.data[:] = rng.lognormal(size=X.data.size)
        name, last = "/assays/proteins/layers/l0/X/data", X.nnz - 1
    path = tmp_path / "c.h5"
    save_hdf5(_container(X), path)
    got = load_hdf5(path).assays["proteins"].layers["l0"].X
    assert name in taken
    if kind == "dense":
        np.testing.assert_array_equal(got, X)
    else:
        assert (got != X).nnz == 0
    with h5py.File(path, "r") as f:
        at = f[name].id.get_offset() + 8 * last + 5
    _flip(path, at)
    with pytest.raises(IOChecksumError, match=r"(rows|entries) \d+:") as info:
        load_hdf5(path)
    assert name in str(info.value) and str(path) in str(info.value)

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
def test_a_layer_of_a_file_without_piece_digests_is_read_straight_and_checked_whole(tmp_path, monkeypatch, flip):
    """A file written before piece digests (its manifest holds each layer's whole digest only): the large layer
    still goes from the file straight into its array (:func:`h5stream.checksums.read_whole_checked` returns it),
    digested as it lands; the values are the container's, and a flip in its last cell is a checksum error
    naming the layer."""
    import json

    from h5stream import checksums

    returned = []
    real = checksums.read_whole_checked
    monkeypatch.setattr(checksums, "read_whole_checked",
                        lambda ds, manifest: returned.append((ds.name, (got := real(ds, manifest)) is not None)) or got)
    rng = np.random.default_rng(5)
    X = rng.lognormal(size=(1100, 1000))
    path = tmp_path / "c.h5"
    save_hdf5(_container(X), path)
    name = "/assays/proteins/layers/l0/X"
    with h5py.File(path, "r+") as f:
        document = json.loads(f.attrs[checksums.MANIFEST_ATTR])
        assert name in document.pop("pieces")
        f.attrs[checksums.MANIFEST_ATTR] = json.dumps(document)
    if flip:
        with h5py.File(path, "r") as f:
            at = f[name].id.get_offset() + 8 * (1099 * 1000 + 999) + 2  # the last cell
        _flip(path, at)
        with pytest.raises(IOChecksumError) as info:
            load_hdf5(path)
        assert name in str(info.value) and str(path) in str(info.value)
    else:
        got = load_hdf5(path).assays["proteins"].layers["l0"].X
        np.testing.assert_array_equal(got, X)
        path.unlink()  # an ordinary array that outlives the file, writable, picklable
        assert got.flags.writeable and got.flags.c_contiguous
        got[0, 0] = -1.0
        np.testing.assert_array_equal(pickle.loads(pickle.dumps(got))[1:], X[1:])
        assert (name, True) in returned


@pytest.mark.parametrize("kind", ["dense", "csr"])
def test_a_large_layer_is_read_straight_into_its_array_piece_by_piece(tmp_path, monkeypatch, kind):
    """A large layer stored as one plain run with piece digests goes from the file into the returned array
    with every piece checked as it lands (:func:`h5stream.checksums.read_whole_checked`, taken here): the
    values are the container's; a flip in its last cell is a checksum error naming the layer and its rows."""
    from h5stream.checksums import _pieces

    taken = []
    real = _pieces.read_whole_checked
    monkeypatch.setattr("h5stream.checksums.read_whole_checked",
                        lambda ds, manifest: taken.append(ds.name) or real(ds, manifest))
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


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="no fork on this system")
def test_a_whole_load_in_a_child_forked_after_one_in_its_parent_completes(tmp_path):
    """The whole read starts no thread team that a forked child would wait for (GNU OpenMP's does not survive
    ``fork``): a process loads a large layer, forks, and the child loads it again, equal to the container's."""
    import subprocess
    import sys
    import textwrap

    rng = np.random.default_rng(11)
    X = rng.lognormal(size=(1100, 1000))  # 8.8 MB: read whole, straight into its array
    path = tmp_path / "c.h5"
    save_hdf5(_container(X), path)
    np.save(tmp_path / "x.npy", X)
    script = textwrap.dedent(f"""
        import os, sys
        import numpy as np
        from h5scp.io import load_hdf5
        X = np.load({str(tmp_path / "x.npy")!r})
        assert np.array_equal(load_hdf5({str(path)!r}).assays["proteins"].layers["l0"].X, X)
        pid = os.fork()
        if pid == 0:
            same = np.array_equal(load_hdf5({str(path)!r}).assays["proteins"].layers["l0"].X, X)
            os._exit(0 if same else 3)
        _, status = os.waitpid(pid, 0)
        sys.exit(os.waitstatus_to_exitcode(status))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]

"""Whole plain datasets read with several requests in flight, digested as they land, and read ahead.

References: plain h5py reads of files plain h5py wrote, and the arrays a container was built from.
"""

from __future__ import annotations

import threading

import h5py
import numpy as np
import polars as pl
import pytest

from h5stream.elements import plain_read
from h5stream.elements.arrays import read_array_dataset
from h5stream.kernels.direct_rows import DirectRows


def _whole_reads(monkeypatch) -> list[tuple[str, bool]]:
    """(thread, digested) of every whole read begun from here on: on the compiled reader's threads
    (:meth:`DirectRows.start_fresh`) or, in a build without OpenMP, through :meth:`DirectRows.read`."""
    begun: list[tuple[str, bool]] = []
    start_fresh, read = DirectRows.start_fresh, DirectRows.read

    def recording_start(self, a, b, buffer, crc=None):
        started = start_fresh(self, a, b, buffer, crc)
        if started is not None:
            begun.append((threading.current_thread().name, crc is not None))
        return started

    def recording_read(self, a, b, buffer, held="cached", landed=None, fresh=False):
        if fresh:
            begun.append((threading.current_thread().name, landed is not None))
        return read(self, a, b, buffer, held, landed, fresh)

    monkeypatch.setattr(DirectRows, "start_fresh", recording_start)
    monkeypatch.setattr(DirectRows, "read", recording_read)
    return begun


def test_a_large_contiguous_dataset_h5py_wrote_reads_as_h5py_reads_it(direct_ok):
    rng = np.random.default_rng(1)
    values = rng.normal(size=(1100, 1000))  # 8.8 MB: over the size read with requests in flight
    assert values.nbytes >= plain_read.MIN_BYTES
    path = direct_ok / "plain.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("small", data=np.arange(5))  # the values start past the first page
        f.create_dataset("x", data=values)
    with h5py.File(path, "r") as f:
        got = plain_read.read_plain_checked(f["x"])
        assert got is not None
        np.testing.assert_array_equal(got, f["x"][()])
        assert got.flags.c_contiguous and got.flags.aligned and got.flags.writeable
        assert plain_read.read_plain_checked(f["small"]) is None  # small: left to h5py


def test_datasets_that_do_not_qualify_are_left_to_h5py(direct_ok):
    values = np.arange(1_200_000, dtype=np.float64).reshape(1200, 1000)
    path = direct_ok / "kinds.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("gzip", data=values, compression="gzip", compression_opts=1)
        f.create_dataset("big_endian", data=values.astype(">f8"))
    with h5py.File(path, "r") as f:
        assert plain_read.read_plain_checked(f["gzip"]) is None
        assert plain_read.read_plain_checked(f["big_endian"]) is None
        np.testing.assert_array_equal(read_array_dataset(f["gzip"]), values)
    with h5py.File(path, "r+") as f:  # open for writing: HDF5 may hold values not yet on the disk
        f["gzip"][0, 0] = -1.0
        assert plain_read.read_plain_checked(f["big_endian"]) is None


def _container(x: np.ndarray, layers: int = 1):
    from h5scp import Assay, ScpContainer, ScpMatrix

    n, p = x.shape
    obs = pl.DataFrame({"_index": [f"S{i}" for i in range(n)], "batch": [f"b{i % 3}" for i in range(n)]})
    var = pl.DataFrame({"_index": [f"P{j}" for j in range(p)]})
    mats = {f"l{k}": ScpMatrix(x + k, np.isnan(x).astype(np.int8) if k == 1 else None) for k in range(layers)}
    return ScpContainer(obs, {"proteins": Assay(var, mats)})


def _lognormal_with_missing(n: int, p: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.lognormal(2.0, 1.0, (n, p))
    x[rng.random((n, p)) < 0.3] = np.nan
    return x


def test_a_damaged_byte_of_a_large_layer_is_a_checksum_error_naming_it(direct_ok):
    from h5scp.io import load_hdf5, save_hdf5
    from h5scp.io.exceptions import IOChecksumError

    x = _lognormal_with_missing(1100, 1000, 2)
    path = direct_ok / "c.h5"
    save_hdf5(_container(x), path)
    with h5py.File(path, "r") as f:
        ds = f["assays/proteins/layers/l0/X"]
        assert ds.chunks is None and ds.compression is None  # stored plain: read directly
        at = ds.id.get_offset() + 8 * (123 * 1000 + 456) + 3
    with open(path, "r+b") as fh:
        fh.seek(at)
        byte = fh.read(1)
        fh.seek(at)
        fh.write(bytes([byte[0] ^ 0x10]))
    with pytest.raises(IOChecksumError) as info:
        load_hdf5(path)
    assert str(path) in str(info.value) and "/assays/proteins/layers/l0/X" in str(info.value)
    damaged = load_hdf5(path, verify=False).assays["proteins"].layers["l0"].X
    differs = ~((damaged == x) | (np.isnan(damaged) & np.isnan(x)))
    assert [tuple(i) for i in np.argwhere(differs)] == [(123, 456)]


def test_layers_read_ahead_equal_the_saved_ones(direct_ok, monkeypatch):
    from h5scp.io import load_hdf5, save_hdf5

    x = _lognormal_with_missing(1100, 1000, 3)
    path = direct_ok / "c.h5"
    save_hdf5(_container(x, layers=2), path, compression=None)
    read_by = _whole_reads(monkeypatch)
    loaded = load_hdf5(path)
    layers = loaded.assays["proteins"].layers
    np.testing.assert_array_equal(layers["l0"].X, x)
    np.testing.assert_array_equal(layers["l1"].X, x + 1)
    np.testing.assert_array_equal(layers["l1"].M, np.isnan(x).astype(np.int8))
    # X of both layers (8.8 MB each; M, 1.1 MB, is read through h5py) were read ahead, one at a time: the
    # first begun at once by the loading thread, the second on the read-ahead's thread after it
    assert len(read_by) == 2
    assert read_by[1][0].startswith("plain-prefetch")
    assert not plain_read._started
    # a part of the samples reads only those rows: nothing is read ahead
    read_by.clear()
    part = load_hdf5(path, samples=["S5", "S900"])
    np.testing.assert_array_equal(part.assays["proteins"].layers["l0"].X, x[[5, 900]])
    assert read_by == []


def test_values_read_ahead_but_not_taken_are_dropped(direct_ok):
    values = np.random.default_rng(4).normal(size=(1100, 1000))
    path = direct_ok / "plain.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=values)
        f.create_dataset("y", data=values[::-1])
    with h5py.File(path, "r") as f:
        with plain_read.prefetching([f["x"], f["y"]]):
            np.testing.assert_array_equal(plain_read.read_plain_checked(f["y"]), values[::-1])
        assert not plain_read._started
        # outside the block the dataset is read again, not taken from a stale read-ahead
        np.testing.assert_array_equal(plain_read.read_plain_checked(f["x"]), values)


def test_a_dataset_that_cannot_be_opened_for_reading_ahead_is_left_to_the_read(direct_ok, monkeypatch):
    values = np.random.default_rng(5).normal(size=(1100, 1000))
    path = direct_ok / "plain.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=values)

    def broken(ds, digest=None):
        raise OSError("cannot read the dataset's layout")

    with h5py.File(path, "r") as f:
        monkeypatch.setattr(plain_read, "_open", broken)
        with plain_read.prefetching([f["x"]]):  # nothing started, nothing raised here
            assert not plain_read._started
            with pytest.raises(OSError, match="layout"):
                plain_read.read_plain_checked(f["x"])  # the read itself reports it


def test_a_whole_load_starts_its_layers_before_it_reads_a_table(direct_ok, monkeypatch):
    """Started as soon as the file's checks passed: before the checksum manifest is attached and the
    tables are read, digested as they land (the manifest cannot say yet whether it holds a digest)."""
    import h5scp.io._files as files
    import h5scp.io.importers as importers
    from h5scp.io import load_hdf5, save_hdf5

    x = _lognormal_with_missing(1100, 1000, 6)
    path = direct_ok / "c.h5"
    save_hdf5(_container(x), path, compression=None)
    reads = _whole_reads(monkeypatch)
    events = []
    attach, obs = files.checksums.attach, importers.read_obs_part

    def recording(label, function):
        def call(*args, **kwargs):
            events.extend(("read", digested) for _, digested in reads)
            reads.clear()
            events.append(label)
            return function(*args, **kwargs)
        return call

    monkeypatch.setattr(files.checksums, "attach", recording("attach", attach))
    monkeypatch.setattr(importers, "read_obs_part", recording("obs", obs))
    np.testing.assert_array_equal(load_hdf5(path).assays["proteins"].layers["l0"].X, x)
    assert events == [("read", True), "attach", "obs"]  # ("read", digest)
    events.clear()
    np.testing.assert_array_equal(load_hdf5(path, verify=False).assays["proteins"].layers["l0"].X, x)
    assert events == [("read", False), "attach", "obs"]  # nothing to check against: no digest
    assert not plain_read._started


def test_a_dataset_started_already_is_not_opened_again(direct_ok, monkeypatch):
    values = np.random.default_rng(7).normal(size=(1100, 1000))
    path = direct_ok / "plain.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=values)
    opened = []
    original = plain_read.open_direct_rows
    monkeypatch.setattr(plain_read, "open_direct_rows", lambda ds, **kw: opened.append(ds.name) or original(ds, **kw))
    with h5py.File(path, "r") as f:
        with plain_read.ReadAhead() as first, plain_read.ReadAhead() as second:
            assert first.start(f["x"], digest=True)
            assert not second.start(f["x"]) and not first.start(f["x"])
            assert opened == ["/x"]  # a second start neither opens the file nor probes the disk
            np.testing.assert_array_equal(plain_read.read_plain_checked(f["x"]), values)
        assert not plain_read._started


def test_a_file_of_the_1_0_layout_takes_its_layer_from_the_read_ahead(direct_ok, monkeypatch):
    """The original layout keeps a dense X where the current one does: read once, by the read-ahead."""
    from h5scp.core.exceptions import LegacyFormatWarning
    from h5scp.io import load_hdf5

    x = np.random.default_rng(8).normal(size=(1100, 2000)).astype(np.float32)  # 8.8 MB, as the 1.0 writer kept it
    path = direct_ok / "old.h5"
    with h5py.File(path, "w") as f:  # the 1.0 layout, by plain h5py
        f.attrs["format_version"] = "1.0"
        f.create_group("obs").create_dataset("_index", data=[f"S{i}".encode() for i in range(1100)])
        assay = f.create_group("assays").create_group("proteins")
        assay.create_group("var").create_dataset("_index", data=[f"P{j}".encode() for j in range(2000)])
        assay.create_group("layers").create_group("raw").create_dataset("X", data=x)
    reads = _whole_reads(monkeypatch)
    through_h5py = []
    getitem = h5py.Dataset.__getitem__
    monkeypatch.setattr(h5py.Dataset, "__getitem__", lambda ds, key: through_h5py.append(ds.name) or getitem(ds, key))
    with pytest.warns(LegacyFormatWarning):
        loaded = load_hdf5(path)
    np.testing.assert_array_equal(loaded.assays["proteins"].layers["raw"].X, x)
    assert len(reads) == 1
    assert "/assays/proteins/layers/raw/X" not in through_h5py  # not read a second time
    assert "/obs/_index" in through_h5py  # (the small ones are)
    assert not plain_read._started



def test_closing_a_read_ahead_while_the_next_read_waits_for_the_first_ends(direct_ok):
    """A load that fails while its first layer is still being read closes its read-ahead: the closing thread
    and the read-ahead's thread (whose next read waits for the first) then both wait for the same read.  Both
    must return (a thread joined twice may never return); 30 times, each within a minute."""
    values = np.random.default_rng(12).normal(size=(1100, 1000))
    path = direct_ok / "plain.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=values)
        f.create_dataset("y", data=values[::-1])
    errors: list[BaseException] = []

    def closing_early() -> None:
        try:
            with h5py.File(path, "r") as f:
                for _ in range(30):
                    with plain_read.ReadAhead() as ahead:
                        ahead.start(f["x"])
                        ahead.start(f["y"])  # on the read-ahead's thread, after x
                    assert not plain_read._started
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    worker = threading.Thread(target=closing_early, daemon=True)
    worker.start()
    worker.join(60)
    assert not worker.is_alive(), "closing the read-ahead did not return"
    assert not errors, errors

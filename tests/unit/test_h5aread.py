"""The compiled attribute reader (h5stream._ext._h5aread, behind h5stream.batch_attrs.read_plain) reads each
attribute as h5py reads it, and leaves to h5py what it does not read; attributes made here with plain h5py."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from h5stream import batch_attrs

pytestmark = pytest.mark.skipif(batch_attrs.bindings() is None,
                                reason="the direct libhdf5 calls are unavailable here")

#: attributes read in C: name -> value
PLAIN = {"i1": np.int8(-3), "u1": np.uint8(200), "i2": np.int16(-300), "u2": np.uint16(60_000),
         "i4": np.int32(-70_000), "u4": np.uint32(4_000_000_000), "i8": np.int64(-2**40), "u8": np.uint64(2**63),
         "f4": np.float32(1.5), "f8": np.float64(-2.25), "be": np.dtype(">i4").type(7),
         "text": "ünïcode", "empty_text": ""}
#: attributes left to h5py (not scalars of a native number kind or variable-length text)
LEFT = {"array": np.arange(3), "fixed": np.bytes_(b"abc"), "flag": np.bool_(True), "f2": np.float16(1.0),
        "c16": np.complex128(1 + 1j)}


def _attrs(path, long_name: str) -> None:
    with h5py.File(path, "w") as f:
        g = f.create_group("g")
        for name, value in {**PLAIN, **LEFT}.items():
            g.attrs[name] = value
        g.attrs[long_name] = np.int64(5)
        f.create_group("plain").attrs["__h5stream_type__"] = "dict"  # an internal name
        f.create_group("none")


def test_plain_attributes_read_as_h5py_reads_them(tmp_path):
    path = tmp_path / "attrs.h5"
    long_name = "n" * 3000  # longer than the reader's first name buffer
    _attrs(path, long_name)
    lib = batch_attrs.bindings()
    with h5py.File(path, "r") as f:
        g, plain, bare = f["g"], f["plain"], f["none"]  # (held: their ids stay open)
        with batch_attrs.library_lock:
            got = batch_attrs.read_plain(lib, g.id.id, frozenset())
            internal = batch_attrs.read_plain(lib, plain.id.id, frozenset({"__h5stream_type__"}))
            none = batch_attrs.read_plain(lib, bare.id.id, frozenset())
        assert list(got) == list(g.attrs)  # h5py's order: by name
        for name in list(PLAIN) + [long_name]:
            want = g.attrs[name]  # h5py: the reference
            assert type(got[name]) is type(want), name
            assert got[name] == want, name
        for name in LEFT:
            assert got[name] is batch_attrs.LEFT, name
        assert internal is None and none == {}


@pytest.mark.parametrize("count", [1, 4, 5, 8, 9, 30])
def test_every_count_of_attributes_reads_in_h5pys_order(tmp_path, count):
    # up to four opened by index; past four listed once and opened by name (compact up to 8, dense past)
    path = tmp_path / "many.h5"
    rng = np.random.default_rng(count)
    with h5py.File(path, "w") as f:
        g = f.create_group("g")
        for i in rng.permutation(count):  # created out of name order
            g.attrs[f"a{i:02d}"] = np.float64(i) / 3 if i % 2 else f"text {i}"
        f.create_group("internal").attrs.update({**{f"b{i}": np.int64(i) for i in range(count)},
                                                 "__h5stream_type__": "dict"})
    lib = batch_attrs.bindings()
    with h5py.File(path, "r") as f:
        g, internal = f["g"], f["internal"]
        with batch_attrs.library_lock:
            got = batch_attrs.read_plain(lib, g.id.id, frozenset())
            refused = batch_attrs.read_plain(lib, internal.id.id, frozenset({"__h5stream_type__"}))
        assert list(got) == list(g.attrs) == sorted(f"a{i:02d}" for i in range(count))
        for name, value in got.items():
            want = g.attrs[name]  # h5py: the reference
            assert type(value) is type(want) and value == want, name
        assert refused is None

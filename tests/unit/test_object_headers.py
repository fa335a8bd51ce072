"""The open-time check of variable-length attribute references in version-1 object headers, on files made with
plain h5py, against the slow twin in ``tests/reference.py`` and against what the test itself wrote."""

from __future__ import annotations

import os

import h5py
import numpy as np
import pytest

from h5stream.errors import FormatError
from h5stream.files import _headers, open_validated, validated
from h5stream.native import compiled
from tests.reference import ohdr_scan_reference

_ohdr = compiled("_ohdr")
TEXT = h5py.string_dtype()
NOTE = "hello world text"  # 16 bytes
N_EXTRA = 60  # enough attributes for the header to need continuation blocks


def _text_file(path, userblock: int = 0):
    """A file of libhdf5's default (version-1) headers whose group /g holds 1 + 3 + N_EXTRA text values;
    ``userblock``: the size of a user block before the superblock (a MuData file has 512 bytes), which every
    stored address is relative to."""
    with h5py.File(path, "w", userblock_size=userblock) as f:
        g = f.create_group("g")
        g.attrs["note"] = NOTE
        g.attrs["list"] = np.array(["a", "bb", "ccc"], dtype=TEXT)
        g.attrs["count"] = np.int64(7)  # a number: no reference
        for i in range(N_EXTRA):
            g.attrs[f"extra{i:02d}"] = f"value {i}"
        f.create_dataset("g/plain", data=np.arange(5))  # no attributes at all
        f.attrs["title"] = "root"
    return path


def _headers_of(path) -> dict[str, tuple[int, int]]:
    """``{name: (header address, attribute count)}`` of every object, as h5py reports them."""
    out = {}
    with h5py.File(path, "r") as f:
        for name, obj in [("/", f), ("/g", f["g"]), ("/g/plain", f["g/plain"])]:
            info = h5py.h5o.get_info(obj.id)
            assert info.hdr.version == 1
            out[name] = (info.addr, info.num_attrs)
    return out


def _scan(path, address, base: int = 0):
    fd = os.open(path, os.O_RDONLY)
    try:
        return _ohdr.scan(fd, os.fstat(fd).st_size, address, 8, 8, base)
    finally:
        os.close(fd)


def _reference_to(data: bytes, length: int, base: int = 0) -> int:
    """The offset in the file of the stored reference ``length (4 bytes), collection address (8)`` to the one
    collection (its address stored relative to ``base``, the user block's size)."""
    collection = data.find(b"GCOL")
    assert collection > 0 and data.find(b"GCOL", collection + 1) < 0
    at = data.find(length.to_bytes(4, "little") + (collection - base).to_bytes(8, "little"))
    assert at > 0
    return at


def test_every_text_value_of_a_long_header_is_checked(tmp_path):
    path = _text_file(tmp_path / "t.h5")
    headers = _headers_of(path)
    data = path.read_bytes()
    assert _scan(path, headers["/g"][0]) == 1 + 3 + N_EXTRA
    assert _scan(path, headers["/"][0]) == 1
    assert _scan(path, headers["/g/plain"][0]) == 0
    for address, _count in headers.values():
        assert _scan(path, address) == ohdr_scan_reference(data, address, 8, 8)
    # the long header needs continuation blocks, and the scan follows them
    assert data[headers["/g"][0] + 16:].find(b"extra59") > 0


def test_a_user_block_moves_every_address(tmp_path):
    """In a file with a user block (a MuData file's 512 bytes) the stored addresses start at its end: the scan
    given the block's size checks every value, as the twin does on the bytes after the block; without it, the
    scan would read the wrong bytes and check nothing."""
    path = _text_file(tmp_path / "u.h5", userblock=512)
    with h5py.File(path, "r") as f:
        assert f.userblock_size == 512
    headers = _headers_of(path)
    data = path.read_bytes()
    assert _scan(path, headers["/g"][0], 512) == 1 + 3 + N_EXTRA
    assert _scan(path, headers["/"][0], 512) == 1
    for address, _count in headers.values():
        assert _scan(path, address, 512) == ohdr_scan_reference(data[512:], address, 8, 8)
    assert _scan(path, headers["/g"][0], 0) == 0  # the bytes at the unmoved address are no header
    fd = os.open(path, os.O_RDONLY)
    try:
        assert _ohdr.scan(fd, len(data), headers["/g"][0], 8, 8, len(data)) == 0  # a base past the end
    finally:
        os.close(fd)
    if _headers.direct_object_info():
        fd = os.open(path, os.O_RDONLY)
        try:
            with h5py.File(path, "r") as f, _headers.libhdf5.lock:
                group = f["g"]
                assert _ohdr.check_object(group.id.id, fd, len(data), 8, 8, 512) == 1 + 3 + N_EXTRA
        finally:
            os.close(fd)


def test_check_object_finds_the_header_libhdf5_knows(tmp_path):
    path = _text_file(tmp_path / "t.h5")
    if not _headers.direct_object_info():
        pytest.skip("no direct libhdf5 calls in this process")
    fd = os.open(path, os.O_RDONLY)
    try:
        with h5py.File(path, "r") as f:
            size = os.fstat(fd).st_size
            with _headers.libhdf5.lock:
                assert _ohdr.check_object(f["g"].id.id, fd, size, 8, 8) == 1 + 3 + N_EXTRA
                assert _ohdr.check_object(f.id.id, fd, size, 8, 8) == 1
                assert _ohdr.check_object(f["g/plain"].id.id, fd, size, 8, 8) == 0
    finally:
        os.close(fd)


def _damage(path, at: int, raw: bytes) -> None:
    with open(path, "r+b") as fh:
        fh.seek(at)
        fh.write(raw)


@pytest.mark.parametrize("userblock", [0, 512], ids=["no-user-block", "user-block"])
@pytest.mark.parametrize("direct", [True, False], ids=["direct", "h5py"])
@pytest.mark.parametrize("case", ["length", "address", "element", "type"])
def test_a_damaged_reference_is_a_typed_error_naming_the_attribute(tmp_path, monkeypatch, direct, case, userblock):
    if direct and not _headers.direct_object_info():
        pytest.skip("no direct libhdf5 calls in this process (H5STREAM_NO_NATIVE=1 or no /proc)")
    path = _text_file(tmp_path / "t.h5", userblock)
    data = path.read_bytes()
    size = len(data)
    if case == "length":
        _damage(path, _reference_to(data, len(NOTE), userblock), (0x7F000000).to_bytes(4, "little"))
        obj, message, found = "/g/@note", "claims to be longer than the file", f"{0x7F000000} bytes"
    elif case == "address":
        _damage(path, _reference_to(data, len(NOTE), userblock) + 4, (size + 4096).to_bytes(8, "little"))
        obj, message, found = "/g/@note", "lies outside the file", f"a reference to byte {size + 4096 + userblock}"
    elif case == "element":  # "bb", the second of three
        _damage(path, _reference_to(data, 2, userblock) + 4, (size * 3).to_bytes(8, "little"))
        obj, message, found = "/g/@list[1]", "lies outside the file", f"a reference to byte {size * 3 + userblock}"
    else:
        name = data.find(b"note\x00\x00\x00\x00")
        assert data[name - 8] == 1 and data[name + 8] == 0x19  # attribute message 1; its type: version 1, class 9
        _damage(path, name + 9, bytes([0x31]))  # a string padded in a way HDF5 does not define (3)
        obj, message, found = "/g/@note", "stored type is damaged", "kind 1, padding 3, character set 1"
    monkeypatch.setattr(validated, "direct_object_info", lambda: direct)
    with pytest.raises(FormatError, match=message) as info:
        with open_validated(path) as f:
            dict(f["g"].attrs)
    assert info.value.obj == obj
    assert found in str(info.value) and str(path) in str(info.value)
    address = _headers_of(path)["/g"][0]
    assert _scan(path, address, userblock) == ohdr_scan_reference(path.read_bytes()[userblock:], address, 8, 8)


def test_mutated_headers_read_as_the_twin_reads_them(tmp_path):
    """Random bytes of the headers replaced (one to four at a time, 400 times): the compiled scan returns what
    the slow twin returns, count or damage, and never reads past what it may."""
    path = _text_file(tmp_path / "t.h5")
    headers = _headers_of(path)
    original = path.read_bytes()
    rng = np.random.default_rng(20261125)
    address = headers["/g"][0]
    region = (address, min(len(original), address + 4096))
    fd = os.open(path, os.O_RDWR)
    try:
        for _ in range(400):
            data = bytearray(original)
            for _k in range(rng.integers(1, 5)):
                at = int(rng.integers(*region))
                data[at] = int(rng.integers(0, 256))
            os.pwrite(fd, bytes(data), 0)
            for addr, _count in headers.values():
                assert _ohdr.scan(fd, len(data), addr, 8, 8) == ohdr_scan_reference(bytes(data), addr, 8, 8)
        # a header address past the end, and odd address and length sizes
        assert _ohdr.scan(fd, len(original), len(original) + 10, 8, 8) == 0
        for sizes in [(4, 4), (2, 8), (8, 2), (16, 16)]:
            assert _ohdr.scan(fd, len(original), address, *sizes) == ohdr_scan_reference(original, address, *sizes)
    finally:
        os.close(fd)


def test_find_signature_is_bytes_find():
    rng = np.random.default_rng(7)
    blob = bytearray(rng.integers(0, 256, 20000, dtype=np.uint8).tobytes())
    for at in (0, 3, 999, 1000, 19996):
        blob[at:at + 4] = b"GCOL"
    blob[5000:5003] = b"GCO"  # a prefix that is not the signature
    data = bytes(blob)
    for start in [0, 1, 3, 4, 998, 1000, 1001, 5000, 19995, 19996, 19997, 20000, 30000, -5]:
        assert _headers.find_signature(data, b"GCOL", start) == data.find(b"GCOL", max(start, 0))
    assert _headers.find_signature(b"", b"GCOL") == -1
    assert _headers.find_signature(b"GCO", b"GCOL") == -1
    assert _headers.find_signature(bytearray(b"xxGCOL"), b"GCOL") == 2
    assert _headers.find_signature(b"GGGCOL", b"GCOL") == 2
    with pytest.raises(ValueError):
        _headers.find_signature(data, b"")

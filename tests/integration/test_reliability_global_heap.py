"""A zeroed block inside a global heap collection is refused at open, where reading a text value never returned.

The file is made with plain h5py: variable-length text attributes (their values
live in a global heap collection, which HDF5 checksums nowhere), then 512 bytes
of the collection after its first object are zeroed, as a damaged disk block
would be.  libhdf5 then loops forever on the first read of any value of that
collection (a free-space entry of size 0 does not advance its walk); each read
runs in a child process with a time limit, so a regression fails instead of hanging.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest

from h5stream.errors import FormatError
from h5stream.files import check_global_heaps, global_heaps, open_validated

TEXT = h5py.string_dtype()


def _text_file(path):
    with h5py.File(path, "w") as f:
        for i in range(6):
            f.attrs.create(f"note{i}", f"value number {i} " * 4, dtype=TEXT)
        f["x"] = np.arange(10)
    return path


def _collection(path) -> int:
    data = path.read_bytes()
    start = data.find(b"GCOL")
    assert start >= 0 and data[start + 4] == 1
    return start


def _zero_after_first_object(path) -> None:
    data = bytearray(path.read_bytes())
    start = _collection(path)
    first = start + 16
    length = int.from_bytes(data[first + 8:first + 16], "little")
    second = first + 16 + ((length + 7) & ~7)
    data[second:second + 512] = bytes(512)
    path.write_bytes(bytes(data))


def _read_in_child(path, code: str, child_env, seconds: float = 30.0) -> subprocess.CompletedProcess:
    script = textwrap.dedent(f"""
        import sys
        path = sys.argv[1]
        {code}
    """)
    return subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, env=child_env,
                          timeout=seconds, check=False)


def test_open_validated_refuses_the_damaged_collection(tmp_path, child_env):
    path = _text_file(tmp_path / "notes.h5")
    _zero_after_first_object(path)
    done = _read_in_child(path, """
        from h5stream.errors import FormatError
        from h5stream.files import open_validated
        try:
            with open_validated(path) as f:
                print(dict(f.attrs))
        except FormatError as exc:
            print("refused:", exc)
    """, child_env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"refused: {path} [global heap at byte {_collection(path)}]")


def test_the_recording_store_refuses_it_too(tmp_path, child_env):
    path = _text_file(tmp_path / "rec.h5")
    _zero_after_first_object(path)
    done = _read_in_child(path, """
        from hdmea.errors import CorruptRecordingError
        from hdmea.io.hdf5_store import open_recording_hdf5
        try:
            open_recording_hdf5(path)
        except CorruptRecordingError as exc:
            print("refused:", exc.found)
    """, child_env)
    assert done.returncode == 0, done.stderr
    assert "global heap collection is damaged" in done.stdout


def test_undamaged_file_and_lookalike_bytes_are_accepted(tmp_path):
    path = _text_file(tmp_path / "notes.h5")
    assert check_global_heaps(path) == 1
    with open_validated(path) as f:
        assert f.attrs["note3"] == "value number 3 " * 4
    # Data holding the signature (with random bytes after it, or a collection's header with a size past the
    # end of the file) is no collection and is not refused.
    odd = tmp_path / "odd.h5"
    rng = np.random.default_rng(4)
    pieces = [b"GCOL" + rng.bytes(60) for _ in range(50)]
    pieces.append(b"GCOL\x01\x00\x00\x00" + (1 << 40).to_bytes(8, "little") + bytes(64))
    with h5py.File(odd, "w") as f:
        f["raw"] = np.frombuffer(b"".join(pieces), dtype=np.uint8)
    assert check_global_heaps(odd) == 51
    with open_validated(odd) as f:
        assert bytes(f["raw"][:4]) == b"GCOL"


def test_damage_found_directly(tmp_path):
    path = _text_file(tmp_path / "notes.h5")
    _zero_after_first_object(path)
    with pytest.raises(FormatError, match="empty free-space entry"):
        check_global_heaps(path)
    with pytest.raises(FormatError, match="empty free-space entry"):
        check_global_heaps(path, limit=1024)  # past the size read whole: searched in blocks


@pytest.mark.parametrize("block", [5, 7, 4093, 1 << 20])
def test_blocks_find_a_signature_across_their_edges(tmp_path, monkeypatch, block):
    """Searched in blocks of any size (a signature cut in two by a block's edge), a file gives the same count."""
    path = _text_file(tmp_path / "notes.h5")
    whole = check_global_heaps(path)
    monkeypatch.setattr(global_heaps, "GLOBAL_HEAP_SCAN_BLOCK", block)
    assert check_global_heaps(path, limit=0) == whole == 1
    _zero_after_first_object(path)
    with pytest.raises(FormatError, match=f"global heap at byte {_collection(path)}"):
        check_global_heaps(path, limit=0)


#: past the size the scan once stopped at (16 MiB)
BIG = 20 * 1024**2


def _large_text_file(path):
    """A file of about 20 MiB whose text values' collection lies after 20 MiB of samples.

    The samples' storage is allocated but never written (a sparse file: a few KiB on disk).
    """
    with h5py.File(path, "w") as f:
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
        dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)
        h5py.h5d.create(f.id, b"samples", h5py.h5t.NATIVE_UINT8, h5py.h5s.create_simple((BIG,)), dcpl=dcpl)
        for i in range(6):
            f.attrs.create(f"note{i}", f"value number {i} " * 4, dtype=TEXT)
    return path


def _zero_after_first_object_in_place(path) -> int:
    """``_zero_after_first_object`` by seeking (the file stays sparse); returns the collection's offset."""
    with open(path, "r+b") as fh:
        fh.seek(BIG)
        tail = fh.read()
        start = BIG + tail.find(b"GCOL")
        assert start >= BIG and tail[start - BIG + 4] == 1
        first = start + 16
        fh.seek(first + 8)
        length = int.from_bytes(fh.read(8), "little")
        fh.seek(first + 16 + ((length + 7) & ~7))
        fh.write(bytes(512))
    return start


def test_a_damaged_heap_past_16_mib_is_refused(tmp_path, child_env):
    path = _large_text_file(tmp_path / "large.h5")
    assert path.stat().st_size > global_heaps.GLOBAL_HEAP_SCAN_BYTES
    assert check_global_heaps(path) == 1
    start = _zero_after_first_object_in_place(path)
    assert start > 16 * 1024**2
    with pytest.raises(FormatError, match="empty free-space entry") as info:
        check_global_heaps(path)
    assert info.value.obj == f"global heap at byte {start}"
    done = _read_in_child(path, """
        from h5stream.errors import FormatError
        from h5stream.files import open_validated
        try:
            with open_validated(path) as f:
                print(dict(f.attrs))
        except FormatError as exc:
            print("refused:", exc)
    """, child_env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"refused: {path} [global heap at byte {start}]")
    done = _read_in_child(path, """
        from hdmea.errors import CorruptRecordingError
        from hdmea.io.hdf5_store import open_recording_hdf5
        try:
            open_recording_hdf5(path)
        except CorruptRecordingError as exc:
            print("refused:", exc.found)
    """, child_env)
    assert done.returncode == 0, done.stderr
    assert f"[global heap at byte {start}]: a global heap collection is damaged" in done.stdout


def test_a_large_file_skips_the_stored_data_of_datasets(tmp_path):
    """The samples of a large file are not searched (read at every open, they would cost a vendor file's size),
    while variable-length values are: the same looping bytes planted in both places."""
    path = tmp_path / "large.h5"
    looping = b"GCOL\x01\x00\x00\x00" + (4096).to_bytes(8, "little") + bytes(4096)  # a zero-size first step
    with h5py.File(path, "w") as f:
        samples = np.zeros(BIG, dtype=np.uint8)
        samples[1000:1000 + len(looping)] = np.frombuffer(looping, dtype=np.uint8)
        f.create_dataset("samples", data=samples, chunks=(1 << 20,))
    assert path.stat().st_size > global_heaps.GLOBAL_HEAP_SCAN_BYTES
    assert check_global_heaps(path) == 0  # in the samples' chunks: skipped
    with pytest.raises(FormatError, match="empty free-space entry"):
        check_global_heaps(path, limit=1 << 40)  # read whole, every byte is searched
    with h5py.File(path, "r+") as f:
        notes = f.create_dataset("notes", (1,), dtype=h5py.vlen_dtype(np.uint8))  # its values in a collection
        notes[0] = np.frombuffer(looping, dtype=np.uint8)
    assert global_heaps._fixed_size_data_ranges(path)  # the samples are still skipped
    with pytest.raises(FormatError, match="empty free-space entry"):
        check_global_heaps(path)  # the text's collection holds them now: searched


def test_text_value_longer_than_the_file_is_refused(tmp_path, child_env):
    """A flipped high byte of a stored text length (3.5 GB for a word): libhdf5 allocated and filled that much on
    the read (minutes); the open refuses it, naming the value."""
    path = tmp_path / "steps.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("steps", data=["load", "section", "sta", "features"], dtype=TEXT)
        offset = f["steps"].id.get_offset()
        assert offset is not None and f["steps"].id.get_storage_size() == 4 * 16
    data = bytearray(path.read_bytes())
    data[offset + 3 * 16 + 3] ^= 0xD1  # the high byte of value 3's length
    path.write_bytes(bytes(data))
    done = _read_in_child(path, """
        from h5stream.errors import FormatError
        from h5stream.files import open_validated
        try:
            with open_validated(path) as f:
                print(f["steps"][()])
        except FormatError as exc:
            print("refused:", exc)
    """, child_env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"refused: {path} [/steps[3]]: a text value claims to be longer than the file")
    ok = tmp_path / "ok.h5"
    with h5py.File(ok, "w") as f:
        f.create_dataset("steps", data=["load", "x" * 5000], dtype=TEXT)
    with open_validated(ok) as f:
        assert [s.decode() for s in f["steps"][()]] == ["load", "x" * 5000]


def _text_attribute_file(path):
    """One text attribute on a group (HDF5's default version-1 headers); returns its value's reference offset.

    The reference (length, collection address, index) is found by its bytes: the value's length followed by
    the address of the file's only collection.
    """
    value = "planted value of a text attribute"
    with h5py.File(path, "w") as f:
        f.create_group("g").attrs.create("note", value, dtype=TEXT)
        assert h5py.h5o.get_info(f["g"].id).hdr.version == 1
    data = path.read_bytes()
    collection = _collection(path)
    reference = len(value).to_bytes(4, "little") + collection.to_bytes(8, "little")
    at = data.find(reference)
    assert at > 0 and data.find(reference, at + 1) < 0
    return at


@pytest.mark.parametrize(("byte", "message"), [(3, "claims to be longer than the file"),
                                               (7, "lies outside the file")],
                         ids=["length", "address"])
def test_a_damaged_text_attribute_reference_is_refused_at_open(tmp_path, child_env, byte, message):
    """A flipped high byte of a text attribute's stored length (libhdf5 allocated and filled 3.1 GB for it: 5 s,
    counted as a hang by the fuzz tests, seeds 4081515054 and 659225482 of the .h5ad) or heap address."""
    path = tmp_path / "attr.h5"
    at = _text_attribute_file(path)
    data = bytearray(path.read_bytes())
    data[at + byte] ^= 0xBB
    path.write_bytes(bytes(data))
    done = _read_in_child(path, """
        import time
        from h5stream.errors import FormatError
        from h5stream.files import open_validated
        started = time.perf_counter()
        try:
            with open_validated(path) as f:
                print(f["g"].attrs["note"])
        except FormatError as exc:
            print("refused:", exc)
        print(f"{time.perf_counter() - started:.2f}")
    """, child_env)
    assert done.returncode == 0, done.stderr
    first, seconds = done.stdout.splitlines()
    assert first.startswith(f"refused: {path} [/g/@note]: an attribute's value {message}")
    assert float(seconds) < 1.0


def test_an_intact_text_attribute_reference_reads(tmp_path):
    path = tmp_path / "attr.h5"
    _text_attribute_file(path)
    with open_validated(path) as f:
        assert f["g"].attrs["note"] == "planted value of a text attribute"


def test_a_damaged_variable_length_type_of_an_attribute_is_refused_at_open(tmp_path, child_env):
    """The kind of a text attribute's stored type turned into 11, which HDF5 does not define: libhdf5 crashed
    (SIGSEGV) reading the value (fuzz seed 2631249737 of the .h5ad, its root's encoding-type)."""
    path = tmp_path / "attr.h5"
    _text_attribute_file(path)
    data = bytearray(path.read_bytes())
    text_type = b"\x19\x01\x01\x00\x10\x00\x00\x00"  # variable-length (class 9, version 1) UTF-8 string, 16 bytes
    at = data.find(text_type)
    assert at > 0 and data.find(text_type, at + 1) < 0
    data[at + 1] ^= 0x7A  # kind 1 -> 11, padding 0 -> 7
    path.write_bytes(bytes(data))
    done = _read_in_child(path, """
        from h5stream.errors import FormatError
        from h5stream.files import open_validated
        try:
            with open_validated(path) as f:
                print(f["g"].attrs["note"])
        except FormatError as exc:
            print("refused:", exc)
    """, child_env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith(f"refused: {path} [/g/@note]: an attribute's stored type is damaged")
    assert "kind 11, padding 7, character set 1" in done.stdout


def test_a_collection_is_read_without_the_stored_data_after_it(tmp_path):
    """The walk of a collection in a large file reads up to the next dataset's storage (where a large read
    started meanwhile may hold the disk's queue), and past it only the bytes a damaged collection asks for."""
    import io

    content = bytes(range(256)) * 16_384  # 4 MiB
    reads = []

    class Recording(io.BytesIO):
        def read(self, n=-1):
            reads.append(n)
            return super().read(n)

    window = global_heaps._FileWindow(Recording(content))
    window.end = 10_000  # the searched bytes end here: the next dataset's storage begins
    assert window.read(4_000, 16) == content[4_000:4_016]
    assert reads == [6_000]  # up to the storage, not a whole window
    assert window.read(9_990, 100) == content[9_990:10_090]  # asked past it: given
    assert reads[-1] == 100
    assert window.read(2_000_000, 8) == content[2_000_000:2_000_008]  # beyond the searched bytes: a whole window
    assert reads[-1] == global_heaps._COLLECTION_WINDOW

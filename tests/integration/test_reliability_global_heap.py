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
from h5stream.files import check_global_heaps, open_validated

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
    assert check_global_heaps(path, limit=1024) == 0  # past the size limit: left to the out-of-process check


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

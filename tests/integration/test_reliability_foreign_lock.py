"""A recording another program holds open for writing is reported as held, not as corrupted.

The other program is a real second process that opens the file with plain h5py in
``r+`` (HDF5 takes its exclusive lock and marks the superblock "open for write"),
so a read-only open fails inside libhdf5; before the fix that failure was reported
as "may be corrupted or incomplete" by ``open_recording_hdf5`` and ``hdmea inspect``.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest

from hdmea.errors import CorruptRecordingError, RecordingLockedError
from hdmea.io.hdf5_store import create_recording_hdf5, open_recording_hdf5

HOLD_OPEN = textwrap.dedent("""
    import sys, h5py
    f = h5py.File(sys.argv[1], "r+")
    print("open", flush=True)
    sys.stdin.readline()
    f.close()
""")


@pytest.fixture
def held(tmp_path):
    """A recording file, held open for writing by a second process for the test's duration."""
    path = tmp_path / "rec.h5"
    with create_recording_hdf5(path, "rec") as f:
        f.attrs["planted"] = 7
    proc = subprocess.Popen([sys.executable, "-c", HOLD_OPEN, str(path)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout.readline() == b"open\n", proc.stderr.read().decode()
        yield path
    finally:
        proc.communicate(b"\n", timeout=60)
    assert proc.returncode == 0


def test_read_open_says_held_by_another_program(held):
    with pytest.raises(RecordingLockedError) as info:
        open_recording_hdf5(held)
    message = str(info.value)
    assert message.startswith(f"Cannot read HDF5 file: {held}. It is held by another program")
    assert "corrupted" not in message
    assert info.value.other_program
    assert not isinstance(info.value, CorruptRecordingError)


def test_inspect_says_held_by_another_program(held, child_env):
    done = subprocess.run([sys.executable, "-m", "hdmea", "inspect", str(held)], capture_output=True, text=True,
                          env=child_env, check=False, timeout=120)
    assert done.returncode != 0
    assert "held by another program" in done.stderr
    assert "corrupted" not in done.stderr


def test_after_the_writer_closes_the_file_reads(tmp_path):
    """The same file, released by the other process, opens and reads back: the refusal was the lock alone."""
    path = tmp_path / "rec.h5"
    with create_recording_hdf5(path, "rec") as f:
        f.attrs["planted"] = 7
    subprocess.run([sys.executable, "-c", HOLD_OPEN, str(path)], input=b"\n", capture_output=True, check=True,
                   timeout=60)
    with open_recording_hdf5(path) as f:
        assert int(f.attrs["planted"]) == 7


def test_damaged_superblock_is_still_called_corrupted(tmp_path):
    """No lock and an unreadable file: the corruption message stays."""
    path = tmp_path / "rec.h5"
    with h5py.File(path, "w") as f:
        f["x"] = np.arange(3)
    data = bytearray(path.read_bytes())
    data[8:40] = bytes(32)  # the superblock after the signature
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptRecordingError, match="may be corrupted or incomplete"):
        open_recording_hdf5(path)

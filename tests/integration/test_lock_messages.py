"""Lock errors name who holds the file: the claim's pid, host and start time, or "another program"."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hdmea.errors import RecordingLockedError
from hdmea.io.hdf5_store import create_recording_hdf5, open_recording_hdf5

HELPER = Path(__file__).with_name("_claim_phases.py")
CONTRACT = "File is already open for writing: {}. HDF5 supports single-writer access only. " \
           "Close the file in other processes before writing. "

HOLD_OPEN = textwrap.dedent("""
    import sys, h5py
    f = h5py.File(sys.argv[1], "r+")  # HDF5 takes its exclusive file lock
    print("open", flush=True)
    sys.stdin.readline()
    f.close()
""")


@pytest.fixture
def rec(tmp_path):
    path = tmp_path / "rec.h5"
    create_recording_hdf5(path, "rec").close()
    return path


def _start(args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def test_claim_held_by_a_live_process_names_its_pid_and_host(rec):
    proc = _start([str(HELPER), str(rec), "writing"])  # holds rec.h5.claim, paused
    try:
        assert proc.stdout.readline() == b"paused\n", proc.stderr.read().decode()
        with pytest.raises(RecordingLockedError) as info:
            open_recording_hdf5(rec, "r+")
        message = str(info.value)
        assert message.startswith(CONTRACT.format(rec))
        assert f"It is held by pid {proc.pid} " in message
        assert f"on host {socket.gethostname()} since " in message
        assert info.value.holder["pid"] == proc.pid and not info.value.other_program
        with pytest.raises(RecordingLockedError, match=f"held by pid {proc.pid} "):
            create_recording_hdf5(rec, "rec", overwrite=True)
    finally:
        proc.kill()
        proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def test_file_held_open_by_another_program_says_so(rec):
    before = rec.read_bytes()
    proc = _start(["-c", HOLD_OPEN, str(rec)])
    try:
        assert proc.stdout.readline() == b"open\n", proc.stderr.read().decode()
        for attempt in (lambda: open_recording_hdf5(rec, "r+"),
                        lambda: create_recording_hdf5(rec, "rec", overwrite=True)):
            with pytest.raises(RecordingLockedError) as info:
                attempt()
            message = str(info.value)
            assert message.startswith(CONTRACT.format(rec))
            assert "held by another program" in message and "corrupt" not in message
            assert info.value.other_program and info.value.holder is None
        assert sorted(p.name for p in rec.parent.iterdir()) == ["rec.h5"]  # no claim left behind
    finally:
        proc.communicate(b"\n", timeout=30)
    assert proc.returncode == 0
    assert rec.read_bytes() == before

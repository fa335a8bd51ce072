"""The whole-file copy of :mod:`h5stream.files.copying`: the same bytes, each step watched in order, by
every means the kernel offers, and a watch's error ending the copy with its thread."""

from __future__ import annotations

import errno
import hashlib
import os
import threading

import numpy as np
import pytest

from h5stream.files import copying
from h5stream.files.copying import copy_descriptor


def _source(tmp_path, nbytes: int):
    data = np.random.default_rng(7).integers(0, 256, nbytes, dtype=np.uint8).tobytes()
    path = tmp_path / "source.bin"
    path.write_bytes(data)
    return path, data


def _copy(path, target, watch=None):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.lseek(fd, 5, os.SEEK_SET)
        copy_descriptor(fd, target, watch=watch)
        assert os.lseek(fd, 0, os.SEEK_CUR) == 5  # (its position untouched)
    finally:
        os.close(fd)


@pytest.mark.parametrize("nbytes", [0, 1, 4096, 4096 * 5 + 17])
def test_watched_copy_sees_every_byte_once_in_order(tmp_path, monkeypatch, nbytes):
    monkeypatch.setattr(copying, "COPY_BLOCK", 4096)
    monkeypatch.setattr(copying, "STEPS_AHEAD", 2)
    path, data = _source(tmp_path, nbytes)
    seen = []
    watched = hashlib.sha256()

    def watch(offset, block):
        seen.append((offset, len(block)))
        watched.update(block)

    _copy(path, tmp_path / "copy.bin", watch)
    assert (tmp_path / "copy.bin").read_bytes() == data
    assert watched.digest() == hashlib.sha256(data).digest()
    offsets = [0] + [offset + n for offset, n in seen]
    assert [offset for offset, _ in seen] == offsets[:-1] and offsets[-1] == nbytes
    assert all(n <= 4096 for _, n in seen)


@pytest.mark.parametrize("refused", ["copy_file_range", "both"])
def test_copy_without_the_kernel_copy(tmp_path, monkeypatch, refused):
    """Where ``copy_file_range`` (and ``sendfile``) refuse the files, the other means copy the same bytes."""
    monkeypatch.setattr(copying, "COPY_BLOCK", 4096)

    def no(*args):
        raise OSError(errno.EXDEV if refused == "copy_file_range" else errno.EINVAL, "refused")

    monkeypatch.setattr(os, "copy_file_range", no, raising=False)
    if refused == "both":
        monkeypatch.setattr(os, "sendfile", no)
    path, data = _source(tmp_path, 4096 * 3 + 100)
    _copy(path, tmp_path / "plain.bin")
    watched = bytearray()
    _copy(path, tmp_path / "watched.bin", lambda offset, block: watched.extend(block))
    assert (tmp_path / "plain.bin").read_bytes() == data == (tmp_path / "watched.bin").read_bytes() == watched


def test_a_failing_watch_ends_the_copy_and_its_thread(tmp_path, monkeypatch):
    monkeypatch.setattr(copying, "COPY_BLOCK", 4096)
    monkeypatch.setattr(copying, "STEPS_AHEAD", 1)
    path, _ = _source(tmp_path, 4096 * 40)
    calls = []

    def watch(offset, block):
        calls.append(offset)
        if offset == 4096 * 2:
            raise ValueError("digest mismatch")

    with pytest.raises(ValueError, match="digest mismatch"):
        _copy(path, tmp_path / "copy.bin", watch)
    assert calls == [0, 4096, 8192]
    assert not [t for t in threading.enumerate() if t.name == "h5stream-copy"]
    # the copying thread stopped a step or so ahead of the watch, not at the end of the file
    assert (tmp_path / "copy.bin").stat().st_size <= 4096 * 5


def test_a_failing_copy_is_raised_by_the_reading_thread(tmp_path, monkeypatch):
    monkeypatch.setattr(copying, "COPY_BLOCK", 4096)
    path, _ = _source(tmp_path, 4096 * 10)
    real = os.copy_file_range

    def failing(src, dst, count, offset_src=None, offset_dst=None):
        if offset_src >= 4096 * 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(src, dst, count, offset_src, offset_dst)

    monkeypatch.setattr(os, "copy_file_range", failing)
    seen = []
    with pytest.raises(OSError) as info:
        _copy(path, tmp_path / "copy.bin", lambda offset, block: seen.append(offset))
    assert info.value.errno == errno.ENOSPC
    assert seen == [0, 4096, 8192]
    assert not [t for t in threading.enumerate() if t.name == "h5stream-copy"]


def test_a_source_shorter_than_its_size_is_an_error(tmp_path, monkeypatch):
    """A source that ends before the size it had when the copy began (truncated meanwhile) fails the copy."""
    path, _ = _source(tmp_path, 4096 * 4)
    real_fstat = os.fstat

    def larger(fd):
        st = real_fstat(fd)
        return os.stat_result((*st[:6], st.st_size + 4096, *st[7:10])) if fd == source_fd[0] else st

    source_fd = [None]
    monkeypatch.setattr(os, "fstat", larger)
    fd = os.open(path, os.O_RDONLY)
    source_fd[0] = fd
    try:
        with pytest.raises(OSError, match="ended at byte"):
            copy_descriptor(fd, tmp_path / "copy.bin", watch=lambda offset, block: None)
    finally:
        os.close(fd)

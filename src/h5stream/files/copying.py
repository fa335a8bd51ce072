"""Byte copies of a whole file into a new one, in the kernel where it can, each step seen by a watcher.

:func:`copy_descriptor` copies with ``copy_file_range`` (a reflink or a server-side copy where the
filesystem offers one), else ``sendfile``, else reads and writes.  With a ``watch`` the copy goes in steps of
:data:`COPY_BLOCK` bytes: a second thread copies each step and hands its pages to the disk at once
(``sync_file_range``, where the system has it: the disk writes while the copy goes on, and the fsync that
follows waits for the tail only), while the calling thread reads each step back from the copy, still in the
page cache, and shows it to ``watch``.  The copying thread stays at most :data:`STEPS_AHEAD` steps ahead of
the reading one, so what is read back is what was just written, from the cache, never from the disk.
"""

from __future__ import annotations

import errno
import os
import queue
import threading
from collections.abc import Callable
from pathlib import Path

from h5stream import capabilities

__all__ = ["copy_descriptor", "COPY_BLOCK", "STEPS_AHEAD"]

#: Bytes :func:`copy_descriptor` copies at a time with ``watch`` (each step read back at once, from the cache).
COPY_BLOCK = 1 << 24
#: How many steps the copying thread may be ahead of the thread reading the copy back.
STEPS_AHEAD = 4

#: ``copy_file_range`` refuses these files with these errors: the copies below it take over
_NOT_OFFERED = (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP)


class _Copier:
    """Copies ranges of ``source`` into ``out`` at the same offsets, by the best means the two files allow
    (once the kernel's copy is refused, the rest goes through ``sendfile`` or reads and writes)."""

    def __init__(self, source: int, out: int, size: int) -> None:
        self.source, self.out, self.size = source, out, size
        self.in_kernel = getattr(os, "copy_file_range", None) is not None

    def copy(self, start: int, end: int) -> None:
        """Copy the bytes ``[start, end)``; an OSError when the source ends before ``end``."""
        done = start
        while done < end and self.in_kernel:
            try:
                n = os.copy_file_range(self.source, self.out, end - done, done, done)
            except OSError as exc:
                if exc.errno not in _NOT_OFFERED:
                    raise
                self.in_kernel = False  # not offered between these files
                break
            if n == 0:
                break
            done += n
        while done < end:
            try:
                os.lseek(self.out, done, os.SEEK_SET)
                n = os.sendfile(self.out, self.source, done, end - done)
            except OSError as exc:
                if exc.errno not in (errno.EINVAL, errno.ENOSYS):
                    raise
                n = os.pwrite(self.out, os.pread(self.source, min(end - done, COPY_BLOCK), done), done)
            if n == 0:
                raise OSError(errno.EIO, f"the file being copied ended at byte {done} of {self.size}")
            done += n


def copy_descriptor(fd: int, partial: Path, *, watch: Callable[[int, memoryview], None] | None = None) -> None:
    """Copy the whole file open as ``fd`` (from its first byte, its position untouched) into the new file
    ``partial`` (see the module's text).  With ``watch``, each step of :data:`COPY_BLOCK` bytes is read back
    from the copy while it is in the page cache and shown as ``watch(offset, block)``, in order: a caller
    checking the copy digests it there, not in a second pass (from the disk once the file outgrows the
    cache).  An exception of ``watch`` ends the copy and is raised here; the partial file is the caller's to
    remove."""
    size = os.fstat(fd).st_size
    out = os.open(partial, (os.O_RDWR if watch is not None else os.O_WRONLY) | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        copier = _Copier(fd, out, size)
        if watch is None:
            copier.copy(0, size)
        else:
            _copy_watched(copier, watch)
    finally:
        os.close(out)


def _copy_watched(copier: _Copier, watch: Callable[[int, memoryview], None]) -> None:
    """:func:`copy_descriptor` with a watch: the steps copied on a second thread, read back and watched here."""
    size, out = copier.size, copier.out
    if size == 0:
        return
    writeback = capabilities.early_writeback()
    steps: queue.Queue = queue.Queue()
    room = threading.Semaphore(STEPS_AHEAD)
    stop = threading.Event()

    def copy_steps() -> None:
        from h5stream.native import libc

        try:
            for start in range(0, size, COPY_BLOCK):
                room.acquire()
                if stop.is_set():
                    return
                end = min(start + COPY_BLOCK, size)
                copier.copy(start, end)
                if writeback:
                    libc.start_writeback(out, start, end - start)
                steps.put((start, end))
        except BaseException as exc:  # handed to the reading thread, which raises it
            steps.put(exc)

    worker = threading.Thread(target=copy_steps, name="h5stream-copy", daemon=True)
    worker.start()
    buffer = memoryview(bytearray(min(COPY_BLOCK, size)))
    try:
        done = 0
        while done < size:
            step = steps.get()
            if isinstance(step, BaseException):
                raise step
            start, end = step
            seen = start
            while seen < end:
                got = os.preadv(out, [buffer[:min(len(buffer), end - seen)]], seen)
                if got == 0:
                    raise OSError(errno.EIO, f"the copy ended at byte {seen} of {end}")
                watch(seen, buffer[:got])
                seen += got
            done = end
            room.release()
    finally:
        stop.set()
        room.release()  # (a copying thread waiting for room sees the stop)
        worker.join()

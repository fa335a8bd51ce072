"""Handing a file's written pages to the disk while it is still being written.

A file built from tens of thousands of small objects (a session's save) is written by one thread
through the page cache; its fsync at the end then waits for every byte at once.  :class:`Writeback`
watches the file from a second thread and, each time it has grown by :data:`STEP_BYTES`, asks the
kernel to start writing its dirty pages out (``sync_file_range(SYNC_FILE_RANGE_WRITE)``, Linux) so
the disk works while the writer goes on and the final fsync waits only for the tail.

It makes nothing durable by itself (the fsync that follows does) and changes no byte of the file:
where the system has no ``sync_file_range``, or the file cannot be opened, it does nothing.
"""

from __future__ import annotations

import contextlib
import os
import threading

from h5stream import capabilities

__all__ = ["Writeback", "STEP_BYTES", "INTERVAL_S"]

#: the file's growth between two hand-overs (the disk gets work in pieces of about this size)
STEP_BYTES = 16 << 20
#: how often the watching thread looks at the file's size
INTERVAL_S = 0.02


class Writeback:
    """Start the write-out of ``path``'s dirty pages each time the file grew by ``step`` bytes, from a
    daemon thread, until :meth:`stop`.  Use as ``w = Writeback.start(path)`` ... ``w.stop()``."""

    def __init__(self, fd: int, step: int, interval: float) -> None:
        self._fd, self._step, self._interval = fd, step, interval
        self._done = threading.Event()
        self._handed = 0
        self._thread = threading.Thread(target=self._run, name="h5stream-writeback", daemon=True)

    @classmethod
    def start(cls, path: str | os.PathLike, *, step: int = STEP_BYTES,
              interval: float = INTERVAL_S) -> Writeback | None:
        """A running watcher of ``path``, or None where the system cannot hand pages over early."""
        if not capabilities.early_writeback():
            return None
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            return None
        watcher = cls(fd, step, interval)
        watcher._thread.start()
        return watcher

    def _hand_over(self) -> None:
        from h5stream.native import libc

        size = os.fstat(self._fd).st_size
        if size - self._handed >= self._step:
            # from the start: libhdf5 rewrites metadata anywhere before the end; pages already clean or
            # in flight are skipped by the kernel
            libc.start_writeback(self._fd, 0, size)
            self._handed = size

    def _run(self) -> None:
        with contextlib.suppress(OSError):
            while not self._done.wait(self._interval):
                self._hand_over()

    def stop(self) -> None:
        """Stop watching (the thread has ended on return) and close the watcher's descriptor."""
        self._done.set()
        self._thread.join()
        with contextlib.suppress(OSError):
            os.close(self._fd)

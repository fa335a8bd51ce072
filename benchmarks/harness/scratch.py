"""Scratch files and child processes for the benchmark suite: where the scratch files go (and whether
the disk can hold them), a file's pages evicted before a timed read, the disk's own write and read
limits, and the peak resident memory of code run in a fresh Python.

:mod:`benchmarks.harness` re-exports every name here; the benchmark modules import them from there.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

from h5stream.files import fsync_path as fsync_file

__all__ = ["drop_page_cache", "peak_rss_mb", "raw_read_seconds", "raw_write_seconds", "require_free_space",
           "scratch_dir"]


def drop_page_cache(path: str | os.PathLike) -> None:
    """Evict a file's pages so the next read comes from the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fdatasync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def raw_write_seconds(arr: np.ndarray, path: str | os.PathLike) -> float:
    """Seconds to write ``arr`` with ``tofile`` and fsync: the disk's write limit."""
    t0 = time.perf_counter()
    arr.tofile(path)
    fsync_file(path)
    return time.perf_counter() - t0


def raw_read_seconds(path: str | os.PathLike, dtype) -> float:
    """Seconds to read a file with ``fromfile`` from uncached pages: the disk's read limit."""
    drop_page_cache(path)
    t0 = time.perf_counter()
    np.fromfile(path, dtype=dtype)
    return time.perf_counter() - t0


def peak_rss_mb(code: str, *, env: dict | None = None, timeout: float = 3600) -> tuple[float, str]:
    """Run ``code`` in a fresh Python and return (peak resident MB, its stdout).

    The code runs as a script; its peak is the child's own resident high-water mark.
    """
    # ru_maxrss of a child started by fork+exec inherits the parent's peak on Linux,
    # so the child's own high-water mark (VmHWM) is read where /proc has it.
    wrapper = textwrap.dedent(
        """
        import resource, sys
        exec(compile(sys.stdin.read(), "<bench>", "exec"))
        peak = None
        try:
            with open("/proc/self/status") as fh:
                for line in fh:
                    if line.startswith("VmHWM:"):
                        peak = int(line.split()[1])
        except OSError:
            pass
        if peak is None:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print("__PEAK_RSS_KB__", peak)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", wrapper],
        input=code,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"benchmark subprocess failed:\n{done.stderr}")
    peak = None
    lines = []
    for line in done.stdout.splitlines():
        if line.startswith("__PEAK_RSS_KB__"):
            peak = int(line.split()[1]) / 1024.0
        else:
            lines.append(line)
    return peak, "\n".join(lines)


def scratch_dir(prefix: str = "h5stream-bench-") -> tempfile.TemporaryDirectory:
    """A scratch directory on the same disk as the benchmark's files.

    ``H5STREAM_BENCH_DIR`` chooses the parent (default: the system temp dir).
    """
    parent = os.environ.get("H5STREAM_BENCH_DIR")
    if parent:
        Path(parent).mkdir(parents=True, exist_ok=True)
    return tempfile.TemporaryDirectory(prefix=prefix, dir=parent)


def require_free_space(where: str | os.PathLike, needed: int, what: str, smaller: str = "run a smaller size") -> None:
    """Refuse a run the scratch disk at ``where`` cannot hold (``needed`` bytes), in a second rather than
    after an hour of work; ``what`` names the run and ``smaller`` how to ask for less, in the message."""
    free = shutil.disk_usage(where).free
    if free < needed:
        raise OSError(f"{what} needs about {needed / 2**30:.1f} GiB in {Path(where).parent}, found "
                      f"{free / 2**30:.1f} GiB free; set H5STREAM_BENCH_DIR to a larger disk or {smaller}")

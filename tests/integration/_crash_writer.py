"""Writer for the crash-safety tests: writes one version of a file and reports its phases.

``write_version`` reports each phase as it starts, so a test can SIGKILL the
process at a chosen moment: ``opened``, ``data`` (once per chunk written),
``closing``, then inside the commit ``fsync``, ``fsynced``, ``replace``,
``replaced``, ``dirsynced``, and ``done``.  Run as a script
(``python _crash_writer.py TARGET VERSION N_VALUES create|update``) it reports on stdout.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

import numpy as np

import h5stream.files as files

CHUNK_VALUES = 1 << 20  # 4 MB of float32 per data phase


def expected_values(version: int, n_values: int) -> np.ndarray:
    """The content of version ``version``: distinct for every version and every position."""
    # Exact in float32 while version * 100_000 + 65535 < 2**24 (versions below 167).
    return ((np.arange(n_values, dtype=np.int32) & 0xFFFF) + version * 100_000).astype(np.float32)


def instrument_commit(report: Callable[[str], None]) -> None:
    """Report the steps of AtomicFile.commit (this process only)."""
    real_fsync_path, real_replace = files.fsync_path, os.replace
    real_fsync_directory = files.fsync_directory

    def fsync_path(path):
        report("fsync")
        real_fsync_path(path)
        report("fsynced")

    def replace(src, dst, **kwargs):
        report("replace")
        real_replace(src, dst, **kwargs)
        report("replaced")

    def fsync_directory(path):
        real_fsync_directory(path)
        report("dirsynced")

    files.atomic.fsync_path = fsync_path  # the module whose AtomicFile.commit calls them
    files.atomic.fsync_directory = fsync_directory
    os.replace = replace  # overwrite=True and updates publish with os.replace


def write_version(target: str, version: int, n_values: int, mode: str,
                  report: Callable[[str], None]) -> None:
    """Write version ``version`` of ``target`` (``mode`` "create" or "update")."""
    values = expected_values(version, n_values)
    instrument_commit(report)
    atomic = (
        files.create_atomic(target, overwrite=True) if mode == "create" else files.update_atomic(target)
    )
    with atomic as f:
        report("opened")
        data = f.create_dataset("data", shape=(n_values,), dtype="f4") if mode == "create" else f["data"]
        for start in range(0, n_values, CHUNK_VALUES):
            data[start : start + CHUNK_VALUES] = values[start : start + CHUNK_VALUES]
            report("data")
        f.attrs["version"] = version
        report("closing")
    report("done")


def _print_phase(name: str) -> None:
    sys.stdout.write(name + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    write_version(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], _print_phase)

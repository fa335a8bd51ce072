"""Shared test configuration: the build under test in the header, an environment for child processes."""

from __future__ import annotations

import os
import sys

import pytest


def pytest_report_header(config) -> list[str]:
    import h5py
    import numpy as np

    import h5stream

    return [
        f"h5stream {h5stream.__version__} from {os.path.dirname(h5stream.__file__)}, "
        f"OpenMP {'on' if h5stream.openmp_enabled() else 'off'}",
        f"h5py {h5py.version.version}, HDF5 {h5py.version.hdf5_version}, numpy {np.__version__}",
    ]


@pytest.fixture
def child_env() -> dict[str, str]:
    """Environment for a child Python that must import what this process imports (tests included)."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}


@pytest.fixture
def h5(tmp_path):
    """A new HDF5 file open for writing, closed after the test."""
    import h5py

    with h5py.File(tmp_path / "t.h5", "w") as f:
        yield f

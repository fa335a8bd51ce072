"""Shared test configuration and fixtures.

The repository root is on ``sys.path`` through ``pythonpath`` in the pytest
configuration, so tests import their helpers as ``tests.reference``,
``tests.filecompare`` and ``tests.integration._batch_jobs``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from pathlib import Path

import pytest

from tests.skips import pytest_terminal_summary  # noqa: F401  (a hook: each skipped test and why, one line each)

#: tests/exit_watch.py: threads and children left at the end of the run are named; a hang on the way out ends
pytest_plugins = ["tests.exit_watch"]

ROOT = Path(__file__).resolve().parents[1]
#: The opt-in distribution that serves the import name ``scptensor`` (ScpTensor's January API).
SCPTENSOR_JANUARY = ROOT / "optin" / "scptensor-january"


def _serve_scptensor_january() -> None:
    """The compatibility tests import ``scptensor``: the opt-in alias, from the source tree when not installed.

    Where another ``scptensor`` is importable (the alias installed, or another
    ScpTensor), nothing is done: the alias stands aside for another one, as
    installed, and those tests say so (tests/compat/conftest.py).
    """
    import importlib.util

    if importlib.util.find_spec("scptensor") is None:
        sys.path.insert(0, str(SCPTENSOR_JANUARY / "src"))
        import scptensor_january

        scptensor_january.install()


_serve_scptensor_january()


def pytest_addoption(parser) -> None:
    group = parser.getgroup("fuzz", "fuzz tests (tests/fuzz, marked slow)")
    group.addoption("--fuzz-seeds", type=int, default=3,
                    help="new random seeds per format, each planning H5STREAM_FUZZ_MUTATIONS mutations (default 3)")
    group.addoption("--fuzz-seed", type=int, action="append",
                    help="replay this seed (repeat for several; printed at the end of every fuzz run)")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items) -> None:
    """The tiers (tests/tiers.py): the listed campaigns and stop tests get their markers before ``-m`` selects."""
    from tests.tiers import mark_tiers

    mark_tiers(items)


#: Folders the session-scoped fixtures made under the base temporary folder: kept to the end of the run.
_SESSION_FOLDERS: set[Path] = set()


@pytest.hookimpl(hookwrapper=True)
def pytest_fixture_setup(fixturedef, request):
    """A module's or class's fixture takes its folders (``tmp_path_factory.mktemp``) away when it ends.

    pytest keeps every such folder to the end of the run, and the synthetic recordings of the modules'
    fixtures (170-400 MB each) added up to more than 3 GB in the default tier; removed when their
    fixture is torn down, the run holds the session's recordings and one module's at a time.
    """
    factory = getattr(request.config, "_tmp_path_factory", None)
    if factory is None or fixturedef.scope == "function":
        yield
        return
    base = factory.getbasetemp()
    before = set(base.iterdir())
    yield
    made = set(base.iterdir()) - before
    if fixturedef.scope == "session":
        _SESSION_FOLDERS.update(made)
    elif made:
        fixturedef.addfinalizer(lambda: [shutil.rmtree(folder, ignore_errors=True)
                                         for folder in made - _SESSION_FOLDERS])


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
def direct_ok(tmp_path):
    """``tmp_path``, or a skip where its file system refuses ``O_DIRECT`` (e.g. tmpfs)."""
    if not hasattr(os, "O_DIRECT"):
        pytest.skip("no O_DIRECT on this system")
    probe = tmp_path / "probe"
    probe.write_bytes(b"\0" * 8192)
    try:
        fd = os.open(probe, os.O_RDONLY | os.O_DIRECT)
    except OSError:
        pytest.skip("the file system refuses O_DIRECT")
    os.close(fd)
    return tmp_path


@pytest.fixture
def h5(tmp_path):
    """A new HDF5 file open for writing, closed after the test."""
    import h5py

    with h5py.File(tmp_path / "t.h5", "w") as f:
        yield f


@contextlib.contextmanager
def tmpfs_mount(folder: Path, options: str):
    """Mount a tmpfs with ``options`` (e.g. ``"size=2m"``) at ``folder``; skip where this process may not mount."""
    import subprocess

    folder.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a filesystem needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True,
                          check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


# ----------------------------------------------------------------------------- HD-MEA recordings


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> Path:
    """A folder with a small synthetic recording ``tiny.cmcr``/``.cmtr``/``.stimulus.json`` and a
    configuration ``tiny.toml`` for the commands that process (do not modify it)."""
    from hdmea.synthetic import generate_recording

    out = tmp_path_factory.mktemp("tiny")
    generate_recording(out, "tiny", n_units=3, seed=5)
    (out / "tiny.toml").write_text('[stimulus]\nfile = "{dir}/{name}.stimulus.json"\n')
    return out


@pytest.fixture(scope="session")
def tiny_recording(tmp_path_factory):
    """A tiny synthetic recording (6 units, one silent; the step movie shown twice). Do not modify it."""
    from hdmea.synthetic import SyntheticConfig, generate_recording

    out = tmp_path_factory.mktemp("tiny_recording")
    return generate_recording(out, "rec", config=SyntheticConfig.tiny(), seed=7)


@pytest.fixture(scope="session")
def tiny_truth(tiny_recording):
    """The planted ground truth of ``tiny_recording``."""
    return tiny_recording.truth()


@pytest.fixture
def recording_copy(tiny_recording, tmp_path) -> tuple[Path, Path]:
    """A private copy of the tiny recording's files (for tests that damage them): (cmcr, cmtr)."""
    for p in (tiny_recording.cmcr_path, tiny_recording.cmtr_path, tiny_recording.stimulus_path,
              tiny_recording.noise_movie_path):
        shutil.copy(p, tmp_path / Path(p).name)
    return tmp_path / tiny_recording.cmcr_path.name, tmp_path / tiny_recording.cmtr_path.name


# ----------------------------------------------------------------------------- scptensor containers


@pytest.fixture
def container():
    """A small scptensor container with every column kind (obs has NaN, null and a date column)."""
    from h5scp.testing import example_container

    return example_container()

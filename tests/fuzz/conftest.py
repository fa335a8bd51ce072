"""Fixtures of the fuzz tests: the originals, written once, and each format's fuzz run, done once.

``H5STREAM_FUZZ_MUTATIONS`` sets the mutations per format (default 300, the size CI
runs); the seed is fixed so every run mutates the same bytes.  The outcome table of
every format fuzzed in the session is printed at the end of the run.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from tests.fuzz._driver import OUTCOMES, FuzzReport, run_mutations
from tests.fuzz._formats import FORMATS, write_originals
from tests.fuzz._mutations import plan_mutations

SEED = 20260419
N_MUTATIONS = int(os.environ.get("H5STREAM_FUZZ_MUTATIONS", "300"))
WORKERS = 2

_reports: dict[str, FuzzReport] = {}


@pytest.fixture(scope="session")
def fuzz_originals() -> Path:
    """Every format's original, written by our own writers (see :mod:`tests.fuzz._formats`).

    The folder's path has the same length in every run (the files store it), so with the
    writers' clock frozen the originals keep their layout and the outcomes repeat.
    """
    folder = Path(tempfile.mkdtemp(prefix="h5stream-fuzz-", dir="/tmp" if os.access("/tmp", os.W_OK) else None))
    try:
        yield write_originals(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def fuzz_report(fuzz_originals, tmp_path_factory):
    """``fuzz_report(name)``: the outcomes of ``N_MUTATIONS`` mutations of format ``name`` (run once)."""

    def report(name: str) -> FuzzReport:
        if name not in _reports:
            fmt = FORMATS[name]
            target = fuzz_originals / fmt.root / fmt.target if fmt.target else fuzz_originals / fmt.root
            mutations = plan_mutations(target, N_MUTATIONS, seed=SEED)
            work = tmp_path_factory.mktemp(f"fuzz_{name}")
            _reports[name] = run_mutations(name, fuzz_originals, work, mutations, workers=WORKERS)
        return _reports[name]

    return report


def pytest_terminal_summary(terminalreporter) -> None:
    if not _reports:
        return
    write = terminalreporter.write_line
    terminalreporter.section("fuzz outcomes (mutations per format, seed %d)" % SEED)
    header = f"{'format':<20}" + "".join(f"{c:>10}" for c in ("mutations", *OUTCOMES)) + f"{'seconds':>9}"
    write(header)
    for name, report in _reports.items():
        row = report.row()
        write(f"{name:<20}" + "".join(f"{row[c]:>10}" for c in ("mutations", *OUTCOMES))
              + f"{report.seconds:>9.1f}")
    write(f"wall time of the fuzz runs: {sum(r.seconds for r in _reports.values()):.1f} s "
          f"({time.strftime('%H:%M:%S')})")

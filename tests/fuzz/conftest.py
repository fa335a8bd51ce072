"""Fixtures of the fuzz tests: the originals, written once, and each format's fuzz run, done once.

Each run plans its mutations from ``--fuzz-seeds N`` seeds (default 3) drawn afresh,
so every CI run damages other bytes; ``H5STREAM_FUZZ_MUTATIONS`` mutations per seed
and format (default 100).  The seeds are printed at the end of the run with the
outcome table of every format, and each failing mutation names its seed: ``--fuzz-seed
S`` (repeated for several) replays those seeds exactly, as the originals are
byte-identical from run to run.  For a longer local run: ``pytest tests/fuzz
--fuzz-seeds 20 -m slow``.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from tests.fuzz._driver import OUTCOMES, FuzzReport, run_mutations
from tests.fuzz._formats import FORMATS, write_originals
from tests.fuzz._mutations import plan_mutations, plan_store_mutations

N_MUTATIONS = int(os.environ.get("H5STREAM_FUZZ_MUTATIONS", "100"))  # per seed and format
WORKERS = 2

_reports: dict[str, FuzzReport] = {}
_seeds: list[int] = []


def fuzz_seeds(config) -> list[int]:
    """The seeds of this run: those given with ``--fuzz-seed``, else ``--fuzz-seeds`` new ones (chosen once)."""
    if not _seeds:
        given = config.getoption("fuzz_seed") or []
        if given:
            _seeds.extend(given)
        else:
            _seeds.extend(secrets.randbits(32) for _ in range(max(1, config.getoption("fuzz_seeds"))))
    return _seeds


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
def fuzz_report(fuzz_originals, tmp_path_factory, request):
    """``fuzz_report(name)``: the outcomes of ``N_MUTATIONS`` mutations per seed of format ``name`` (run once)."""
    seeds = fuzz_seeds(request.config)

    def report(name: str) -> FuzzReport:
        if name not in _reports:
            fmt = FORMATS[name]
            target = fuzz_originals / fmt.root / fmt.target if fmt.target else fuzz_originals / fmt.root
            mutations = []
            for seed in seeds:
                plan = plan_store_mutations if fmt.store else plan_mutations
                mutations += plan(target, N_MUTATIONS, seed=seed, first_index=len(mutations))
            work = tmp_path_factory.mktemp(f"fuzz_{name}")
            _reports[name] = run_mutations(name, fuzz_originals, work, mutations, workers=WORKERS)
        return _reports[name]

    return report


def pytest_terminal_summary(terminalreporter) -> None:
    if not _reports:
        return
    write = terminalreporter.write_line
    seeds = " ".join(str(seed) for seed in _seeds)
    terminalreporter.section(f"fuzz outcomes ({N_MUTATIONS} mutations per seed and format, seeds {seeds})")
    header = f"{'format':<20}" + "".join(f"{c:>10}" for c in ("mutations", *OUTCOMES)) + f"{'seconds':>9}"
    write(header)
    for name, report in _reports.items():
        row = report.row()
        write(f"{name:<20}" + "".join(f"{row[c]:>10}" for c in ("mutations", *OUTCOMES))
              + f"{report.seconds:>9.1f}")
    write(f"wall time of the fuzz runs: {sum(r.seconds for r in _reports.values()):.1f} s "
          f"({time.strftime('%H:%M:%S')})")
    write("to rerun these mutations: pytest tests/fuzz -m slow " + " ".join(f"--fuzz-seed {s}" for s in _seeds))

"""A load that meets a concurrent save of the same folder dataset (Parquet, zarr) is never told the data are damaged.

A writer process saves two containers in turn to one path, as fast as it can; this
process loads the path about a hundred times meanwhile.  Every load returns one of the
two containers exactly, or says a save is in progress
(:class:`~h5scp.io.exceptions.IOSaveInProgressError`); none says "damaged; restore it
from a copy" (5 of 109 Parquet loads did before reads were pinned to one folder,
:mod:`h5stream.files.folder_reads`).
"""

from __future__ import annotations

import collections
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from h5scp import ScpContainer
from h5scp.io import IOSaveInProgressError, load, save
from h5scp.testing import assert_container_equal, example_container

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in [str(ROOT), *sys.path] if p)}
LOADS = 100

_WRITER = textwrap.dedent(
    """
    import json, sys
    from h5scp.io import load, save
    cs = [load(sys.argv[2]), load(sys.argv[3])]
    options = json.loads(sys.argv[4])
    print("start", flush=True)
    i = 0
    while True:
        save(cs[i % 2], sys.argv[1], overwrite=True, **options)
        i += 1
    """
)


def _outcomes(tmp_path: Path, suffix: str, options: dict) -> collections.Counter:
    import json

    a, b = tmp_path / "A.h5", tmp_path / "B.h5"
    save(example_container(n_samples=40, n_proteins=30, seed=1), a)
    save(example_container(n_samples=25, n_proteins=20, seed=2), b)
    path = tmp_path / f"c{suffix}"
    expected = []
    for source in (b, a):
        save(load(source), path, overwrite=True, **options)
        expected.append(load(path))
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(path), str(a), str(b), json.dumps(options)],
                            stdout=subprocess.PIPE, env=ENV)
    counts: collections.Counter = collections.Counter()
    try:
        assert proc.stdout.readline().strip() == b"start"
        for _ in range(LOADS):
            try:
                loaded = load(path)
            except IOSaveInProgressError as exc:
                assert "not damaged" in str(exc) and "restore" not in str(exc)
                counts["save in progress"] += 1
                continue
            except Exception as exc:  # noqa: BLE001 - every other error is counted and shown
                counts["damaged" if "restore it from a copy" in str(exc) else f"{type(exc).__name__}: {exc}"] += 1
                continue
            counts[_which(loaded, expected)] += 1
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
    return counts


def _which(loaded: ScpContainer, expected: list[ScpContainer]) -> str:
    for name, c in zip(("B", "A"), expected):
        try:
            assert_container_equal(loaded, c)
            return name
        except AssertionError:
            continue
    return "wrong values"


@pytest.mark.slow
@pytest.mark.parametrize("suffix, options", [(".parquet", {}), (".zarr", {"assay": "proteins"})])
def test_loads_during_a_looping_save_never_call_the_data_damaged(tmp_path, suffix, options):
    if suffix == ".zarr":
        pytest.importorskip("zarr")
    counts = _outcomes(tmp_path, suffix, options)
    print(f"{suffix}: {dict(counts)} over {LOADS} loads")
    assert sum(counts.values()) == LOADS
    assert set(counts) <= {"A", "B", "save in progress"}, counts
    assert counts["A"] + counts["B"] >= LOADS * 0.9, counts

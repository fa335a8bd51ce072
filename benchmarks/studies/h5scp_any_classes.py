"""Save and load time of one container held in upstream-shaped classes against the same in h5scp's own.

The upstream-shaped classes are the stand-in of tests/data/standin_scptensor (a slotted dataclass
``ScpMatrix``, a dataclass ``MatrixMetadata``: upstream ScpTensor's current shape). One container of
N samples x P proteins (float32 values with an int8 mask, a float64 layer, a CSR peptide layer,
history) is built in both; each round saves and loads it in each format, the two kinds interleaved
(ours first in even rounds), a fresh file each time; loads build the saving side's classes.  Prints
the minimum and median of each.  Run from the repository root:

    PYTHONPATH=src python -m benchmarks.studies.h5scp_any_classes [N P ROUNDS]
"""
from __future__ import annotations

import importlib.util
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl
from scipy import sparse

from h5scp.io import load, save
from h5scp.io.classes import OURS, ModelClasses, as_model

ROOT = Path(__file__).resolve().parents[2]


def _standin():
    spec = importlib.util.spec_from_file_location(
        "standin_upstream_structures", ROOT / "tests/data/standin_scptensor/scptensor/core/structures.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def build(up, n: int, p: int):
    rng = np.random.default_rng(0)
    X = rng.lognormal(size=(n, p)).astype(np.float32)
    missing = rng.random((n, p)) < 0.3
    X[missing] = np.nan
    M = np.where(missing, 2, 0).astype(np.int8)
    peptides = sparse.csr_matrix(np.where(rng.random((n, 2 * p)) < 0.1, rng.random((n, 2 * p)), 0.0))
    obs = pl.DataFrame({"_index": [f"s{i}" for i in range(n)], "batch": rng.choice(["a", "b"], n).tolist()})
    proteins = up.Assay(pl.DataFrame({"_index": [f"P{j}" for j in range(p)]}),
                        {"raw": up.ScpMatrix(X, M), "log": up.ScpMatrix(np.log2(np.nan_to_num(X, nan=1.0)).astype(np.float64))})
    peps = up.Assay(pl.DataFrame({"_index": [f"E{k}" for k in range(2 * p)]}), {"raw": up.ScpMatrix(peptides)})
    history = [up.ProvenanceLog("2026-04-01T00:00:00+00:00", "load", {"n": n}, "0.1.0", None)]
    return up.ScpContainer(obs, {"proteins": proteins, "peptides": peps}, [], history)


def main(n: int = 2000, p: int = 2000, rounds: int = 5) -> None:
    up = _standin()
    kinds = {"ours": (as_model(build(up, n, p)), OURS), "upstream-shaped": (build(up, n, p), ModelClasses.from_module(up))}
    times: dict[tuple[str, str, str], list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            order = list(kinds) if r % 2 == 0 else list(reversed(kinds))
            for ext in (".h5", ".h5mu", ".parquet"):
                for kind in order:
                    container, classes = kinds[kind]
                    path = Path(tmp) / f"{kind}-{r}{ext}"
                    t0 = time.perf_counter()
                    save(container, path)
                    t1 = time.perf_counter()
                    loaded = load(path, classes=classes)
                    t2 = time.perf_counter()
                    assert type(loaded) is classes.container
                    times.setdefault((ext, kind, "save"), []).append(t1 - t0)
                    times.setdefault((ext, kind, "load"), []).append(t2 - t1)
    print(f"{n} samples x {p} proteins (+ {2 * p} peptides CSR), {rounds} rounds, interleaved")
    for (ext, kind, what), values in sorted(times.items()):
        print(f"{ext:9s} {what:4s} {kind:16s} min {min(values):.3f} s  median {statistics.median(values):.3f} s")


if __name__ == "__main__":
    main(*map(int, sys.argv[1:]))

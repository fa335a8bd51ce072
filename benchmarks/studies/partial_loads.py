"""What a partial load saves: a few samples and features of one container, against the whole load, per format.

One container of N samples x P proteins (a float64 layer, 30% NaN, with an int8 mask)
is saved once per format uncompressed
(``.h5``, ``.h5ad``, ``.parquet`` long and wide, ``.zarr``); each is then loaded ROUNDS
times whole and ROUNDS times in part (K samples and K proteins, spread over the file;
and 137 samples drawn at random, every protein, by id and by mask: no selection may take
longer than the whole load), interleaved, pages cached.  Printed per format: the whole and
the partial load's minimum and median seconds and the ratio of the minima; for the zarr store also the
chunk files of X a load asks the store for (whole, the spread selection, and the first
K samples and proteins, which lie in one chunk) with the clustered load's times, and the
peer's figure:
``anndata.read_zarr`` of the store (anndata 0.12 reads a store whole) then
``adata[rows, cols]``.

Run from the repository root:

    PYTHONPATH=src python -m benchmarks.studies.partial_loads [N P K ROUNDS]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import polars as pl


def build(n: int, p: int):
    from h5scp import Assay, ScpContainer, ScpMatrix

    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, p))
    missing = rng.random((n, p)) < 0.3
    X[missing] = np.nan
    M = np.where(missing, 2, 0).astype(np.int8)
    obs = pl.DataFrame({"_index": [f"s{i}" for i in range(n)]})
    var = pl.DataFrame({"_index": [f"P{j}" for j in range(p)]})
    return ScpContainer(obs, {"proteins": Assay(var, {"raw": ScpMatrix(X, M)})})


def _timed(fn, rounds: int) -> list[float]:
    out = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def _line(name: str, whole: list[float], part: list[float]) -> str:
    return (f"{name:22s} whole min {min(whole):.4f} s median {statistics.median(whole):.4f} s | "
            f"partial min {min(part):.4f} s median {statistics.median(part):.4f} s | "
            f"partial / whole {min(part) / min(whole):.3f}")


def main(n: int = 4000, p: int = 2000, k: int = 10, rounds: int = 5) -> None:
    import h5scp
    from h5scp.io import _zarr_store
    from h5scp.io.classes import OURS

    c = build(n, p)
    samples = [f"s{i}" for i in np.linspace(0, n - 1, k).astype(int)]
    features = {"proteins": [f"P{j}" for j in np.linspace(0, p - 1, k).astype(int)]}
    drawn = np.sort(np.random.default_rng(1).choice(n, min(n, 137), replace=False))
    scattered, scattered_mask = [f"s{i}" for i in drawn], np.isin(np.arange(n), drawn)
    print(f"{n} samples x {p} proteins ({n * p * 8 / 1e6:.0f} MB of values); partial: {k} samples x {k} proteins")
    with tempfile.TemporaryDirectory(prefix="partial-loads-") as tmp:
        for name, options in (("c.h5", {}), ("c.h5ad", {}), ("c.parquet", {}),
                              ("wide.parquet", {"layout": "wide"}), ("c.zarr", {})):
            path = Path(tmp) / name
            if not name.endswith(".zarr"):  # (a zarr store is written uncompressed)
                options = {"compression": None, **options}
            h5scp.save(c, path, **options)
            whole, part, by_id, by_mask = [], [], [], []
            for _ in range(rounds):
                whole += _timed(lambda: h5scp.load(path, classes=OURS), 1)
                part += _timed(lambda: h5scp.load(path, samples=samples, features=features, classes=OURS), 1)
                by_id += _timed(lambda: h5scp.load(path, samples=scattered, classes=OURS), 1)
                by_mask += _timed(lambda: h5scp.load(path, samples=scattered_mask, classes=OURS), 1)
            print(_line(name, whole, part))
            print(_line(f"{name} 137 ids", whole, by_id))
            print(_line(f"{name} 137 mask", whole, by_mask))
        path = Path(tmp) / "c.zarr"
        asked: list[str] = []
        original = _zarr_store.StoreFiles.__getitem__

        def counting(self, key):
            if key.startswith("X/") and key.rpartition("/")[2] not in _zarr_store._METADATA:
                asked.append(key)
            return original(self, key)

        first = {"samples": [f"s{i}" for i in range(k)], "features": {"proteins": [f"P{j}" for j in range(k)]}}
        _zarr_store.StoreFiles.__getitem__ = counting
        try:
            counts = []
            for request in ({}, {"samples": samples, "features": features}, first):
                asked.clear()
                h5scp.load(path, classes=OURS, **request)
                counts.append(len(asked))
            print(f"zarr chunk files of X asked for: whole {counts[0]}, spread {counts[1]}, first {k} x {k} "
                  f"{counts[2]}")
        finally:
            _zarr_store.StoreFiles.__getitem__ = original
        whole = _timed(lambda: h5scp.load(path, classes=OURS), rounds)
        print(_line("c.zarr first", whole, _timed(lambda: h5scp.load(path, classes=OURS, **first), rounds)))
        try:
            import anndata
        except ImportError:
            return
        rows = [int(s[1:]) for s in samples]
        cols = [int(f[1:]) for f in features["proteins"]]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            peer = _timed(lambda: anndata.read_zarr(path)[rows, cols].X, rounds)
        print(f"{'anndata peer':14s} read_zarr + [rows, cols] min {min(peer):.4f} s median {statistics.median(peer):.4f} s")


if __name__ == "__main__":
    main(*(int(v) for v in sys.argv[1:5]))

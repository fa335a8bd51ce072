"""What scptensor keeps under uns/scptensor of a .h5ad and a .h5mu, against the obs and var frames.

A container of 5,000 samples and 2,000 proteins (float32 values, 30% NaN with an LOD mask), eight obs
columns and three var columns, saved by the scptensor on the import path; prints each file's size, the
stored bytes of its obs and var frames, and of each part of what is kept for them under
``uns/scptensor`` (the JSON schemas counted by their text). Run from the repository root:

    PYTHONPATH=src python -m benchmarks.studies.anndata_uns_size
"""
import datetime as dt
import os
import tempfile

import h5py
import numpy as np
import polars as pl

from h5scp import Assay, ScpContainer, ScpMatrix
from h5scp.io import save_h5ad, save_h5mu

rng = np.random.default_rng(0)
n, p = 5000, 2000
obs = pl.DataFrame({
    "_index": [f"sample_{i:05d}" for i in range(n)],
    "batch": rng.choice(["b1", "b2", "b3", "b4"], n).tolist(),
    "plate": pl.Series(rng.choice(["P1", "P2"], n).tolist(), dtype=pl.Categorical),
    "n_proteins": pl.Series(rng.integers(500, 3000, n), dtype=pl.Int32),
    "purity": rng.random(n),
    "run_date": pl.Series([dt.date(2024, 1, 1) + dt.timedelta(days=int(d)) for d in rng.integers(0, 300, n)]),
    "is_blank": rng.random(n) < 0.05,
    "note": [None if i % 7 else f"note {i}" for i in range(n)],
})
var = pl.DataFrame({"_index": [f"P{j:05d}" for j in range(p)],
                    "gene": [f"GENE{j}" for j in range(p)], "mw": rng.random(p) * 1e5})
X = rng.random((n, p)).astype(np.float32)
X[rng.random((n, p)) < 0.3] = np.nan
M = np.where(np.isnan(X), 2, 0).astype(np.int8)
c = ScpContainer(obs, {"proteins": Assay(var, {"raw": ScpMatrix(X, M)})})

def stored(g):
    total = 0
    def visit(_n, o):
        nonlocal total
        if isinstance(o, h5py.Dataset):
            total += o.id.get_storage_size()
    g.visititems(visit)
    return total

with tempfile.TemporaryDirectory() as d:
    for ext in (".h5ad", ".h5mu"):
        path = os.path.join(d, "c" + ext)
        (save_h5ad(c, path, assay="proteins") if ext == ".h5ad" else save_h5mu(c, path))
        with h5py.File(path) as f:
            uns = f["uns/scptensor"]
            parts = {k: stored(uns[k]) for k in ("frames", "fingerprints") if k in uns}
            if "schemas" in uns:  # JSON text in variable-length strings: count its bytes
                parts["schemas"] = sum(len(uns["schemas"][k][()]) for k in uns["schemas"])
            if ext == ".h5mu":
                mu = f["mod/proteins/uns/scptensor"]
                for k in ("frames", "fingerprints"):
                    if k in mu:
                        parts["mod/" + k] = stored(mu[k])
                if "schemas" in mu:
                    parts["mod/schemas"] = sum(len(mu["schemas"][k][()]) for k in mu["schemas"])
            obs_var = stored(f["obs"]) + stored(f["var"] if ext == ".h5ad" else f["mod/proteins/var"])
        print(f"{ext}: file {os.path.getsize(path):,} B; obs+var frames {obs_var:,} B; records {parts} "
              f"(sum {sum(parts.values()):,} B)")

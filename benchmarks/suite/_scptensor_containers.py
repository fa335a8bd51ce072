"""The containers the scptensor benchmark saves: planted values, made the same way in every process.

:func:`make_arrays` and :func:`make_obs` plant the matrices and the obs frame of the large container
(log-normal proteins with 30% missing and an LOD mask, CSR peptides at a given density, eight mixed obs
columns); :func:`build_container` makes the :class:`~h5scp.ScpContainer` of them (also in the fresh process
that measures a save's peak memory) and :func:`container_nbytes` its size in memory.
:func:`make_float64_container`: the float64 container of the rows against the original writer.  Only
h5scp's public API is used.
"""

from __future__ import annotations

import numpy as np
import polars as pl
from scipy import sparse


def make_arrays(n_samples: int, n_proteins: int, n_peptides: int, density: float, seed: int = 0) -> dict:
    """Planted matrices: log-normal proteins with 30% missing (LOD in the mask), CSR peptides."""
    rng = np.random.default_rng(seed)
    x = rng.lognormal(mean=2.0, sigma=1.0, size=(n_samples, n_proteins)).astype(np.float32)
    missing = rng.random((n_samples, n_proteins), dtype=np.float32) < 0.3
    x[missing] = np.nan
    m = missing.astype(np.int8) * np.int8(2)
    del missing
    indptr = np.zeros(n_samples + 1, dtype=np.int64)
    indices_parts, block = [], max(1, 4_000_000 // max(n_peptides, 1))
    for start in range(0, n_samples, block):
        hit = rng.random((min(block, n_samples - start), n_peptides), dtype=np.float32) < density
        rows, cols = np.nonzero(hit)
        indptr[start + 1 : start + 1 + hit.shape[0]] = np.bincount(rows, minlength=hit.shape[0])
        indices_parts.append(cols.astype(np.int32))
    indptr = np.cumsum(indptr).astype(np.int64)
    indices = np.concatenate(indices_parts)
    data = rng.lognormal(size=indices.size).astype(np.float32)
    return {"x": x, "m": m, "data": data, "indices": indices, "indptr": indptr, "n_peptides": n_peptides}


def make_obs(n_samples: int, seed: int = 1) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    return pl.DataFrame(
        {
            "_index": [f"cell_{i:06d}" for i in range(n_samples)],
            "batch": [f"batch_{i % 12}" for i in range(n_samples)],
            "cell_type": pl.Series([["T", "B", "NK", "Mono"][i % 4] for i in range(n_samples)], dtype=pl.Categorical),
            "n_proteins": rng.integers(100, 5000, n_samples).astype(np.int64),
            "plate_row": rng.integers(0, 16, n_samples).astype(np.int32),
            "intensity": rng.lognormal(size=n_samples),
            "purity": rng.random(n_samples).astype(np.float32),
            "is_blank": rng.random(n_samples) < 0.02,
        }
    )


def build_container(arrays: dict, obs: pl.DataFrame):
    from h5scp import Assay, ScpContainer, ScpMatrix

    n_samples, n_proteins = arrays["x"].shape
    csr = sparse.csr_matrix(
        (arrays["data"], arrays["indices"], arrays["indptr"]), shape=(n_samples, arrays["n_peptides"])
    )
    proteins = Assay(
        pl.DataFrame({"_index": [f"P{j:05d}" for j in range(n_proteins)]}),
        {"raw": ScpMatrix(arrays["x"], arrays["m"])},
    )
    peptides = Assay(
        pl.DataFrame({"_index": [f"PEP{k:06d}" for k in range(csr.shape[1])]}),
        {"raw": ScpMatrix(csr)},
    )
    return ScpContainer(obs, {"proteins": proteins, "peptides": peptides})


def container_nbytes(container) -> int:
    total = container.obs.estimated_size()
    for assay in container.assays.values():
        total += assay.var.estimated_size()
        for matrix in assay.layers.values():
            for part in (matrix.X, matrix.M):
                if part is None:
                    continue
                if sparse.issparse(part):
                    total += part.data.nbytes + part.indices.nbytes + part.indptr.nbytes
                else:
                    total += part.nbytes
    return total


def make_float64_container(n_samples: int, n_proteins: int, seed: int = 0):
    """Log-normal float64 proteins with 30% NaN (LOD in an int8 mask) and the 8 obs columns."""
    from h5scp import Assay, ScpContainer, ScpMatrix

    rng = np.random.default_rng(seed)
    x = rng.lognormal(mean=2.0, sigma=1.0, size=(n_samples, n_proteins))
    missing = rng.random((n_samples, n_proteins)) < 0.3
    x[missing] = np.nan
    m = missing.astype(np.int8) * np.int8(2)
    proteins = Assay(pl.DataFrame({"_index": [f"P{j:05d}" for j in range(n_proteins)]}), {"raw": ScpMatrix(x, m)})
    return ScpContainer(make_obs(n_samples), {"proteins": proteins})

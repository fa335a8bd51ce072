"""The peer of the scptensor benchmark's rows against the original ScpTensor writer.

The original ``save_hdf5`` settings reproduced with plain h5py (dense X cast to
float32 at gzip 4, the mask as uncompressed float32, one dataset per obs and var
column, sparse parts at gzip 4, no fsync), and a reader that loads every dataset
of such a file.  Used by :mod:`benchmarks.suite.bench_scptensor`, which re-exports both.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
from scipy import sparse

__all__ = ["original_writer_save", "original_writer_load"]


def _h5py_column(series: pl.Series) -> np.ndarray:
    import h5py

    if series.dtype == pl.String or isinstance(series.dtype, (pl.Categorical, pl.Enum)):
        return np.array(series.cast(pl.String).to_list(), dtype=h5py.string_dtype())
    return series.to_numpy()


def original_writer_save(container, path: Path) -> None:
    """The original ``save_hdf5`` settings with plain h5py: float32 X at gzip 4, float32 mask, no fsync."""
    import h5py

    with h5py.File(path, "w") as f:
        f.attrs["format_version"] = "1.0"
        obs = f.create_group("obs")
        for name in container.obs.columns:
            obs.create_dataset(name, data=_h5py_column(container.obs.get_column(name)))
        for assay_name, assay in container.assays.items():
            group = f.create_group(f"assays/{assay_name}")
            var = group.create_group("var")
            for name in assay.var.columns:
                var.create_dataset(name, data=_h5py_column(assay.var.get_column(name)))
            for layer_name, matrix in assay.layers.items():
                layer = group.create_group(f"layers/{layer_name}")
                if sparse.issparse(matrix.X):
                    X = matrix.X.tocsr()
                    for part, values in (("data", X.data.astype(np.float32)), ("indices", X.indices),
                                         ("indptr", X.indptr)):
                        layer.create_dataset(f"X_{part}", data=values, compression="gzip", compression_opts=4)
                    layer.attrs["X_format"] = "csr"
                    layer.attrs["X_shape"] = X.shape
                else:
                    layer.create_dataset("X", data=matrix.X.astype(np.float32), compression="gzip",
                                         compression_opts=4)
                if matrix.M is not None:
                    M = matrix.M.toarray() if sparse.issparse(matrix.M) else matrix.M
                    layer.create_dataset("M", data=M.astype(np.float32))


def original_writer_load(path: Path) -> dict:
    """Every dataset of an original-layout file, read with h5py."""
    import h5py

    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return out

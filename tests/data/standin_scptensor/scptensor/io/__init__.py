"""The stand-in's I/O: like upstream's today, it imports tables and saves nothing."""

from __future__ import annotations

import numpy as np
import polars as pl

from scptensor.core.structures import Assay, ScpContainer, ScpMatrix

__all__ = ["load_matrix_table"]


def load_matrix_table(path) -> ScpContainer:
    """A container of one assay ``proteins`` from a TSV of samples (rows, first column their ids) x proteins."""
    frame = pl.read_csv(path, separator="\t")
    ids = frame.columns[0]
    X = frame.drop(ids).to_numpy().astype(np.float64)
    var = pl.DataFrame({"_index": frame.columns[1:]})
    return ScpContainer(frame.select(pl.col(ids).alias("_index")), {"proteins": Assay(var, {"raw": ScpMatrix(X)})})

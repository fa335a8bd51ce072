"""Which samples a filter keeps: ids, or a boolean polars expression on ``obs`` (the stand-in's criteria)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl


@dataclass(frozen=True)
class FilterCriteria:
    ids: tuple | None = None
    expression: pl.Expr | None = None

    def positions(self, frame: pl.DataFrame, id_col: str) -> np.ndarray:
        if self.expression is not None:
            return np.flatnonzero(frame.select(self.expression).to_series().fill_null(False).to_numpy())
        where = {v: i for i, v in enumerate(frame.get_column(id_col).to_list())}
        return np.array([where[v] for v in self.ids], dtype=np.intp)

"""Two steps of the kind upstream's toolkit runs, reading and writing the data model's attributes."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from scptensor.core.structures import MatrixMetadata, ScpMatrix


def log_transform(container, assay_name: str, source_layer: str, new_layer_name: str, base: float = 2.0):
    matrix = container.assays[assay_name].layers[source_layer]
    X = matrix.X.toarray() if sp.issparse(matrix.X) else matrix.X
    values = np.log(np.where(X > 0, X, np.nan) + 1.0) / np.log(base)
    container.assays[assay_name].layers[new_layer_name] = ScpMatrix(
        values, matrix.M, MatrixMetadata(creation_info={"source": source_layer, "base": base}))
    container.log_operation("log_transform", {"assay": assay_name, "base": base})
    container.validate()
    return container

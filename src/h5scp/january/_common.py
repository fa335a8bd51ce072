"""What the original ScpTensor's interchange files share: the atomic write, the history as JSON and
the choice of one assay's layer (:mod:`h5scp.january.csv_npz`, :mod:`h5scp.january.scanpy_h5ad`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse as sp

from h5stream.errors import H5StreamError
from h5stream.files import write_bytes_atomic
from h5scp.core.exceptions import AssayNotFoundError, LayerNotFoundError, ValidationError
from h5scp.core.structures import ProvenanceLog, ScpContainer


def _write(path: Path, data: bytes) -> None:
    from h5scp.io.exceptions import translate_engine_error  # the formats load on first use

    try:
        write_bytes_atomic(path, data, overwrite=True)
    except H5StreamError as exc:
        raise translate_engine_error(exc) from exc


def _plain(value: Any) -> Any:
    """JSON default: numpy values as Python ones, anything else as its text (as the original did)."""
    if isinstance(value, (np.ndarray, np.generic)):
        return value.tolist()
    return str(value)


def _history_to_json(history) -> list[dict]:
    return [
        {"timestamp": e.timestamp, "action": e.action, "params": e.params,
         "software_version": e.software_version, "description": e.description}
        for e in history
    ]


def _history_from_json(entries, path, params_from=lambda p: p if isinstance(p, dict) else {}) -> list[ProvenanceLog]:
    out = []
    for i, e in enumerate(entries or []):
        if not isinstance(e, dict) or "timestamp" not in e or "action" not in e:
            raise ValidationError(
                "history entry lacks timestamp or action", obj=f"{path} history[{i}]",
                expected="an object with 'timestamp' and 'action'", found=repr(e)[:80],
            )
        out.append(ProvenanceLog(str(e["timestamp"]), str(e["action"]), params_from(e.get("params")),
                                 e.get("software_version"), e.get("description")))
    return out


def _pick(container: ScpContainer, assay_name: str | None, layer_name: str):
    if assay_name is None:
        if not container.assays:
            raise ValidationError("Container has no assays", field="assay_name", expected="at least one assay")
        assay_name = next(iter(container.assays))
    elif assay_name not in container.assays:
        raise AssayNotFoundError(assay_name, available_assays=list(container.assays))
    assay = container.assays[assay_name]
    if layer_name not in assay.layers:
        raise LayerNotFoundError(layer_name, assay_name, available_layers=list(assay.layers))
    return assay_name, assay, assay.layers[layer_name]


def _dense(matrix) -> np.ndarray:
    return matrix.toarray() if sp.issparse(matrix) else np.asarray(matrix)

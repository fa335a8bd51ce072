"""Write tests/data/scptensor_legacy_v1.h5: a small file in the original scptensor "1.0" layout.

The layout is the one the first ``save_hdf5`` wrote: root attributes
``format_version``, ``scptensor_version``, ``creation_time``; one dataset per
column under ``/obs`` and ``/assays/<a>/var``; layers with a dense float32 ``X``
or CSR parts ``X_data``/``X_indices``/``X_indptr`` with group attributes
``X_format``/``X_shape``; masks the same way (dense masks as float32); and
``/provenance/history`` as parallel string datasets with JSON params.

Run from the repository root: ``python tests/data/make_scptensor_legacy_v1.py``.
The values are planted; tests/integration/test_scptensor_legacy.py states them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import numpy as np

TARGET = Path(__file__).with_name("scptensor_legacy_v1.h5")
STR = h5py.string_dtype(encoding="utf-8")


def _columns(group: h5py.Group, columns: dict) -> None:
    for name, values in columns.items():
        values = np.asarray(values)
        dtype = STR if values.dtype.kind == "U" else None
        group.create_dataset(name, data=values.astype(object) if dtype else values, dtype=dtype)


def _csr(group: h5py.Group, name: str, dense: np.ndarray) -> None:
    rows, cols = np.nonzero(dense)
    data = dense[rows, cols]
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=dense.shape[0]))])
    group.create_dataset(f"{name}_data", data=data)
    group.create_dataset(f"{name}_indices", data=cols.astype(np.int32))
    group.create_dataset(f"{name}_indptr", data=indptr.astype(np.int32))
    group.attrs[f"{name}_format"] = "csr"
    group.attrs[f"{name}_shape"] = dense.shape


def main() -> None:
    if TARGET.exists():
        os.unlink(TARGET)
    with h5py.File(TARGET, "x") as f:
        f.attrs["format_version"] = "1.0"
        f.attrs["scptensor_version"] = "0.1.0"
        f.attrs["creation_time"] = "2025-11-03T10:15:00"

        _columns(
            f.create_group("obs"),
            {
                "_index": ["S1", "S2", "S3", "S4"],
                "batch": ["B1", "B1", "B2", "B2"],
                "n_cells": np.array([1, 1, 2, 1], dtype=np.int64),
                "purity": np.array([0.9, 0.85, 0.7, 1.0]),
            },
        )
        assays = f.create_group("assays")

        proteins = assays.create_group("proteins")
        _columns(
            proteins.create_group("var"),
            {"_index": ["P1", "P2", "P3"], "gene": ["ALB", "ACTB", "GAPDH"]},
        )
        layers = proteins.create_group("layers")
        raw = layers.create_group("raw")
        x_raw = np.array(
            [[1.5, np.nan, 3.25], [2.0, 4.0, np.nan], [0.5, 1.0, 2.0], [np.nan, 8.0, 16.0]],
            dtype=np.float32,
        )
        raw.create_dataset("X", data=x_raw, compression="gzip", compression_opts=4)
        m_raw = np.array([[0, 2, 0], [0, 0, 1], [5, 0, 0], [3, 0, 6]], dtype=np.float32)
        raw.create_dataset("M", data=m_raw)
        log = layers.create_group("log")
        log.create_dataset("X", data=np.log2(np.nan_to_num(x_raw, nan=1.0)).astype(np.float32))

        peptides = assays.create_group("peptides")
        _columns(
            peptides.create_group("var"),
            {"_index": ["PEP1", "PEP2", "PEP3", "PEP4", "PEP5"], "protein": ["P1", "P1", "P2", "P3", "P3"]},
        )
        praw = peptides.create_group("layers").create_group("raw")
        x_pep = np.array(
            [[1, 0, 0, 2, 0], [0, 0, 3, 0, 0], [0, 4, 0, 0, 5], [0, 0, 0, 0, 0]], dtype=np.float32
        )
        _csr(praw, "X", x_pep)
        m_pep = np.array(
            [[0, 0, 0, 0, 2], [0, 0, 0, 0, 0], [1, 0, 0, 0, 0], [0, 0, 0, 4, 0]], dtype=np.int8
        )
        _csr(praw, "M", m_pep)

        history = f.create_group("provenance").create_group("history")
        entries = [
            ("2025-11-03T10:00:00", "load_data", {"source": "run1.tsv", "n": 4}, "0.1.0", "Load raw"),
            ("2025-11-03T10:05:00", "log_transform", {"base": 2, "offset": 1.0}, "0.1.0", ""),
        ]
        for i, field in enumerate(("timestamp", "action", "params", "software_version", "description")):
            values = [json.dumps(e[i]) if field == "params" else e[i] for e in entries]
            history.create_dataset(field, data=np.array(values, dtype=object), dtype=STR)


if __name__ == "__main__":
    main()
    print(f"wrote {TARGET}")

"""A user script written for the original ScpTensor runs unchanged and gives its results.

The expected reprs, summaries, ids, masks and history entries below were produced by running
this same script against the original's own ``scptensor.core`` and ``scptensor.io`` (commit
7f8a443). One difference is on purpose: the original's ``save_hdf5`` stored float64 values
as float32 (in this script its loaded values differed from the saved ones by up to 5e-8 relative); ours
loads them back exactly.
"""

from __future__ import annotations

import numpy as np
import polars as pl

ORIGINAL_IDS = ["cell_0", "cell_2", "cell_3", "cell_4", "cell_6", "cell_7"]
ORIGINAL_SUMMARY = "ScpContainer with 6 samples\nAssays: 1\n  - proteins: 3 features, 2 layers"
ORIGINAL_HISTORY = [
    ("filter_samples", {"n_samples_kept": 6, "n_samples_original": 8, "kept_sample_ids": ORIGINAL_IDS},
     "Filtered to 6/8 samples"),
    ("filter_features", {"assay_name": "proteins", "n_features_kept": 3, "n_features_original": 5,
                         "kept_feature_ids": ["P0", "P2", "P4"]}, "Filtered assay 'proteins' to 3/5 features"),
]
ORIGINAL_MASK = [[0, 0, 0], [0, 1, 0], [0, 0, 0], [0, 0, 0], [2, 0, 0], [0, 0, 0]]


def test_original_style_script(tmp_path):
    # ---- the user's script, as written for the original
    from scptensor.core import Assay, MaskCode, ScpContainer, ScpMatrix
    from scptensor.io import load_hdf5, save_hdf5

    rng = np.random.default_rng(2024)
    obs = pl.DataFrame({"_index": [f"cell_{i}" for i in range(8)], "batch": ["b1"] * 4 + ["b2"] * 4,
                        "n_detected": [120, 80, 150, 95, 130, 60, 140, 110]})
    var = pl.DataFrame({"_index": [f"P{j}" for j in range(5)], "gene": ["ALB", "APOA1", "TTR", "HP", "FGB"]})
    X = rng.random((8, 5)) * 10
    M = np.zeros((8, 5), dtype=np.int8)
    M[2, 2] = MaskCode.MBR
    M[6, 0] = MaskCode.LOD
    M[3, 1] = MaskCode.IMPUTED
    container = ScpContainer(obs=obs)
    assay = Assay(var=var)
    assay.add_layer("raw", ScpMatrix(X=X, M=M))
    assay.add_layer("log", ScpMatrix(X=np.log2(X + 1)))
    container = container.add_assay("proteins", assay)
    kept = container.filter_samples(pl.col("n_detected") > 90)
    kept = kept.filter_features("proteins", ["P0", "P2", "P4"])
    snapshot = kept.copy()
    kept.assays["proteins"].layers["raw"].X[0, 0] = -1.0
    print(snapshot.summary())
    save_hdf5(snapshot, tmp_path / "kept.h5")
    loaded = load_hdf5(tmp_path / "kept.h5")

    # ---- the original's results
    rows, cols = [0, 2, 3, 4, 6, 7], [0, 2, 4]
    assert repr(kept) == "<ScpContainer n_samples=6, assays=[proteins(3)]>"
    assert snapshot.summary() == ORIGINAL_SUMMARY and loaded.summary() == ORIGINAL_SUMMARY
    assert snapshot.shape == (6, 3) and snapshot.list_layers("proteins") == ["raw", "log"]
    assert snapshot.sample_ids.to_list() == ORIGINAL_IDS
    assert snapshot.assays["proteins"].feature_ids.to_list() == ["P0", "P2", "P4"]
    raw = snapshot.assays["proteins"].layers["raw"]
    assert np.array_equal(raw.X, X[np.ix_(rows, cols)])  # copy() is independent of `kept`
    assert raw.get_m().tolist() == ORIGINAL_MASK
    assert np.array_equal(snapshot.assays["proteins"].layers["log"].X, np.log2(X + 1)[np.ix_(rows, cols)])
    assert [(h.action, h.params, h.description) for h in snapshot.history] == ORIGINAL_HISTORY
    assert loaded.obs.to_dict(as_series=False) == {
        "_index": ORIGINAL_IDS, "batch": ["b1", "b1", "b1", "b2", "b2", "b2"],
        "n_detected": [120, 150, 95, 130, 140, 110]}
    assert loaded.assays["proteins"].layers["raw"].get_m().tolist() == ORIGINAL_MASK
    assert [(h.action, h.description) for h in loaded.history] == [(a, d) for a, _, d in ORIGINAL_HISTORY]
    loaded_raw = loaded.assays["proteins"].layers["raw"].X
    assert loaded_raw.dtype == np.float64 and np.array_equal(loaded_raw, X[np.ix_(rows, cols)])

"""Against upstream ScpTensor itself: its pipeline's container saved by h5scp, loaded into its classes, its toolkit run.

Not part of the test suite: upstream is not on the package index and needs Python 3.12 (the suite
uses the stand-in of tests/data/standin_scptensor).  With a checkout of upstream (wenjiudaijiugui/
ScpTensor, checked at 5cb0e9b) in UPSTREAM and this project built for that Python:

    PYTHONPATH=UPSTREAM:src python3.12 tests/manual/check_against_upstream.py

builds a peptide container with upstream's classes, runs aggregate_to_protein, log_transform and
norm_median, then for .h5, .h5mu and .parquet: saves with h5scp.save, loads with h5scp.load (into
upstream's classes, found as the installed scptensor), checks the load equals the container exactly,
runs upstream's validate, impute_row_median and log_transform on it; then the plans' call style
(save_hdf5/load_hdf5 from scptensor.io after h5scp.enable_scptensor_io()) and one assay as .h5ad.
"""
import sys, tempfile, time
from pathlib import Path
import numpy as np, polars as pl
import h5scp
import scptensor
from scptensor.core.structures import Assay, ScpContainer, ScpMatrix, MatrixMetadata
from scptensor.aggregation import aggregate_to_protein
from scptensor.transformation.log_transform import log_transform
from scptensor.normalization.median_normalization import norm_median
from scptensor.impute.baseline import impute_row_median
from h5scp.io.classes import as_model
from h5scp.testing import assert_container_equal

rng = np.random.default_rng(3)
n, q = 12, 40
obs = pl.DataFrame({"_index": [f"run{i}" for i in range(n)], "batch": ["a", "b"] * (n // 2)})
var = pl.DataFrame({"_index": [f"PEP{k}" for k in range(q)], "Protein.Group": [f"P{k % 10}" for k in range(q)]})
X = rng.lognormal(8, 1, size=(n, q))
X[rng.random((n, q)) < 0.2] = np.nan
M = np.where(np.isnan(X), 2, 0).astype(np.int8)
c = ScpContainer(obs, {"peptides": Assay(var, {"raw": ScpMatrix(X, M)})})
c = aggregate_to_protein(c, source_assay="peptides", target_assay="proteins", protein_column="Protein.Group")
c = log_transform(c, assay_name="proteins", source_layer="raw", new_layer_name="log")
c = norm_median(c, assay_name="proteins", source_layer="log", new_layer_name="norm")
print("upstream", scptensor.__file__, "assays", {k: list(a.layers) for k, a in c.assays.items()},
      "links", len(c.links), "history", [h.action for h in c.history])
h5scp.enable_scptensor_io()
from scptensor.io import save_hdf5, load_hdf5
with tempfile.TemporaryDirectory() as tmp:
    for ext in (".h5", ".h5mu", ".parquet"):
        path = Path(tmp) / f"c{ext}"
        t0 = time.perf_counter(); h5scp.save(c, path); t1 = time.perf_counter()
        again = h5scp.load(path); t2 = time.perf_counter()
        assert type(again) is ScpContainer, type(again)
        assert_container_equal(as_model(again), as_model(c))
        again.validate()
        out = impute_row_median(again, assay_name="proteins", source_layer="norm")
        out = log_transform(out, assay_name="proteins", source_layer="raw", new_layer_name="log2")
        print(ext, "exact; toolkit ran on the loaded container:", list(out.assays["proteins"].layers),
              f"save {t1 - t0:.3f} s load {t2 - t1:.3f} s")
    save_hdf5(c, Path(tmp) / "plans.h5")
    assert_container_equal(as_model(load_hdf5(Path(tmp) / "plans.h5")), as_model(c))
    one = h5scp.io.save_h5ad(c, Path(tmp) / "p.h5ad", assay="proteins")
    back = h5scp.load(one)
    assert type(back) is ScpContainer and list(back.assays) == ["proteins"]
    print("plans' call style and .h5ad: ok")

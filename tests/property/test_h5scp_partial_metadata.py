"""A partial load equals the same selection made in memory, in every format: X, M and every metadata
value with a sample axis are cut; values of one entry per feature and values without axes are kept;
a value whose axes cannot be told (one per sample of a square matrix) is kept whole with a warning.
(``.zarr`` stores load whole only.)"""

from __future__ import annotations

import warnings

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import h5scp
from h5scp import Assay, ScpContainer, ScpMatrix
from h5scp.core.structures import MatrixMetadata
from h5scp.io.classes import OURS
from h5scp.io.exceptions import MetadataKeptWholeWarning

# a .zarr store loads whole (load refuses samples= with a ValueError naming the store)
FORMATS = [".h5", ".h5mu", ".h5ad", ".parquet"]


def _container(n_samples: int, n_features: int, seed: int) -> ScpContainer:
    rng = np.random.default_rng(seed)
    shape = (n_samples, n_features)
    X = rng.normal(size=shape)
    M = rng.integers(0, 3, size=shape).astype(np.int8)
    meta = MatrixMetadata(
        confidence_scores=rng.random(shape),
        detection_limits=rng.random(shape).astype(np.float32),
        creation_info={"method": "knn", "k": 3},
        per_sample_depth=rng.random(n_samples),
        per_feature_lod=rng.random(n_features),
    )
    obs = pl.DataFrame({"_index": [f"s{i}" for i in range(n_samples)]})
    var = pl.DataFrame({"_index": [f"P{i}" for i in range(n_features)]})
    return ScpContainer(obs, {"p": Assay(var, {"raw": ScpMatrix(X, M, meta)})})


def _expected(c: ScpContainer, positions: np.ndarray) -> dict:
    """The selection made in memory by hand: which values hold a sample axis is known here."""
    m = c.assays["p"].layers["raw"]
    n_samples, n_features = m.X.shape
    meta = dict(m.metadata)
    out = {key: meta[key][positions] for key in ("confidence_scores", "detection_limits")}
    out["creation_info"] = meta["creation_info"]
    out["per_feature_lod"] = meta["per_feature_lod"]
    # every sample in the saved order cuts nothing, so nothing is kept whole either
    square = n_samples == n_features and positions.tolist() != list(range(n_samples))
    out["per_sample_depth"] = meta["per_sample_depth"] if square else meta["per_sample_depth"][positions]
    return {"X": m.X[positions], "M": m.M[positions], "metadata": out, "warned": square}


def _check(tmp, suffix: str, c: ScpContainer, positions: np.ndarray) -> None:
    path = tmp / f"c{suffix}"
    h5scp.save(c, path, overwrite=True, **({"assay": "p"} if suffix == ".h5ad" else {}))
    ids = [f"s{i}" for i in positions]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        part = h5scp.load(path, samples=ids, classes=OURS)
    want = _expected(c, positions)
    got = part.assays["p"].layers["raw"]
    assert part.obs.get_column("_index").to_list() == ids
    np.testing.assert_array_equal(got.X, want["X"])
    np.testing.assert_array_equal(got.M, want["M"])
    assert sorted(got.metadata) == sorted(want["metadata"]), suffix
    for key, value in want["metadata"].items():
        if isinstance(value, np.ndarray):
            assert got.metadata[key].dtype == value.dtype, (suffix, key)
            np.testing.assert_array_equal(got.metadata[key], value, err_msg=f"{suffix} {key}")
        else:
            assert got.metadata[key] == value, (suffix, key)
    kept_whole = [w for w in caught if issubclass(w.category, MetadataKeptWholeWarning)]
    others = [w for w in caught if not issubclass(w.category, MetadataKeptWholeWarning)]
    assert not others, [str(w.message) for w in others]
    if want["warned"]:
        assert len(kept_whole) == 1 and "per_sample_depth" in str(kept_whole[0].message), suffix
    else:
        assert not kept_whole, suffix


@pytest.mark.parametrize("suffix", FORMATS)
def test_detection_limits_of_the_requested_samples(tmp_path, suffix):
    """The reported case: row 0 of the loaded detection_limits is the requested sample's row."""
    c = _container(5, 3, seed=1)
    _check(tmp_path, suffix, c, np.array([3, 0]))


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), n_samples=st.integers(1, 6), n_features=st.integers(1, 6), seed=st.integers(0, 2**16))
def test_a_partial_load_equals_the_selection_in_memory(tmp_path, data, n_samples, n_features, seed):
    c = _container(n_samples, n_features, seed)
    positions = np.array(data.draw(st.lists(st.integers(0, n_samples - 1), min_size=1, max_size=n_samples,
                                            unique=True)))
    for suffix in FORMATS:
        _check(tmp_path, suffix, c, positions)

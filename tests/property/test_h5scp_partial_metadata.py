"""One rule for a selection: a partial load equals the whole load cut by the data model's own
``filter_samples`` and ``filter_features``, in every format (``.h5``, ``.h5mu``, ``.h5ad``, ``.parquet``
long and wide, ``.zarr``), for ``samples=``, ``features=`` and both: obs, var, X, M, matrix metadata and
links equal (the history aside: a load records no filter), and the same metadata named as kept whole.

Beside that, the values are checked against the selection made in memory on the saved container and,
for the matrix metadata, against the rule's naive twin (the samples cut first, then the features, each
reading the shape then): values of X's shape are cut on both axes, one value per sample by the samples,
one value (or row) per feature by the features; a value whose axes cannot be told (a first axis that is
neither, or one per sample or feature of a square matrix) is kept whole and named in a
``MetadataKeptWholeWarning``, once per layer by a load.  A MuData modality lacking some samples gives every layer a mask in a partial load
as in the whole load, whichever samples are read.
"""

from __future__ import annotations

import importlib.util
import re
import warnings

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal
from scipy import sparse

import h5scp
from h5scp import Assay, ScpContainer, ScpMatrix
from h5scp.core.structures import AggregationLink, MatrixMetadata
from h5scp.io.classes import OURS
from h5scp.io.exceptions import MetadataKeptWholeWarning
from h5scp.testing import assert_container_equal

ad = pytest.importorskip("anndata")
md = pytest.importorskip("mudata")
pd = pytest.importorskip("pandas")

# (file name, save options): .h5ad and .zarr hold one assay ("prot"); .zarr needs the zarr extra
FORMATS = [("c.h5", {}), ("c.h5mu", {}), ("c.h5ad", {"assay": "prot"}), ("c.parquet", {}),
           ("wide.parquet", {"layout": "wide"})]
if importlib.util.find_spec("zarr") is not None:
    FORMATS.append(("c.zarr", {"assay": "prot"}))
ONE_ASSAY = ("c.h5ad", "c.zarr")
ODD = 7  # a metadata axis longer than any sample or feature axis drawn: never one of them


def _layers(rng, n: int, f: int) -> dict:
    shape = (n, f)
    meta = MatrixMetadata(
        confidence_scores=rng.random(shape),
        detection_limits=rng.random(shape).astype(np.float32),
        creation_info={"method": "knn", "k": 3},
        per_sample_depth=rng.random(n),
        per_feature_lod=rng.random(f),
        per_feature_range=rng.random((f, ODD)),  # never X's shape
        odd_axis=rng.random(ODD),
    )
    X = rng.normal(size=shape)
    M = rng.integers(0, 3, size=shape).astype(np.int8)
    values = sparse.random(n, f, density=0.5, random_state=int(rng.integers(2**31)), format="csr")
    codes = sparse.csc_matrix((rng.integers(1, 3, size=values.nnz).astype(np.int8),
                               values.tocsc().indices, values.tocsc().indptr), shape=shape)
    return {"raw": ScpMatrix(X, M, meta), "csr": ScpMatrix(values), "csc": ScpMatrix(values.tocsc(), codes)}


def _container(n: int, n_pep: int, n_prot: int, seed: int) -> ScpContainer:
    rng = np.random.default_rng(seed)
    obs = pl.DataFrame({"_index": [f"s{i}" for i in range(n)], "batch": rng.integers(0, 3, n)})
    pep_ids, prot_ids = [f"e{i}" for i in range(n_pep)], [f"P{i}" for i in range(n_prot)]
    pep = Assay(pl.DataFrame({"_index": pep_ids, "charge": rng.integers(1, 4, n_pep)}), _layers(rng, n, n_pep))
    prot = Assay(pl.DataFrame({"_index": prot_ids, "gene": [f"G{i}" for i in range(n_prot)]}),
                 _layers(rng, n, n_prot))
    links = [
        AggregationLink("pep", "prot", pl.DataFrame({"source_id": pep_ids,
                                                     "target_id": [prot_ids[i % n_prot] for i in range(n_pep)]})),
        # isoforms to their canonical protein: a link inside one assay (kept by .h5ad and .zarr too)
        AggregationLink("prot", "prot", pl.DataFrame({"source_id": prot_ids, "target_id": prot_ids[::-1]})),
    ]
    return ScpContainer(obs, {"pep": pep, "prot": prot}, links=links)


def _positions(selection, ids: list) -> np.ndarray | None:
    if selection is None:
        return None
    if isinstance(selection, np.ndarray):
        return np.flatnonzero(selection)
    return np.array([ids.index(v) for v in selection], dtype=np.int64)


def _in_memory(c: ScpContainer, samples, features: dict) -> ScpContainer:
    """The same selection made by the data model in memory."""
    if samples is not None:
        c = c.filter_samples(boolean_mask=samples) if isinstance(samples, np.ndarray) else c.filter_samples(samples)
    for name, chosen in features.items():
        c = (c.filter_features(name, boolean_mask=chosen) if isinstance(chosen, np.ndarray)
             else c.filter_features(name, chosen))
    return c


def _cut(value, rows, cols):
    if rows is not None:
        value = value[rows]
    return value if cols is None else value[:, cols]


def _metadata(meta, rows, cols, n: int, f: int) -> tuple[dict, list[str]]:
    """The expected metadata of a layer of ``n`` x ``f`` cut at ``rows`` x ``cols``, and the keys kept whole:
    the rule's naive twin, the samples cut first, then the features, each reading the shape then."""
    rows = None if rows is None or np.array_equal(rows, np.arange(n)) else rows
    cols = None if cols is None or np.array_equal(cols, np.arange(f)) else cols
    out, whole, shape = dict(meta), [], [n, f]
    for axis, positions in ((0, rows), (1, cols)):
        if positions is None:
            continue
        for key, value in list(out.items()):
            if not isinstance(value, np.ndarray):
                continue
            if value.ndim >= 2 and list(value.shape[:2]) == shape:
                out[key] = value[positions] if axis == 0 else value[:, positions]
            elif shape[0] != shape[1] and value.shape[0] == shape[axis]:
                out[key] = value[positions]
            elif not (shape[0] != shape[1] and value.shape[0] == shape[1 - axis]):
                whole.append(key)
        shape[axis] = len(positions)
    return out, sorted(set(whole))


def _equal(a, b, what) -> None:
    assert sparse.issparse(a) == sparse.issparse(b), what
    if sparse.issparse(b):
        assert a.format == b.format and a.dtype == b.dtype, what
        a, b = a.toarray(), b.toarray()
    assert np.asarray(a).dtype == np.asarray(b).dtype, what
    np.testing.assert_array_equal(a, b, err_msg=str(what))


def _check(folder, name: str, options: dict, c: ScpContainer, samples, features: dict, bare: bool) -> None:
    path = folder / name
    h5scp.save(c, path, overwrite=True, **options)
    if name in ONE_ASSAY:
        c = ScpContainer(c.obs, {"prot": c.assays["prot"]},
                         links=[l for l in c.links if l.source_assay == "prot"], history=c.history)
        features = {k: v for k, v in features.items() if k == "prot"}
    request = {"samples": samples, "features": features or None}
    if bare and name in ONE_ASSAY and features:
        request["features"] = features["prot"]  # one assay read: the selection without its name
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = h5scp.load(path, classes=OURS, **request)
    with warnings.catch_warnings(record=True) as filtering:
        warnings.simplefilter("always")
        want = _in_memory(c, samples, features)
        whole_cut = _in_memory(h5scp.load(path, classes=OURS), samples, features)
    where = f"{name} {request}"
    assert_container_equal(got, whole_cut, check_history=False)
    assert _kept_whole(caught) == _kept_whole(filtering), where
    assert_frame_equal(got.obs, want.obs)
    assert list(got.assays) == list(want.assays), where
    rows = _positions(samples, c.sample_ids.to_list())
    expected_warnings = []
    for assay_name, assay in got.assays.items():
        source, wanted = c.assays[assay_name], want.assays[assay_name]
        assert_frame_equal(assay.var, wanted.var)
        cols = _positions(features.get(assay_name), source.feature_ids.to_list())
        assert list(assay.layers) == list(wanted.layers), where
        for layer, matrix in assay.layers.items():
            _equal(matrix.X, wanted.layers[layer].X, (where, assay_name, layer, "X"))
            assert (matrix.M is None) == (wanted.layers[layer].M is None), (where, layer)
            if matrix.M is not None:
                _equal(matrix.M, wanted.layers[layer].M, (where, assay_name, layer, "M"))
            meta, whole = _metadata(source.layers[layer].metadata, rows, cols, *source.layers[layer].shape) \
                if source.layers[layer].metadata else ({}, [])
            assert sorted(matrix.metadata) == sorted(meta), (where, layer)
            for key, value in meta.items():
                if isinstance(value, np.ndarray):
                    _equal(matrix.metadata[key], value, (where, assay_name, layer, key))
                else:
                    assert matrix.metadata[key] == value, (where, key)
            if whole:
                expected_warnings.append(whole)
    assert got.links == want.links, where
    kept_whole = [w for w in caught if issubclass(w.category, MetadataKeptWholeWarning)]
    others = [w for w in caught if not issubclass(w.category, MetadataKeptWholeWarning)]
    assert not others, [str(w.message) for w in others]
    assert len(kept_whole) == len(expected_warnings), (where, [str(w.message) for w in kept_whole])
    for warning, keys in zip(kept_whole, expected_warnings):
        assert all(repr(k) in str(warning.message) for k in keys), (where, str(warning.message), keys)


def _kept_whole(caught) -> set[str]:
    """The metadata keys the MetadataKeptWholeWarnings among ``caught`` name."""
    keys = set()
    for w in caught:
        if issubclass(w.category, MetadataKeptWholeWarning):
            keys.update(re.findall(r"'([^']+)'", re.search(r"metadata \[(.*?)\] kept whole", str(w.message))[1]))
    return keys


@pytest.mark.parametrize("name,options", FORMATS, ids=[n for n, _ in FORMATS])
def test_detection_limits_of_the_requested_samples_and_features(tmp_path, name, options):
    """The reported case: row 0 of the loaded detection_limits is the requested sample's row, column 0 the
    requested protein's column."""
    c = _container(5, 4, 3, seed=1)
    _check(tmp_path, name, options, c, ["s3", "s0"], {"prot": ["P2", "P0"]}, bare=False)
    with pytest.warns(MetadataKeptWholeWarning, match="odd_axis"):
        got = h5scp.load(tmp_path / name, samples=["s3"], features={"prot": ["P2"]}, classes=OURS)
    limits = got.assays["prot"].layers["raw"].metadata["detection_limits"]
    assert limits[0, 0] == c.assays["prot"].layers["raw"].metadata["detection_limits"][3, 2]


def _selection(data, ids: list):
    """None, some ids in a drawn order, or a boolean mask."""
    kind = data.draw(st.sampled_from(["all", "ids", "mask"]))
    if kind == "all":
        return None
    if kind == "mask":
        return np.array(data.draw(st.lists(st.booleans(), min_size=len(ids), max_size=len(ids))))
    return data.draw(st.permutations(ids).flatmap(lambda p: st.integers(0, len(p)).map(lambda k: list(p[:k]))))


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), n=st.integers(1, 6), n_pep=st.integers(1, 6), n_prot=st.integers(1, 6),
       seed=st.integers(0, 2**16))
def test_a_partial_load_equals_the_selection_in_memory(tmp_path, data, n, n_pep, n_prot, seed):
    _check_drawn(tmp_path, data, n, n_pep, n_prot, seed)


def _check_drawn(tmp_path, data, n: int, n_pep: int, n_prot: int, seed: int) -> None:
    c = _container(n, n_pep, n_prot, seed)
    samples = _selection(data, c.sample_ids.to_list())
    features = {}
    for name in ("pep", "prot"):
        chosen = _selection(data, c.assays[name].feature_ids.to_list())
        if chosen is not None:
            features[name] = chosen
    bare = data.draw(st.booleans())
    for name, options in FORMATS:
        _check(tmp_path, name, options, c, samples, features, bare)


def _unmeasured(n: int, lacking: list[int], seed: int) -> ScpContainer:
    """Two assays; ``pep`` holds no measurement of the samples at ``lacking`` (NaN, mask UNCERTAIN):
    its .h5mu modality leaves them out."""
    from h5scp.core.structures import MaskCode

    rng = np.random.default_rng(seed)
    obs = pl.DataFrame({"_index": [f"s{i}" for i in range(n)]})
    X = rng.random((n, 3))
    M = np.zeros((n, 3), dtype=np.int8)
    X[lacking], M[lacking] = np.nan, int(MaskCode.UNCERTAIN)
    pep = Assay(pl.DataFrame({"_index": ["e0", "e1", "e2"]}), {"raw": ScpMatrix(X, M)})
    prot = Assay(pl.DataFrame({"_index": ["P0", "P1"]}), {"raw": ScpMatrix(rng.random((n, 2)))})
    return ScpContainer(obs, {"pep": pep, "prot": prot})


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), n=st.integers(2, 7), seed=st.integers(0, 2**16))
def test_a_modality_lacking_samples_has_a_mask_in_every_load(tmp_path, data, n, seed):
    """Ours and mudata's own: a modality without some of the file's samples gives every layer a mask in a
    partial load too (0 where measured), even when every sample read is one it holds."""
    lacking = data.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=n - 1, unique=True))
    c = _unmeasured(n, lacking, seed)
    ours = tmp_path / "c.h5mu"
    h5scp.save(c, ours, overwrite=True)
    theirs = tmp_path / "m.h5mu"
    held = [f"s{i}" for i in range(n) if i not in lacking]
    mod = {name: ad.AnnData(X=a.layers["raw"].X[[i for i in range(n) if name == "prot" or i not in lacking]],
                            obs=pd.DataFrame(index=c.sample_ids.to_list() if name == "prot" else held),
                            var=pd.DataFrame(index=a.feature_ids.to_list()))
           for name, a in c.assays.items()}
    md.MuData(mod).write(theirs)
    samples = data.draw(st.sampled_from([held, held[:1], c.sample_ids.to_list()[::-1]]))
    for path in (ours, theirs):
        got = h5scp.load(path, classes=OURS, samples=samples)
        whole_cut = h5scp.load(path, classes=OURS).filter_samples(samples)
        assert_container_equal(got, whole_cut, check_history=False)
        assert all(m.M is not None for m in got.assays["pep"].layers.values())

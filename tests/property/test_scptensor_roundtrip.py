"""Random containers round-trip exactly through .h5 and .h5mu files."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
import tempfile
from pathlib import Path

import numpy as np
import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import sparse

from h5stream.elements.dataframe import RESERVED_NAMES
from h5stream.elements.mapping import escape_name
from h5scp import ScpContainer
from h5scp.core.structures import AggregationLink, Assay, ScpMatrix
from h5scp.testing import assert_container_equal

NAME = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="/\x00"),
    min_size=1,
    max_size=8,
).filter(lambda s: s not in (".", ".."))


def _with_nulls(values: list, rng, p: float = 0.25) -> list:
    return [None if rng.random() < p else v for v in values]


def _column(kind: str, n: int, rng) -> pl.Series:
    """A random column of polars dtype ``kind`` (nulls included where the dtype allows)."""
    if kind in ("Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64"):
        dtype = getattr(pl, kind)
        info = np.iinfo(kind.lower())
        vals = rng.integers(info.min, info.max, size=n, dtype=kind.lower(), endpoint=True).tolist()
        return pl.Series(_with_nulls(vals, rng), dtype=dtype)
    if kind in ("Float32", "Float64"):
        vals = rng.normal(size=n).tolist()
        vals = [float("nan") if rng.random() < 0.2 else v for v in vals]
        return pl.Series(_with_nulls(vals, rng), dtype=getattr(pl, kind))
    if kind == "Boolean":
        return pl.Series(_with_nulls(rng.random(n).__lt__(0.5).tolist(), rng), dtype=pl.Boolean)
    if kind == "String":
        return pl.Series(_with_nulls([f"v{int(x)} é" for x in rng.integers(0, 5, n)], rng), dtype=pl.String)
    if kind == "Categorical":
        return pl.Series(_with_nulls([["lo", "mid", "hi"][int(x)] for x in rng.integers(0, 3, n)], rng),
                         dtype=pl.Categorical)
    if kind == "Enum":
        return pl.Series(_with_nulls([["a", "b"][int(x)] for x in rng.integers(0, 2, n)], rng),
                         dtype=pl.Enum(["a", "b", "c"]))
    if kind == "Date":
        return pl.Series(_with_nulls([dt.date(2020, 1, 1) + dt.timedelta(days=int(x)) for x in rng.integers(0, 900, n)], rng),
                         dtype=pl.Date)
    if kind == "Datetime":
        base = dt.datetime(2024, 5, 1)
        return pl.Series(_with_nulls([base + dt.timedelta(microseconds=int(x)) for x in rng.integers(0, 10**12, n)], rng),
                         dtype=pl.Datetime("us", "UTC"))
    if kind == "Duration":
        return pl.Series(_with_nulls([dt.timedelta(milliseconds=int(x)) for x in rng.integers(-10**6, 10**6, n)], rng),
                         dtype=pl.Duration("ms"))
    if kind == "List":
        return pl.Series(_with_nulls([list(rng.integers(0, 9, int(k))) for k in rng.integers(0, 3, n)], rng),
                         dtype=pl.List(pl.Int64))
    if kind == "Struct":
        return pl.Series([{"a": int(x), "b": f"s{int(x)}"} for x in rng.integers(0, 9, n)],
                         dtype=pl.Struct({"a": pl.Int64, "b": pl.String}))
    if kind == "Binary":
        return pl.Series(_with_nulls([bytes(rng.integers(0, 256, 3, dtype=np.uint8)) for _ in range(n)], rng),
                         dtype=pl.Binary)
    if kind == "Decimal":
        return pl.Series(_with_nulls([Decimal(int(x)) / 100 for x in rng.integers(-10**6, 10**6, n)], rng),
                         dtype=pl.Decimal(12, 2))
    if kind == "Time":
        return pl.Series(_with_nulls([dt.time(int(h), int(m)) for h, m in zip(rng.integers(0, 24, n), rng.integers(0, 60, n))], rng),
                         dtype=pl.Time)
    if kind == "Null":
        return pl.Series([None] * n, dtype=pl.Null)
    if kind == "Array":
        return pl.Series(_with_nulls([rng.integers(-9, 9, 2).tolist() for _ in range(n)], rng),
                         dtype=pl.Array(pl.Int32, 2))
    if kind == "Float16":
        vals = [float("nan") if rng.random() < 0.2 else float(v) for v in rng.normal(size=n).astype(np.float16)]
        return pl.Series(_with_nulls(vals, rng), dtype=pl.Float16)
    raise AssertionError(kind)


KINDS = [
    "Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64", "Float32", "Float64",
    "Boolean", "String", "Categorical", "Enum", "Date", "Datetime", "Duration", "List", "Struct", "Binary",
    "Decimal", "Time", "Null", "Array", *(["Float16"] if hasattr(pl, "Float16") else []),
]


@st.composite
def frames(draw, n_rows: int, prefix: str):
    id_col = draw(NAME)
    extra = draw(st.lists(st.tuples(NAME, st.sampled_from(KINDS)), max_size=4, unique_by=lambda t: t[0]))
    extra = [(name, kind) for name, kind in extra if name != id_col]
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    columns = {name: _column(kind, n_rows, rng) for name, kind in extra}
    position = draw(st.integers(0, len(columns)))
    ids = pl.Series([f"{prefix}{i}" for i in range(n_rows)], dtype=pl.String)
    items = list(columns.items())
    items.insert(position, (id_col, ids))
    return pl.DataFrame(dict(items)), id_col


METADATA = [
    None,
    {"lod": np.linspace(0, 1, 3, dtype=np.float32), "note": "é"},
    # values with no AnnData encoding: kept as exact JSON text in .h5mu/.h5ad
    {"mixed": [1, "x", None], "pair": (1, 2.5), "raw": b"\x00\xff", "empty": []},
]


def _matrix(kind: str, mask: str, n: int, m: int, rng, metadata=None) -> ScpMatrix:
    values = rng.normal(size=(n, m))
    values[rng.random((n, m)) < 0.5] = 0.0
    values[rng.random((n, m)) < 0.1] = np.nan
    dtype = np.float32 if rng.random() < 0.5 else np.float64
    values = values.astype(dtype)
    X = {"dense": values, "csr": sparse.csr_matrix(values), "csc": sparse.csc_matrix(values)}[kind]
    codes = rng.integers(0, 7, size=(n, m)).astype(np.int8)
    codes[rng.random((n, m)) < 0.6] = 0
    M = {"none": None, "dense": codes, "csr": sparse.csr_matrix(codes), "csc": sparse.csc_matrix(codes)}[mask]
    return ScpMatrix(X, M, metadata)


@st.composite
def containers(draw):
    n_samples = draw(st.integers(0, 5))
    obs, sample_id_col = draw(frames(n_samples, "S"))
    assay_names = draw(st.lists(NAME, max_size=3, unique=True))
    assays = {}
    for position, a in enumerate(assay_names):
        n_features = draw(st.integers(0, 5))
        # feature ids unique across assays (mudata warns about repeated ones, rightly)
        var, feature_id_col = draw(frames(n_features, f"F{position}_"))
        layer_names = draw(st.lists(NAME, max_size=3, unique=True))
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        layers = {
            name: _matrix(
                draw(st.sampled_from(["dense", "csr", "csc"])),
                draw(st.sampled_from(["none", "dense", "csr", "csc"])),
                n_samples, n_features, rng, draw(st.sampled_from(METADATA)),
            )
            for name in layer_names
        }
        assays[a] = Assay(var, layers, feature_id_col=feature_id_col)
    links = []
    if len(assays) >= 2:
        src, dst = list(assays)[:2]
        s_ids = assays[src].feature_ids.to_list()
        t_ids = assays[dst].feature_ids.to_list() or ["none"]
        linkage = pl.DataFrame(
            {"source_id": s_ids, "target_id": [t_ids[i % len(t_ids)] for i in range(len(s_ids))]},
            schema={"source_id": pl.String, "target_id": pl.String},
        )
        if draw(st.booleans()):
            # an extra column AnnData has no encoding for
            linkage = linkage.with_columns(weight=pl.Series([None if i % 2 else 0.5 for i in range(len(s_ids))],
                                                            dtype=pl.Float64))
        links.append(AggregationLink(src, dst, linkage))
    container = ScpContainer(obs, assays, links=links, sample_id_col=sample_id_col)
    for i in range(draw(st.integers(0, 2))):
        container.log_operation(
            f"step {i}",
            {"k": np.int64(i), "w": np.linspace(0, 1, 3, dtype=np.float32), "name": "é", "flag": True, "none": None},
            description=draw(st.one_of(st.none(), NAME)),
        )
    return container


SETTINGS = settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)


def _round_trip(container: ScpContainer, ext: str) -> ScpContainer:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"c{ext}"
        # exactness does not depend on the codec; uncompressed keeps each example fast
        container.save(path, compression=None)
        return ScpContainer.load(path)


@SETTINGS
@given(containers())
def test_h5_round_trip_is_exact(container):
    assert_container_equal(_round_trip(container, ".h5"), container)


@SETTINGS
@given(containers())
def test_h5mu_round_trip_is_exact(container):
    assert_container_equal(_round_trip(container, ".h5mu"), container)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(containers())
def test_h5mu_opens_in_mudata_without_warnings(container):
    import warnings

    import mudata

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.h5mu"
        container.save(path, compression=None)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with mudata.set_options(pull_on_update=False):
                mdata = mudata.read_h5mu(path)
        assert list(mdata.mod) == list(container.assays)
        # AnnData sees the HDF5 member names: "%", "/" and "_index" in a column name come percent-escaped
        assert list(mdata.obs.columns) == [
            escape_name(c, RESERVED_NAMES) for c in container.obs.columns if c != container.sample_id_col
        ]
        for name, assay in container.assays.items():
            var = mdata.mod[name].var
            assert list(var.columns) == [
                escape_name(c, RESERVED_NAMES) for c in assay.var.columns if c != assay.feature_id_col
            ]
            assert list(var.index) == assay.feature_ids.to_list()


def test_every_column_kind_round_trips_in_obs_and_var():
    rng = np.random.default_rng(7)
    obs = pl.DataFrame({"id": [f"S{i}" for i in range(5)], **{k: _column(k, 5, rng) for k in KINDS}})
    var = pl.DataFrame({**{k: _column(k, 3, rng) for k in reversed(KINDS)}, "fid": ["a", "b", "c"]})
    assert [str(obs[k].dtype).split("(")[0] for k in KINDS] == [k for k in KINDS]
    container = ScpContainer(
        obs, {"p": Assay(var, {"raw": _matrix("csc", "dense", 5, 3, rng)}, feature_id_col="fid")}, sample_id_col="id"
    )
    for ext in (".h5", ".h5mu", ".h5ad"):
        assert_container_equal(_round_trip(container, ext), container)

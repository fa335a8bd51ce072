"""The values frozen in the golden files, built with numpy, polars and scipy only.

``make_golden.py`` writes these values with the h5stream of the commit named in
``README.md``; ``tests/unit/test_golden_files.py`` rebuilds them here and
compares what the current code reads from the frozen files against them.  This
module imports no h5stream, hdmea or scptensor code, so the expected values do
not depend on the code under test.

It also holds the plain, type-tagged JSON form (``to_plain``/``from_plain``)
the maker uses for the snapshots of the recording and checkpoint files, and
the exact comparison the test applies to every value.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import numpy as np
import polars as pl
import scipy.sparse as sp

HERE = Path(__file__).resolve().parent

#: The commit whose code wrote the golden files.
SOURCE_COMMIT = "13946ca"

#: Seeds and sizes of the synthetic HD-MEA recording and the scptensor container.
#: History entries of the frozen container carry these times (their own are the time of creation).
CONTAINER_TIMES = ("2025-06-01T08:00:00+00:00", "2025-06-01T08:05:30.250000+00:00")
RECORDING_SEED = 11
RECORDING_UNITS = 3
CONTAINER_SEED = 3

#: Golden files of the format versions after the first set (written by ``make_versions.py``).
PARQUET_GOLDEN = "scptensor_parquet_1.0.parquet"
CHECKSUMMED_GOLDEN = "hdmea_recording_checksummed.h5"
MIGRATED_GOLDEN = "hdmea_migrated.h5"
#: scptensor 2.0 containers with the checksum manifest of a given version (``.format(version=2)``)
CHECKSUMMED_CONTAINER_GOLDEN = "scptensor_2.0_checksums_v{version}.h5"
#: scptensor AnnData/MuData files with whole-frame records (before frame schemas; same format version 2.0)
RECORDS_H5MU_GOLDEN = "scptensor_2.0_records.h5mu"
RECORDS_H5AD_GOLDEN = "scptensor_2.0_records_peptides.h5ad"
#: scptensor's AnnData zarr store (the ``peptides`` assay, ``norm`` layer as X) with its checksum manifest 1.0
ZARR_GOLDEN = "scptensor_zarr_1.0_peptides.zarr"

#: Every format version constant of the source -> the golden file written in that version.
#: ``(module, constant, value)``; ``tests/unit/test_golden_versions.py`` fails for a constant of the
#: source (a ``*FORMAT_VERSION`` or ``MANIFEST_VERSION``) whose current value has no file here.
VERSIONS = {
    ("h5scp.io.exporters", "FORMAT_VERSION", "2.0"): "scptensor_2.0.h5",
    ("h5scp.io._parquet_manifest", "FORMAT_VERSION", "1.0"): PARQUET_GOLDEN,
    ("hdmea.io.hdf5_store", "FORMAT_VERSION", "1"): "hdmea_recording.h5",
    ("h5stream.checksums._manifest", "MANIFEST_VERSION", 2): CHECKSUMMED_GOLDEN,
    ("h5stream.checksums._manifest", "MANIFEST_VERSION", 3): CHECKSUMMED_CONTAINER_GOLDEN.format(version=3),
    ("hdmea.interop.zarr_migrate", "MIGRATION_FORMAT_VERSION", "1"): MIGRATED_GOLDEN,
    ("h5scp.io._zarr_store", "FORMAT_VERSION", "1.0"): ZARR_GOLDEN,
}


def expected_container(loaded):
    """The example container as a golden file holds it, for a comparison with ``loaded`` (read from it).

    Its ``proteins/log`` layer is numpy's float32 ``log2`` of the raw values, whose last bit depends on the
    CPU's vector code path: it is checked within one float32 ulp here, then taken from ``loaded``, so
    that every other value, and this layer's dtype and shape, still compare exactly.
    """
    from h5scp import ScpMatrix
    from h5scp.testing import example_container

    expected = fix_history_times(example_container(seed=CONTAINER_SEED))
    layers = expected.assays["proteins"].layers
    got, want = loaded.assays["proteins"].layers["log"], layers["log"]
    assert got.X.dtype == want.X.dtype and got.X.shape == want.X.shape
    np.testing.assert_array_max_ulp(got.X.astype(np.float32), want.X.astype(np.float32), maxulp=1)
    layers["log"] = ScpMatrix(got.X.copy(), want.M, metadata=want.metadata)
    return expected


def fix_history_times(container):
    """``container`` with the history times of the golden file (the entries are plain dataclasses)."""
    assert len(container.history) == len(CONTAINER_TIMES)
    for entry, when in zip(container.history, CONTAINER_TIMES):
        entry.timestamp = when
    return container


def _series_cases() -> dict[str, tuple[str, str, pl.Series]]:
    """Standalone polars Series, one per column encoding: id -> (encoding type, version, value)."""
    zurich = pl.Datetime("us", "Europe/Zurich")
    return {
        "series-int16": ("array", "0.2.0", pl.Series("i16", [-3, 0, 7], dtype=pl.Int16)),
        "series-bool": ("array", "0.2.0", pl.Series("flag", [True, False, True])),
        "series-float32": ("array", "0.2.0", pl.Series("f32", [1.5, float("nan"), -0.0], dtype=pl.Float32)),
        "nullable-int": ("nullable-integer", "0.1.0", pl.Series("n", [1, None, -(2**40)], dtype=pl.Int64)),
        "nullable-uint8": ("nullable-integer", "0.1.0", pl.Series("u", [None, 255, 0], dtype=pl.UInt8)),
        "nullable-bool": ("nullable-boolean", "0.1.0", pl.Series("b", [True, None, False])),
        "nullable-float-nan-and-null": (
            "h5stream:nullable-float", "0.1.0", pl.Series("x", [0.25, float("nan"), None, float("inf")])),
        "string-series": ("string-array", "0.2.0", pl.Series("s", ["alpha", "βήτα", ""])),
        "nullable-string-series": ("nullable-string-array", "0.1.0", pl.Series("s", ["a", None, "ç"])),
        "categorical": ("categorical", "0.2.0", pl.Series("c", ["lo", "hi", None, "lo"], dtype=pl.Categorical)),
        "enum": ("h5stream:enum", "0.1.0",
                 pl.Series("e", ["b", "a", None, "b"], dtype=pl.Enum(["b", "a", "c"]))),
        "date": ("h5stream:date", "0.1.0", pl.Series("d", [dt.date(1969, 12, 31), None, dt.date(2025, 2, 28)])),
        "datetime-tz": ("h5stream:datetime", "0.1.0",
                        pl.Series("t", [dt.datetime(2024, 3, 31, 1, 30), None]).cast(pl.Datetime("us"))
                        .dt.replace_time_zone("UTC").cast(zurich)),
        "datetime-ns": ("h5stream:datetime", "0.1.0",
                        pl.Series("t", [1, 2_000_000_123, None], dtype=pl.Int64).cast(pl.Datetime("ns"))),
        "duration": ("h5stream:duration", "0.1.0",
                     pl.Series("dur", [dt.timedelta(milliseconds=5), None, dt.timedelta(days=-1)],
                               dtype=pl.Duration("ms"))),
        "time": ("h5stream:time", "0.1.0", pl.Series("tod", [dt.time(0, 0), dt.time(23, 59, 59, 999999), None])),
        "decimal": ("h5stream:decimal", "0.1.0",
                    pl.Series("dec", [Decimal("1.250"), None, Decimal("-99999.001")], dtype=pl.Decimal(12, 3))),
        "int128": ("h5stream:int128", "0.1.0", pl.Series("big", [2**100, -(2**90), None], dtype=pl.Int128)),
        "binary": ("h5stream:binary", "0.1.0", pl.Series("bin", [b"\x00\xff", None, b""])),
        "null-column": ("h5stream:null-column", "0.1.0", pl.Series("nothing", [None, None, None])),
        "list": ("h5stream:list", "0.1.0", pl.Series("l", [[1, 2], [], None, [3]], dtype=pl.List(pl.Int32))),
        # versions written since 13946ca (four rows: not part of frame(), which that commit froze)
        "nullable-float-over-array": (
            "h5stream:nullable-float", "0.2.0", pl.Series("x", [0.25, float("nan"), None, float("inf")])),
        "null-column-over-array": ("h5stream:null-column", "0.2.0", pl.Series("nothing", [None] * 4)),
        "fixed-list": ("h5stream:fixed-list", "0.1.0",
                       pl.Series("a", [[1.0, 2.0], [3.0, float("nan")]], dtype=pl.Array(pl.Float32, 2))),
        "struct": ("h5stream:struct", "0.1.0",
                   pl.Series("st", [{"x": 1, "y": "a"}, {"x": None, "y": "b"}, {"x": 3, "y": None}])),
        # nested columns over AnnData's awkward-array (0.2.0); never three rows, so frame() stays frozen
        "binary-over-awkward": ("h5stream:binary", "0.2.0", pl.Series("bin", [b"\x00\xff", None, b"", b"z"])),
        "list-over-awkward": ("h5stream:list", "0.2.0",
                              pl.Series("l", [[1, 2], [], None, [None, -3]], dtype=pl.List(pl.Int32))),
        "fixed-list-over-awkward": ("h5stream:fixed-list", "0.2.0",
                                    pl.Series("a", [[1.0, float("nan")], None, [None, 2.5], [0.0, -0.0]],
                                              dtype=pl.Array(pl.Float32, 2))),
        "struct-over-awkward": ("h5stream:struct", "0.2.0", pl.Series("st", [
            {"when": dt.date(2024, 2, 29), "tags": ["a", None], "dec": Decimal("1.50")}, None,
            {"when": None, "tags": [], "dec": None}, {"when": dt.date(1969, 7, 20), "tags": None, "dec": Decimal("-2")},
        ], dtype=pl.Struct({"when": pl.Date, "tags": pl.List(pl.Categorical), "dec": pl.Decimal(6, 2)}))),
    }


def frame() -> pl.DataFrame:
    """A frame with one column of every column encoding, in an order that is not alphabetical."""
    columns = [s.alias(name.replace("-", "_")) for name, (_t, _v, s) in _series_cases().items()
               if len(s) == 3]
    ids = pl.Series("cell_id", ["c2", "c0", "c1"])
    return pl.DataFrame([columns[-1], ids, *columns[:-1]])


def element_cases() -> dict[str, tuple[str, str, object, dict]]:
    """Every element in ``elements.h5``: name -> (encoding type, version, value, write options)."""
    rng = np.random.default_rng(5)
    cases: dict[str, tuple[str, str, object, dict]] = {
        "array-int32-2d": ("array", "0.2.0", np.arange(12, dtype=np.int32).reshape(3, 4), {}),
        "array-float64-special": ("array", "0.2.0", np.array([0.5, np.nan, np.inf, -np.inf, -0.0, 1e-310]), {}),
        "array-float32-fortran": ("array", "0.2.0", np.asfortranarray(rng.standard_normal((4, 3)).astype(np.float32)),
                                  {}),
        "array-bool": ("array", "0.2.0", np.array([True, False, False]), {}),
        "array-uint64-gzip": ("array", "0.2.0", np.arange(5000, dtype=np.uint64) * 3,
                              {"compression": "gzip", "compression_opts": 4}),
        "array-complex128": ("array", "0.2.0", np.array([1 + 2j, -0.5j]), {}),
        "array-empty": ("array", "0.2.0", np.zeros((0, 3), dtype=np.int8), {}),
        "numpy-datetime64": ("h5stream:numpy-datetime", "0.1.0",
                             np.array(["2024-01-01T00:00:00.000000001", "NaT"], dtype="datetime64[ns]"), {}),
        "numpy-timedelta64": ("h5stream:numpy-datetime", "0.1.0", np.array([3, -4], dtype="timedelta64[ms]"), {}),
        "scalar-float32": ("numeric-scalar", "0.2.0", np.float32(1.5), {}),
        "scalar-int16": ("numeric-scalar", "0.2.0", np.int16(-7), {}),
        "scalar-uint64": ("numeric-scalar", "0.2.0", np.uint64(2**64 - 1), {}),
        "scalar-int": ("numeric-scalar", "0.2.0", 2**62, {}),
        "scalar-float-nan": ("numeric-scalar", "0.2.0", float("nan"), {}),
        "scalar-bool": ("numeric-scalar", "0.2.0", True, {}),
        "scalar-complex": ("numeric-scalar", "0.2.0", complex(1, -2), {}),
        "string": ("string", "0.2.0", "héllo ✓", {}),
        "null": ("null", "0.1.0", None, {}),
        "bytes": ("h5stream:bytes", "0.1.0", b"\x00\xffab", {}),
        "string-array-numpy": ("string-array", "0.2.0", np.array(["a", "βeta", ""]), {}),
        "string-array-list": ("string-array", "0.2.0", ["x", "y", "z"], {}),
        "nullable-string-array-list": ("nullable-string-array", "0.1.0", ["x", None, ""], {}),
        "array-list-of-int": ("array", "0.2.0", [1, 2, 3], {}),
        "sequence-tuple-mixed": ("h5stream:sequence", "0.1.0", (1, "a", None, 2.5), {}),
        "dict-nested": ("dict", "0.1.0",
                        {"b": 1, "a": [1.5, 2.5], "c": {"d": "x", "e": None}, "f": np.arange(3, dtype=np.int16),
                         "g": (True, b"\x01")}, {}),
        "csr-matrix": ("csr_matrix", "0.1.0", sp.random(6, 5, density=0.4, format="csr", dtype=np.float32, rng=rng),
                       {}),
        "csc-matrix-gzip": ("csc_matrix", "0.1.0", sp.random(5, 7, density=0.3, format="csc", dtype=np.float64,
                                                              rng=rng), {"compression": "gzip"}),
        "csr-array-int": ("csr_matrix", "0.1.0", sp.csr_array(np.array([[0, 2, 0], [3, 0, 0]], dtype=np.int64)), {}),
        "csc-array-empty": ("csc_matrix", "0.1.0", sp.csc_array((4, 2), dtype=np.float64), {}),
        "dataframe": ("dataframe", "0.2.0", frame(), {}),
        "dataframe-indexed": ("dataframe", "0.2.0", frame(), {"index": "cell_id"}),
        "dataframe-empty": ("dataframe", "0.2.0", pl.DataFrame({"a": pl.Series([], dtype=pl.Float64),
                                                                 "b": pl.Series([], dtype=pl.String)}), {}),
    }
    for name, (etype, version, series) in _series_cases().items():
        cases[name] = (etype, version, series, {})
    return cases


def legacy_dataframe_0_1_0() -> pl.DataFrame:
    """What the AnnData ``dataframe`` 0.1.0 in ``elements.h5`` holds (written with plain h5py)."""
    return pl.DataFrame({
        "_index": ["r0", "r1", "r2"],
        "score": [0.5, -1.0, float("nan")],
        "kind": pl.Series(["b", None, "a"], dtype=pl.Categorical),
    })


# ----------------------------------------------------------------------------- plain, type-tagged JSON


def to_plain(value, arrays: dict[str, np.ndarray], where: str = "v"):
    """A JSON value that keeps the exact Python/numpy type of ``value``; arrays go to ``arrays``."""
    if value is None or isinstance(value, (bool, str)):
        return {"t": type(value).__name__, "v": value}
    if isinstance(value, int):
        return {"t": "int", "v": str(value)}
    if isinstance(value, float):
        return {"t": "float", "v": value.hex()}
    if isinstance(value, np.ndarray):
        key = f"a{len(arrays)}"
        if value.dtype.kind == "O":
            return {"t": "ndarray-object", "shape": list(value.shape),
                    "items": [to_plain(x, arrays, where) for x in value.ravel().tolist()]}
        arrays[key] = value
        return {"t": "ndarray", "key": key, "fortran": bool(value.flags.f_contiguous and value.ndim > 1)}
    if isinstance(value, np.generic):
        key = f"a{len(arrays)}"
        arrays[key] = np.asarray(value)
        return {"t": "numpy-scalar", "key": key}
    if isinstance(value, bytes):
        return {"t": "bytes", "v": value.hex()}
    if isinstance(value, dict):
        return {"t": "dict", "items": [[to_plain(k, arrays, where), to_plain(v, arrays, where)]
                                       for k, v in value.items()]}
    if isinstance(value, (list, tuple)):
        return {"t": type(value).__name__, "items": [to_plain(x, arrays, where) for x in value]}
    raise TypeError(f"{where}: no plain form for {type(value)}")


def from_plain(plain, arrays):
    t = plain["t"]
    if t in ("NoneType", "bool", "str"):
        return plain["v"]
    if t == "int":
        return int(plain["v"])
    if t == "float":
        return float.fromhex(plain["v"])
    if t == "ndarray":
        a = arrays[plain["key"]]
        return np.asfortranarray(a) if plain["fortran"] else a
    if t == "ndarray-object":
        items = [from_plain(x, arrays) for x in plain["items"]]
        out = np.empty(len(items), dtype=object)
        out[:] = items
        return out.reshape(plain["shape"])
    if t == "numpy-scalar":
        return arrays[plain["key"]][()]
    if t == "bytes":
        return bytes.fromhex(plain["v"])
    if t == "dict":
        return {from_plain(k, arrays): from_plain(v, arrays) for k, v in plain["items"]}
    if t in ("list", "tuple"):
        items = [from_plain(x, arrays) for x in plain["items"]]
        return items if t == "list" else tuple(items)
    raise ValueError(f"unknown plain tag {t!r}")


def save_snapshot(value, stem: Path) -> None:
    """Write ``value`` as ``<stem>.json`` (structure, types) and ``<stem>.npz`` (arrays)."""
    arrays: dict[str, np.ndarray] = {}
    plain = to_plain(value, arrays)
    stem.with_name(stem.name + ".json").write_text(json.dumps(plain, indent=1, sort_keys=True) + "\n")
    np.savez_compressed(stem.with_name(stem.name + ".npz"), **arrays)


def load_snapshot(stem: Path):
    with np.load(stem.with_name(stem.name + ".npz"), allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    return from_plain(json.loads(stem.with_name(stem.name + ".json").read_text()), arrays)


# ----------------------------------------------------------------------------- exact comparison


def assert_same(actual, expected, where: str = "value") -> None:
    """``actual`` equals ``expected`` exactly: types, dtypes, shapes, names, column order, NaN versus null."""
    from polars.testing import assert_frame_equal, assert_series_equal

    from tests.filecompare import assert_exact

    assert type(actual) is type(expected), f"{where}: {type(actual)} is not {type(expected)}"
    if isinstance(expected, pl.DataFrame):
        assert actual.columns == expected.columns, f"{where}: columns {actual.columns} != {expected.columns}"
        assert actual.schema == expected.schema, f"{where}: schema {actual.schema} != {expected.schema}"
        assert_frame_equal(actual, expected, check_exact=True)
        for name in expected.columns:
            _same_missing(actual[name], expected[name], f"{where}[{name}]")
    elif isinstance(expected, pl.Series):
        assert (actual.name, actual.dtype) == (expected.name, expected.dtype), \
            f"{where}: {actual.name} {actual.dtype} != {expected.name} {expected.dtype}"
        assert_series_equal(actual, expected, check_exact=True)
        _same_missing(actual, expected, where)
    elif sp.issparse(expected):
        assert actual.format == expected.format and actual.shape == expected.shape, where
        for part in ("data", "indices", "indptr"):
            assert_exact(getattr(actual, part), getattr(expected, part))
    else:
        if isinstance(expected, np.ndarray):
            assert actual.flags.f_contiguous == expected.flags.f_contiguous or expected.ndim < 2, \
                f"{where}: memory order differs"
            if expected.dtype.kind in "mM":  # NaT compares unequal to itself: compare the ticks
                assert (actual.dtype, actual.shape) == (expected.dtype, expected.shape), where
                assert np.array_equal(actual.view(np.int64), expected.view(np.int64)), where
                return
        assert_exact(actual, expected)


def _same_missing(actual: pl.Series, expected: pl.Series, where: str) -> None:
    """Nulls where nulls were, and NaN (a value, not a null) where NaN was."""
    assert actual.is_null().to_list() == expected.is_null().to_list(), f"{where}: nulls differ"
    if expected.dtype.is_float():
        assert actual.is_nan().to_list() == expected.is_nan().to_list(), f"{where}: NaN differ"

"""The scptensor Parquet format: exact round trips, third-party readers, layout, atomic folder writes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from scipy import sparse

from h5stream.errors import StaleClaimWarning, StaleFilesWarning
from h5scp import ScpContainer
from h5scp.core.structures import Assay, MaskCode, ScpMatrix
from h5scp.io import (
    IOFormatError,
    IOSourceNotFoundError,
    IOTargetExistsError,
    IOWriteError,
    load,
    load_parquet,
    save_parquet,
)
from h5scp.io import formats_parquet
from h5scp.io.exceptions import IOChecksumError
from h5scp.testing import assert_container_equal, example_container
from tests.unit.test_elements_dataframe import every_dtype_frame

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def container():
    return example_container(n_samples=9, n_proteins=7)


@pytest.mark.parametrize("layout", ["long", "wide"])
@pytest.mark.parametrize("dense_cells", ["all", "observed"])
@pytest.mark.parametrize("compression", ["zstd", None, "gzip"])
def test_round_trip_is_exact(tmp_path, container, layout, dense_cells, compression):
    path = save_parquet(container, tmp_path / "c.parquet", layout=layout, dense_cells=dense_cells,
                        compression=compression)
    assert path.is_dir() and (path / "manifest.json").is_file()
    assert_container_equal(load_parquet(path), container)
    assert_container_equal(ScpContainer.load(path), container)


def test_container_save_picks_parquet_by_extension(tmp_path, container):
    path = container.save(tmp_path / "cells.parquet")
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["format_name"] == "scptensor-parquet" and manifest["format_version"] == "1.0"
    assert [h["action"] for h in manifest["history"]] == ["load", "log_transform"]
    # loading goes by content, whatever the folder is called
    renamed = tmp_path / "renamed"
    shutil.copytree(path, renamed)
    assert_container_equal(load(renamed), container)


def test_every_polars_dtype_in_obs_and_var(tmp_path):
    frame = every_dtype_frame()
    # column order kept: the id column second, not first
    obs = frame.insert_column(1, pl.Series("_index", ["a", "b", "c"]))
    var = frame.with_columns(pl.Series("pid", [10, 20, 30], dtype=pl.Int64))
    x = np.arange(9, dtype=np.float64).reshape(3, 3)
    c = ScpContainer(obs, {"p": Assay(var, {"raw": ScpMatrix(x)}, feature_id_col="pid")})
    save_parquet(c, tmp_path / "c.parquet")
    back = load_parquet(tmp_path / "c.parquet")
    assert_container_equal(back, c)
    # integer feature ids are stored as integers, not text
    raw = pl.read_parquet(tmp_path / "c.parquet" / "assays/p/layers/raw.parquet")
    assert raw.schema["feature_id"] == pl.Int64


def _odd_sparse() -> ScpContainer:
    """CSR with unsorted indices, a duplicate and explicit zeros; masks of other patterns."""
    data = np.array([1.5, 0.0, np.nan, 2.0, 3.0, 4.0], dtype=np.float32)
    indices = np.array([2, 0, 1, 1, 1, 0], dtype=np.int32)
    indptr = np.array([0, 3, 3, 5, 6], dtype=np.int32)
    unsorted = sparse.csr_matrix((data, indices, indptr), shape=(4, 3))
    assert not unsorted.has_canonical_format
    other_mask = sparse.csr_matrix(np.array([[0, 0, 0], [3, 0, 0], [0, 0, 1], [0, 4, 0]], dtype=np.int8))
    other_mask.data[0] = 0  # an explicit stored zero
    dense_x = np.array([[1, np.nan, 3], [4, 5, np.nan], [7, 8, 9], [np.nan, 0, 1]], dtype=np.float64)
    dense_m = np.array([[0, 2, 0], [0, 0, 2], [5, 0, 0], [2, 0, 0]], dtype=np.int8)
    layers = {
        "unsorted": ScpMatrix(unsorted, other_mask),
        "unsorted_dense_mask": ScpMatrix(unsorted, dense_m),
        "csc_sparse_mask": ScpMatrix(sparse.csc_matrix(dense_x), sparse.csc_matrix(dense_m)),
        "dense_sparse_mask": ScpMatrix(dense_x, sparse.csr_matrix(dense_m)),
        "dense_no_mask": ScpMatrix(dense_x),
        "csr_no_mask": ScpMatrix(sparse.csr_matrix(dense_x)),
    }
    obs = pl.DataFrame({"_index": ["s1", "s2", "s3", "s4"]})
    return ScpContainer(obs, {"p": Assay(pl.DataFrame({"_index": ["f1", "f2", "f3"]}), layers)})


@pytest.mark.parametrize("dense_cells", ["all", "observed"])
def test_sparse_storage_kept_exactly(tmp_path, dense_cells):
    c = _odd_sparse()
    save_parquet(c, tmp_path / "c.parquet", dense_cells=dense_cells)
    assert_container_equal(load_parquet(tmp_path / "c.parquet"), c)
    frame = pl.read_parquet(tmp_path / "c.parquet" / "assays/p/layers/unsorted.parquet")
    # one row per stored entry of X or M: the duplicate stays, cells stored only in M have null value
    assert "x_entry" in frame.columns
    # X stores 6 entries (a duplicate at (s3, f2)); M alone stores (s2, f1), (s3, f3), (s4, f2)
    assert frame.height == 9 and frame.get_column("value").null_count() == 3
    only_m = frame.filter(pl.col("value").is_null()).select(pl.col("sample_id", "feature_id").cast(pl.String))
    assert sorted(only_m.rows()) == [("s2", "f1"), ("s3", "f3"), ("s4", "f2")]


def test_observed_cells_rule_is_in_the_manifest(tmp_path):
    x = np.array([[1.0, np.nan], [np.nan, np.nan]])
    m = np.array([[0, 2], [2, 3]], dtype=np.int8)  # NaN with LOD twice, with FILTERED once
    c = ScpContainer(pl.DataFrame({"_index": ["a", "b"]}),
                     {"p": Assay(pl.DataFrame({"_index": ["x", "y"]}), {"raw": ScpMatrix(x, m)})})
    path = save_parquet(c, tmp_path / "c.parquet", dense_cells="observed")
    spec = json.loads((path / "manifest.json").read_text())["assays"][0]["layers"][0]
    assert spec["cells"] == "observed" and spec["omitted"] == {"value": "NaN", "mask": int(MaskCode.LOD)}
    rows = pl.read_parquet(path / spec["file"]).sort("sample_id", "feature_id")
    assert rows.select("sample_id", "feature_id").rows() == [("a", "x"), ("b", "y")]
    assert_container_equal(load_parquet(path), c)


def _planted_cells(c: ScpContainer, assay: str, layer: str) -> dict:
    """(sample id, feature id) -> (value, mask) of every cell, from the container's numpy arrays."""
    matrix = c.assays[assay].layers[layer]
    X = matrix.X.toarray() if sparse.issparse(matrix.X) else matrix.X
    M = matrix.mask_or_valid()
    s_ids, f_ids = c.sample_ids.to_list(), c.assays[assay].feature_ids.to_list()
    return {(s_ids[i], f_ids[j]): (float(X[i, j]), int(M[i, j])) for i in range(X.shape[0]) for j in range(X.shape[1])}


def _same(value, expected) -> bool:
    return (np.isnan(value) and np.isnan(expected)) or value == expected


def test_third_party_readers_see_the_same_values(tmp_path, container):
    import duckdb
    import pyarrow.dataset as ds

    path = save_parquet(container, tmp_path / "c.parquet")
    layer_file = path / "assays/proteins/layers/raw.parquet"
    planted = _planted_cells(container, "proteins", "raw")
    readers = {
        "polars": pl.scan_parquet(layer_file).select("sample_id", "feature_id", "value", "mask")
        .collect().with_columns(pl.col("sample_id", "feature_id").cast(pl.String)).rows(),
        "pyarrow": [tuple(r.values()) for r in ds.dataset(layer_file).to_table(
            columns=["sample_id", "feature_id", "value", "mask"]).to_pylist()],
        "duckdb": duckdb.sql(
            f"select sample_id::varchar, feature_id::varchar, value, mask from '{layer_file}'"
        ).fetchall(),
    }
    for name, rows in readers.items():
        assert len(rows) == len(planted), name
        seen = {(s, f): (v, m) for s, f, v, m in rows}
        assert seen.keys() == planted.keys(), name
        for key, (v, m) in seen.items():
            assert _same(v, planted[key][0]) and m == planted[key][1], (name, key)
    # obs as plain columns, the same for all three
    obs_file = path / "obs.parquet"
    assert ds.dataset(obs_file).to_table().column("n_cells").to_pylist() == container.obs["n_cells"].to_list()
    assert [r[0] for r in duckdb.sql(f"select _index from '{obs_file}'").fetchall()] == container.sample_ids.to_list()
    # a sparse layer: only stored entries
    sparse_file = path / "assays/peptides/layers/raw.parquet"
    X = container.assays["peptides"].layers["raw"].X
    assert duckdb.sql(f"select count(*) from '{sparse_file}'").fetchall()[0][0] == X.nnz
    total = duckdb.sql(f"select sum(value) from '{sparse_file}'").fetchall()[0][0]
    assert total == pytest.approx(float(X.sum()))


def test_wide_form_reads_as_a_matrix_elsewhere(tmp_path, container):
    import duckdb

    path = save_parquet(container, tmp_path / "c.parquet", layout="wide")
    wide = path / "assays/proteins/layers/raw.parquet"
    X = container.assays["proteins"].layers["raw"].X
    rows = duckdb.sql(f"select * exclude (sample_id) from '{wide}'").fetchnumpy()
    got = np.column_stack([rows[f] for f in container.assays["proteins"].feature_ids.to_list()])
    assert np.array_equal(got.astype(np.float32), X, equal_nan=True)
    masks = pl.read_parquet(path / "assays/proteins/layers/raw.mask.parquet").drop("sample_id").to_numpy()
    assert np.array_equal(masks, container.assays["proteins"].layers["raw"].M)


def test_one_sample_or_one_feature_touches_few_row_groups(tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    monkeypatch.setattr(formats_parquet, "TILE_CELLS", 64)
    monkeypatch.setattr(formats_parquet, "_TILE_FEATURES", 8)
    monkeypatch.setattr(formats_parquet, "ROW_GROUP_ROWS", 16)
    n, f = 48, 40  # tiles of 8 samples x 8 features: 6 sample blocks x 5 feature blocks
    rng = np.random.default_rng(3)
    x = rng.random((n, f))
    c = ScpContainer(pl.DataFrame({"_index": [f"s{i}" for i in range(n)]}),
                     {"p": Assay(pl.DataFrame({"_index": [f"f{j}" for j in range(f)]}), {"raw": ScpMatrix(x)})})
    path = save_parquet(c, tmp_path / "c.parquet")
    meta = pq.ParquetFile(path / "assays/p/layers/raw.parquet")
    groups = [meta.read_row_group(i, columns=["sample_id", "feature_id"]).to_pydict()
              for i in range(meta.num_row_groups)]
    assert meta.num_row_groups == n * f // 16
    for sample in ("s0", "s21", "s47"):
        touched = sum(sample in g["sample_id"] for g in groups)
        assert touched <= 5, (sample, touched)  # one run per feature block
    for feature in ("f0", "f19", "f39"):
        touched = sum(feature in g["feature_id"] for g in groups)
        assert touched <= 6 * 4, (feature, touched)  # the tiles of one feature block only
        assert touched < meta.num_row_groups / 4
    assert_container_equal(load_parquet(path), c)


def test_existing_target_refused_without_overwrite(tmp_path, container):
    path = save_parquet(container, tmp_path / "c.parquet")
    with pytest.raises(IOTargetExistsError, match="overwrite=True"):
        save_parquet(container, path)
    other = example_container(n_samples=3, seed=4)
    save_parquet(other, path, overwrite=True)
    assert_container_equal(load_parquet(path), other)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.parquet"]


def test_overwrite_never_replaces_a_folder_of_something_else(tmp_path, container):
    mine = tmp_path / "data.parquet"
    mine.mkdir()
    (mine / "part-0.parquet").write_bytes(b"PAR1 user data")
    with pytest.raises(IOWriteError, match="never replaced") as info:
        save_parquet(container, mine, overwrite=True)
    assert "without a scptensor Parquet manifest" in str(info.value)
    assert (mine / "part-0.parquet").read_bytes() == b"PAR1 user data"


def test_failure_while_writing_keeps_the_old_dataset(tmp_path, container, monkeypatch):
    path = save_parquet(container, tmp_path / "c.parquet")
    before = sorted(p.relative_to(path) for p in path.rglob("*"))

    def broken(frame, target, options, row_group_size=None):
        if "layers" in str(target):
            raise OSError(28, "No space left on device")
        frame.write_parquet(target, row_group_size=row_group_size, **options)

    monkeypatch.setattr(formats_parquet, "_write_frame", broken)
    with pytest.raises(IOWriteError, match="No space left") as info:
        save_parquet(example_container(n_samples=4, seed=9), path, overwrite=True)
    assert "free disk space" in str(info.value)
    assert sorted(p.relative_to(path) for p in path.rglob("*")) == before
    assert_container_equal(load_parquet(path), container)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.parquet"]


def test_replace_without_exchange_and_a_writer_killed_between_the_renames(tmp_path, container, monkeypatch):
    from h5stream.files import folders as _folders

    path = save_parquet(container, tmp_path / "c.parquet")
    monkeypatch.setattr(_folders, "_exchange", lambda a, b: False)
    new = example_container(n_samples=5, seed=2)
    save_parquet(new, path, overwrite=True)
    assert_container_equal(load_parquet(path), new)
    # a writer that died after moving the old folder aside: the next writer puts it back first
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    aside = tmp_path / f"c.parquet.replaced-{dead.stdout.strip()}-0"
    os.rename(path, aside)
    with pytest.warns(StaleFilesWarning, match="restored"):
        with pytest.raises(IOTargetExistsError):
            save_parquet(container, path)
    assert_container_equal(load_parquet(path), new)


_KILLED_WRITER = textwrap.dedent(
    """
    import sys
    import numpy as np, polars as pl
    from h5scp import Assay, ScpContainer, ScpMatrix
    from h5scp.io import save_parquet
    n, f = 3000, 1000
    x = np.random.default_rng(0).random((n, f))
    c = ScpContainer(pl.DataFrame({"_index": [f"s{i}" for i in range(n)]}),
                     {"p": Assay(pl.DataFrame({"_index": [f"f{j}" for j in range(f)]}),
                                 {"a": ScpMatrix(x), "b": ScpMatrix(x), "c": ScpMatrix(x), "d": ScpMatrix(x)})})
    print("start", flush=True)
    while True:
        save_parquet(c, sys.argv[1], overwrite=True, compression="gzip", compression_level=9)
    """
)


def test_sigkill_during_a_save_leaves_the_old_dataset(tmp_path, container):
    path = save_parquet(container, tmp_path / "c.parquet")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(path)], stdout=subprocess.PIPE, env=env)
    try:
        assert proc.stdout.readline().strip() == b"start"
        # kill the writer while it fills its partial folder
        deadline = time.monotonic() + 60
        while not any(".partial-dir-" in p.name for p in tmp_path.iterdir()):
            assert time.monotonic() < deadline, "the writer never started its partial folder"
            time.sleep(0.02)
        time.sleep(0.3)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    assert any(".partial-dir-" in p.name for p in tmp_path.iterdir())
    assert_container_equal(load_parquet(path), container)
    # the next writer clears the dead writer's claim and partial folder
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        save_parquet(container, path, overwrite=True)
    kinds = {type(w.message) for w in caught}
    assert kinds <= {StaleClaimWarning, StaleFilesWarning} and StaleFilesWarning in kinds
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.parquet"]
    assert_container_equal(load_parquet(path), container)


def test_missing_and_foreign_inputs_are_typed_errors(tmp_path, container):
    with pytest.raises(IOSourceNotFoundError):
        load_parquet(tmp_path / "nothing.parquet")
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(IOFormatError, match="not a scptensor Parquet dataset") as info:
        load_parquet(plain)
    assert "manifest.json" in str(info.value)
    single = tmp_path / "one.parquet"
    pl.DataFrame({"a": [1]}).write_parquet(single)
    with pytest.raises(IOFormatError):
        load(single)
    with pytest.raises(IOFormatError, match="a file"):
        load_parquet(single)


def _edit_manifest(path: Path, change) -> None:
    manifest = json.loads((path / "manifest.json").read_text())
    change(manifest)
    (path / "manifest.json").write_text(json.dumps(manifest))


def test_hostile_datasets_are_format_errors(tmp_path, container):
    # files changed after the save: checksum errors by default, parsed as stored with verify=False
    path = save_parquet(container, tmp_path / "c.parquet")
    _edit_manifest(path, lambda m: m.update(format_version="9.9"))
    with pytest.raises(IOChecksumError, match=r"manifest\.json.*checksum mismatch"):
        load_parquet(path)
    with pytest.raises(IOFormatError, match="unsupported scptensor Parquet format version.*9.9"):
        load_parquet(path, verify=False)
    path = save_parquet(container, tmp_path / "d.parquet")
    _edit_manifest(path, lambda m: m["assays"][0]["layers"][0].update(file="../../etc/passwd"))
    with pytest.raises(IOFormatError, match="outside the dataset"):
        load_parquet(path, verify=False)
    path = save_parquet(container, tmp_path / "e.parquet")
    raw = path / "assays/proteins/layers/raw.parquet"
    pl.read_parquet(raw).head(5).write_parquet(raw)
    with pytest.raises(IOChecksumError, match=r"raw\.parquet.*another size"):
        load_parquet(path)
    with pytest.raises(IOFormatError, match="every cell") as info:
        load_parquet(path, verify=False)
    assert "assays/proteins/layers/raw" in str(info.value)
    path = save_parquet(container, tmp_path / "f.parquet")
    raw = path / "assays/peptides/layers/raw.parquet"
    frame = pl.read_parquet(raw).with_columns(pl.col("sample_id").cast(pl.String).str.replace("S1", "ZZ"))
    frame.write_parquet(raw)
    with pytest.raises(IOFormatError, match="ids the dataset does not hold"):
        load_parquet(path, verify=False)
    path = save_parquet(container, tmp_path / "g.parquet")
    (path / "assays/proteins/var.parquet").unlink()
    with pytest.raises(IOFormatError, match="missing") as info:
        load_parquet(path, verify=False)
    assert "var.parquet" in str(info.value)


def test_convert_to_and_from_parquet(tmp_path, container, capsys):
    from h5scp.__main__ import main

    src = tmp_path / "c.h5"
    container.save(src)
    out = tmp_path / "c.parquet"
    done = subprocess.run([sys.executable, "-m", "h5scp", "convert", str(src), str(out)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"wrote {out} (scptensor Parquet)" in done.stdout
    assert_container_equal(load_parquet(out), container)
    back = tmp_path / "back.h5"
    assert main(["convert", str(out), str(back)]) == 0
    assert_container_equal(ScpContainer.load(back), container)
    wide = tmp_path / "wide.parquet"
    assert main(["convert", str(back), str(wide), "--layout", "wide", "--compression", "none"]) == 0
    spec = json.loads((wide / "manifest.json").read_text())["assays"][0]["layers"][0]
    assert spec["form"] == "wide"
    assert_container_equal(load_parquet(wide), container)
    mu = tmp_path / "c.h5mu"
    assert main(["convert", str(wide), str(mu)]) == 0
    assert_container_equal(ScpContainer.load(mu), container)
    capsys.readouterr()
    assert main(["inspect", str(out)]) == 0
    text = capsys.readouterr().out
    assert "scptensor Parquet" in text and "samples: 9" in text and "history: 2 entries" in text
    assert main(["convert", str(src), str(out)]) == 2  # exists: an input error, nothing was started
    assert "overwrite" in capsys.readouterr().err
    assert main(["convert", str(src), str(tmp_path / "x.h5"), "--layout", "wide"]) == 2
    assert "only to .parquet" in capsys.readouterr().err


def test_names_that_are_not_plain_file_names(tmp_path):
    x = np.ones((2, 2))
    layers = {"layer.1": ScpMatrix(x), "Raw": ScpMatrix(x * 2), "raw": ScpMatrix(x * 3), "..up": ScpMatrix(x * 4),
              "é sp": ScpMatrix(x * 5)}
    c = ScpContainer(pl.DataFrame({"_index": ["a", "b"]}),
                     {"a/b".replace("/", "|"): Assay(pl.DataFrame({"_index": ["x", "y"]}), layers)})
    path = save_parquet(c, tmp_path / "c.parquet")
    files = sorted(p.relative_to(path).as_posix() for p in path.rglob("*.parquet"))
    assert all(".." not in f for f in files) and len(files) == 2 + len(layers)
    assert_container_equal(load_parquet(path), c)


# --------------------------------------------------------------------------- checksums


def _flip(path: Path, at: int) -> None:
    raw = bytearray(path.read_bytes())
    raw[at] ^= 0x10
    path.write_bytes(bytes(raw))


def test_every_file_and_the_manifest_carry_their_crc32(tmp_path, container):
    import zlib

    path = save_parquet(container, tmp_path / "c.parquet")
    manifest = json.loads((path / "manifest.json").read_text())
    listed = manifest["checksums"]["files"]
    on_disk = {p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()}
    assert set(listed) == on_disk - {"manifest.json", "manifest.json.crc32"}
    for rel, entry in listed.items():
        raw = (path / rel).read_bytes()
        assert entry == {"size": len(raw), "crc32": f"{zlib.crc32(raw):08x}"}
    raw = (path / "manifest.json").read_bytes()
    assert (path / "manifest.json.crc32").read_text() == f"crc32 {zlib.crc32(raw):08x} {len(raw)}\n"


@pytest.mark.parametrize("layout", ["long", "wide"])
def test_flipped_byte_in_a_layer_is_a_checksum_error_naming_the_file(tmp_path, container, layout):
    import zlib

    path = save_parquet(container, tmp_path / "c.parquet", layout=layout, compression=None)
    rel = "assays/proteins/layers/raw.parquet"
    stored = json.loads((path / "manifest.json").read_text())["checksums"]["files"][rel]["crc32"]
    layer = path / rel
    # a byte inside the first value column's data: the file still parses
    x = container.assays["proteins"].layers["raw"].X
    needle = np.ascontiguousarray(x[0, :1]).tobytes()
    at = layer.read_bytes().find(needle)
    assert at > 0
    _flip(layer, at)
    found = f"{zlib.crc32(layer.read_bytes()):08x}"
    with pytest.raises(IOChecksumError) as info:
        load_parquet(path)
    text = str(info.value)
    assert str(path) in text and rel in text and stored in text and found in text
    with pytest.raises(IOChecksumError, match=rel):  # a partial load checks the file too
        load_parquet(path, samples=[container.obs["_index"][0]] if "_index" in container.obs.columns
                     else container.obs[:, 0][:1].to_list())
    with pytest.raises(IOChecksumError, match=rel):
        load(path)
    # verify=False returns what is stored: the flipped value, compared with pyarrow's reading of the file
    import pyarrow.parquet as pq

    got = load_parquet(path, verify=False).assays["proteins"].layers["raw"].X
    assert not np.array_equal(got, x, equal_nan=True)
    table = pq.read_table(layer).to_pandas()
    if layout == "wide":
        expected = table.drop(columns="sample_id").to_numpy()
        np.testing.assert_array_equal(got, expected)
    else:
        assert got[0, 0] == table["value"].iloc[0] != x[0, 0]
    # the other layers and files are untouched
    other = load_parquet(path, verify=False, layers=["raw"], assays=["peptides"])
    assert_container_equal(other, load_parquet(path, layers=["raw"], assays=["peptides"]))


def test_flipped_byte_in_the_manifest_is_a_checksum_error(tmp_path, container):
    path = save_parquet(container, tmp_path / "c.parquet")
    text = (path / "manifest.json").read_text()
    at = text.index('"n_samples"') + 3  # a flip that keeps valid JSON and a readable manifest
    _flip(path / "manifest.json", at)
    with pytest.raises(IOChecksumError) as info:
        load_parquet(path)
    assert "manifest.json" in str(info.value) and str(path) in str(info.value)
    assert "checksum mismatch" in str(info.value)
    from h5scp.__main__ import main

    assert main(["verify", str(path)]) == 2
    # the digest file itself damaged, or gone while the manifest lists checksums
    path = save_parquet(container, tmp_path / "d.parquet")
    (path / "manifest.json.crc32").write_text("crc32 zz\n")
    with pytest.raises(IOChecksumError, match=r"manifest\.json\.crc32.*damaged"):
        load_parquet(path)
    (path / "manifest.json.crc32").unlink()
    with pytest.raises(IOChecksumError, match=r"digest file is missing"):
        load_parquet(path)
    assert_container_equal(load_parquet(path, verify=False), container)


def test_file_missing_from_the_digests_is_a_checksum_error(tmp_path, container):
    import zlib

    path = save_parquet(container, tmp_path / "c.parquet")
    manifest = json.loads((path / "manifest.json").read_text())
    del manifest["checksums"]["files"]["obs.parquet"]
    raw = json.dumps(manifest).encode()
    (path / "manifest.json").write_bytes(raw)
    (path / "manifest.json.crc32").write_text(f"crc32 {zlib.crc32(raw):08x} {len(raw)}\n")
    with pytest.raises(IOChecksumError, match=r"obs\.parquet.*no checksum"):
        load_parquet(path)


def test_folder_without_checksums_loads_with_a_note(tmp_path, container, caplog):
    import logging

    path = save_parquet(container, tmp_path / "c.parquet")
    # as folders were written before checksums: no digest file, no "checksums" in the manifest
    manifest = json.loads((path / "manifest.json").read_text())
    del manifest["checksums"]
    (path / "manifest.json").write_text(json.dumps(manifest, indent=1))
    (path / "manifest.json.crc32").unlink()
    with caplog.at_level(logging.INFO, logger="h5scp.io._parquet_manifest"):
        assert_container_equal(load_parquet(path), container)
    assert any("without verification" in r.getMessage() and str(path) in r.getMessage() for r in caplog.records)
    from h5scp.__main__ import main

    assert main(["verify", str(path)]) == 0


def test_verify_command_checks_a_parquet_dataset(tmp_path, container):
    path = save_parquet(container, tmp_path / "c.parquet")
    done = subprocess.run([sys.executable, "-m", "h5scp", "verify", str(path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    n_files = sum(1 for p in path.rglob("*.parquet")) + 1
    assert f"OK, {n_files} files checked" in done.stdout
    _flip(path / "obs.parquet", 100)
    done = subprocess.run([sys.executable, "-m", "h5scp", "verify", str(path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "obs.parquet" in done.stderr and "checksum mismatch" in done.stderr


@pytest.fixture()
def many_row_groups(tmp_path, monkeypatch):
    monkeypatch.setattr(formats_parquet, "TILE_CELLS", 64)
    monkeypatch.setattr(formats_parquet, "_TILE_FEATURES", 8)
    monkeypatch.setattr(formats_parquet, "ROW_GROUP_ROWS", 16)
    n, f = 48, 40
    x = np.random.default_rng(5).random((n, f))
    c = ScpContainer(pl.DataFrame({"_index": [f"s{i}" for i in range(n)]}),
                     {"p": Assay(pl.DataFrame({"_index": [f"f{j}" for j in range(f)]}), {"raw": ScpMatrix(x)})})
    return c, save_parquet(c, tmp_path / "c.parquet", compression=None)


def test_row_group_digests_follow_the_parquet_footer(many_row_groups):
    import zlib

    import pyarrow.parquet as pq

    c, path = many_row_groups
    rel = "assays/p/layers/raw.parquet"
    entry = json.loads((path / "manifest.json").read_text())["checksums"]["files"][rel]
    raw = (path / rel).read_bytes()
    meta = pq.read_metadata(path / rel)
    assert len(entry["row_groups"]) == meta.num_row_groups == 48 * 40 // 16
    starts, ends = [], []
    for i in range(meta.num_row_groups):
        group = meta.row_group(i)
        chunks = [group.column(j) for j in range(group.num_columns)]
        first = [ch.dictionary_page_offset if ch.has_dictionary_page else ch.data_page_offset for ch in chunks]
        starts.append(min(first))
        ends.append(max(a + ch.total_compressed_size for a, ch in zip(first, chunks)))
        assert entry["row_groups"][i][1] == group.num_rows
    assert [g[0] for g in entry["row_groups"]] == [0] + starts[1:]
    assert entry["footer"][0] == ends[-1] and entry["size"] == len(raw)
    edges = [g[0] for g in entry["row_groups"]] + [entry["footer"][0], len(raw)]
    digests = [g[2] for g in entry["row_groups"]] + [entry["footer"][1]]
    assert digests == [f"{zlib.crc32(raw[a:b]):08x}" for a, b in zip(edges[:-1], edges[1:])]


def test_partial_loads_check_the_row_groups_they_read(many_row_groups):
    c, path = many_row_groups
    rel = "assays/p/layers/raw.parquet"
    entry = json.loads((path / "manifest.json").read_text())["checksums"]["files"][rel]
    x = c.assays["p"].layers["raw"].X
    # row group 1 holds rows 16-31 of the first tile (8 x 8 cells, sample-major): samples 2 and 3, f0-f7
    g = 1
    start, end = entry["row_groups"][g][0], entry["row_groups"][g + 1][0]
    layer = path / rel
    col = int(np.argsort(x[2, :8])[3])  # neither minimum nor maximum: not in the page statistics
    at = layer.read_bytes().find(np.ascontiguousarray(x[2, col:col + 1]).tobytes(), start, end)
    assert start <= at < end
    _flip(layer, at)
    for other in ("s0", "s47"):  # samples outside row group 1
        part = load_parquet(path, samples=[other])
        np.testing.assert_array_equal(part.assays["p"].layers["raw"].X, x[[int(other[1:])]])
    with pytest.raises(IOChecksumError, match=rf"{rel}.*row group {g}, bytes {start}-{end}"):
        load_parquet(path, samples=["s2"])
    with pytest.raises(IOChecksumError, match=rf"{rel}.*row group {g}\b"):
        load_parquet(path)
    got = load_parquet(path, samples=["s2"], verify=False).assays["p"].layers["raw"].X
    assert got[0, col] != x[2, col] and np.array_equal(np.delete(got[0], col), np.delete(x[2], col))
    # the footer is checked by every read of the file
    _flip(layer, at)  # restored
    footer = entry["footer"][0]
    _flip(layer, footer + 2)
    with pytest.raises(IOChecksumError, match=rf"{rel}.*footer"):
        load_parquet(path, samples=["s47"])


def test_digests_are_zlib_crc32_with_or_without_libdeflate(tmp_path, monkeypatch):
    import zlib

    from h5stream.files import folder_digests as _parquet_manifest  # the CRC manifest of a folder

    data = np.random.default_rng(2).integers(0, 256, 9 * 2**20 + 77, dtype=np.uint8).tobytes()
    target = tmp_path / "blob.bin"
    target.write_bytes(data)
    expected = (len(data), f"{zlib.crc32(data):08x}")
    assert _parquet_manifest.file_crc(target) == expected
    monkeypatch.setattr(_parquet_manifest, "_FAST_CRC32", None)
    assert _parquet_manifest.file_crc(target) == expected


@pytest.mark.parametrize("where", ["obs", "var", "among_others"])
def test_a_column_of_python_objects_is_a_write_error_before_anything_is_written(tmp_path, container, where):
    objects = pl.Series("o", [object() for _ in range(container.n_samples)], dtype=pl.Object)
    if where == "obs":
        container.obs = container.obs.with_columns(objects)
    elif where == "var":
        var = container.assays["proteins"].var
        container.assays["proteins"].var = var.with_columns(
            pl.Series("o", [object() for _ in range(var.height)], dtype=pl.Object))
    else:
        container.obs = container.obs.with_columns(objects.alias("first"), pl.Series("ok", range(container.n_samples)))
    path = tmp_path / "o.parquet"
    with pytest.raises(IOWriteError, match="Python objects") as info:
        save_parquet(container, path)
    assert str(path) in str(info.value) and "dtype Object" in str(info.value)
    assert not path.exists() and list(tmp_path.iterdir()) == []

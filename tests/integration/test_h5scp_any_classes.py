"""h5scp saves containers of any implementation of the data model and loads into the caller's classes.

The other implementation is the stand-in with upstream ScpTensor's current shape
(tests/data/standin_scptensor, described in its README): a slotted dataclass
``ScpMatrix``, a dataclass ``MatrixMetadata``, ``validate_on_init``, ``assay_shape``,
``FilterCriteria``.  In this process it is loaded under a private module name (the
name ``scptensor`` is the January API here); a child process has it installed as
``scptensor``, as an upstream user would, and runs the plans' call style there.
"""

from __future__ import annotations

import hashlib
import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from scipy import sparse

import h5scp
from h5scp.io import load, save, save_h5ad
from h5scp.io.classes import OURS, ModelClasses, as_model
from h5scp.io.exceptions import IOWriteError
from h5scp.testing import assert_container_equal

STANDIN = Path(__file__).resolve().parents[1] / "data" / "standin_scptensor"


def _standin_module():
    spec = importlib.util.spec_from_file_location("standin_upstream_structures",
                                                  STANDIN / "scptensor" / "core" / "structures.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


UP = _standin_module()
UP_CLASSES = ModelClasses.from_module(UP)


def upstream_container() -> object:
    """A container built with the stand-in's (upstream's) constructors: every kind of layer the model keeps."""
    rng = np.random.default_rng(7)
    n, p, q = 5, 4, 6
    obs = pl.DataFrame({"_index": [f"s{i}" for i in range(n)], "batch": ["a", "b", "a", "b", "a"],
                        "depth": pl.Series([1.5, None, float("nan"), 2.0, 3.0])})
    x32 = rng.random((n, p), dtype=np.float32)
    x32[0, 1] = np.nan
    mask = np.zeros((n, p), np.int8)
    mask[0, 1] = UP.MaskCode.LOD
    csr = sparse.csr_matrix(np.where(rng.random((n, q)) < 0.5, rng.random((n, q)), 0.0))
    csr_mask = sparse.csr_matrix((csr != 0).astype(np.int8) * np.int8(UP.MaskCode.MBR))
    proteins = UP.Assay(
        pl.DataFrame({"_index": [f"P{j}" for j in range(p)], "gene": ["A", "B", "C", "D"]}),
        {"raw": UP.ScpMatrix(x32, mask, UP.MatrixMetadata(confidence_scores=rng.random((n, p)),
                                                           creation_info={"tool": "diann", "version": 1.9})),
         "norm": UP.ScpMatrix(rng.random((n, p)))},
    )
    peptides = UP.Assay(
        pl.DataFrame({"pep": [f"E{k}" for k in range(q)], "protein": [f"P{k % p}" for k in range(q)]}),
        {"raw": UP.ScpMatrix(csr, csr_mask), "csc": UP.ScpMatrix(sparse.csc_matrix(csr.astype(np.float32)))},
        feature_id_col="pep",
    )
    link = UP.AggregationLink("peptides", "proteins", pl.DataFrame(
        {"source_id": [f"E{k}" for k in range(q)], "target_id": [f"P{k % p}" for k in range(q)]}))
    history = [UP.ProvenanceLog("2026-04-01T10:00:00+00:00", "load_diann", {"path": "r.tsv", "n": np.int64(3)},
                                "0.1.0", "Load"),
               UP.ProvenanceLog("2026-04-01T10:01:00+00:00", "aggregate", {"method": "sum"})]
    return UP.ScpContainer(obs, {"proteins": proteins, "peptides": peptides}, [link], history)


def _check_standin_types(loaded) -> None:
    assert type(loaded) is UP.ScpContainer
    for assay in loaded.assays.values():
        assert type(assay) is UP.Assay
        for matrix in assay.layers.values():
            assert type(matrix) is UP.ScpMatrix
            assert matrix.metadata is None or type(matrix.metadata) is UP.MatrixMetadata
    assert all(type(h) is UP.ProvenanceLog for h in loaded.history)
    assert all(type(link) is UP.AggregationLink for link in loaded.links)


def _one_assay(c, name: str):
    return UP.ScpContainer(c.obs, {name: c.assays[name]}, [], c.history, c.sample_id_col)


@pytest.mark.parametrize("ext", [".h5", ".h5mu", ".parquet", ".h5ad", ".zarr"])
def test_an_upstream_container_round_trips_exactly_into_upstream_classes(tmp_path, ext):
    if ext == ".zarr":
        pytest.importorskip("zarr")
    one = ext in (".h5ad", ".zarr")  # AnnData: one assay
    c = upstream_container()
    expected = _one_assay(c, "proteins") if one else c
    path = tmp_path / f"c{ext}"
    save(c, path, **({"assay": "proteins"} if one else {}))
    loaded = load(path, classes=UP)
    _check_standin_types(loaded)
    assert_container_equal(as_model(loaded), as_model(expected))
    assert loaded.assays["proteins"].layers["raw"].metadata.creation_info == {"tool": "diann", "version": 1.9}
    assert loaded.assays["proteins"].layers["norm"].metadata is None
    # upstream's own verbs work on it
    loaded.validate()
    assert loaded.assay_shape("proteins") == (5, 4)
    # and into our classes, the same content
    ours = load(path, classes=OURS)
    assert type(ours) is h5scp.ScpContainer
    assert_container_equal(ours, as_model(expected))


def test_partial_loads_into_upstream_classes(tmp_path):
    c = upstream_container()
    for ext in (".h5", ".h5mu", ".parquet"):
        path = tmp_path / f"c{ext}"
        save(c, path)
        got = load(path, assays=["proteins"], layers=["raw"], obs_columns=["batch"], samples=["s3", "s1"],
                   classes=UP_CLASSES)
        _check_standin_types(got)
        assert got.obs.columns == ["_index", "batch"] and got.obs["_index"].to_list() == ["s3", "s1"]
        raw = c.assays["proteins"].layers["raw"]
        np.testing.assert_array_equal(got.assays["proteins"].layers["raw"].X, raw.X[[3, 1]])
        np.testing.assert_array_equal(got.assays["proteins"].layers["raw"].M, raw.M[[3, 1]])
        assert list(got.assays) == ["proteins"] and list(got.assays["proteins"].layers) == ["raw"]


def _with_layer(matrix_or_name) -> object:
    c = upstream_container()
    if isinstance(matrix_or_name, str):
        c.assays["proteins"].layers[matrix_or_name] = c.assays["proteins"].layers["norm"]
    else:
        c.assays["proteins"].layers["bad"] = matrix_or_name
    return c


REFUSED = {
    "float16": lambda: UP.ScpMatrix(np.ones((5, 4), np.float16)),
    "longdouble": lambda: UP.ScpMatrix(np.ones((5, 4), np.longdouble)),
    "coo": lambda: UP.ScpMatrix(sparse.coo_matrix(np.eye(5, 4))),
    "csr_array": lambda: UP.ScpMatrix(sparse.csr_array(np.eye(5, 4))),
    "slash": lambda: "a/b",
}


@pytest.mark.parametrize("ext", [".h5", ".h5mu", ".parquet", ".h5ad"])
@pytest.mark.parametrize("case", sorted(REFUSED))
def test_what_no_format_keeps_is_a_write_error_before_anything_is_written(tmp_path, ext, case):
    c = _with_layer(REFUSED[case]())
    path = tmp_path / f"c{ext}"
    with pytest.raises(IOWriteError) as info:
        save(c, path, **({"assay": "proteins"} if ext == ".h5ad" else {}))
    text = str(info.value)
    assert str(path) in text
    assert {"float16": "dtype float16", "longdouble": "dtype float128", "coo": "coo_matrix",
            "csr_array": "csr_array", "slash": "a/b"}[case] in text
    assert list(tmp_path.iterdir()) == []


def test_the_original_refused_objects_by_class_now_any_shape_saves(tmp_path):
    # a plain object with the attributes is enough; one lacking them is named
    class Bare:
        pass

    with pytest.raises(IOWriteError, match=r"lacks the data model's attributes \['obs'"):
        save_h5ad(Bare(), tmp_path / "x.h5ad")
    assert not (tmp_path / "x.h5ad").exists()


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and "__pycache__" not in p.parts}


CHILD = textwrap.dedent("""
    import sys
    import numpy as np, polars as pl
    import h5scp
    added = h5scp.enable_scptensor_io()           # the one documented line
    from scptensor.io import save_hdf5, load_hdf5
    from scptensor.core import FilterCriteria
    from scptensor.core.structures import Assay, MatrixMetadata, ScpContainer, ScpMatrix
    from scptensor import toolkit
    import scptensor

    obs = pl.DataFrame({"_index": ["s1", "s2", "s3"], "batch": ["a", "a", "b"]})
    var = pl.DataFrame({"_index": ["P1", "P2"]})
    X = np.array([[1.0, 2.0], [3.0, np.nan], [5.0, 6.0]])
    c = ScpContainer(obs, {"proteins": Assay(var, {"raw": ScpMatrix(X)})})
    toolkit.log_transform(c, "proteins", "raw", "log")
    out = sys.argv[1]
    for ext in (".h5", ".h5mu", ".parquet"):
        path = out + "/c" + ext
        save_hdf5(c, path) if ext == ".h5" else h5scp.save(c, path)
        again = load_hdf5(path) if ext == ".h5" else h5scp.load(path)
        assert type(again) is ScpContainer, type(again)
        assert type(again.assays["proteins"].layers["log"].metadata) is MatrixMetadata
        assert np.array_equal(again.assays["proteins"].layers["log"].X, c.assays["proteins"].layers["log"].X,
                              equal_nan=True)
        again.validate()
        kept = again.filter_samples(FilterCriteria(ids=("s3", "s1")))
        toolkit.log_transform(kept, "proteins", "log", "loglog")
        assert kept.assay_shape("proteins") == (2, 2)
    assert h5scp.enable_scptensor_io() == []     # a second call adds nothing and says so
    print("added", ",".join(added), "from", scptensor.__file__)
""")


def test_an_upstream_user_saves_with_the_plans_call_style_after_one_line(tmp_path):
    before = _digest(STANDIN)
    env_path = [str(STANDIN), *[p for p in sys.path if p]]
    done = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path)], capture_output=True, text=True,
                          env={"PYTHONPATH": ":".join(env_path), "PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"}, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("added save_hdf5,load_hdf5,") and str(STANDIN) in done.stdout
    assert "h5scp: scptensor.io" in done.stderr and "from h5scp" in done.stderr
    second = done.stderr.strip().splitlines()[-1]
    assert "has nothing new from h5scp" in second and "save_hdf5, load_hdf5" in second and "earlier call" in second
    assert _digest(STANDIN) == before  # nothing written into the installed package

"""Save and load of containers through real HDF5 files: round trips, selective saves, bad input."""

from __future__ import annotations

import errno
import os

import h5py
import numpy as np
import polars as pl
import pytest
from scipy import sparse

from h5scp import ScpContainer
from h5scp.core.structures import AggregationLink, Assay, MaskCode, ScpMatrix
from h5scp.io import (
    IOFormatError,
    IOPasswordError,
    IOSourceNotFoundError,
    IOTargetExistsError,
    IOWriteError,
    load_hdf5,
    save_hdf5,
)
from h5scp.io.exceptions import IOChecksumError, PartNotFoundWarning
from h5scp.testing import assert_container_equal, assert_matrix_equal, example_container

FORMATS = [".h5", ".hdf5", ".h5mu"]


def _planted_raw(container):
    return container.assays["proteins"].layers["raw"]


# ---------------------------------------------------------------- round trips


@pytest.mark.parametrize("ext", FORMATS)
def test_full_round_trip(tmp_path, container, ext):
    path = tmp_path / f"c{ext}"
    container.save(path)
    loaded = ScpContainer.load(path)
    assert_container_equal(loaded, container)


def test_round_trip_keeps_masks_exactly(tmp_path, container):
    path = tmp_path / "m.h5"
    save_hdf5(container, path)
    loaded = load_hdf5(path)
    raw = loaded.assays["proteins"].layers["raw"]
    assert raw.M.dtype == np.int8
    assert np.array_equal(raw.M, _planted_raw(container).M)
    assert (raw.M == MaskCode.LOD).any() and (raw.M == MaskCode.IMPUTED).any()
    pep = loaded.assays["peptides"].layers["raw"]
    assert pep.M.format == "csr" and pep.M.dtype == np.int8
    assert loaded.assays["peptides"].layers["norm"].X.format == "csc"
    with h5py.File(path, "r") as f:
        assert f["assays/proteins/layers/raw/M"].dtype == np.int8
        assert f["assays/proteins/layers/log/X"].dtype == np.float64
        assert f.attrs["format_version"] == "2.0"


def test_round_trip_multi_assay_order_and_ids(tmp_path, container):
    path = tmp_path / "multi.h5"
    save_hdf5(container, path)
    loaded = load_hdf5(path)
    assert list(loaded.assays) == ["proteins", "peptides"]
    assert loaded.assays["peptides"].feature_id_col == "peptide_id"
    assert loaded.links == container.links


def test_round_trip_history_with_numpy_params(tmp_path, container):
    container.log_operation("normalize", {"method": "log", "scale": np.float64(2.5)}, "Log normalize")
    path = tmp_path / "h.h5"
    save_hdf5(container, path)
    loaded = load_hdf5(path)
    assert len(loaded.history) == 3
    assert loaded.history[2].action == "normalize"
    params = loaded.history[1].params
    assert params["cols"].dtype == np.int32 and np.array_equal(params["cols"], np.arange(3))
    assert type(params["offset"]) is np.float32 and type(loaded.history[0].params["n_files"]) is np.int64
    assert loaded.history == container.history


@pytest.mark.parametrize("ext", FORMATS)
def test_empty_container(tmp_path, ext):
    c = ScpContainer(pl.DataFrame({"_index": ["S1", "S2"]}))
    path = tmp_path / f"e{ext}"
    c.save(path)
    loaded = ScpContainer.load(path)
    assert loaded.n_samples == 2 and loaded.assays == {} and loaded.history == []
    assert_container_equal(loaded, c)


@pytest.mark.parametrize("ext", FORMATS)
def test_zero_samples_and_zero_layer_assay(tmp_path, ext):
    c = ScpContainer(
        pl.DataFrame({"sid": pl.Series([], dtype=pl.String), "v": pl.Series([], dtype=pl.Float32)}),
        {"proteins": Assay(pl.DataFrame({"_index": ["P1", "P2"]})),
         "empty": Assay(pl.DataFrame({"_index": pl.Series([], dtype=pl.String)}), {"raw": ScpMatrix(np.zeros((0, 0), np.float32))})},
        sample_id_col="sid",
    )
    path = tmp_path / f"z{ext}"
    c.save(path)
    assert_container_equal(ScpContainer.load(path), c)


@pytest.mark.parametrize("ext", FORMATS)
def test_unicode_and_space_names(tmp_path, ext):
    obs = pl.DataFrame({"échantillon id": ["s α", "s β"], "température °C": [1.5, None]})
    var = pl.DataFrame({"名前": ["蛋白 1", "蛋白 2", "蛋白 3"], "gene name": ["A", "B", "C"]})
    X = np.arange(6, dtype=np.float32).reshape(2, 3)
    c = ScpContainer(
        obs,
        {"protéines ω": Assay(var, {"log 2 ✓": ScpMatrix(X, np.eye(2, 3, dtype=np.int8))}, feature_id_col="名前")},
        sample_id_col="échantillon id",
    )
    path = tmp_path / f"u{ext}"
    c.save(path)
    assert_container_equal(ScpContainer.load(path), c)


def test_dense_float64_and_uncompressed_and_lzf(tmp_path):
    # large enough that the engine compresses it (tiny arrays stay uncompressed)
    container = example_container(n_samples=40, n_proteins=40)
    for compression in (None, "lzf", "gzip"):
        path = tmp_path / f"c-{compression}.h5"
        save_hdf5(container, path, compression=compression)
        assert_container_equal(load_hdf5(path), container)
        with h5py.File(path, "r") as f:
            assert f["assays/proteins/layers/raw/X"].compression == compression


@pytest.mark.parametrize("level, mask_at", [(4, 1), (9, 1), (1, 1), (0, 0)])
def test_masks_are_deflated_at_level_one_at_most(tmp_path, level, mask_at):
    rng = np.random.default_rng(3)
    x = rng.lognormal(size=(300, 200))
    m = (rng.random((300, 200)) < 0.3).astype(np.int8) * np.int8(MaskCode.LOD)
    x[m != 0] = np.nan
    assay = Assay(pl.DataFrame({"_index": [f"P{j}" for j in range(200)]}), {"raw": ScpMatrix(x, m)})
    container = ScpContainer(pl.DataFrame({"_index": [f"s{i}" for i in range(300)]}), {"proteins": assay})
    path = tmp_path / f"l{level}.h5"
    save_hdf5(container, path, compression="gzip", compression_level=level)
    with h5py.File(path, "r") as f:  # plain h5py, HDF5's own filters
        X, M = f["assays/proteins/layers/raw/X"], f["assays/proteins/layers/raw/M"]
        assert X.compression == "gzip" and X.compression_opts == level
        assert M.compression == "gzip" and M.compression_opts == mask_at
        assert np.array_equal(M[()], m) and np.array_equal(X[()], x, equal_nan=True)
    assert_container_equal(load_hdf5(path), container)


def test_the_default_compresses_only_the_arrays_that_shrink_to_half(tmp_path):
    """``compression="auto"`` (the default): measured intensities and sparse indices (a third of their
    bytes under gzip) stored plain, a mask and mostly-missing values deflated at level 1 after the
    shuffle filter, arrays under one chunk (1 MiB) plain; HDF5's own filters only, read by plain h5py,
    anndata and mudata."""
    import anndata

    from h5scp.io import save_h5ad

    rng = np.random.default_rng(5)
    n, p = 2000, 600
    x = rng.lognormal(size=(n, p))  # noise in the low bytes: keeps most of its bytes under gzip
    m = (rng.random((n, p)) < 0.3).astype(np.int8) * np.int8(MaskCode.LOD)  # 1.2 MB
    sparse_x = sparse.random(n, 20 * p, density=0.02, format="csr", random_state=2)
    mostly_missing = np.where(rng.random((n, p)) < 0.9, np.nan, x)  # nine tenths missing
    small = (rng.random((n, 50)) < 0.3) * 1.0  # 0.8 MB of float64: under one chunk
    assays = {
        "proteins": Assay(pl.DataFrame({"_index": [f"P{j}" for j in range(p)]}),
                          {"raw": ScpMatrix(x, m), "sparse_nan": ScpMatrix(mostly_missing)}),
        "peptides": Assay(pl.DataFrame({"_index": [f"Q{j}" for j in range(20 * p)]}), {"raw": ScpMatrix(sparse_x)}),
        "small": Assay(pl.DataFrame({"_index": [f"S{j}" for j in range(50)]}), {"raw": ScpMatrix(small)}),
    }
    container = ScpContainer(pl.DataFrame({"_index": [f"s{i}" for i in range(n)]}), assays)
    path = tmp_path / "auto.h5"
    save_hdf5(container, path)
    with h5py.File(path, "r") as f:  # plain h5py, no plugins
        layers = f["assays/proteins/layers"]
        X, M, nan_x = layers["raw/X"], layers["raw/M"], layers["sparse_nan/X"]
        indices, data = f["assays/peptides/layers/raw/X/indices"], f["assays/peptides/layers/raw/X/data"]
        assert X.compression is None and data.compression is None and indices.compression is None
        assert f["assays/small/layers/raw/X"].compression is None and f["obs/_index"].compression is None
        for ds in (M, nan_x):
            assert ds.compression == "gzip" and ds.compression_opts == 1 and ds.shuffle, ds.name
            assert ds.id.get_storage_size() <= 0.25 * ds.nbytes, ds.name
        assert np.array_equal(X[()], x) and np.array_equal(M[()], m)
        assert np.array_equal(nan_x[()], mostly_missing, equal_nan=True)
    assert_container_equal(load_hdf5(path), container)
    save_h5ad(container, tmp_path / "auto.h5ad", assay="proteins")
    theirs = anndata.read_h5ad(tmp_path / "auto.h5ad")
    assert np.array_equal(theirs.X, x)
    with h5py.File(tmp_path / "auto.h5ad", "r") as f:
        assert f["X"].compression is None
    import mudata

    from h5scp.io import save_h5mu

    save_h5mu(container, tmp_path / "auto.h5mu")
    with mudata.set_options(pull_on_update=False):
        theirs = mudata.read_h5mu(tmp_path / "auto.h5mu")
    assert np.array_equal(theirs.mod["proteins"].X, x)
    assert np.array_equal(theirs.mod["proteins"].layers["sparse_nan"], mostly_missing, equal_nan=True)
    assert (theirs.mod["peptides"].X != sparse_x).nnz == 0
    with h5py.File(tmp_path / "auto.h5mu", "r") as f:
        assert f["mod/proteins/layers/sparse_nan"].compression == "gzip"


# ---------------------------------------------------------------- selective saves


@pytest.mark.parametrize("ext", [".h5", ".h5mu"])
def test_selective_assay_export(tmp_path, container, ext):
    path = tmp_path / f"sel{ext}"
    container.save(path, save_assays=["proteins"])
    loaded = ScpContainer.load(path)
    assert list(loaded.assays) == ["proteins"]
    assert loaded.links == []  # the link needs both assays
    assert_container_equal(
        loaded,
        ScpContainer(container.obs, {"proteins": container.assays["proteins"]}, history=container.history),
    )


def test_selective_layers_obs_and_history(tmp_path, container):
    path = tmp_path / "part.h5"
    save_hdf5(
        container, path, save_obs=False, save_layers={"proteins": ["log"]}, save_history=False
    )
    loaded = load_hdf5(path)
    assert loaded.obs.columns == ["_index"]
    assert loaded.sample_ids.to_list() == container.sample_ids.to_list()
    assert list(loaded.assays["proteins"].layers) == ["log"]
    assert list(loaded.assays["peptides"].layers) == ["raw", "norm"]
    assert loaded.history == []
    with h5py.File(path, "r") as f:
        assert not f.attrs["obs_saved"] and not f.attrs["history_saved"]

    path2 = tmp_path / "part2.h5"
    save_hdf5(container, path2, save_layers=["raw"])
    loaded2 = load_hdf5(path2)
    assert {k: list(a.layers) for k, a in loaded2.assays.items()} == {"proteins": ["raw"], "peptides": ["raw"]}


def test_selective_save_skips_names_the_container_lacks_and_says_so(tmp_path, container):
    # The original skipped such names silently; its design example asks for
    # layers ["X", "imputed"] of assays that hold neither, or only one.
    path = tmp_path / "x.h5"
    with pytest.warns(PartNotFoundWarning, match=r"save_assays.*\['nope'\]"):
        save_hdf5(container, path, save_assays=["nope", "peptides"])
    assert list(load_hdf5(path).assays) == ["peptides"]
    with pytest.warns(PartNotFoundWarning, match=r"layers no assay saved holds: \['X', 'imputed'\]"):
        save_hdf5(container, path, save_layers=["X", "imputed", "log"], overwrite=True)
    loaded = load_hdf5(path)
    assert {k: list(a.layers) for k, a in loaded.assays.items()} == {"proteins": ["log"], "peptides": []}
    assert_matrix_equal(loaded.assays["proteins"].layers["log"], container.assays["proteins"].layers["log"])
    with pytest.warns(PartNotFoundWarning) as caught:
        save_hdf5(container, path, save_layers={"proteins": ["zz", "raw"], "nope": ["raw"]}, overwrite=True)
    assert [str(w.message).split(":")[0] for w in caught] == [
        "save_layers names assays the container lacks", "save_layers names layers assay 'proteins' lacks"]
    loaded = load_hdf5(path)
    assert {k: list(a.layers) for k, a in loaded.assays.items()} == {"proteins": ["raw"], "peptides": ["raw", "norm"]}
    with pytest.warns(PartNotFoundWarning):
        container.save(tmp_path / "x.h5mu", save_layers=["nope"])
    assert all(not a.layers for a in load_hdf5(tmp_path / "x.h5mu").assays.values())


# ---------------------------------------------------------------- overwrite and write failures


def test_overwrite(tmp_path, container):
    path = tmp_path / "o.h5"
    save_hdf5(container, path)
    other = ScpContainer(pl.DataFrame({"_index": ["only"]}))
    with pytest.raises(IOWriteError, match="overwrite=True") as info:
        save_hdf5(other, path)
    assert isinstance(info.value, IOTargetExistsError) and str(path) in str(info.value)
    assert_container_equal(load_hdf5(path), container)
    save_hdf5(other, path, overwrite=True)
    assert_container_equal(load_hdf5(path), other)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.h5"]


def test_unwritable_directory(tmp_path, container):
    blocker = tmp_path / "not_a_dir"
    blocker.write_bytes(b"x")
    with pytest.raises(IOWriteError) as info:
        save_hdf5(container, blocker / "c.h5")
    assert str(blocker / "c.h5") in str(info.value)
    assert blocker.read_bytes() == b"x"


@pytest.mark.parametrize("ext", [".h5", ".h5mu", ".h5ad"])
def test_full_disk_keeps_existing_file(tmp_path, container, monkeypatch, ext):
    path = tmp_path / f"d{ext}"
    options = {"assay": "proteins"} if ext == ".h5ad" else {}
    container.save(path, **options)
    before = path.read_bytes()

    def full_disk(src, dst):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(IOWriteError, match="free disk space") as info:
        container.save(path, overwrite=True, **options)
    monkeypatch.undo()
    assert str(path) in str(info.value)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_failure_while_writing_data_leaves_no_file(tmp_path, container, monkeypatch):
    import h5scp.io.exporters as exporters

    def broken(*args, **kwargs):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(exporters, "serialize_provenance", broken)
    with pytest.raises(IOWriteError, match="Input/output error"):
        save_hdf5(container, tmp_path / "io.h5")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- bad input


def test_wrong_version(tmp_path, container):
    path = tmp_path / "v.h5"
    save_hdf5(container, path)
    with h5py.File(path, "r+") as f:
        f.attrs["format_version"] = "9.0"
    with pytest.raises(IOFormatError, match="unsupported scptensor format version") as info:
        load_hdf5(path)
    assert str(path) in str(info.value) and "'9.0'" in str(info.value)


def test_seed_style_invalid_version(tmp_path):
    path = tmp_path / "invalid.h5"
    with h5py.File(path, "w") as f:
        f.attrs["format_version"] = "0.0"
        f.create_group("obs")
    with pytest.raises(IOFormatError, match="'0.0'"):
        load_hdf5(path)


@pytest.mark.parametrize("missing", ["assays", "obs", "assays/proteins/layers"])
def test_missing_group(tmp_path, container, missing):
    path = tmp_path / "g.h5"
    save_hdf5(container, path)
    with h5py.File(path, "r+") as f:
        del f[missing]
    with pytest.raises(IOFormatError, match="missing") as info:
        load_hdf5(path, verify=False)
    assert str(path) in str(info.value) and f"/{missing}" in str(info.value)
    # verified, the names digest of the parent refuses the file first, naming the parent and what it holds
    with pytest.raises(IOChecksumError, match="names of the object's attributes or members") as info:
        load_hdf5(path)
    parent = "/" + missing.rpartition("/")[0]
    assert f"{path} [{parent}]" in str(info.value) and f"/{missing}" not in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(IOSourceNotFoundError, match="does not exist"):
        load_hdf5(tmp_path / "none.h5")


def test_not_hdf5(tmp_path):
    path = tmp_path / "text.h5"
    path.write_text("sample,value\nS1,1\n")
    with pytest.raises(IOFormatError, match="not an HDF5 file") as info:
        load_hdf5(path)
    assert str(path) in str(info.value)


def test_encrypted_file(tmp_path):
    path = tmp_path / "secret.h5"
    path.write_bytes(b"Salted__" + bytes(range(64)))
    with pytest.raises(IOPasswordError, match="password") as info:
        load_hdf5(path)
    assert str(path) in str(info.value)


def test_file_of_another_kind(tmp_path, container):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f.attrs["encoding-type"] = "loom"
        f["matrix"] = np.ones((2, 2))
    with pytest.raises(IOFormatError, match="not a scptensor, AnnData or MuData file") as info:
        load_hdf5(path)
    assert "loom" in str(info.value) and str(path) in str(info.value)
    # a MuData file without modalities is refused whatever reader opens it
    plain = tmp_path / "plain.h5mu"
    with h5py.File(plain, "w") as f:
        f.attrs["encoding-type"] = "MuData"
        f.create_group("obs")
    with pytest.raises(IOFormatError, match="required group is missing") as info:
        ScpContainer.load(plain)
    assert "/mod" in str(info.value)


def test_corrupt_element_is_format_error(tmp_path, container):
    path = tmp_path / "bad.h5"
    save_hdf5(container, path)
    with h5py.File(path, "r+") as f:
        f["assays/proteins/layers/raw/X"].attrs["encoding-type"] = "mystery"
    # The edit breaks the attribute's checksum, which a default load checks first.
    with pytest.raises(IOFormatError, match="checksum mismatch") as info:
        load_hdf5(path)
    assert "/assays/proteins/layers/raw/X/@encoding-type" in str(info.value)
    with pytest.raises(IOFormatError, match="mystery") as info:
        load_hdf5(path, verify=False)
    assert "/assays/proteins/layers/raw/X" in str(info.value)


def test_unsupported_extension(tmp_path, container):
    with pytest.raises(ValueError, match=r"'\.csv'.*\.h5, \.hdf5, \.h5mu, \.h5ad"):
        container.save(tmp_path / "c.csv")
    # reading goes by content: a missing file is named as missing, whatever its extension
    with pytest.raises(IOSourceNotFoundError):
        ScpContainer.load(tmp_path / "c.unknown")


def test_container_methods_return_path(tmp_path, container):
    assert container.save(tmp_path / "m.h5") == tmp_path / "m.h5"
    assert ScpContainer.load(tmp_path / "m.h5").n_samples == container.n_samples


def test_links_and_metadata_survive(tmp_path):
    obs = pl.DataFrame({"_index": ["a", "b"]})
    prot = Assay(pl.DataFrame({"_index": ["P"]}), {"raw": ScpMatrix(np.ones((2, 1)), metadata={"note": "x", "w": np.ones(1, np.float32)})})
    pep = Assay(pl.DataFrame({"_index": ["p1", "p2"]}), {"raw": ScpMatrix(sparse.csr_matrix(np.eye(2)))})
    link = AggregationLink("peptides", "proteins", pl.DataFrame({"source_id": ["p1", "p2"], "target_id": ["P", "P"], "weight": [0.5, 0.5]}))
    c = ScpContainer(obs, {"proteins": prot, "peptides": pep}, links=[link])
    for ext in FORMATS:
        c.save(tmp_path / f"l{ext}")
        assert_container_equal(ScpContainer.load(tmp_path / f"l{ext}"), c)


def test_second_writer_is_refused(tmp_path, container):
    from h5stream.files import WriterClaim

    from h5scp.io import IOWriterClaimError

    path = tmp_path / "busy.h5"
    with WriterClaim(path):
        with pytest.raises(IOWriteError, match="already open for writing") as info:
            save_hdf5(container, path)
    assert isinstance(info.value, IOWriterClaimError) and str(path) in str(info.value)
    assert not path.exists()
    save_hdf5(container, path)  # the claim is gone with its holder
    assert_container_equal(load_hdf5(path), container)


@pytest.mark.parametrize(("ext", "attr"), [(".h5mu", "scptensor:format_version"), (".h5ad", "scptensor:format_version")])
def test_anndata_formats_wrong_version_and_foreign(tmp_path, container, ext, attr):
    path = tmp_path / f"v{ext}"
    options = {"assay": "proteins"} if ext == ".h5ad" else {}
    container.save(path, **options)
    with h5py.File(path, "r+") as f:
        f.attrs[attr] = "7.1"
    with pytest.raises(IOFormatError, match="'7.1'") as info:
        ScpContainer.load(path)
    assert str(path) in str(info.value)
    with h5py.File(path, "r+") as f:
        # as when anndata or mudata re-save our file: the annotations decide (our digests are gone too)
        del f.attrs[attr]
        del f.attrs["h5stream_checksums"]
    expected = container if ext == ".h5mu" else ScpContainer(
        container.obs, {"proteins": container.assays["proteins"]}, history=container.history
    )
    assert_container_equal(ScpContainer.load(path), expected)
    hdf = tmp_path / f"plain{ext}"
    save_hdf5(container, tmp_path / "plain.h5")
    (tmp_path / "plain.h5").rename(hdf)
    # the content decides: our .h5 format under an AnnData/MuData name loads as what it is
    assert_container_equal(ScpContainer.load(hdf), container)


def test_content_breaking_the_model_is_format_error(tmp_path, container):
    path = tmp_path / "dup.h5"
    save_hdf5(container, path)
    with h5py.File(path, "r+") as f:
        mask = f["assays/proteins/layers/raw/M"]
        mask[0, 0] = 42
    with pytest.raises(IOFormatError, match="checksum mismatch"):
        load_hdf5(path)
    # Read as stored, the value is refused by the data model.
    with pytest.raises(IOFormatError, match="breaks the data model.*code 42") as info:
        load_hdf5(path, verify=False)
    assert str(path) in str(info.value)
    with pytest.warns(PartNotFoundWarning, match="no assay saved holds"):
        save_hdf5(container, tmp_path / "x.h5", save_layers=["nope"])

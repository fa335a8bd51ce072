"""Every byte a partial load returns is checked: random selections x a byte flipped inside a selected cell.

For each format and storage (contiguous HDF5 with piece digests, ``compression=None``, gzip chunks
with Fletcher32, CSR ``data``, ``.h5mu``, ``.h5ad``, Parquet long and wide, the AnnData zarr store),
a container of random values is saved once; each trial picks a random selection of samples (ids in
any order, or a mask) and of features, one selected cell, and flips one byte of the stored bytes of
that cell (found by searching the files for the cell's unique 8 bytes where values are stored as
they are; else inside the chunk that holds it), loads the selection, then flips the byte back.

Each outcome is a typed error of ours (``typed``), values equal to the original's cut with numpy
(``identical``: only possible where the flip hit a compressed chunk's bytes that decode the same),
a different result without error (``silent``) or another exception (``raw``).  None may be silent
or raw; where the cell's own bytes were flipped the outcome must be typed.  The default run makes a
few trials per case; the campaign (``-m campaign``) many.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import polars as pl
import pytest
from scipy import sparse

from h5scp import Assay, ScpContainer, ScpMatrix
from h5scp.io import load, save
from h5stream.errors import H5StreamError

N_SAMPLES, N_FEATURES = 1200, 60  # dense X: 576 KB, three pieces of 546 rows

#: case -> (extension, save options)
CASES = {
    "h5": (".h5", {}),
    "h5-none": (".h5", {"compression": None}),
    "h5-gzip": (".h5", {"compression": "gzip"}),
    "h5mu": (".h5mu", {}),
    "h5ad": (".h5ad", {}),
    "h5ad-none": (".h5ad", {"compression": None}),
    "parquet": (".parquet", {"compression": None}),
    "parquet-wide": (".parquet", {"compression": None, "layout": "wide"}),
    "zarr": (".zarr", {}),
}
#: where values are not stored as they are, the stored object holding X (dense; CSR: its data)
_X_OBJECT = {"h5-gzip": "/assays/proteins/layers/X/X"}


def _matrix(kind: str, rng) -> np.ndarray | sparse.csr_matrix:
    if kind == "dense":
        return rng.random((N_SAMPLES, N_FEATURES))
    m = sparse.random(N_SAMPLES, 400, density=0.12, format="csr", random_state=rng)
    m.data[:] = rng.random(m.data.size)
    return m


def _container(X) -> ScpContainer:
    obs = pl.DataFrame({"sample": [f"s{i}" for i in range(X.shape[0])]})
    var = pl.DataFrame({"protein": [f"p{j}" for j in range(X.shape[1])]})
    return ScpContainer(obs, {"proteins": Assay(var, {"X": ScpMatrix(X)}, feature_id_col="protein")},
                        sample_id_col="sample")


def _files(path: Path) -> list[Path]:
    return [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())


def _selection(rng, X):
    n, f = X.shape
    rows = rng.choice(n, int(rng.integers(1, 25)), replace=False)
    cols = None if rng.random() < 0.3 else rng.choice(f, int(rng.integers(1, 12)), replace=False)
    samples = [f"s{i}" for i in rows]
    if rng.random() < 0.3:  # a mask reads the rows in saved order
        rows = np.sort(rows)
        samples = np.isin(np.arange(n), rows)
    features = None
    if cols is not None:
        features = {"proteins": [f"p{j}" for j in cols]}
        if rng.random() < 0.3:
            cols = np.sort(cols)
            features = {"proteins": np.isin(np.arange(f), cols)}
    return rows, cols, samples, features


def _cells(X, rows, cols) -> list[tuple[int, int]]:
    """The selected cells holding a stored value (every cell of a dense matrix)."""
    cols = np.arange(X.shape[1]) if cols is None else cols
    if not sparse.issparse(X):
        return [(int(r), int(c)) for r in rows[:3] for c in cols[:3]]
    wanted = set(int(c) for c in cols)
    return [(int(r), int(c)) for r in rows for c in X.indices[X.indptr[r]:X.indptr[r + 1]] if int(c) in wanted]


def _value_sites(path: Path, value: float) -> list[tuple[Path, int]]:
    """Where the 8 bytes of ``value`` lie in the files of ``path``."""
    raw, sites = np.float64(value).tobytes(), []
    for file in _files(path):
        data = file.read_bytes()
        at = data.find(raw)
        while at >= 0:
            sites.append((file, at))
            at = data.find(raw, at + 1)
    return sites


def _chunk_site(case: str, path: Path, X, cell: tuple[int, int], rng) -> tuple[Path, int]:
    """A byte inside the stored chunk holding ``cell`` (of X, or of CSR X's data)."""
    r, c = cell
    sparse_x = sparse.issparse(X)
    entry = int(X.indptr[r] + np.flatnonzero(X.indices[X.indptr[r]:X.indptr[r + 1]] == c)[0]) if sparse_x else None
    if case == "zarr":
        folder = path / "X" / "data" if sparse_x else path / "X"
        meta = json.loads((folder / ".zarray").read_text())
        at = (entry,) if sparse_x else (r, c)
        key = meta.get("dimension_separator", ".").join(str(i // s) for i, s in zip(at, meta["chunks"]))
        file = folder / key
        return file, int(rng.integers(0, file.stat().st_size))
    name = _X_OBJECT[case] + ("/data" if sparse_x else "")
    with h5py.File(path, "r") as f:
        ds = f[name]
        coord = (entry - entry % ds.chunks[0],) if sparse_x else tuple(i - i % s for i, s in zip((r, c), ds.chunks))
        info = ds.id.get_chunk_info_by_coord(coord)
    return path, int(info.byte_offset + rng.integers(0, info.size))


def _flip(file: Path, offset: int, mask: int) -> None:
    with open(file, "r+b") as raw:
        raw.seek(offset)
        byte = raw.read(1)[0]
        raw.seek(offset)
        raw.write(bytes([byte ^ mask]))


def _outcome(path: Path, X, rows, cols, samples, features) -> str:
    try:
        got = load(path, samples=samples, features=features).assays["proteins"].layers["X"].X
    except H5StreamError as exc:
        assert str(path) in str(exc), exc
        return "typed"
    except Exception as exc:  # noqa: BLE001  (the test counts it)
        return f"raw {type(exc).__name__}: {exc}"
    want = X[rows] if cols is None else X[rows][:, cols]
    got, want = (m.toarray() if sparse.issparse(m) else m for m in (got, want))
    return "identical" if np.array_equal(got, want) else "silent"


def _run(case: str, kind: str, trials: int, tmp_path: Path, seed: int) -> dict[str, int]:
    if case == "zarr":
        pytest.importorskip("zarr")
    ext, options = CASES[case]
    rng = np.random.default_rng(seed)
    X = _matrix(kind, rng)
    path = tmp_path / f"c{ext}"
    save(_container(X), path, **options)
    counts: dict[str, int] = {}
    done = 0
    while done < trials:
        rows, cols, samples, features = _selection(rng, X)
        cells = _cells(X, rows, cols)
        if not cells:
            continue
        cell = cells[int(rng.integers(0, len(cells)))]
        own_bytes = case not in _X_OBJECT and case != "zarr"
        if own_bytes:
            sites = _value_sites(path, X[cell])
            assert sites, f"{case}: the bytes of cell {cell} are not in the files"
            file, at = sites[int(rng.integers(0, len(sites)))]
            at += int(rng.integers(0, 8))
        else:
            file, at = _chunk_site(case, path, X, cell, rng)
        mask = 1 << int(rng.integers(0, 8))
        _flip(file, at, mask)
        try:
            outcome = _outcome(path, X, rows, cols, samples, features)
        finally:
            _flip(file, at, mask)
        assert not outcome.startswith("raw"), f"{case}/{kind} seed {seed}: {outcome}"
        if own_bytes:  # the cell's own bytes changed: only an error may come back
            assert outcome == "typed", f"{case}/{kind} seed {seed}: cell {cell} flipped, load {outcome}"
        counts[outcome] = counts.get(outcome, 0) + 1
        done += 1
    assert "silent" not in counts, (case, kind, counts)
    assert _outcome(path, X, rows, cols, samples, features) == "identical"  # every flip was undone
    return counts


@pytest.mark.parametrize("kind", ["dense", "csr"])
@pytest.mark.parametrize("case", list(CASES))
def test_a_flipped_selected_cell_is_never_returned(tmp_path, case, kind):
    counts = _run(case, kind, 4, tmp_path, seed=sum(map(ord, case + kind)))
    assert counts.get("typed", 0) >= 1, counts


@pytest.mark.campaign
@pytest.mark.parametrize("kind", ["dense", "csr"])
@pytest.mark.parametrize("case", list(CASES))
def test_partial_load_fuzz_finds_no_silent_value(tmp_path, case, kind):
    seed = int(np.random.SeedSequence().entropy % 2**32)
    print(f"{case}/{kind}: seed {seed}")
    counts = _run(case, kind, 60, tmp_path, seed)
    print(f"{case}/{kind}: {counts}")


def test_a_file_written_before_piece_digests_has_its_whole_digest_checked(tmp_path):
    """The golden file of manifest version 3 (no piece digests): a partial load reads the selected
    layer whole to check its digest, so a flip in a row it does not return is an error too; layers it
    does not read are not checked, and ``verify=False`` returns the rows as stored."""
    from tests.data.golden import golden_cases as cases

    from h5scp.io.exceptions import IOChecksumError

    path = tmp_path / "v3.h5"
    path.write_bytes((cases.HERE / "scptensor_2.0_checksums_v3.h5").read_bytes())
    name = "/assays/proteins/layers/log/X"
    with h5py.File(path, "r") as f:
        assert "pieces" not in json.loads(f.attrs["h5stream_checksums"])
        ids = f["obs/_index"].asstr()[()].tolist()
        offset, shape = f[name].id.get_offset(), f[name].shape
    whole = load(path)
    _flip(path, offset + (shape[0] - 1) * shape[1] * 8 + 3, 0x10)  # the last sample's first value
    with pytest.raises(IOChecksumError, match=rf"\[{name}\]"):
        load(path, samples=[ids[0]], layers=["log"])
    part = load(path, samples=[ids[0]], layers=["raw"])
    assert np.array_equal(part.assays["proteins"].layers["raw"].X,
                          whole.assays["proteins"].layers["raw"].X[:1], equal_nan=True)
    unchecked = load(path, samples=[ids[0]], layers=["log"], verify=False).assays["proteins"].layers["log"].X
    assert np.array_equal(unchecked, whole.assays["proteins"].layers["log"].X[:1], equal_nan=True)

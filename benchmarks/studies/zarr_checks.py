"""What the checksum manifest of a zarr store costs: save+load with it against the same without it, same run.

One container of N samples x P proteins (float64 values with 30% NaN and an int8
mask, a float64 log layer, 8 obs columns) is saved as an AnnData zarr store and
loaded back, ROUNDS times each way, the two interleaved (checked first in even rounds):

* ``checked``: as shipped: every file digested into the manifest at save, every file
  checked against it at load;
* ``unchecked``: the same code with the manifest left out (``seal_store`` skipped)
  and the load run with ``verify=False`` (the bounds on declared shapes still apply);
* ``anndata``: ``AnnData.write_zarr`` + ``anndata.read_zarr`` of the same matrices
  (no claim, no fsync, no checks), the peer's own figure.

The whole rounds include fsyncs of every file of the store, whose time varies a lot on
a shared disk; so the two parts the manifest adds are also timed alone in every
checked round: ``seal`` (digesting every file into the manifest, inside the save) and
``verify`` (reading every file of the store through the checked mapping, against the
same read without digests, pages cached).

Prints the minimum and median of each and the ratios of the minima.  Run from the
repository root:

    PYTHONPATH=src python -m benchmarks.studies.zarr_checks [N P ROUNDS]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import polars as pl


def build(n: int, p: int):
    from h5scp import Assay, ScpContainer, ScpMatrix

    rng = np.random.default_rng(0)
    x = rng.lognormal(size=(n, p))
    missing = rng.random((n, p)) < 0.3
    x[missing] = np.nan
    m = np.where(missing, 2, 0).astype(np.int8)
    obs = pl.DataFrame({"_index": [f"s{i}" for i in range(n)], "batch": rng.choice(["a", "b", "c"], n).tolist(),
                        **{f"q{k}": rng.random(n) for k in range(6)}})
    layers = {"raw": ScpMatrix(x, m), "log": ScpMatrix(np.log2(np.nan_to_num(x, nan=1.0)))}
    return ScpContainer(obs, {"proteins": Assay(pl.DataFrame({"_index": [f"P{j}" for j in range(p)]}), layers)})


_parts: dict[str, list[float]] = {"seal": [], "verify": [], "read unchecked": []}


def _read_all(path: Path, verify: bool) -> float:
    from h5scp.io._zarr_store import StoreFiles

    t0 = time.perf_counter()
    store = StoreFiles(path, verify=verify)
    for key in store:
        store[key]
    return time.perf_counter() - t0


def _save_and_load(container, path: Path, seal, verify: bool) -> tuple[float, float]:
    """Seconds of a save whose store is sealed by ``seal`` in place of the format's own, and of a load."""
    from h5scp.io import formats_zarr, load_anndata_zarr, save_anndata_zarr

    own = formats_zarr.seal_store
    formats_zarr.seal_store = seal
    try:
        t0 = time.perf_counter()
        save_anndata_zarr(container, path, assay="proteins", overwrite=True)
        t1 = time.perf_counter()
    finally:
        formats_zarr.seal_store = own
    load_anndata_zarr(path, verify=verify)
    return t1 - t0, time.perf_counter() - t1


def _checked(container, path: Path) -> tuple[float, float]:
    from h5scp.io import formats_zarr

    seal = formats_zarr.seal_store

    def timed(group, root, zarr_format):
        t = time.perf_counter()
        seal(group, root, zarr_format)
        _parts["seal"].append(time.perf_counter() - t)

    times = _save_and_load(container, path, timed, True)
    _read_all(path, False)  # pages cached for both
    _parts["verify"].append(_read_all(path, True))
    _parts["read unchecked"].append(_read_all(path, False))
    return times


def _unchecked(container, path: Path) -> tuple[float, float]:
    return _save_and_load(container, path, lambda group, root, zarr_format: None, False)


def _anndata(adata, path: Path) -> tuple[float, float]:
    import anndata

    t0 = time.perf_counter()
    adata.write_zarr(path)
    t1 = time.perf_counter()
    anndata.read_zarr(path)
    return t1 - t0, time.perf_counter() - t1


def measure(n: int = 2000, p: int = 1000, rounds: int = 5) -> dict[str, list[tuple[float, float]]]:
    import anndata
    import scipy  # noqa: F401  (imported before the first round, as the others' imports are)

    container = build(n, p)
    raw = container.assays["proteins"].layers["raw"]
    adata = anndata.AnnData(raw.X, layers={"mask": raw.M, "log": container.assays["proteins"].layers["log"].X})
    times: dict[str, list[tuple[float, float]]] = {"checked": [], "unchecked": [], "anndata": []}
    with tempfile.TemporaryDirectory(prefix="zarr-checks-") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        folder = Path(tmp)
        _checked(container, folder / "warm.zarr")  # imports and first-use costs outside the rounds
        _unchecked(container, folder / "warm.zarr")
        for part in _parts.values():
            part.clear()
        for r in range(rounds):
            order = ["checked", "unchecked"] if r % 2 == 0 else ["unchecked", "checked"]
            for kind in order:
                run = _checked if kind == "checked" else _unchecked
                times[kind].append(run(container, folder / f"{kind}.zarr"))
            times["anndata"].append(_anndata(adata, folder / f"anndata-{r}.zarr"))
    return times


def report(times: dict[str, list[tuple[float, float]]]) -> list[str]:
    lines = []
    best = {kind: min(s + l for s, l in rounds) for kind, rounds in times.items()}
    for kind, rounds in times.items():
        totals = [s + l for s, l in rounds]
        lines.append(f"{kind:>10}: save+load min {min(totals):.3f} s, median {statistics.median(totals):.3f} s "
                     f"(save min {min(s for s, _ in rounds):.3f} s, load min {min(l for _, l in rounds):.3f} s)")
    lines.append(f"checked / unchecked (min save+load): {best['checked'] / best['unchecked']:.3f}")
    lines.append(f"checked / anndata   (min save+load): {best['checked'] / best['anndata']:.3f}")
    seal, verify, plain = (statistics.median(_parts[k]) for k in ("seal", "verify", "read unchecked"))
    checked = statistics.median(s + l for s, l in times["checked"])
    lines.append(f"manifest alone (medians): seal {seal * 1e3:.1f} ms, verified read of every file "
                 f"{verify * 1e3:.1f} ms against {plain * 1e3:.1f} ms unchecked; seal + (verify - unchecked) = "
                 f"{(seal + verify - plain) / checked:.3f} of a checked save+load")
    return lines


def main(n: int = 2000, p: int = 1000, rounds: int = 5) -> None:
    times = measure(n, p, rounds)
    print(f"AnnData zarr store of {n} x {p} float64 (two layers and a mask), {rounds} rounds:")
    for line in report(times):
        print(line)


def test_zarr_checks_measures_both_sides_on_a_small_store():
    times = measure(60, 40, 2)
    assert all(len(rounds) == 2 and all(s > 0 and l > 0 for s, l in rounds) for rounds in times.values())
    lines = report(times)
    assert lines[-3].startswith("checked / unchecked") and lines[-1].startswith("manifest alone")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))

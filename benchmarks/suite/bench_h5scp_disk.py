"""h5scp's save and load at its defaults against AnnData's, and against the disk's own speed, in one process.

Two containers of samples x proteins of log-normal intensities (a ``proteins`` assay, float64 as
ScpTensor holds it) and a ``peptides`` assay, CSR over five times as many peptides, two obs columns:

* ``30% missing, CSR 10%`` (the issue's): 30% of the intensities NaN, the CSR at 10% density;
* ``dense+sparse`` (the shape of ``bench_h5scp_defaults``): no NaN, the CSR at 2% density;
* ``bench_scptensor's shape``: 20,000 samples x 5,000 proteins and 50,000 peptides (the full size of
  ``bench_scptensor``), 30% of the intensities NaN, the CSR at 5% density (800 MB dense, a file of
  about 1.4 GB; 2 rounds).

Full size: 5,000 x 2,000 (80 MB dense; files of about 140 and 100 MB); small: 300 x 120 (the third
container: 200 x 50 and 500 peptides).

Sides, timed in interleaved rounds in this one process after a warm-up round (imports and first-call
costs out; every side starts after ``os.sync``, untimed, so that no side's writes are written back
during another's time):

* ours: ``save_hdf5`` at its defaults (atomic, checksummed, the file and its directory fsynced) and
  ``load_hdf5`` (every value checked against its digest);
* AnnData's defaults: ``write_h5ad`` of one AnnData per assay, not fsynced (what its users get), and
  ``read_h5ad`` of both;
* AnnData fsynced: the same writes, each file fsynced after (a save as durable as ours);
* the disk: the bytes of our file written from memory with one ``write`` and one ``fsync`` (``dd``'s
  way), and read with one ``readinto`` into a buffer allocated for the read (a load returns new arrays:
  their pages are faulted in as the bytes land, in the limit too).

Loads run twice per round: warm (the file's pages cached, read once untimed before) and cold (its pages
dropped first, :func:`benchmarks.harness.drop_page_cache`).  Before every load and read, untimed, as much new
memory as the file's size is touched and freed (:func:`_fresh_memory`), so that each side finds the same
memory state whatever ran before it.

Rows (ratio = theirs / ours, the median of the rounds' own ratios, :func:`benchmarks.harness.paired_ratio`):
save against AnnData's default and against AnnData fsynced (reported, no goal: the second is the fair
one), save against the disk's write+fsync of the same bytes (goal 1/1.2: at most 1.2x the physical
limit), load warm and cold against AnnData's (goal 1/1.2), load warm and cold against reading the file's
bytes (goal 1/1.2).  The load average is in every row's details.

Run: ``python -m benchmarks --size full --only h5scp_disk``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from scipy import sparse

from benchmarks.harness import POLICY, Row, drop_page_cache, interleave, is_noisy, paired_ratio, scratch_dir
from h5stream.files import fsync_path

#: samples, proteins, rounds
SIZES = {"small": (300, 120, 3), "full": (5_000, 2_000, 5)}
PEPTIDES_PER_PROTEIN = 5
#: label -> (share of NaN intensities, density of the CSR assay, {size: (samples, proteins, peptides, rounds)}
#: or None for SIZES with PEPTIDES_PER_PROTEIN)
CONTAINERS = {
    "30% missing, CSR 10%": (0.30, 0.10, None),
    "dense+sparse": (0.0, 0.02, None),
    "bench_scptensor's shape, 30% missing, CSR 5%": (
        0.30, 0.05, {"small": (200, 50, 500, 2), "full": (20_000, 5_000, 50_000, 2)}),
}
#: at most 1.2x the peer's or the limit's time
GOAL = 1 / 1.2


def make_container(n: int, p: int, missing: float = 0.30, density: float = 0.10, seed: int = 0,
                   peptides: int | None = None):
    """A container of the rows: dense log-normal with a share ``missing`` of NaN, and a CSR assay of
    ``density`` over ``peptides`` columns (default :data:`PEPTIDES_PER_PROTEIN` per protein)."""
    from h5scp import Assay, ScpContainer, ScpMatrix

    rng = np.random.default_rng(seed)
    x = rng.lognormal(2.0, 1.0, size=(n, p))
    x[rng.random((n, p)) < missing] = np.nan
    csr = sparse.random(n, peptides or PEPTIDES_PER_PROTEIN * p, density=density, format="csr", random_state=seed + 1,
                        data_rvs=lambda k: rng.lognormal(1.0, 1.0, k))
    obs = pl.DataFrame({"_index": [f"S{i:05d}" for i in range(n)], "batch": [f"batch_{i % 8}" for i in range(n)]})
    assays = {
        "proteins": Assay(pl.DataFrame({"_index": [f"P{j:05d}" for j in range(p)]}), {"raw": ScpMatrix(x)}),
        "peptides": Assay(pl.DataFrame({"_index": [f"PEP{k:06d}" for k in range(csr.shape[1])]}),
                          {"raw": ScpMatrix(csr)}),
    }
    return ScpContainer(obs, assays)


def _anndatas(container) -> dict:
    import anndata as ad
    import pandas as pd

    frame = container.obs.to_pandas().set_index("_index")
    return {name: ad.AnnData(X=a.layers["raw"].X, obs=frame, var=pd.DataFrame(index=a.var["_index"].to_list()))
            for name, a in container.assays.items()}


def _remove(path: Path) -> None:
    if path.is_dir():
        for q in path.iterdir():
            q.unlink()
    elif path.exists():
        path.unlink()


def _files(path: Path) -> list[Path]:
    return sorted(path.iterdir()) if path.is_dir() else [path]


def _warm(path: Path) -> None:
    os.sync()
    for q in _files(path):
        with open(q, "rb", buffering=0) as fh:
            while fh.read(16 << 20):
                pass


def _cold(path: Path) -> None:
    os.sync()
    for q in _files(path):
        drop_page_cache(q)


def _fresh_memory(nbytes: int) -> None:
    """Touch and free ``nbytes`` of new memory (numpy's, as the loads' arrays are), untimed, just before a load.

    A load's arrays are new memory; on a virtual machine that hands its free pages back to the host, a page
    not used for a while must be backed again when first touched, which costs several times the read itself
    (:mod:`h5stream.memory`).  Without this the side that runs first after the saves pays it every round (the
    sides keep their cyclic order) and the load just after it takes the memory it freed: at 20,000 x 5,000
    our load sat in that place in every round.  Each load side now starts from the same state.
    """
    block = np.ones(nbytes, np.uint8)
    del block


def sides(container, folder: Path) -> tuple[dict, dict, dict]:
    """The timed sides, their untimed setups, and the paths they write (by name)."""
    import anndata as ad

    from h5scp.io import load_hdf5, save_hdf5

    ours, peer, peer_synced, raw = (folder / "ours.h5", folder / "anndata", folder / "anndata_fsynced",
                                    folder / "raw.bin")
    for d in (peer, peer_synced):
        d.mkdir()
    adatas = _anndatas(container)
    save_hdf5(container, ours)
    buffer = np.ones(ours.stat().st_size, np.uint8)  # pages present before any timed side

    def peer_save(where: Path, synced: bool):
        def save():
            for name, a in adatas.items():
                a.write_h5ad(where / f"{name}.h5ad")
                if synced:
                    fsync_path(where / f"{name}.h5ad")
        return save

    def peer_load():
        for name in sorted(adatas):
            ad.read_h5ad(peer / f"{name}.h5ad")

    def disk_write():
        fd = os.open(raw, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, buffer)  # one request: Linux writes up to 2 GiB at once
            os.fsync(fd)
        finally:
            os.close(fd)

    def disk_read():  # into new memory, as a load's arrays are (its pages faulted in by the read)
        fresh = np.empty(buffer.size, np.uint8)
        with open(ours, "rb", buffering=0) as fh:
            fh.readinto(fresh)

    timed = {
        "ours save": lambda: save_hdf5(container, ours),
        "anndata save": peer_save(peer, False),
        "anndata fsynced save": peer_save(peer_synced, True),
        "disk write+fsync": disk_write,
        "ours load warm": lambda: load_hdf5(ours),
        "anndata load warm": peer_load,
        "disk read warm": disk_read,
        "ours load cold": lambda: load_hdf5(ours),
        "anndata load cold": peer_load,
        "disk read cold": disk_read,
    }

    def removing(path: Path):
        return lambda: (_remove(path), os.sync())

    setup = {
        "ours save": removing(ours), "anndata save": removing(peer), "anndata fsynced save": removing(peer_synced),
        "disk write+fsync": removing(raw),
        "ours load warm": lambda: _warm(ours), "anndata load warm": lambda: _warm(peer),
        "disk read warm": lambda: _warm(ours),
        "ours load cold": lambda: _cold(ours), "anndata load cold": lambda: _cold(peer),
        "disk read cold": lambda: _cold(ours),
    }
    for name in [n for n in setup if " load " in n or " read " in n]:
        setup[name] = _then_fresh_memory(setup[name], buffer.size)
    return timed, setup, {"ours": ours, "anndata": peer}


def _then_fresh_memory(setup, nbytes: int):
    def both():
        setup()
        _fresh_memory(nbytes)
    return both


#: (row, ours side, their side, goal, what the peer or limit is)
ROWS = (
    ("save vs anndata defaults", "ours save", "anndata save", None,
     "write_h5ad defaults, one .h5ad per assay, not fsynced"),
    ("save vs anndata fsynced", "ours save", "anndata fsynced save", None,
     "write_h5ad defaults, one .h5ad per assay, each fsynced"),
    ("save vs disk", "ours save", "disk write+fsync", GOAL, "one write + fsync of the file's bytes (dd)"),
    ("load warm vs anndata", "ours load warm", "anndata load warm", GOAL, "read_h5ad of both files, pages cached"),
    ("load cold vs anndata", "ours load cold", "anndata load cold", GOAL, "read_h5ad of both files, pages dropped"),
    ("load warm vs disk", "ours load warm", "disk read warm", GOAL,
     "one readinto of the file's bytes into new memory, cached"),
    ("load cold vs disk", "ours load cold", "disk read cold", GOAL,
     "one readinto of the file's bytes into new memory, dropped"),
)


def run(size: str) -> list[Row]:
    return [row for label, (missing, density, shapes) in CONTAINERS.items()
            for row in container_rows(size, label, missing, density, shapes)]


def container_rows(size: str, label: str, missing: float, density: float, shapes: dict | None = None
                   ) -> list[Row]:
    """The rows of one container, its sides in interleaved rounds."""
    if shapes is None:
        (n, p, requested), peptides = SIZES[size], None
    else:
        n, p, peptides, requested = shapes[size]
    container = make_container(n, p, missing, density, peptides=peptides)
    with scratch_dir("h5scp-disk-") as tmp:
        timed, setup, paths = sides(container, Path(tmp))
        before = os.getloadavg()[0]
        timings = interleave(timed, POLICY.count(requested, 0.0), setup=setup, warmup=1)
        after = os.getloadavg()[0]
        sizes = {k: sum(q.stat().st_size for q in _files(v)) for k, v in paths.items()}
    rows = []
    for kind, ours_side, their_side, goal, what in ROWS:
        ours, theirs = timings[ours_side], timings[their_side]
        rows.append(Row(
            f"h5scp {n}x{p} {label}: {kind}", f"{their_side} ({what})", theirs.min, ours.min, "s",
            paired_ratio(theirs.rounds, ours.rounds), goal, peer_median=theirs.median, ours_median=ours.median,
            rounds=len(ours.rounds), noisy=is_noisy(ours, theirs), before=ours.before, after=ours.after,
            details=(f"{ours_side} {ours}; {their_side} {theirs}; rounds' own ratios "
                     f"{', '.join(f'{t / o:.2f}' for t, o in zip(theirs.rounds, ours.rounds))}; "
                     f"files: ours {sizes['ours'] / 1e6:.1f} MB, anndata {sizes['anndata'] / 1e6:.1f} MB; "
                     f"cores {os.cpu_count()}, load average {before:.2f} before / {after:.2f} after"),
        ))
    return rows


@pytest.mark.campaign  # ten sides in interleaved rounds, AnnData's import and writes: about half a minute
def test_bench_h5scp_disk_small():
    t0 = time.perf_counter()
    rows = run("small")
    assert [r.benchmark.split(": ", 1)[1] for r in rows] == [kind for kind, *_ in ROWS] * len(CONTAINERS)
    for row in rows:
        assert row.ours > 0 and row.peer_value > 0 and row.ratio > 0 and row.rounds >= 1
        assert "load average" in row.details
    assert time.perf_counter() - t0 < 600


if __name__ == "__main__":  # python -m benchmarks.suite.bench_h5scp_disk [small|full]
    from benchmarks.harness import main

    main(run)

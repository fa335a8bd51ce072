"""Save then load of an ScpContainer: against AnnData, against the raw disk, and peak memory.

The container: 2 assays (``proteins`` dense float32 with an int8 mask,
``peptides`` CSR float32 at 5% density) over samples with 8 mixed obs columns.
Full size: 20,000 samples x 5,000 proteins and 50,000 peptides.

Rows
----
* save+load, gzip 4: ``save_hdf5``/``load_hdf5`` against ``AnnData.write_h5ad``
  /``anndata.read_h5ad`` of the same matrices (one ``.h5ad`` per assay, the
  mask as a layer) at gzip 4.  Writes fsync, reads start from uncached pages.
* save+load, gzip 4, one core busy: the same while another process (in its own
  session) spins on one core: goal not slower than AnnData's serial filter (the
  writer's threads take one chunk at a time, :func:`h5stream.cores.sharing_threads`).
* save+load, uncompressed: ours against the raw disk (``tofile`` + fsync, then
  ``fromfile`` uncached) of the same number of bytes, measured in the same run:
  :data:`DISK_ROUNDS` rounds, the ratio of the best round of each side (the
  virtual disk's read speed varies by 2x from one round to the next, 0.4-2.2 s
  for the same uncached 860 MiB, as its host caches it or not).
* peak memory of the save: a fresh subprocess loads the arrays, builds the
  container and saves it; (peak RSS - RSS after imports) / container size.

Against the original ScpTensor writer (its settings reproduced with plain h5py:
dense X cast to float32 with gzip 4, the mask as uncompressed float32, one
dataset per obs column, sparse parts gzip 4, no fsync; read back with h5py),
on two containers: 5,000 samples x 2,000 proteins float64 with 30% NaN, an
int8 mask and 8 obs columns ("5000x2000 f64"), and the container above:

* (a) save+load at the defaults (ours ``compression="auto"``, exact float64, fsynced; the peer gzip 4): goal >= 1;
* (b) ours with every array at gzip 1 (``compression="gzip", compression_level=1``) against the peer at gzip 4:
  goal >= 1.5;
* (c) both at the defaults while another process keeps one core busy: goal >= 1/1.2
  (ours writes exact float64, twice the peer's float32 bytes, and fsyncs; in a run
  with one core busy, ``--busy-core``, rows (a) and (b) are judged by this goal too);
* (d) Parquet: ``save_parquet``+``load_parquet`` against ``polars.write_parquet``
  /``read_parquet`` of the same long-form frames (fsynced, read uncached): goal >= 1/1.2.

Reads start from uncached pages on every side.  File sizes and the load average
are in each row's details.

Run at full size: ``python -m benchmarks --size full --only scptensor``.
"""

from __future__ import annotations

import math
import os
import textwrap
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl

from h5stream.cores import allowed_cores, free_cores, sharing_threads

from benchmarks.harness import (
    POLICY,
    Row,
    Timing,
    busy_core,
    checksum_cost,
    checksums_off,
    drop_page_cache,
    interleave,
    is_noisy,
    paired_ratio,
    fsync_file,
    peak_rss_mb,
    raw_read_seconds,
    raw_write_seconds,
    scratch_dir,
)
from benchmarks.suite._scptensor_containers import (
    build_container,
    container_nbytes,
    make_arrays,
    make_float64_container,
    make_obs,
)
from benchmarks.suite._scptensor_peer import original_writer_load, original_writer_save

SIZES = {
    # samples, proteins, peptides, density, rounds
    "small": (200, 50, 500, 0.05, 1),
    "full": (20_000, 5_000, 50_000, 0.05, 2),
}
#: rounds of the uncompressed save+load against the raw disk, whose speed varies from round to round
DISK_ROUNDS = 5
# the float64 container of the rows against the original writer: samples, proteins, rounds
ORIGINAL_SIZES = {"small": (300, 120, 1), "full": (5_000, 2_000, 3)}


def _anndata_objects(container):
    import anndata as ad
    import pandas as pd

    obs = container.obs.to_pandas().set_index("_index")
    out = {}
    for name, assay in container.assays.items():
        var = pd.DataFrame(index=assay.var["_index"].to_list())
        raw = assay.layers["raw"]
        layers = {"M": raw.M} if raw.M is not None else {}
        out[name] = ad.AnnData(X=raw.X, obs=obs, var=var, layers=layers)
    return out


def _time(fn) -> float:
    import time

    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _ours_round(container, path: Path, compression) -> tuple[float, float]:
    from h5scp.io import load_hdf5, save_hdf5

    if path.exists():
        path.unlink()
    t_save = _time(lambda: save_hdf5(container, path, compression=compression, compression_level=4))
    drop_page_cache(path)
    t_load = _time(lambda: load_hdf5(path))
    return t_save, t_load


def _anndata_round(adatas: dict, folder: Path) -> tuple[float, float]:
    import anndata as ad

    paths = {name: folder / f"peer_{name}.h5ad" for name in adatas}
    for p in paths.values():
        if p.exists():
            p.unlink()

    def save():
        for name, adata in adatas.items():
            adata.write_h5ad(paths[name], compression="gzip", compression_opts=4)
            fsync_file(paths[name])

    def load():
        for p in paths.values():
            ad.read_h5ad(p)

    t_save = _time(save)
    for p in paths.values():
        drop_page_cache(p)
    return t_save, _time(load)


def _round_fields(peer: Timing, ours: Timing) -> dict:
    """The interleaved rounds' fields of a row (its figures and ratio are the medians)."""
    return dict(peer_median=peer.median, ours_median=ours.median, rounds=len(ours.rounds),
                noisy=is_noisy(peer, ours), before=ours.before, after=ours.after)


def _anndata_row(name: str, peer_name: str, goal: float, ours: list, peer: list, t: dict, nbytes: int,
                 load_before: float, extra: str) -> Row:
    """A save+load row against AnnData; figures and ratio are the medians of the interleaved rounds."""
    ours_total = [s + l for s, l in ours]
    peer_total = [s + l for s, l in peer]
    return Row(
        name, peer_name,
        float(np.median(peer_total)), float(np.median(ours_total)), "s",
        float(np.median(peer_total) / np.median(ours_total)), goal, ratio_of="median",
        **_round_fields(t["peer"], t["ours"]),
        details=(
            f"{nbytes / 2**20:.0f} MiB container; ours {_stats(ours_total)} "
            f"(save {_stats([s for s, _ in ours])}; load {_stats([l for _, l in ours])}); "
            f"anndata {_stats(peer_total)} (save {_stats([s for s, _ in peer])}; "
            f"load {_stats([l for _, l in peer])}); cores {os.cpu_count()}, load average "
            f"{load_before:.1f} before / {os.getloadavg()[0]:.1f} after; {extra}"
        ),
    )


def _stats(values: list[float]) -> str:
    return f"min {min(values):.3f} s, median {float(np.median(values)):.3f} s over {len(values)}"


_PEAK_CODE = textwrap.dedent(
    """
    import os, resource
    import numpy as np, polars as pl
    from benchmarks.suite._scptensor_containers import build_container, container_nbytes
    import tempfile
    from h5scp import Assay, ScpContainer, ScpMatrix
    from h5scp.io import save_hdf5
    def rss_mb():
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    # warm up: every module and kernel a save touches is loaded before the baseline
    with tempfile.TemporaryDirectory() as warm:
        tiny = ScpContainer(pl.DataFrame({{"_index": ["a"], "v": [1.0]}}), {{"p": Assay(
            pl.DataFrame({{"_index": ["f"]}}), {{"raw": ScpMatrix(np.ones((1, 1), np.float32), np.zeros((1, 1), np.int8))}})}})
        save_hdf5(tiny, os.path.join(warm, "w.h5"))
    base = rss_mb()
    folder = {folder!r}
    arrays = {{k: np.load(os.path.join(folder, k + ".npy")) for k in ("x", "m", "data", "indices", "indptr")}}
    arrays["n_peptides"] = {n_peptides}
    obs = pl.read_parquet(os.path.join(folder, "obs.parquet"))
    c = build_container(arrays, obs)
    del arrays
    held = rss_mb()
    save_hdf5(c, os.path.join(folder, "peak.h5"), compression="gzip", compression_level=4)
    with open("/proc/self/status") as fh:
        hwm = next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:")) / 1024
    print("BASE", base, "HELD", held, "NBYTES", container_nbytes(c), "HWM", hwm)
    """
)


def _peak_memory(
    arrays: dict, obs: pl.DataFrame, n_peptides: int, folder: Path
) -> tuple[float, float, float, float, float]:
    for key in ("x", "m", "data", "indices", "indptr"):
        np.save(folder / f"{key}.npy", arrays[key])
    obs.write_parquet(folder / "obs.parquet")
    root = str(Path(__file__).resolve().parents[2])
    # ru_maxrss of a child started by a large parent keeps the parent's resident set
    # (Linux carries it across exec), so the child's own high-water mark (VmHWM of
    # its fresh address space) is the peak; ru_maxrss is reported beside it.
    # the child imports this module by name: the repository root goes on its path
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    maxrss, out = peak_rss_mb(_PEAK_CODE.format(folder=str(folder), n_peptides=n_peptides), env=env)
    fields = out.split()
    peak = float(fields[fields.index("HWM") + 1])
    base = float(fields[fields.index("BASE") + 1])
    held = float(fields[fields.index("HELD") + 1])
    nbytes = float(fields[fields.index("NBYTES") + 1]) / 2**20
    for key in ("x", "m", "data", "indices", "indptr"):
        (folder / f"{key}.npy").unlink()
    return peak, base, held, nbytes, maxrss


def run(size: str = "small") -> list[Row]:
    """Measure every row at ``size`` ("small" or "full")."""
    n_samples, n_proteins, n_peptides, density, rounds = SIZES[size]
    arrays = make_arrays(n_samples, n_proteins, n_peptides, density)
    obs = make_obs(n_samples)
    container = build_container(arrays, obs)
    nbytes = container_nbytes(container)
    rows = []
    with scratch_dir("scptensor-bench-") as tmp:
        folder = Path(tmp)
        ours_path = folder / "ours.h5"
        # (a) gzip 4 against AnnData
        load_before = os.getloadavg()[0]
        adatas = _anndata_objects(container)
        ours, peer = [], []
        t = interleave({
            "ours": lambda: sum(ours.append(_ours_round(container, ours_path, "gzip")) or ours[-1]),
            "peer": lambda: sum(peer.append(_anndata_round(adatas, folder)) or peer[-1]),
        }, rounds, self_timed=True)
        rows.append(_anndata_row("scptensor save+load gzip 4", "anndata write_h5ad+read_h5ad gzip 4", 1.7,
                                 ours, peer, t, nbytes, load_before, "ours adds the shuffle filter to sparse "
                                 f"parts (same gzip level); compression threads {sharing_threads()} (free cores "
                                 f"at the end {free_cores(refresh=True)} of {allowed_cores()})"))
        # the same with another process keeping one core busy: not slower than anndata's serial filter
        load_before = os.getloadavg()[0]
        ours, peer = [], []
        with busy_core():
            busy_threads = free_cores(refresh=True)
            t = interleave({
                "ours": lambda: sum(ours.append(_ours_round(container, ours_path, "gzip")) or ours[-1]),
                "peer": lambda: sum(peer.append(_anndata_round(adatas, folder)) or peer[-1]),
            }, rounds, self_timed=True)
        del adatas
        rows.append(_anndata_row("scptensor save+load gzip 4, one core busy",
                                 "anndata write_h5ad+read_h5ad gzip 4 (serial), one core busy", 1.0,
                                 ours, peer, t, nbytes, load_before, "another process spins on one core (own "
                                 f"session); compression threads {sharing_threads()} (free cores with it "
                                 f"running {busy_threads} of {allowed_cores()})"))
        # (b) uncompressed against the raw disk, same bytes, same run
        blob = np.zeros(nbytes, dtype=np.uint8)
        blob[:: 4096] = 1  # touch every page so tofile writes real pages
        raw_path = folder / "raw.bin"
        plain = []

        def raw_round() -> float:
            if raw_path.exists():
                raw_path.unlink()
            return raw_write_seconds(blob, raw_path) + raw_read_seconds(raw_path, np.uint8)

        # both sides are bound by the disk: dirty pages of earlier rows and rounds are written back
        # before each round (untimed), so that their writeback does not land in the next timed fsync
        # the disk's speed changes from one round to the next (the virtual disk's host caches it):
        # more rounds than the other rows, and the best of each side, as for any row against a limit
        t_plain = interleave({
            "ours": lambda: sum(plain.append(_ours_round(container, ours_path, None)) or plain[-1]),
            "raw": raw_round,
        }, POLICY.count(DISK_ROUNDS, 0.0), self_timed=True, setup={"ours": os.sync, "raw": os.sync})
        raw = t_plain["raw"].rounds
        ours_path.unlink()
        raw_path.unlink()
        del blob
        plain_total = [s + l for s, l in plain]
        rows.append(
            Row(
                "scptensor save+load uncompressed", "raw disk write(fsync)+read of the same bytes",
                min(raw), min(plain_total), "s", min(raw) / min(plain_total), 0.7,
                **_round_fields(t_plain["raw"], t_plain["ours"]),
                details=(
                    f"ours {_stats(plain_total)} (save {_stats([s for s, _ in plain])}; "
                    f"load {_stats([l for _, l in plain])}); raw {_stats(raw)}; ratio of the minima (of the "
                    f"medians {np.median(raw) / np.median(plain_total):.2f}); "
                    f"{nbytes / 2**20 / min(plain_total):.0f} MiB/s ours at best"
                ),
            )
        )
        # (c) peak memory of a save in a fresh process
        del container
        peak, base, held, held_bytes, maxrss = _peak_memory(arrays, obs, n_peptides, folder)
        ratio = (peak - base) / held_bytes
        rows.append(
            Row(
                "scptensor save peak memory", "container in-memory size",
                held_bytes, peak - base, "MiB", ratio, 1.2, lower_is_better=True,
                details=(
                    f"peak RSS (VmHWM) {peak:.0f} MiB (ru_maxrss {maxrss:.0f} MiB, inherits the parent's), "
                    f"RSS after imports {base:.0f} MiB, with container "
                    f"{held:.0f} MiB; container arrays {held_bytes:.0f} MiB; ratio = (peak - after imports) / size"
                ),
            )
        )
        # against the original writer, and Parquet
        n_f64, p_f64, f64_rounds = ORIGINAL_SIZES[size]
        # these rows interleave their sides themselves; the count follows the runner (--rounds, minimum)
        rounds, f64_rounds = POLICY.count(rounds, 0.0), POLICY.count(f64_rounds, 0.0)
        f64 = make_float64_container(n_f64, p_f64)
        big = build_container(arrays, obs)
        del arrays
        rows += original_writer_rows({f"{n_f64}x{p_f64} f64": f64, f"{nbytes / 2**20:.0f} MiB": big},
                                     {f"{n_f64}x{p_f64} f64": f64_rounds, f"{nbytes / 2**20:.0f} MiB": rounds},
                                     folder)
        del big
        rows.append(parquet_row(f64, f64_rounds, folder))
        rows += checksum_rows(f64, f"{n_f64}x{p_f64} f64", POLICY.count(COST_ROUNDS, 0.0), folder)
    return rows


#: on/off rounds of the checksums' cost: a cost of a few percent needs more pairs than a ratio of 3x
COST_ROUNDS = 9
#: each round of a checksum-cost side lasts at least this many CPU seconds (the mean of up to MAX_REPEAT calls)
SHORT_ROUND_CPU = 1.0
MAX_REPEAT = 8


def checksum_rows(container, label: str, rounds: int, folder: Path) -> list[Row]:
    """The end-to-end checksums' cost on the container's save and load, in CPU seconds of the process
    (compression threads included): the same save with checksums off (no digests, no manifest), the
    same load with ``verify=False``; interleaved rounds, the page cache dropped before each load."""
    import time

    from h5scp.io import load_hdf5, save_hdf5

    saved, loaded = folder / "checksums_saved.h5", folder / "checksums_loaded.h5"
    save_hdf5(container, loaded)  # with its manifest: the file both load sides read

    def save_without():
        with checksums_off():
            save_hdf5(container, saved)

    def remove_saved():
        if saved.exists():
            saved.unlink()

    def uncached():
        drop_page_cache(loaded)

    def cpu_once(fn, setup) -> float:
        setup()
        t0 = time.process_time()
        fn()
        return time.process_time() - t0

    def cpu_of(fn, setup, repeat: int) -> Callable[[], float]:
        def timed() -> float:  # the mean of ``repeat`` calls, each after its untimed setup
            return sum(cpu_once(fn, setup) for _ in range(repeat)) / repeat
        return timed

    sides = {"save on": (lambda: save_hdf5(container, saved), remove_saved), "save off": (save_without, remove_saved),
             "load on": (lambda: load_hdf5(loaded, verify=True), uncached),
             "load off": (lambda: load_hdf5(loaded, verify=False), uncached)}
    # A round of each side lasts at least SHORT_ROUND_CPU: one load of 0.2 s varies by more than the
    # cost it measures (as timeit repeats a short statement); the calls of an untimed first round say how many.
    repeats = {what: max(1, min(MAX_REPEAT, math.ceil(SHORT_ROUND_CPU / max(cpu_once(*sides[f"{what} on"]), 1e-3))))
               for what in ("save", "load")}
    t = interleave({name: cpu_of(fn, setup, repeats[name.split()[0]]) for name, (fn, setup) in sides.items()},
                   rounds, self_timed=True)
    remove_saved()
    loaded.unlink()
    rows = []
    for what, peer in (("save", "same save, checksums off"), ("load", "same load, verify=False")):
        on, off = t[f"{what} on"], t[f"{what} off"]
        rows.append(Row(f"checksums on {what}, scptensor {label}", peer, off.min, on.min, "s CPU",
                        paired_ratio(off.rounds, on.rounds), 1 / 1.05, ratio_of="rounds", peer_median=off.median,
                        ours_median=on.median, rounds=len(on.rounds), noisy=is_noisy(on, off),
                        details=f"checksum cost on {what}: CPU {checksum_cost(on.rounds, off.rounds)} (each "
                                f"round the mean of {repeats[what]} {what}s per side); ratio (the median of the "
                                f"rounds' own off/on ratios) >= {1 / 1.05:.3f} means under 5%",
                        before=on.before, after=on.after))
    return rows


# --------------------------------------------------------------------------- the original writer


def _round(save, load, path: Path) -> tuple[float, float, int]:
    import shutil

    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()
    t_save = _time(save)
    files = [path] if path.is_file() else [q for q in path.rglob("*") if q.is_file()]
    for p in files:
        drop_page_cache(p)
    t_load = _time(load)
    return t_save, t_load, sum(p.stat().st_size for p in files)


#: the original-writer rows' goal with one core busy: ours does the larger work (float64, fsync)
ORIGINAL_BUSY_GOAL = 1 / 1.2


def _versus(name: str, peer_name: str, ours: list, peer: list, goal: float, extra: str,
            busy_goal: float | None = None) -> Row:
    ours_total = [s + l for s, l, _ in ours]
    peer_total = [s + l for s, l, _ in peer]
    best_ours, best_peer = min(ours_total), min(peer_total)
    return Row(
        name, peer_name, best_peer, best_ours, "s", best_peer / best_ours, goal, busy_goal=busy_goal,
        peer_median=float(np.median(peer_total)), ours_median=float(np.median(ours_total)),
        rounds=min(len(ours_total), len(peer_total)), noisy=is_noisy(Timing(ours_total), Timing(peer_total)),
        details=(
            f"ours {_stats(ours_total)} (save {_stats([s for s, _, _ in ours])}; load {_stats([l for _, l, _ in ours])}; "
            f"{ours[-1][2] / 2**20:.1f} MiB); peer {_stats(peer_total)} (save {_stats([s for s, _, _ in peer])}; "
            f"load {_stats([l for _, l, _ in peer])}; {peer[-1][2] / 2**20:.1f} MiB); ratio of the minima; {extra}"
        ),
    )


def _load_text(before: float) -> str:
    return f"cores {os.cpu_count()}, load average {before:.1f} before / {os.getloadavg()[0]:.1f} after"


def original_writer_rows(containers: dict, rounds: dict, folder: Path) -> list[Row]:
    """Ours against the original writer's settings, for every container: (a) defaults,
    (b) gzip level 1 throughout, (c) defaults with one core busy."""
    from h5scp.io import load_hdf5, save_hdf5

    rows = []
    for label, container in containers.items():
        ours_path, peer_path = folder / "ours.h5", folder / "peer.h5"

        def peer_round():
            return _round(lambda: original_writer_save(container, peer_path),
                          lambda: original_writer_load(peer_path), peer_path)

        def ours_round(**options):
            return _round(lambda: save_hdf5(container, ours_path, **options), lambda: load_hdf5(ours_path), ours_path)

        before = os.getloadavg()[0]
        peer, ours, fast = [], [], []
        for _ in range(rounds[label]):  # interleaved: a change of machine load hits all three alike
            peer.append(peer_round())
            ours.append(ours_round())
            fast.append(ours_round(compression="gzip", compression_level=1))
        text = _load_text(before)
        rows.append(_versus(f"scptensor {label} save+load defaults (auto, float64)",
                            "original writer (float32 gzip 4, float32 mask, no fsync)", ours, peer, 1.0, text,
                            busy_goal=ORIGINAL_BUSY_GOAL))
        rows.append(_versus(f"scptensor {label} save+load gzip level 1",
                            "original writer at gzip 4", fast, peer, 1.5, text, busy_goal=ORIGINAL_BUSY_GOAL))
        before = os.getloadavg()[0]
        busy_ours, busy_peer = [], []
        with busy_core():
            for _ in range(rounds[label]):
                busy_peer.append(peer_round())
                busy_ours.append(ours_round())
        rows.append(_versus(f"scptensor {label} save+load defaults, one core busy",
                            "original writer, one core busy", busy_ours, busy_peer, ORIGINAL_BUSY_GOAL,
                            _load_text(before) + "; another process spins on one core"))
        for p in (ours_path, peer_path):
            p.unlink()
    return rows


def _row_group_rows(path: Path) -> int:
    """The rows of a Parquet file's first row group (all its rows when it has one): the row-group size its
    writer used, as the file's footer states it."""
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(path).metadata
    return max(1, meta.row_group(0).num_rows if meta.num_row_groups else meta.num_rows)


def parquet_row(container, rounds: int, folder: Path) -> Row:
    """(d) save_parquet+load_parquet against polars writing and reading the same long-form frames."""
    import shutil

    from h5scp.io import load_parquet, save_parquet

    ours_path = folder / "ours.parquet"
    save_parquet(container, ours_path)
    # the peer's frames: exactly the files ours writes, read back once, untimed, each written with the row
    # groups ours wrote it with (read from the file's own metadata)
    frames = {p.relative_to(ours_path): pl.read_parquet(p) for p in ours_path.rglob("*.parquet")}
    row_groups = {rel: _row_group_rows(ours_path / rel) for rel in frames}
    peer_path = folder / "peer"

    def peer_save():
        for rel, frame in frames.items():
            target = peer_path / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            frame.write_parquet(target, row_group_size=row_groups[rel])
            fsync_file(target)

    def peer_load():
        for rel in frames:
            pl.read_parquet(peer_path / rel)

    before = os.getloadavg()[0]
    ours, peer = [], []
    for _ in range(rounds):
        peer.append(_round(peer_save, peer_load, peer_path))
        ours.append(_round(lambda: save_parquet(container, ours_path, overwrite=True), lambda: load_parquet(ours_path),
                           ours_path))
    shutil.rmtree(ours_path)
    shutil.rmtree(peer_path)
    n = sum(f.height for f in frames.values())
    return _versus("scptensor save_parquet+load_parquet (long form)",
                   "polars write_parquet+read_parquet of the same frames", ours, peer, 1 / 1.2,
                   f"{n} rows in {len(frames)} files; " + _load_text(before))


def test_bench_scptensor_small():
    rows = run("small")
    assert [r.benchmark for r in rows][:4] == [
        "scptensor save+load gzip 4", "scptensor save+load gzip 4, one core busy",
        "scptensor save+load uncompressed", "scptensor save peak memory",
    ]
    assert rows[1].goal == 1.0 and "another process spins on one core" in rows[1].details
    assert len(rows) == 4 + 2 * 3 + 1 + 2 and rows[-3].benchmark.startswith("scptensor save_parquet")
    assert [r.benchmark.split(",")[0] for r in rows[-2:]] == ["checksums on save", "checksums on load"]
    assert all(r.goal == 1 / 1.05 and r.rounds == POLICY.count(COST_ROUNDS, 0.0) and r.unit == "s CPU"
               for r in rows[-2:])
    assert all("each round the mean of " in r.details for r in rows[-2:])
    for row in rows:
        assert np.isfinite(row.ratio) and row.ratio > 0 and row.ours > 0 and row.peer_value > 0


def test_bench_container_round_trips_exactly(tmp_path):
    from h5scp.io import load_hdf5, save_hdf5
    from h5scp.testing import assert_container_equal

    arrays = make_arrays(30, 7, 40, 0.1)
    container = build_container(arrays, make_obs(30))
    assert container.assays["peptides"].layers["raw"].X.shape == (30, 40)
    save_hdf5(container, tmp_path / "b.h5")
    assert_container_equal(load_hdf5(tmp_path / "b.h5"), container)


if __name__ == "__main__":  # python -m benchmarks.suite.bench_scptensor [small|full]
    from benchmarks.harness import main

    main(run)


def test_original_writer_peer_keeps_what_it_should(tmp_path):
    """The peer stores float32 X and a float32 mask: the values read back equal the float32 cast."""
    c = make_float64_container(20, 7)
    path = tmp_path / "peer.h5"
    original_writer_save(c, path)
    back = original_writer_load(path)
    matrix = c.assays["proteins"].layers["raw"]
    assert back["assays/proteins/layers/raw/X"].dtype == np.float32
    assert np.array_equal(back["assays/proteins/layers/raw/X"], matrix.X.astype(np.float32), equal_nan=True)
    assert np.array_equal(back["assays/proteins/layers/raw/M"], matrix.M.astype(np.float32))
    assert back["obs/n_proteins"].tolist() == c.obs["n_proteins"].to_list()

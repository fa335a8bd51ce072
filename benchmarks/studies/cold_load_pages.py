"""Cold whole loads of an h5scp ``.h5`` on small pages against numpy's huge ones, anndata's and one read, alternated.

Question: does reading a cold dataset slab by slab (:func:`h5stream.elements.arrays._read_digesting`) into an
array on small pages (:mod:`h5stream.memory`) beat numpy's huge pages?  On a guest that returns free memory
to its host, a cold read fills the page cache and the new array at once, and a huge page for the array often
comes unbacked: the kernel then spends seconds zeroing (``clear_page``) whatever reader it is.

The container of :mod:`benchmarks.suite.bench_h5scp_disk` (default its third: 20,000 x 5,000, 30% NaN, a CSR
of 50,000 peptides at 5%; a file of about 1.4 GB) is saved once by h5scp and by anndata (one ``.h5ad`` per
assay) in a scratch folder.  Then, round by round, in this one process: ``small`` (``load_hdf5`` as it is),
``huge`` (the same load with the slab path's array from ``np.empty``), ``anndata`` (``read_h5ad`` of both
files) and ``read`` (one ``readinto`` of our file); before each, untimed, the side's files are synced and
their pages dropped (``posix_fadvise(DONTNEED)``) and as much new memory as our file's size touched and
freed.  Printed per side and round: wall, user and system seconds; then each side's min / median wall and
the load average.  The sides' order rotates by round.  Run from the repository root::

    PYTHONPATH=src python -m benchmarks.studies.cold_load_pages [--rounds 6] [--shape 20000 5000 50000]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import time
from pathlib import Path

import numpy as np

from benchmarks.harness import drop_page_cache, scratch_dir


def main() -> None:
    import anndata as ad

    import h5stream.elements.arrays as arrays
    from benchmarks.suite.bench_h5scp_disk import _anndatas, make_container
    from h5scp.io import load_hdf5, save_hdf5

    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--shape", type=int, nargs=3, default=(20_000, 5_000, 50_000))
    args = parser.parse_args()
    n, p, peptides = args.shape
    with scratch_dir() as folder:
        folder = Path(folder)
        container = make_container(n, p, 0.30, 0.05, peptides=peptides)
        ours = folder / "ours.h5"
        save_hdf5(container, ours)
        theirs = [folder / f"{name}.h5ad" for name in container.assays]
        for name, adata in _anndatas(container).items():
            adata.write_h5ad(folder / f"{name}.h5ad")
        del container
        small = arrays.small_page_array

        def huge() -> None:
            arrays.small_page_array = lambda shape, dtype: np.empty(shape, dtype)
            try:
                load_hdf5(ours)
            finally:
                arrays.small_page_array = small

        def one_read() -> None:
            with open(ours, "rb", buffering=0) as fh:
                fh.readinto(bytearray(ours.stat().st_size))

        sides = {"small": (lambda: load_hdf5(ours), [ours]), "huge": (huge, [ours]),
                 "anndata": (lambda: [ad.read_h5ad(q) for q in theirs], theirs), "read": (one_read, [ours])}
        names = list(sides)
        walls: dict[str, list[float]] = {name: [] for name in names}
        for r in range(args.rounds):
            for name in names[r % len(names):] + names[:r % len(names)]:
                run, files = sides[name]
                os.sync()
                for q in files:
                    drop_page_cache(q)
                block = np.ones(ours.stat().st_size, np.uint8)
                del block
                before, t = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
                run()
                wall, after = time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF)
                walls[name].append(wall)
                print(f"round {r} {name:8s} wall {wall:6.2f} s  user {after.ru_utime - before.ru_utime:5.2f}"
                      f"  sys {after.ru_stime - before.ru_stime:5.2f}", flush=True)
        for name in names:
            print(f"{name:8s} min {min(walls[name]):6.2f} s  median {statistics.median(walls[name]):6.2f} s")
        print("load average", os.getloadavg())


if __name__ == "__main__":
    main()

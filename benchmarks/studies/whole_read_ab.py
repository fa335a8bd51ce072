"""Does reading a large cached dataset straight into its array, piece digests checked as they land, beat
HDF5's read and the whole digest?  Both in one process, against one ``readinto`` of the same bytes.

The container of ``bench_h5scp_disk`` (5,000 x 2,000 float64 with 30% NaN and a CSR over 10,000 columns
at 10%, file about 140 MB) is saved once in a scratch folder; its three large datasets (the dense layer,
the CSR's data and indices) are read, in interleaved rounds, by:

* ``before``: :func:`h5stream.elements.arrays.read_array_dataset` with the direct path switched off
  (HDF5 reads the dataset, then its whole digest is computed);
* ``after``: the same function as it is (:func:`h5stream.checksums.read_whole_checked`: blocks of
  whole pieces taken by every allowed core, each one compiled call, ``pread`` into the array, each
  256 KiB piece checked as it lands);
* ``one readinto``: one ``preadv`` per dataset of its bytes into new memory (the physical limit).

Before each read, untimed, the file's pages are read once (warm) and as much new memory as the datasets
hold is touched and freed (as ``bench_h5scp_disk`` does).  Printed: min and median per side, the ratios
``readinto / side`` of the minima and the median of the rounds' own ratios, and the load average.
Run from the repository root::

    PYTHONPATH=src python -m benchmarks.studies.whole_read_ab [ROUNDS]
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

DATASETS = ("/assays/proteins/layers/raw/X", "/assays/peptides/layers/raw/X/data",
            "/assays/peptides/layers/raw/X/indices")


def main(argv: list[str]) -> None:
    from benchmarks.suite.bench_h5scp_disk import _fresh_memory, _warm, make_container
    from h5scp.io import save_hdf5
    from h5stream import checksums
    from h5stream.elements import arrays
    from h5stream.elements.arrays import read_array_dataset

    rounds = int(argv[0]) if argv else 15
    with tempfile.TemporaryDirectory(prefix="whole-read-ab-") as folder:
        path = Path(folder) / "c.h5"
        save_hdf5(make_container(5_000, 2_000, 0.30, 0.10), path)
        times: dict[str, list[float]] = {"before": [], "after": [], "one readinto": []}
        with h5py.File(path, "r") as f:
            checksums.attach(f)
            datasets = [f[name] for name in DATASETS]
            spans = [(d.id.get_offset(), d.size * d.dtype.itemsize) for d in datasets]
            nbytes = sum(n for _, n in spans)
            fd = os.open(path, os.O_RDONLY)
            kept = arrays.WHOLE_READ_BYTES

            def before() -> None:
                arrays.WHOLE_READ_BYTES = 1 << 62
                try:
                    for d in datasets:
                        read_array_dataset(d)
                finally:
                    arrays.WHOLE_READ_BYTES = kept

            def after() -> None:
                for d in datasets:
                    read_array_dataset(d)

            def readinto() -> None:
                for offset, n in spans:
                    os.preadv(fd, [np.empty(n, np.uint8)], offset)

            sides = {"before": before, "after": after, "one readinto": readinto}
            try:
                for side in sides.values():
                    side()
                start_load = os.getloadavg()[0]
                for _ in range(rounds):
                    for name, side in sides.items():
                        _warm(path)
                        _fresh_memory(nbytes)
                        t0 = time.perf_counter()
                        side()
                        times[name].append(time.perf_counter() - t0)
            finally:
                os.close(fd)
    limit = times["one readinto"]
    for name, values in times.items():
        ordered = sorted(values)
        ratios = sorted(r / v for r, v in zip(limit, values))
        print(f"{name:13s} min {ordered[0] * 1e3:7.1f} ms  median {ordered[len(ordered) // 2] * 1e3:7.1f} ms  "
              f"readinto/side: minima {min(limit) / ordered[0]:.2f}, rounds' median {ratios[len(ratios) // 2]:.2f}")
    print(f"{nbytes / 1e6:.0f} MB in {len(DATASETS)} datasets, {rounds} rounds; load average {start_load:.2f} "
          f"before / {os.getloadavg()[0]:.2f} after; cores {os.cpu_count()}")


if __name__ == "__main__":
    main(sys.argv[1:])

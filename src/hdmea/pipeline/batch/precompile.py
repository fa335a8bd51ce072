"""Compile every numba kernel of the pipeline into numba's on-disk cache, once, after installing.

    python -m hdmea.pipeline.batch.precompile

A process whose cache is empty compiles the STA and electrical-image kernels on
their first call: seconds of every array task on a node that has not run one
yet.  Run this once after ``pip install`` (by the user who installed, so that it
can write next to the package), or with ``NUMBA_CACHE_DIR`` set to a folder on a
filesystem every node mounts, exported in the jobs as well; every later process
loads the machine code instead.  Numba keys its cache by CPU model and
features: nodes of another CPU type add their own entries once.

It runs the whole pipeline on a tiny synthetic recording
(:func:`hdmea.pipeline.batch.workers._warm_up`), so every kernel is compiled
for the types the pipeline calls it with.
"""

from __future__ import annotations

import os
import sys
import time


def cache_location() -> str:
    """Where numba writes this package's kernels: ``NUMBA_CACHE_DIR``, else beside their modules."""
    import h5stream.kernels

    return os.environ.get("NUMBA_CACHE_DIR") or os.path.join(os.path.dirname(h5stream.kernels.__file__),
                                                             "__pycache__")


def main() -> int:
    from hdmea.pipeline.batch.workers import _warm_up

    started = time.perf_counter()
    _warm_up()
    print(f"compiled the pipeline's kernels in {time.perf_counter() - started:.1f} s into {cache_location()}")
    return 0


if __name__ == "__main__":  # pragma: no cover - python -m hdmea.pipeline.batch.precompile
    sys.exit(main())

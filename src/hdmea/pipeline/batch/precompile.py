"""Run every kernel of the pipeline once after installing, a check that they load (nothing is left to compile).

    python -m hdmea.pipeline.batch.precompile

Earlier versions JIT-compiled the STA and electrical-image kernels with numba on
their first call, and this command filled numba's on-disk cache.  Every kernel is
now compiled when the package is installed (Cython, :mod:`h5stream._ext`), so a
fresh process compiles nothing; the command stays for the scripts that run it.
It runs the whole pipeline on a tiny synthetic recording
(:func:`hdmea.pipeline.batch.workers._warm_up`); ``NUMBA_CACHE_DIR``, when set,
is still where numba would write.
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
    print(f"ran the pipeline's kernels (compiled at install) in {time.perf_counter() - started:.1f} s; numba's "
          f"cache, for any JIT kernel: into {cache_location()}")
    return 0


if __name__ == "__main__":  # pragma: no cover - python -m hdmea.pipeline.batch.precompile
    sys.exit(main())

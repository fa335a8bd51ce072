"""Pieces shared by the benchmarks that read a raw file along the page cache or directly.

:mod:`benchmarks.studies.read_paths_ab` (two source trees, by hand) and
:mod:`benchmarks.suite.bench_eimage_scaling` (the runner's rows) both time, each in a fresh
process:

* :data:`EIMAGE`: the electrical images over the raw file of :mod:`benchmarks.suite.bench_eimage`,
  ``threads`` kernel threads; ``force`` (``"direct"`` or ``"cached"``) fixes the path of the pieces
  the page cache holds for every chunk, instead of the pass's own choice
  (:class:`h5stream.kernels.raw_chunks.HeldPath`);
  it prints the seconds, the CPU seconds, the kernel's profile (the bytes each path read) and a
  digest of the images, so that runs are checked bit for bit without moving the images;
* :data:`READ`: the raw rows alone, every row of the file in chunks of 32768 rows into two buffers
  touched before, ``threads`` copies from the page cache at a time (``held="cached"``) or every
  piece read directly (``held="direct"``): the bytes the electrical images read, read in parallel.

The file's state is set and checked, not assumed: :func:`make_resident` reads it whole and
returns the share the page cache then holds, :func:`make_uncached` drops its pages
(``posix_fadvise DONTNEED``) and returns the share still held.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]

#: rows per chunk of :data:`READ` (the electrical-image pass's default chunk)
READ_CHUNK_ROWS = 32768

EIMAGE = """
import hashlib, json, os, sys, time
import h5py, numpy as np
from h5stream.kernels.eimage import PROFILE, electrical_images, butter_highpass
args = json.loads(sys.argv[1])
if args.get("force"):  # only then: a tree older than the pass's own choice has no raw_chunks
    from h5stream.kernels import raw_chunks
    force = args["force"]
    raw_chunks.HeldPath.next = lambda self, left=None: force
    raw_chunks.HeldPath.path = property(lambda self: force)  # the fresh buffers' chunks too
data = np.load(args["spikes"])
spikes = [data[k] for k in sorted(data.files, key=lambda k: int(k[1:]))]
sos = butter_highpass(100.0, 20000.0, 2)
electrical_images(np.zeros((200, 65, 65), np.uint16), [np.array([50])], sos=sos, n_threads=args["threads"])
PROFILE.reset()
t0, c0 = time.perf_counter(), time.process_time()
with h5py.File(args["path"], "r") as f:
    out = electrical_images(f[args["dataset"]], spikes, sos=sos, adc_offset=32768.0, n_threads=args["threads"])
seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
digest = hashlib.blake2b(np.ascontiguousarray(out.images).tobytes(), digest_size=16).hexdigest()
print(json.dumps({"seconds": seconds, "cpu": cpu, "profile": PROFILE.snapshot(), "digest": digest}))
"""

READ = """
import json, sys, time
import h5py
from h5stream.kernels.direct_rows import open_direct_rows
args = json.loads(sys.argv[1])
rows = args["chunk_rows"]
with h5py.File(args["path"], "r") as f:
    reader = open_direct_rows(f[args["dataset"]], copy_threads=args["threads"])
    if reader is None:
        raise SystemExit(f"{args['path']}: the raw rows cannot be read directly (O_DIRECT refused or not plain runs)")
    n = reader.n_rows
    bufs = [reader.buffer(rows) for _ in range(2)]
    for buf in bufs:  # touched before, as dd's one buffer is reused
        buf.fill(0)
    t0, c0 = time.perf_counter(), time.process_time()
    for i, a in enumerate(range(0, n, rows)):
        reader.read_runs(a, min(n, a + rows), bufs[i % 2], args["held"])
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(json.dumps({"seconds": seconds, "cpu": cpu, "cached": reader.bytes_cached, "direct": reader.bytes_direct}))
    reader.close()
"""


def child(tree: Path | None, code: str, args: dict, *, portable: bool = False) -> dict:
    """Run ``code`` (:data:`EIMAGE` or :data:`READ`) with ``args`` in a fresh Python on the source tree
    ``tree`` (its extensions built in place), or, with ``tree=None``, on the h5stream this process
    imports (an installed one too); its last printed line, as a dict.  ``portable``: with
    ``H5STREAM_PORTABLE=1``."""
    if tree is None:
        import h5stream

        library = Path(h5stream.__file__).resolve().parents[1]
        env = dict(os.environ, PYTHONPATH=f"{library}:{REPO}")
    else:
        env = dict(os.environ, PYTHONPATH=f"{tree / 'src'}:{tree}")
    env.pop("H5STREAM_PORTABLE", None)
    if portable:
        env["H5STREAM_PORTABLE"] = "1"
    done = subprocess.run([sys.executable, "-c", code, json.dumps(dict({"chunk_rows": READ_CHUNK_ROWS}, **args))],
                          env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"benchmark child on {tree} failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def make_resident(path: Path) -> float | None:
    """Read the file whole (through the page cache) and return the share of it the cache then holds
    (None where the system cannot say)."""
    from h5stream.pagecache import resident_fraction

    with open(path, "rb", buffering=0) as fh:
        buf = bytearray(16 * 2**20)
        while fh.readinto(buf):
            pass
    return resident_fraction(path)


def make_uncached(path: Path) -> float | None:
    """Drop the file's pages from the page cache (``posix_fadvise DONTNEED``, after writing back) and
    return the share it still holds (None where the system cannot say)."""
    from h5stream.pagecache import resident_fraction

    from benchmarks.harness import drop_page_cache

    drop_page_cache(path)
    return resident_fraction(path)


def dd(path: Path, direct: bool) -> dict:
    """``dd`` of the whole file to /dev/null in 16 MiB blocks (``iflag=direct`` when ``direct``): its seconds."""
    args = ["dd", f"if={path}", "of=/dev/null", "bs=16M"] + (["iflag=direct"] if direct else [])
    t0 = time.perf_counter()
    subprocess.run(args, check=True, capture_output=True)
    return {"seconds": time.perf_counter() - t0}


def write_file(folder: Path, frames: int, units: int = 135, rate_hz: float = 10.0) -> tuple[Path, Path]:
    """The raw file of :mod:`benchmarks.suite.bench_eimage` (``frames`` frames, ``units`` units at ``rate_hz``) and
    its spike trains (``.npz``, ``u0``, ``u1``, ...) in ``folder``, written once and reused."""
    from benchmarks.suite.bench_eimage import footprints, spike_trains, write_raw_file

    path = folder / f"raw-{frames}-{units}.cmcr"
    spikes_path = folder / f"spikes-{frames}-{units}.npz"
    if not (path.exists() and spikes_path.exists()):
        spikes = spike_trains(units, frames, rate_hz)
        write_raw_file(path, frames, spikes, footprints(units))
        np.savez(spikes_path, **{f"u{i}": s for i, s in enumerate(spikes)})
    return path, spikes_path

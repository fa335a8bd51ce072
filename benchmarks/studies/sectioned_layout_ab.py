"""Write and read cost of the sectioned spikes: the original's per-trial datasets against the ragged form.

``python -m benchmarks.studies.sectioned_layout_ab`` from the repository root.  135 units (the lab's median) x 6
movies x 10 trials, 20,000 spikes per unit over a 20 min recording; each form alone in a session's file
(hdmea's writer, fsync at the save: ``full_spike_times`` + ``trials_spike_times/<i>`` + ``trials_start_end``
against ``spike_times`` + ``trial_offsets`` + ``trial_bounds``), then every trial read back with plain
h5py; the forms alternate, best of 3 each.  The recording files hold both (the original's, which the
lab's analysis reads, and the ragged one beside it, which our readers read).
"""
import os
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from hdmea.pipeline import create_session
from hdmea.steps.spike_sectioning import original_sections

rng = np.random.default_rng(0)
U, M, T = 135, 6, 10
units = {f"unit_{u:03d}": np.sort(rng.integers(0, 24_000_000, 20_000)).astype(np.int64) for u in range(U)}
bounds = np.stack([np.arange(M * T) * 400_000, np.arange(M * T) * 400_000 + 380_000], axis=1).reshape(M, T, 2)

def layouts(form):
    out = {}
    for u, s in units.items():
        for m in range(M):
            b = bounds[m]
            lo, hi = np.searchsorted(s, b[:, 0]), np.searchsorted(s, b[:, 1])
            spikes = np.concatenate([s[a:z] for a, z in zip(lo, hi)])
            off = np.concatenate([[0], np.cumsum(hi - lo)]).astype(np.int64)
            out[(u, m)] = original_sections(spikes, off, b) if form == "original" else {
                "spike_times": spikes.astype(np.uint64), "trial_offsets": off, "trial_bounds": b.astype(np.uint64)}
    return out

def write(form, path):
    data = layouts(form)
    s = create_session("gain", hdf5_path=path)
    s.add_units({u: {"spike_times": v.astype(np.uint64)} for u, v in units.items()})
    t0 = time.perf_counter()
    for (u, m), d in data.items():
        s.units[u].setdefault("spike_times_sectioned", {})
        s.units[u]["spike_times_sectioned"][f"movie_{m}"] = d
    s.save(overwrite=True)
    dt = time.perf_counter() - t0
    s.close()
    return dt

def read(form, path):
    t0 = time.perf_counter()
    with h5py.File(path, "r") as f:
        for u in f["units"]:
            for m, g in f[f"units/{u}/spike_times_sectioned"].items():
                if form == "original":
                    trials = [g[f"trials_spike_times/{i}"][()] for i in range(len(g["trials_spike_times"]))]
                else:
                    sp, off = g["spike_times"][()], g["trial_offsets"][()]
                    trials = [sp[off[k]:off[k + 1]] for k in range(len(off) - 1)]
    return time.perf_counter() - t0

def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        res = {}
        for form in ("original", "ragged", "original", "ragged", "original", "ragged"):
            p = Path(d) / f"{form}.h5"
            w = write(form, p); r = read(form, p)
            res.setdefault(form, []).append((w, r, os.path.getsize(p)))
        for form, v in res.items():
            print(form, "write+save %.2f s" % min(x[0] for x in v), "read %.3f s" % min(x[1] for x in v), "size %.1f MB" % (v[0][2] / 1e6))
        print("ratio original/ragged: write %.1fx, read %.1fx" % (min(x[0] for x in res["original"]) / min(x[0] for x in res["ragged"]),
                                                              min(x[1] for x in res["original"]) / min(x[1] for x in res["ragged"])))


if __name__ == "__main__":
    main()

"""A session holding 8x its memory limit saves within limit + 300 MB of resident memory."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
LIMIT_MB = 64
UNITS = 64
SPIKES_PER_UNIT = 1 << 20  # 8 MiB of uint64 per unit: 512 MiB staged, 8x the limit


def test_session_eight_times_its_limit_saves_in_bounded_memory(tmp_path):
    target = tmp_path / "big.h5"
    script = textwrap.dedent(f"""
        import resource
        import numpy as np
        from hdmea.pipeline import create_session

        s = create_session("big", hdf5_path={str(target)!r}, memory_limit={LIMIT_MB} * 2**20)
        for i in range({UNITS}):
            spikes = np.arange(i, i + {SPIKES_PER_UNIT}, dtype=np.uint64)
            s.add_units({{f"unit_{{i:03d}}": {{"spike_times": spikes, "waveform": np.full(50, i, np.float32),
                                            "row": i // 8, "col": i % 8, "global_id": i}}}})
            del spikes
        staged = s.staged_bytes
        spilled = s.spilled_bytes
        s.save()
        # Linux carries the launching process's peak into ru_maxrss across exec; VmHWM is
        # this process's own high-water mark.  Both are printed, the second is judged.
        maxrss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        hwm_mb = [int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")][0] / 1024
        print(staged, spilled, maxrss_mb, hwm_mb)
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    staged, spilled, maxrss_mb, peak_mb = done.stdout.split()
    staged, spilled, peak_mb = int(staged), int(spilled), float(peak_mb)
    assert staged >= 8 * LIMIT_MB * 2**20
    assert spilled >= staged - LIMIT_MB * 2**20 - 2**20
    print(f"peak resident memory {peak_mb:.0f} MB (ru_maxrss {float(maxrss_mb):.0f} MB)")
    assert peak_mb <= LIMIT_MB + 300, f"peak resident memory {peak_mb:.0f} MB"
    with h5py.File(target, "r") as f:
        assert len(f["units"]) == UNITS
        for i in (0, 31, 63):
            ds = f[f"units/unit_{i:03d}/spike_times"]
            assert ds.dtype == np.uint64 and ds.shape == (SPIKES_PER_UNIT,)
            assert ds[0] == i and ds[-1] == i + SPIKES_PER_UNIT - 1
            assert f[f"units/unit_{i:03d}"].attrs["spike_count"] == SPIKES_PER_UNIT
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.h5"]

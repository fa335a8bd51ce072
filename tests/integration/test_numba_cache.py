"""Numba kernels are cached on disk: the first call in a second process loads them, never compiles."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    from h5stream.kernels import _numba_eimage
    from h5stream.kernels.eimage import butter_highpass, electrical_images

    rng = np.random.default_rng(0)
    raw = rng.normal(0, 1, (3000, 4, 4)).astype(np.float32)
    times = [np.sort(rng.integers(0, 3000, 40)) for _ in range(3)]
    sos = butter_highpass(100.0, 20000.0, 2)
    for n_threads in (1, 2):
        electrical_images(raw, times, sos=sos, n_threads=n_threads, chunk_samples=1000)
    kernels = {
        "highpass_serial": _numba_eimage.highpass_serial,
        "highpass_parallel": _numba_eimage.highpass_parallel,
        "accumulate_serial": _numba_eimage.accumulate_serial,
        "accumulate_parallel": _numba_eimage.accumulate_parallel,
    }
    report = {
        name: {"hits": sum(k.stats.cache_hits.values()), "misses": sum(k.stats.cache_misses.values()),
               "parallel": bool(k.targetoptions.get("parallel"))}
        for name, k in kernels.items()
    }
    print(json.dumps(report))
    """
)


def _run(cache_dir) -> dict:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache_dir), "NUMBA_NUM_THREADS": "2"}
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_second_process_loads_every_kernel_from_the_cache(tmp_path):
    first = _run(tmp_path)
    # the first process compiled each kernel (one signature each) and wrote it to the cache
    for name, stats in first.items():
        assert stats["misses"] >= 1 and stats["hits"] == 0, (name, stats)
    assert any(p.suffix == ".nbi" for p in tmp_path.rglob("*")), "no numba index written"
    second = _run(tmp_path)
    for name, stats in second.items():
        assert stats["misses"] == 0 and stats["hits"] >= 1, (name, stats)
    # serial and parallel builds have their own cache entries (numba keys its cache by
    # function, not by compile flags, so one function built both ways would share one)
    index_names = {p.name.split(".")[1].rsplit("-", 1)[0] for p in tmp_path.rglob("*.nbi")}
    assert set(first) <= index_names, index_names
    assert second["accumulate_parallel"]["parallel"] and not second["accumulate_serial"]["parallel"]


def test_numba_is_imported_lazily():
    code = (
        "import sys\n"
        "import hdmea, hdmea.features, hdmea.features.sta, hdmea.features.extract, hdmea.pipeline.eimage\n"
        "import h5stream.kernels.sta, h5stream.kernels.eimage\n"
        "print('numba' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_sta_and_binned_rates_run_compiled_without_numba():
    # The STA and the frame-aligned histograms are compiled at install (h5stream._ext._sta, _bins):
    # a fresh process on a node with an empty numba cache computes them without loading numba.
    code = (
        "import sys\n"
        "import numpy as np\n"
        "from h5stream.kernels.bins import ragged_histograms\n"
        "from h5stream.kernels.sta import spike_triggered_average\n"
        "stim = np.arange(40, dtype=np.uint8).reshape(10, 2, 2)\n"
        "for method in ('sparse', 'dense'):\n"
        "    got = spike_triggered_average(stim, [np.array([3, 3, 9])], n_lags=2, method=method)\n"
        "    assert got.n_spikes_used.tolist() == [3], got\n"
        "    assert got.sta[0].tolist() == ((2 * stim[1:3] + stim[7:9]) / 3).tolist(), got.sta\n"
        "counts = ragged_histograms(np.array([0, 4, 5, 9]), np.array([0, 4]), np.array([[0, 5, 10]]))\n"
        "assert counts.tolist() == [[2, 2]], counts\n"
        "print('numba' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"

"""No kernel of the pipeline is JIT-compiled: each is compiled at install, and numba stays unloaded."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest


def test_numba_is_imported_lazily():
    code = (
        "import sys\n"
        "import hdmea, hdmea.features, hdmea.steps.sta, hdmea.steps.features, hdmea.steps.eimage\n"
        "import h5stream.kernels.sta, h5stream.kernels.eimage\n"
        "print('numba' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_sta_binned_rates_and_electrical_images_run_compiled_without_numba():
    # The STA, the frame-aligned histograms and the electrical images are compiled at install
    # (h5stream._ext._sta, _bins, _eimage):
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
        "from h5stream.kernels.eimage import butter_highpass, electrical_images\n"
        "raw = np.zeros((400, 2, 2), np.float32)\n"
        "raw[100:150, 1, 0] = 1.0\n"
        "sos = np.array([[1.0, 0.0, 0.0, 1.0, 0.0, 0.0]])\n"  # the identity: images are the raw windows
        "got = electrical_images(raw, [np.array([110, 120])], sos=sos, window=(-2, 3))\n"
        "assert got.images[0, :, 1, 0].tolist() == [1.0] * 5 and got.images[0, :, 0].tolist() == [[0, 0]] * 5\n"
        "print('numba' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


@pytest.mark.slow
def test_a_cold_demo_compiles_nothing_and_never_loads_numba(tmp_path):
    # What an array task on a fresh node runs: a new process, numba's cache empty.  Every kernel of the
    # pipeline is compiled at install, so nothing is JIT-compiled: numba is never imported and its cache
    # stays empty.  (The time this saves, and the cold demo's time, are in docs/guide/hpc.md.)
    # numba is no longer a required dependency, so "not in sys.modules" alone would also hold where it is
    # not installed (or where a guarded ``try: import numba`` failed quietly).  The child process therefore
    # records every attempt to import numba or a submodule of it, whether or not numba is installed: the
    # demo must make none.
    cache = tmp_path / "numba-cache"
    cache.mkdir()
    code = (
        "import sys\n"
        "attempts = []\n"
        "class _Recorder:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'numba' or name.startswith('numba.'):\n"
        "            attempts.append(name)\n"
        "        return None\n"
        "sys.meta_path.insert(0, _Recorder())\n"
        "from hdmea.cli import main\n"
        f"assert main(['demo', '--out', {str(tmp_path / 'demo')!r}, '--overwrite']) == 0\n"
        "print('numba imports tried:', attempts)\n"
        "print('numba' in sys.modules)\n"
    )
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache), "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert lines[-2] == "numba imports tried: []", done.stdout[-3000:]
    assert lines[-1] == "False", done.stdout[-3000:]
    # the demo ran the whole analysis and found every planted spike (its plain-words summary)
    assert re.search(r"^  spikes +8 of 8 units kept every planted spike \(", done.stdout, re.M), done.stdout[-3000:]
    assert list(cache.iterdir()) == []

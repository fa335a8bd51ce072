"""``python -m hdmea.pipeline.batch.precompile`` leaves nothing for a later process to compile.

A fresh process (an array task on a node that has not run one) with the same
``NUMBA_CACHE_DIR`` runs the whole demo pipeline loading every kernel from the
cache: numba's cache log (``NUMBA_DEBUG_CACHE=1``) shows loads and no save.
"""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.slow
def test_after_precompiling_the_demo_compiles_no_kernel(tmp_path, child_env):
    env = {**child_env, "NUMBA_CACHE_DIR": str(tmp_path / "cache"), "NUMBA_DEBUG_CACHE": "1"}
    done = subprocess.run([sys.executable, "-m", "hdmea.pipeline.batch.precompile"], capture_output=True,
                          text=True, env=env, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"into {tmp_path / 'cache'}" in done.stdout
    assert "data saved to" in done.stdout + done.stderr  # it compiled and stored the kernels

    demo = subprocess.run([sys.executable, "-m", "hdmea", "demo", "--out", str(tmp_path / "demo")],
                          capture_output=True, text=True, env=env, timeout=900)
    assert demo.returncode == 0, demo.stderr[-3000:]
    cache_log = demo.stdout + demo.stderr
    assert "data loaded from" in cache_log
    assert "data saved to" not in cache_log, [line for line in cache_log.splitlines() if "saved to" in line]

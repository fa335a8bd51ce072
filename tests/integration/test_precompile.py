"""``python -m hdmea.pipeline.batch.precompile`` runs, and a later process compiles nothing.

Every kernel is compiled at install, so a fresh process (an array task on a node
that has not run one) with the same ``NUMBA_CACHE_DIR`` runs the whole demo
pipeline and numba's cache log (``NUMBA_DEBUG_CACHE=1``) shows no save.
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
    assert "compiled at install" in done.stdout

    demo = subprocess.run([sys.executable, "-m", "hdmea", "demo", "--out", str(tmp_path / "demo")],
                          capture_output=True, text=True, env=env, timeout=900)
    assert demo.returncode == 0, demo.stderr[-3000:]
    cache_log = demo.stdout + demo.stderr
    assert "data saved to" not in cache_log, [line for line in cache_log.splitlines() if "saved to" in line]

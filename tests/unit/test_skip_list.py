"""The skipped tests are listed one per line with their reasons (tests/skips.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_each_skipped_test_is_listed_with_its_reason(tmp_path):
    (tmp_path / "test_some.py").write_text(
        "import pytest\n"
        "def test_runs():\n    pass\n"
        "@pytest.mark.skipif(True, reason='needs chromium: apt-get install chromium chromium-driver')\n"
        "def test_browser():\n    pass\n"
        "@pytest.mark.parametrize('n', [1, 2])\n"
        "def test_slurm(n):\n    pytest.skip('needs slurm-wlm and munge')\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "tests.skips", "-p", "no:cacheprovider",
                           "-c", os.devnull, "--rootdir", str(tmp_path), "-rfE", str(tmp_path)],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if "skipped: 3, one line each (test: why)" in line)
    assert lines[header + 1:header + 4] == [
        "test_some.py::test_browser: needs chromium: apt-get install chromium chromium-driver",
        "test_some.py::test_slurm[1]: needs slurm-wlm and munge",
        "test_some.py::test_slurm[2]: needs slurm-wlm and munge",
    ]

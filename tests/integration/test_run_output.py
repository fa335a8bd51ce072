"""What ``hdmea run`` prints at the default level: a line per step, numbers with units, nothing of Python's.

A synthetic recording through every step; the log lines on stderr are the job's start and end and one
"<step> done in N s" per step that ran (the steps' own details are DEBUG lines), and the summary on stdout
says how the raw frames were read in words.
"""

from __future__ import annotations

import re
import subprocess
import sys

from hdmea.synthetic import generate_recording
from hdmea.steps.table import STEPS

CONFIG = '[stimulus]\nfile = "{dir}/{name}.stimulus.json"\n[steps]\ncompute_eimage_sta = true\n'


def test_run_prints_a_line_per_step_with_units_and_no_python_reprs(tmp_path, child_env):
    made = generate_recording(tmp_path / "raw", "rec", n_units=8, seed=0)  # enough units to decide the frame order
    config = tmp_path / "pipeline.toml"
    config.write_text(CONFIG)
    done = subprocess.run([sys.executable, "-m", "hdmea", "run", str(made.cmcr_path), str(made.cmtr_path),
                           "--config", str(config), "--out", str(tmp_path / "rec.h5")],
                          capture_output=True, text=True, env=child_env, timeout=300)
    assert done.returncode == 0, done.stderr
    info = [line.split(": ", 1)[1] for line in done.stderr.splitlines() if " INFO " in line]
    steps = [step.name for step in STEPS]
    per_step = [line for line in info if re.fullmatch(r"(\w+) done in \d+\.\d\d s", line)]
    assert [line.split()[0] for line in per_step] == steps, info
    assert len(info) <= len(steps) + 2, info  # the job's start and end besides
    for text in (done.stderr, done.stdout):
        for python in ("{'", "[-]", "Preempted", "(col_row)", "(row_col)", "None"):
            assert python not in text, (python, text)
    assert "raw frames: read as [col, row]" in done.stdout, done.stdout
    assert re.search(r"^rec: done in \d+\.\d\d s -> ", done.stdout, re.M), done.stdout

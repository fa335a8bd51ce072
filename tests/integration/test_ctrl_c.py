"""Ctrl-C at any moment of ``hdmea run``: one line, "stopped; run the same command again to resume", exit 130.

A real ``hdmea`` console script in a process of its own gets a real SIGINT after several delays: while the
command line is still importing (the first tenths of a second), during its checks before the first step, and
during the steps.  Whatever it was doing, it prints the same one line (no traceback, no class name) and exits
130, the status a shell gives a program stopped by Ctrl-C; inside a SLURM job the exit status is 75, on which
a task requeues.  The same command then finishes the recording.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hdmea.synthetic import generate_recording

CONFIG = '[stimulus]\nfile = "{dir}/{name}.stimulus.json"\n[steps]\ncompute_eimage_sta = true\n'
STOPPED = "stopped; run the same command again to resume"


def _script() -> list[str]:
    script = Path(sys.executable).with_name("hdmea.exe" if os.name == "nt" else "hdmea")
    if not script.exists():
        pytest.skip("the hdmea console script is not installed beside this Python")
    return [str(script)]


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ctrl_c")
    made = generate_recording(folder, "cc", n_units=4, seed=5)
    config = folder / "pipeline.toml"
    config.write_text(CONFIG)
    return made, config


def _interrupted(argv: list[str], delay: float, env: dict[str, str]) -> subprocess.CompletedProcess:
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=240)
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


@pytest.mark.slow
@pytest.mark.skipif(os.name == "nt", reason="SIGINT is a console event on Windows")
@pytest.mark.parametrize("delay", [0.15, 0.3, 0.6, 1.0, 1.6])  # imports, checks, steps (on two busy cores)
def test_ctrl_c_at_any_moment_is_one_line_and_exit_130(recording, tmp_path, delay, child_env):
    made, config = recording
    out = tmp_path / "out" / "cc.h5"
    argv = _script() + ["run", str(made.cmcr_path), str(made.cmtr_path), "--config", str(config),
                        "--out", str(out)]
    env = {k: v for k, v in child_env.items() if not k.startswith("SLURM_")}
    stopped = _interrupted(argv, delay, env)
    if stopped.returncode == 0:  # a fast machine finished before the signal: nothing to check at this delay
        assert delay >= 0.6 and out.exists(), stopped.stderr
        return
    assert stopped.returncode == 130, stopped.stderr
    assert stopped.stderr.count(STOPPED) == 1, stopped.stderr
    last = stopped.stderr.strip().splitlines()[-1]
    assert last.startswith(f"hdmea run: {STOPPED}"), stopped.stderr
    for word in ("Traceback", "KeyboardInterrupt", "Preempted", "Error"):
        assert word not in stopped.stderr, stopped.stderr
    # (a fast machine may have written the whole file before the signal: then the command ends as stopped
    # after it, and the same command finds it finished)
    again = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=240)
    assert again.returncode == 0, again.stderr
    assert out.exists()


@pytest.mark.slow
@pytest.mark.skipif(os.name == "nt", reason="SIGINT is a console event on Windows")
def test_a_stop_inside_a_slurm_job_exits_75(recording, tmp_path, child_env):
    made, config = recording
    argv = _script() + ["run", str(made.cmcr_path), str(made.cmtr_path), "--config", str(config),
                        "--out", str(tmp_path / "cc.h5")]
    stopped = _interrupted(argv, 0.3, {**child_env, "SLURM_JOB_ID": "31"})
    assert stopped.returncode == 75, stopped.stderr
    assert stopped.stderr.count(STOPPED) == 1 and "Traceback" not in stopped.stderr, stopped.stderr

"""Ctrl-C at any moment of ``hdmea run``: one line, "stopped; run the same command again to resume", exit 130.

A real ``hdmea`` console script in a process of its own gets a real SIGINT at three moments, each reached
for sure before the signal is sent (a hook holds the process there and says so, :mod:`tests.holds`; no
delay is guessed, so a busy machine changes nothing): while the command line is still importing, during its
checks before the first step, and during the steps.  Whatever it was doing, it prints the same one line (no
traceback, no class name) and exits 130, the status a shell gives a program stopped by Ctrl-C; inside a SLURM
job the exit status is 75, on which a task requeues.  The same command then finishes the recording.
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
from tests.holds import HELD_TEXT, held_at_text, hold_after_load, hold_at_import

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


#: where the stop lands: while the command line imports (the console script's start holds the signals), during
#: its checks before the first step (the command line's own handling), and during the steps (the job's)
MOMENTS = {
    "start": ("import", "hdmea.cli"),
    "checks": ("import", "hdmea.pipeline.preflight"),
    "steps": ("after load", None),
}


def _held_env(moment: str, folder: Path, env: dict[str, str]) -> tuple[dict[str, str], str]:
    kind, module = MOMENTS[moment]
    if kind == "import":
        return hold_at_import(folder, env, module), held_at_text(module)
    return hold_after_load(folder, env), HELD_TEXT


def _interrupted(argv: list[str], env: dict[str, str], ready: str, log: Path) -> subprocess.CompletedProcess:
    """Run ``argv``; send SIGINT once its stderr says it is held at the moment (``ready``); never a sleep."""
    with open(log, "wb") as err:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, env=env)
        deadline = time.monotonic() + 240
        while ready.encode() not in log.read_bytes():
            assert proc.poll() is None, f"ended before {ready!r}:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"not held in 240 s:\n{log.read_text()}"
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=240)
    return subprocess.CompletedProcess(argv, proc.returncode, out.decode(), log.read_text())


@pytest.mark.slow
@pytest.mark.stops
@pytest.mark.skipif(os.name == "nt", reason="SIGINT is a console event on Windows")
@pytest.mark.parametrize("moment", list(MOMENTS))
def test_ctrl_c_at_any_moment_is_one_line_and_exit_130(recording, tmp_path, moment, child_env):
    made, config = recording
    out = tmp_path / "out" / "cc.h5"
    argv = _script() + ["run", str(made.cmcr_path), str(made.cmtr_path), "--config", str(config),
                        "--out", str(out)]
    env = {k: v for k, v in child_env.items() if not k.startswith("SLURM_")}
    held, ready = _held_env(moment, tmp_path / "hook", env)
    stopped = _interrupted(argv, held, ready, tmp_path / "stopped.log")
    assert stopped.returncode == 130, stopped.stderr
    said = stopped.stderr.replace(ready + "\n", "").replace(ready + " until a signal\n", "")
    assert said.count(STOPPED) == 1, said
    last = said.strip().splitlines()[-1]
    assert last.startswith(f"hdmea run: {STOPPED}"), said
    for word in ("Traceback", "KeyboardInterrupt", "Preempted", "Error", "Exception ignored"):
        assert word not in said, said
    assert not out.exists()
    again = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=240)
    assert again.returncode == 0, again.stderr
    assert out.exists()


@pytest.mark.slow
@pytest.mark.stops
@pytest.mark.skipif(os.name == "nt", reason="SIGINT is a console event on Windows")
def test_a_stop_inside_a_slurm_job_exits_75(recording, tmp_path, child_env):
    made, config = recording
    argv = _script() + ["run", str(made.cmcr_path), str(made.cmtr_path), "--config", str(config),
                        "--out", str(tmp_path / "cc.h5")]
    held, ready = _held_env("checks", tmp_path / "hook", {**child_env, "SLURM_JOB_ID": "31"})
    stopped = _interrupted(argv, held, ready, tmp_path / "stopped.log")
    assert stopped.returncode == 75, stopped.stderr
    assert stopped.stderr.count(STOPPED) == 1 and "Traceback" not in stopped.stderr, stopped.stderr

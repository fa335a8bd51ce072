"""``hdmea run``, ``run-one`` and ``batch`` stopped by SIGTERM or SIGINT: checkpoint, one message, exit 75.

Real signals to real subprocesses, sent once the log says the first step is
done (the next one, the stimulus's section times, takes seconds).  The stopped
command leaves ``<out>.checkpoint.h5`` and no output; the same command then
resumes from it (its log says so) and writes a file equal to a clean run's.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hdmea.config import load_config
from hdmea.pipeline.batch import checkpoint_path_for, run_pipeline
from hdmea.pipeline.batch.preemption import EXIT_PREEMPTED
from hdmea.synthetic import generate_recording
from tests.filecompare import TIMESTAMP_ATTRS, assert_files_equal

CONFIG = """
[stimulus]
file = "{dir}/{name}.stimulus.json"
[steps]
compute_eimage_sta = true
[output]
checkpoint_min_seconds = 0.0
"""


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    folder = tmp_path_factory.mktemp("signals")
    made = generate_recording(folder / "recordings", "sig", n_units=4, seed=3)
    config = folder / "pipeline.toml"
    config.write_text(CONFIG)
    clean = folder / "clean" / "sig.h5"
    run_pipeline(made.cmcr_path, made.cmtr_path, clean, load_config(config), dataset_id="sig",
                 show_progress=False)
    return made, config, clean


def command_line(command: str, made, config: Path, out: Path) -> list[str]:
    hdmea = [sys.executable, "-m", "hdmea", "--log-level", "INFO"]
    if command == "run":
        return hdmea + ["run", str(made.cmcr_path), str(made.cmtr_path), "--config", str(config),
                        "--out", str(out / "sig.h5")]
    if command == "run-one":
        return hdmea + ["run-one", str(made.cmcr_path.parent), "--index", "0", "--config", str(config),
                        "--out", str(out)]
    return hdmea + ["batch", str(made.cmcr_path.parent), "--config", str(config), "--out", str(out),
                    "--workers", "1"]


def stop_after_first_step(argv: list[str], sig: signal.Signals, log: Path, env: dict) -> subprocess.CompletedProcess:
    """Run ``argv``, send ``sig`` once its log says the first step is done; its exit code and output."""
    with open(log, "wb") as err:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, env=env)
        deadline = time.monotonic() + 240
        while b"load_recording done" not in log.read_bytes():
            assert proc.poll() is None, f"ended before its first step was done:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"no step done in 240 s:\n{log.read_text()}"
            time.sleep(0.02)
        proc.send_signal(sig)
        stdout, _ = proc.communicate(timeout=240)
    return subprocess.CompletedProcess(argv, proc.returncode, stdout.decode(), log.read_text())


@pytest.mark.slow
@pytest.mark.parametrize("command", ["run", "run-one", "batch"])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_checkpoints_and_the_same_command_resumes(recording, tmp_path, command, sig, child_env):
    made, config, clean = recording
    out = tmp_path / "out"
    argv = command_line(command, made, config, out)
    stopped = stop_after_first_step(argv, sig, tmp_path / "stopped.log", child_env)
    assert stopped.returncode == EXIT_PREEMPTED, stopped.stderr
    checkpoint = checkpoint_path_for(out / "sig.h5")
    assert checkpoint.exists() and not (out / "sig.h5").exists()
    # One message naming the signal, the recording, what was kept where, and what to do.
    said = stopped.stdout if command == "batch" else stopped.stderr  # batch: its table
    assert f"{sig.name} received: recording 'sig' stopped" in said
    assert f"are checkpointed in {checkpoint}" in said and "Run the same command again" in said
    assert f"Preempted: {sig.name} received" in stopped.stderr
    # No traceback of ours (Dask may log one of its own as its workers close under it)
    ours = stopped.stderr.split("hdmea.pipeline.batch.engine: batch stopped by")[-1] if command == "batch" \
        else stopped.stderr
    assert "Traceback" not in ours, ours

    again = subprocess.run(argv, capture_output=True, text=True, env=child_env, timeout=240)
    assert again.returncode == 0, again.stderr
    assert f"resuming from {checkpoint.name} (steps done: load_recording" in again.stderr
    assert not checkpoint.exists()
    assert_files_equal(clean, out / "sig.h5", ignore_attrs=TIMESTAMP_ATTRS)



def test_a_job_on_a_thread_is_stopped_and_a_shielded_write_completes_first():
    """stop_jobs raises Preempted in a job thread; inside shielded() it waits for the block's end."""
    import threading

    from hdmea.pipeline.batch import preemption

    events: list[str] = []
    in_shield, release = threading.Event(), threading.Event()

    def job() -> None:
        try:
            with preemption.job_thread():
                with preemption.shielded():
                    in_shield.set()
                    release.wait(30)
                    for _ in range(200_000):  # Python instructions: a stop would land here if not shielded
                        pass
                    events.append("write completed")
                preemption.raise_if_stopped()
                events.append("went on after the stop")
        except preemption.Preempted as exc:
            events.append(f"stopped by {exc.signal_name}")

    thread = threading.Thread(target=job)
    thread.start()
    try:
        assert in_shield.wait(30)
        assert preemption.stop_jobs("SIGTERM") == 1
        release.set()
        thread.join(30)
    finally:
        preemption._reset()
    assert events == ["write completed", "stopped by SIGTERM"]
    with pytest.raises(preemption.Preempted):  # a job that starts after the stop does not run
        preemption.stop_jobs("SIGINT")
        try:
            with preemption.job_thread():
                pass
        finally:
            preemption._reset()

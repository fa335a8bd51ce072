"""A cluster's shape: ``hdmea batch --scheduler ADDR`` on a Dask scheduler and two workers in processes of their own.

The scheduler and the workers are started with the ``dask scheduler`` and
``dask worker`` command lines, as on a cluster's nodes; the batch only gets the
scheduler's address.  Every step a worker finishes is recorded by a hook in the
steps' own log (:mod:`tests.integration._compute_count`), independently of the
batch's markers and summaries under test.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import pytest

from h5stream.files.checksum_checks import check_file
from tests.integration._compute_count import (computations, copies_of_one_recording, count_computations,
                                              steps_done)

pytest.importorskip("distributed")

DASK = Path(sys.executable).with_name("dask")
NAMES = [f"c{i}" for i in range(4)]


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A ``dask scheduler`` and two ``dask worker`` processes (each with its nanny) on this machine.

    Yields ``(address, log, gate)``: the workers record every finished step in
    ``log`` and, after a recording's first step, wait until ``gate`` exists.
    """
    if not DASK.exists():
        pytest.skip("the dask command line is not installed")
    home = tmp_path_factory.mktemp("cluster")
    log, gate, address_file = home / "steps.log", home / "gate", home / "scheduler.json"
    gate.touch()
    # the environment of a child Python that imports what this process imports (conftest's child_env)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    worker_env = {**count_computations(home / "hook", env, log), "HDMEA_TEST_COMPUTE_GATE": str(gate)}
    logs = [open(home / name, "w") for name in ("scheduler.err", "worker-0.err", "worker-1.err")]
    procs = [subprocess.Popen([str(DASK), "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                               "--scheduler-file", str(address_file)], env=env,
                              stdout=subprocess.DEVNULL, stderr=logs[0])]
    try:
        _wait_for(lambda: address_file.exists() and address_file.stat().st_size > 0, 60, "the scheduler")
        address = json.loads(address_file.read_text())["address"]
        for i in range(2):
            procs.append(subprocess.Popen(
                [str(DASK), "worker", address, "--nworkers", "1", "--nthreads", "1", "--no-dashboard",
                 "--name", f"worker-{i}", "--local-directory", str(home / f"w{i}")],
                env=worker_env, stdout=subprocess.DEVNULL, stderr=logs[1 + i]))
        from distributed import Client

        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=120)
        yield address, log, gate
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in reversed(procs):
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for f in logs:
            f.close()


@pytest.fixture(scope="module")
def recordings(tmp_path_factory) -> tuple[Path, Path]:
    return copies_of_one_recording(tmp_path_factory, NAMES)


def _batch(src: Path, config: Path, out: Path, address: str, env: dict) -> subprocess.Popen:
    env = {k: v for k, v in env.items() if not k.startswith("SLURM_")}
    return subprocess.Popen([sys.executable, "-m", "hdmea", "batch", str(src), "--config", str(config), "--out",
                             str(out), "--scheduler", address], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _steps(output: Path) -> list[str]:
    check_file(output)  # every checksum, by reading all of the file
    with h5py.File(output, "r") as f:
        return [s.decode() if isinstance(s, bytes) else s for s in f["pipeline/session_info/completed_steps"][()]]


def _check_outputs(out: Path, log: Path, summary: dict) -> None:
    """Each output whole, its last step finished exactly once over the workers, every row and marker true."""
    last = collections.Counter((name, step) for name, _, step in steps_done(log))
    for name in NAMES:
        steps = _steps(out / f"{name}.h5")
        assert last[(name, steps[-1])] == 1, (name, steps, steps_done(log))
        marker = json.loads((out / f"{name}.h5.done").read_text())
        assert marker["batch"] == summary["written_by"]
    assert [(r["name"], r["status"]) for r in summary["results"]] == [(n, "done") for n in NAMES]
    assert not list(out.glob("*.claim")) and not list(out.glob("*.partial*")), sorted(out.iterdir())


@pytest.mark.slow
def test_a_batch_on_a_separate_scheduler_and_workers_computes_every_recording_once(
        cluster, recordings, tmp_path, child_env):
    address, log, _gate = cluster
    src, config = recordings
    log.unlink(missing_ok=True)
    out = tmp_path / "out"
    proc = _batch(src, config, out, address, child_env)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stdout + stderr[-3000:]
    assert collections.Counter(name for name, _ in computations(log)) == collections.Counter(NAMES)
    summary = json.loads((out / "batch_summary.json").read_text())
    assert summary["executor"] == f"dask scheduler {address}"
    assert all(r["attempts"] == 1 and r["errors"] == [] for r in summary["results"]), summary
    # both worker processes took recordings
    assert len({pid for _, pid in computations(log)}) == 2, computations(log)
    _check_outputs(out, log, summary)


@pytest.mark.slow
def test_a_worker_killed_mid_recording_is_redone_on_another_and_nothing_half_written_stays(
        cluster, recordings, tmp_path, child_env):
    address, log, gate = cluster
    src, config = recordings
    log.unlink(missing_ok=True)
    gate.unlink()  # each computation waits after its first step until the kill
    out = tmp_path / "out"
    proc = _batch(src, config, out, address, child_env)
    try:
        _wait_for(lambda: computations(log) or proc.poll() is not None, 240, "a worker computing")
        killed_name, killed_pid = computations(log)[0]
        os.kill(killed_pid, signal.SIGKILL)  # the worker process itself, in the middle of the recording
    finally:
        gate.touch()
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stdout + stderr[-3000:]
    summary = json.loads((out / "batch_summary.json").read_text())
    rows = {r["name"]: r for r in summary["batches"][-1]["results"]}
    lost = rows[killed_name]
    assert lost["status"] == "done" and lost["attempts"] == 2, lost
    assert len(lost["errors"]) == 1 and lost["errors"][0].startswith("attempt 1: [infrastructure]"), lost
    assert "died" in lost["errors"][0] and "KilledWorker" not in lost["errors"][0], lost
    assert len(lost["error_types"]) == 1 and lost["error_types"][0] in (None, "KilledWorker"), lost
    assert all(rows[n]["attempts"] == 1 for n in NAMES if n != killed_name), {n: (r["attempts"], r["errors"]) for n, r in rows.items()}
    started = collections.Counter(name for name, _ in computations(log))
    # the killed recording started twice (the second time on another worker process), every other once,
    # and the killed process finished nothing after its first step
    assert started == collections.Counter(NAMES + [killed_name]), computations(log)
    assert [step for name, pid, step in steps_done(log) if pid == killed_pid] == ["load_recording"]
    marker = json.loads((out / f"{killed_name}.h5.done").read_text())
    assert marker["pid"] != killed_pid
    _check_outputs(out, log, summary)

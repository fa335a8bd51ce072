"""Batches on a real single-node SLURM (the ``slurm`` fixture), each compared file by file with a clean run.

- the job-array script (``hdmea slurm-script``) over three recordings, then again: the second array skips them all;
- a task stopped by SIGTERM (``scancel --signal=TERM --batch``) checkpoints, exits 75 and is requeued,
  and the requeued task resumes from the checkpoint;
- ``hdmea batch --slurm`` on two dask-jobqueue worker jobs;
- a worker job cancelled while it runs a recording: the recording is done again on the other job, and
  the summary names the cancelled job as an infrastructure failure;
- a node drained while the batch waits for its workers: the batch says why it waits and ends when
  the node is back.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hdmea.config import load_config
from hdmea.pipeline.batch import run_pipeline
from hdmea.synthetic import generate_recording
from tests.filecompare import TIMESTAMP_ATTRS, assert_files_equal
from tests.holds import HELD_TEXT, hold_after_load

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
ARRAY_SCRIPT = REPO / "src" / "hdmea" / "data" / "slurm" / "slurm_array.sh"
NAMES = ("rec_a", "rec_b", "rec_c")
CONFIG = """
[stimulus]
file = "{dir}/{name}.stimulus.json"
[steps]
compute_eimage_sta = true
[output]
checkpoint_min_seconds = 0.0
"""
SLURM_TABLE = """
[batch]
retries = 2
[batch.slurm]
cores = 1
memory = "2GB"
walltime = "00:20:00"
jobs = 2
job_extra_directives = ["--output={logs}/worker-%j.log"]
"""


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    """Three small synthetic recordings, a configuration, and each one's output of a clean run."""
    folder = tmp_path_factory.mktemp("slurm-batches")
    made = [generate_recording(folder / "recordings", name, n_units=3, seed=k) for k, name in enumerate(NAMES)]
    config = folder / "pipeline.toml"
    config.write_text(CONFIG)
    clean = {}
    for name, rec in zip(NAMES, made):
        clean[name] = folder / "clean" / f"{name}.h5"
        run_pipeline(rec.cmcr_path, rec.cmtr_path, clean[name], load_config(config), dataset_id=name,
                     show_progress=False)
    return folder / "recordings", config, clean


def hdmea_command() -> str:
    return f"{sys.executable} -m hdmea"


def assert_equal_to_clean(out: Path, clean: dict[str, Path]) -> None:
    for name, reference in clean.items():
        assert_files_equal(reference, out / f"{name}.h5", ignore_attrs=TIMESTAMP_ATTRS)


def wait_for_text(path_pattern: Path, text: str, timeout: float = 240.0) -> Path:
    """The first file matching ``path_pattern`` (a glob) that contains ``text``, once one does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in sorted(path_pattern.parent.glob(path_pattern.name)):
            if text in path.read_text(errors="replace"):
                return path
        time.sleep(0.1)
    logs = "\n".join(f"--- {p}\n{p.read_text(errors='replace')[-2000:]}"
                     for p in path_pattern.parent.glob(path_pattern.name))
    raise AssertionError(f"no {path_pattern} says {text!r} after {timeout:.0f} s\n{logs}")


def test_array_script_then_rerun_skips_finished(slurm, recordings, tmp_path):
    folder, config, clean = recordings
    out, logs = tmp_path / "out", tmp_path / "logs"
    logs.mkdir()
    argv = ["--array=0-2", "--cpus-per-task=1", "--mem=1G", f"--output={logs}/first-%A_%a.log",
            str(ARRAY_SCRIPT), str(folder), str(out), str(config)]
    job = slurm.sbatch(*argv, env={"HDMEA": hdmea_command()}, cwd=tmp_path)
    tasks = slurm.wait_done(job)
    assert sorted(tasks) == ["0", "1", "2"]
    assert {t: f["JobState"] + " " + f["ExitCode"] for t, f in tasks.items()} == \
        {t: "COMPLETED 0:0" for t in tasks}, "\n".join(p.read_text() for p in sorted(logs.glob("*.log")))
    assert_equal_to_clean(out, clean)
    for k, name in enumerate(NAMES):
        log = (logs / f"first-{job}_{k}.log").read_text()
        assert f"slurm={job}_{k}" in log and f"{name}: done in" in log
    written = {name: (out / f"{name}.h5").stat().st_mtime_ns for name in NAMES}

    again = slurm.sbatch(*[a.replace("first-", "again-") for a in argv], env={"HDMEA": hdmea_command()},
                         cwd=tmp_path)
    tasks = slurm.wait_done(again)
    assert {f["JobState"] + " " + f["ExitCode"] for f in tasks.values()} == {"COMPLETED 0:0"}
    for k, name in enumerate(NAMES):
        log = (logs / f"again-{again}_{k}.log").read_text()
        assert f"{name}: already finished with this configuration, skipped" in log
        assert "started (attempt" not in log
    assert {name: (out / f"{name}.h5").stat().st_mtime_ns for name in NAMES} == written
    assert_equal_to_clean(out, clean)


def test_sigterm_checkpoints_and_the_requeued_task_resumes(slurm, recordings, tmp_path):
    folder, config, clean = recordings
    out, logs = tmp_path / "out", tmp_path / "logs"
    logs.mkdir()
    # the first run is held after load_recording until the signal (tests.holds); the requeued run
    # resumes load_recording, so it is not held
    held = hold_after_load(tmp_path / "hook", {"PYTHONPATH": os.environ.get("PYTHONPATH", "")})
    job = slurm.sbatch("--array=1", "--cpus-per-task=1", "--mem=1G", f"--output={logs}/task-%A_%a.log",
                       str(ARRAY_SCRIPT), str(folder), str(out), str(config),
                       env={"HDMEA": hdmea_command(), "PYTHONPATH": held["PYTHONPATH"]}, cwd=tmp_path)
    log = wait_for_text(logs / "task-*.log", HELD_TEXT)
    # What SLURM does before a time limit with --signal=B:TERM@N, or on preemption: SIGTERM to the batch
    # shell, which passes it on to hdmea.
    slurm.command("scancel", "--signal=TERM", "--batch", job)
    tasks = slurm.wait_done(job)
    text = log.read_text()
    assert tasks["1"]["JobState"] == "COMPLETED" and tasks["1"]["ExitCode"] == "0:0", text
    assert tasks["1"]["Restarts"] == "1", text + slurm.logs()
    checkpoint = out / "rec_b.h5.checkpoint.h5"
    first, _, second = text.partition("slurm_array.sh: hdmea stopped and kept its checkpoint; requeueing")
    assert second, text
    # The stopped run: one message naming the signal, the job, the checkpoint and what to do.
    assert re.search(rf"hdmea run-one: stopped; run the same command again to resume \(SIGTERM in SLURM job {job} "
                     rf"task 1: the finished steps load_recording[^)]* are kept in {re.escape(str(checkpoint))}\)",
                     first), first
    assert first.count("run the same command again to resume") == 1 and "rec_b: done in" not in first
    # The requeued run: resumed from the checkpoint, equal to a clean run.
    assert f"resuming from {checkpoint.name} (steps done: load_recording" in second
    assert "rec_b: done in" in second and not checkpoint.exists()
    assert_files_equal(clean["rec_b"], out / "rec_b.h5", ignore_attrs=TIMESTAMP_ATTRS)


def slurm_config(tmp_path: Path, config: Path, logs: Path) -> Path:
    path = tmp_path / "slurm.toml"
    path.write_text(config.read_text() + SLURM_TABLE.format(logs=logs))
    return path


def worker_jobs(slurm, since: set[str]) -> dict[str, dict[str, str]]:
    """The dask-jobqueue worker jobs submitted after the jobs ``since``, by id."""
    text = slurm.command("scontrol", "-o", "show", "job")
    jobs = {}
    for line in text.splitlines():
        fields = dict(re.findall(r"(\w+)=(\S*)", line))
        if fields.get("JobId") not in since and fields.get("JobName", "").startswith("dask"):
            jobs[fields["JobId"]] = fields
    return jobs


def all_jobs(slurm) -> set[str]:
    return set(re.findall(r"JobId=(\d+)", slurm.command("scontrol", "-o", "show", "job")))


def test_batch_slurm_with_two_worker_jobs(slurm, recordings, tmp_path, child_env):
    folder, config, clean = recordings
    out, logs = tmp_path / "out", tmp_path / "logs"
    logs.mkdir()
    before = all_jobs(slurm)
    done = subprocess.run([sys.executable, "-m", "hdmea", "batch", str(folder), "--slurm", "--out", str(out),
                           "--config", str(slurm_config(tmp_path, config, logs))],
                          env={**child_env, **slurm.env}, cwd=tmp_path, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    summary = json.loads((out / "batch_summary.json").read_text())
    assert [r["status"] for r in summary["results"]] == ["done"] * 3
    assert "SLURMCluster" in summary["executor"]
    jobs = worker_jobs(slurm, before)
    assert len(jobs) == 2, jobs
    assert_equal_to_clean(out, clean)


def test_a_cancelled_worker_job_is_an_infrastructure_failure_and_its_recording_runs_elsewhere(
        slurm, recordings, tmp_path, child_env):
    folder, config, clean = recordings
    out, logs = tmp_path / "out", tmp_path / "logs"
    logs.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "hdmea", "batch", str(folder), "--slurm", "--out", str(out),
                             "--config", str(slurm_config(tmp_path, config, logs))],
                            env={**child_env, **slurm.env}, cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        # The first worker job that starts a recording is cancelled while it runs it.
        log = wait_for_text(logs / "worker-*.log", "started (attempt 1)")
        cancelled = re.fullmatch(r"worker-(\d+)\.log", log.name).group(1)
        running = re.search(r"\[(\w+)\] hdmea\.pipeline\.batch\.jobs: started \(attempt 1\)", log.read_text())
        slurm.command("scancel", cancelled)
        stdout, stderr = proc.communicate(timeout=600)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr[-4000:]
    summary = json.loads((out / "batch_summary.json").read_text())
    results = {r["name"]: r for r in summary["results"]}
    assert {r["status"] for r in results.values()} == {"done"}, stdout
    lost = results[running.group(1)]
    assert lost["attempts"] == 2, lost
    assert len(lost["errors"]) == 1 and lost["errors"][0].startswith("attempt 1: [infrastructure]"), lost
    assert f"SLURM job {cancelled}" in lost["errors"][0], lost
    assert_equal_to_clean(out, clean)


def test_a_batch_waiting_on_a_drained_node_says_why_and_ends_when_the_node_returns(
        slurm, recordings, tmp_path, child_env):
    folder, config, clean = recordings
    out, logs = tmp_path / "out", tmp_path / "logs"
    logs.mkdir()
    slurm.command("scontrol", "update", f"nodename={slurm.node}", "state=drain", "reason=firmware update")
    stderr = tmp_path / "batch.err"
    try:
        with open(stderr, "w") as err:
            proc = subprocess.Popen([sys.executable, "-m", "hdmea", "batch", str(folder), "--slurm", "--out",
                                     str(out), "--config", str(slurm_config(tmp_path, config, logs))],
                                    env={**child_env, **slurm.env}, cwd=tmp_path, stdout=subprocess.PIPE,
                                    stderr=err, text=True)
            said = wait_for_text(stderr, "waiting for workers before any recording can run", timeout=180)
            assert proc.poll() is None
            line = next(x for x in said.read_text().splitlines() if "waiting for workers" in x)
            # Why: the worker jobs are pending because the node is drained, and for what.
            assert re.search(r"SLURM job \d+ pending \(", line), line
            assert f"nodes not taking jobs: {slurm.node} drained (firmware update)" in line, line
            assert not out.exists() or not list(out.glob("*.h5"))
    finally:
        slurm.command("scontrol", "update", f"nodename={slurm.node}", "state=resume")
    stdout, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr.read_text()[-4000:]
    summary = json.loads((out / "batch_summary.json").read_text())
    assert [r["status"] for r in summary["results"]] == ["done"] * 3
    assert_equal_to_clean(out, clean)

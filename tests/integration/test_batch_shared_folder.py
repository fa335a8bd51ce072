"""Batches that share an output folder, and recordings another process holds: real ``hdmea batch`` processes.

Every computation is counted by a hook in the steps' own log
(:mod:`tests.integration._compute_count`), independently of the claims,
markers and summaries under test.
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import h5py
import pytest

from h5stream.files.checksum_checks import check_file
from tests.integration._compute_count import computations, copies_of_one_recording, count_computations

NAMES = [f"r{i}" for i in range(6)]


@pytest.fixture(scope="module")
def recordings(tmp_path_factory) -> tuple[Path, Path]:
    """A folder of six small synthetic recordings (copies of one, under six names) and a configuration."""
    return copies_of_one_recording(tmp_path_factory, NAMES)


def _batch(src: Path, config: Path, out: Path, env: dict, *extra: str) -> subprocess.Popen:
    env = {k: v for k, v in env.items() if not k.startswith("SLURM_")}
    return subprocess.Popen([sys.executable, "-m", "hdmea", "batch", str(src), "--config", str(config),
                             "--out", str(out), *extra], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _whole(output: Path) -> list[str]:
    """The output's completed steps, after every checksum of the file was checked by reading all of it."""
    check_file(output)
    with h5py.File(output, "r") as f:
        return [s.decode() if isinstance(s, bytes) else s for s in f["pipeline/session_info/completed_steps"][()]]


@pytest.mark.slow
def test_two_batches_started_together_compute_each_recording_once_and_each_says_what_it_did(
        recordings, tmp_path, child_env):
    src, config = recordings
    out, log, gate = tmp_path / "out", tmp_path / "computed.log", tmp_path / "gate"
    # Each computation waits at a gate after its first step until both batches are computing
    # (three computations logged: the two workers of one batch can log at most two while they wait),
    # so each batch meets recordings the other holds or has finished.
    env = {**count_computations(tmp_path / "hook", child_env, log), "HDMEA_TEST_COMPUTE_GATE": str(gate)}
    procs = [_batch(src, config, out, env, "--workers", "2") for _ in range(2)]
    try:
        _wait_for(lambda: len(computations(log)) >= 3 or any(p.poll() is not None for p in procs), 240,
                  "both batches computing")
        gate.touch()
        ends = [p.communicate(timeout=300) for p in procs]
    finally:
        gate.touch()
        for p in procs:
            p.kill()
    for p, (stdout, stderr) in zip(procs, ends):
        assert p.returncode == 0, stdout + stderr[-3000:]
        assert "Traceback" not in stderr
    computed = computations(log)
    # every recording computed exactly once, over both batches
    assert collections.Counter(name for name, _ in computed) == collections.Counter(NAMES), computed
    by_pid = {name: pid for name, pid in computed}
    merged = json.loads((out / "batch_summary.json").read_text())
    batches = {b["batch_id"]: b for b in merged["batches"]}
    assert len(batches) == 2 and None not in batches
    rows = {bid: {r["name"]: r for r in b["results"]} for bid, b in batches.items()}
    done_by = {}
    for name in NAMES:
        marker = json.loads((out / f"{name}.h5.done").read_text())
        deciders = [bid for bid in batches if rows[bid][name]["status"] == "done"]
        # exactly one batch says it computed the recording: the one whose worker computed it
        assert deciders == [marker["batch"]], (name, {b: rows[b][name] for b in batches})
        assert marker["pid"] == by_pid[name]
        done_by[name] = marker["batch"]
        (other,) = set(batches) - {marker["batch"]}
        row = rows[other][name]
        # the other batch neither computed it nor counts it as done: it found it held or finished
        assert row["status"] in ("held", "skipped"), row
        if row["status"] == "held":
            assert row["kind"] == "held" and row["attempts"] == 1 and row["errors"] == [], row
            assert row["holder"]["pid"] == by_pid[name], row
            assert f"pid {by_pid[name]}" in row["error"], row
        else:
            assert row["finished_by"] == marker["batch"], row
        assert "load_recording" in _whole(out / f"{name}.h5")  # whole: every checksum read and matched
    # the gate made each batch meet the other's recordings while it computed them: some are held
    assert any(rows[b][n]["status"] == "held" for b in batches for n in NAMES), rows
    # each batch's printed table counts what it did
    for stdout, _ in ends:
        bid = next(line.split()[1] for line in stdout.splitlines() if line.startswith("batch "))
        counts = collections.Counter(r["status"] for r in rows[bid].values())
        assert f"{counts['done']} done, {counts['skipped']} skipped" in stdout, stdout
        for name, row in rows[bid].items():
            assert next(x for x in stdout.splitlines() if x.startswith(name + " ")).split()[1] == row["status"]
    # the folder's summary: one row per recording, done, naming the batch that computed it
    assert [(r["name"], r["status"], r["batch"]) for r in merged["results"]] == \
        [(n, "done", done_by[n]) for n in NAMES]
    assert not list(out.glob("*.claim")) and not list(out.glob("*.partial*"))


@pytest.mark.slow
def test_a_recording_another_live_process_holds_is_reported_held_naming_it_and_not_computed(
        recordings, tmp_path, child_env):
    src, config = recordings
    out, log = tmp_path / "out", tmp_path / "computed.log"
    out.mkdir()
    env = count_computations(tmp_path / "hook", child_env, log)
    # r1: its job claim held by a live process (a job of another batch); r4: its output's writer claim
    # held by a program outside the batches (a script writing the file)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\n"
         "from hdmea.pipeline.batch.recordings import job_claim\n"
         "from h5stream.files import WriterClaim\n"
         f"job_claim({str(out / 'r1.h5')!r}).acquire()\n"
         f"WriterClaim({str(out / 'r4.h5')!r}).acquire()\n"
         "print('holding', flush=True)\n"
         "time.sleep(600)\n"], env=child_env, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        proc = _batch(src, config, out, env, "--workers", "2")
        stdout, stderr = proc.communicate(timeout=300)
        assert holder.poll() is None  # still holding while the batch ran
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    assert proc.returncode == 0, stdout + stderr[-3000:]
    summary = json.loads((out / "batch_summary.json").read_text())
    rows = {r["name"]: r for r in summary["batches"][0]["results"]}
    for name in ("r1", "r4"):
        row = rows[name]
        assert row["status"] == "held" and row["kind"] == "held", row
        assert row["attempts"] == 1 and row["errors"] == [], row  # not retried
        assert row["holder"]["pid"] == holder.pid and f"pid {holder.pid}" in row["error"], row
        assert "infrastructure" not in json.dumps(row)
        assert not (out / f"{name}.h5").exists() and not (out / f"{name}.h5.done").exists()
        line = next(x for x in stdout.splitlines() if x.startswith(name + " "))
        assert "held" in line and f"pid {holder.pid}" in line, stdout
    assert {n: r["status"] for n, r in rows.items() if n not in ("r1", "r4")} == \
        dict.fromkeys(["r0", "r2", "r3", "r5"], "done")
    # neither held recording was computed (not even its first step); every other one once
    assert sorted(name for name, _ in computations(log)) == ["r0", "r2", "r3", "r5"]
    assert "4 done, 0 skipped, 2 held by other processes (not computed by this batch), 0 failed" in stdout
    # once the holder is gone, a rerun computes them (the dead holder's claims are cleared)
    again = _batch(src, config, out, env, "--workers", "2")
    stdout, stderr = again.communicate(timeout=300)
    assert again.returncode == 0, stdout + stderr[-3000:]
    assert sorted(name for name, _ in computations(log)) == ["r0", "r1", "r2", "r3", "r4", "r5"]
    merged = json.loads((out / "batch_summary.json").read_text())
    assert [(r["name"], r["status"]) for r in merged["results"]] == [(n, "done") for n in NAMES]
    assert len(merged["batches"]) == 2
    assert [r["status"] for r in merged["batches"][1]["results"]] == \
        ["skipped", "done", "skipped", "skipped", "done", "skipped"]


def test_hdmea_run_on_a_recording_a_batch_job_holds_says_held_naming_it_and_computes_nothing(
        recordings, tmp_path, child_env):
    src, config = recordings
    out, log = tmp_path / "out" / "r0.h5", tmp_path / "computed.log"
    out.parent.mkdir()
    env = count_computations(tmp_path / "hook", child_env, log)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import time\n"
         "from hdmea.pipeline.batch.recordings import job_claim\n"
         f"job_claim({str(out)!r}).acquire()\n"
         "print('holding', flush=True)\n"
         "time.sleep(600)\n"], env=child_env, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        done = subprocess.run([sys.executable, "-m", "hdmea", "run", str(src / "r0.cmcr"), str(src / "r0.cmtr"),
                               "--config", str(config), "--out", str(out)], env=env, capture_output=True,
                              text=True, timeout=300)
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"r0: held: held by pid {holder.pid}" in done.stderr, done.stderr
    assert "infrastructure" not in done.stderr and "done in" not in done.stdout
    assert computations(log) == [] and not out.exists() and not (out.parent / "r0.h5.done").exists()

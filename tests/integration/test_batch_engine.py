"""The batch engine on real HDF5 files, real worker processes and real SIGKILLs.

The job here is small (sum a dataset into a new file) so that the engine's own
behaviour is what is tested: idempotence, retries of infrastructure errors,
one-shot failure of data errors, rebuilding a broken process pool.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import os
import re
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from tests.integration import _batch_jobs as jobs

from hdmea.config import PipelineConfig, parse_config
from hdmea.pipeline.batch import (
    Recording,
    classify_error,
    discover_recordings,
    done_marker_path,
    run_batch,
    run_one,
)

#: An exception class name as Python prints it (``MemoryError``, ``BrokenProcessPool`` is caught by its words).
CLASS_NAME = re.compile(r"\b[A-Z][A-Za-z]*(Error|Exception|Warning|Pool|Worker)\b")


def _inputs(tmp_path: Path, n: int) -> tuple[list[Recording], dict[str, float]]:
    src = tmp_path / "in"
    src.mkdir()
    recs, sums = [], {}
    rng = np.random.default_rng(7)
    for i in range(n):
        values = rng.integers(0, 100, size=50 + i).astype(np.float64)
        cmcr = src / f"rec{i}.cmcr"
        jobs.make_input(cmcr, values)
        (src / f"rec{i}.cmtr").write_bytes(b"")
        recs.append(Recording.from_paths(cmcr))
        sums[f"rec{i}"] = float(values.sum())
    return recs, sums


def _check_outputs(out: Path, sums: dict[str, float], names) -> None:
    for name in names:
        with h5py.File(out / f"{name}.h5", "r") as f:
            assert float(f["sum"][()]) == sums[name]
        marker = json.loads(done_marker_path(out / f"{name}.h5").read_text())
        assert marker["recording"] == name


def test_process_pool_survives_killed_worker_and_reports_each_kind(tmp_path):
    recs, sums = _inputs(tmp_path, 5)
    (tmp_path / "in" / "rec1.cmcr").write_bytes(b"this is not an HDF5 file at all" * 10)
    jobs.kill_once_marker(recs[3].cmcr).touch()
    out = tmp_path / "out"
    pool = cf.ProcessPoolExecutor(max_workers=2)
    try:
        summary = run_batch(recs, None, out, executor=pool, retries=2, job=jobs.sum_job,
                            show_progress=False)
    finally:
        pool.shutdown()
    assert [r.name for r in summary.results] == [f"rec{i}" for i in range(5)], summary.table()
    bad = summary["rec1"]
    assert bad.status == "failed" and bad.kind == "data" and bad.attempts == 1
    assert "rec1.cmcr" in bad.error and "HDF5" in bad.error
    assert bad.error.startswith("the input file is damaged or not a recording: "), bad.error
    assert bad.error_type is not None and bad.error_type.endswith("Error") and not CLASS_NAME.search(bad.error)
    killed = summary["rec3"]
    assert killed.status == "done" and killed.attempts >= 2
    assert len(killed.error_types) == len(killed.errors)
    broken = [e for e, t in zip(killed.errors, killed.error_types) if t == "BrokenProcessPool"]
    assert broken and all("[infrastructure] the worker died" in e and not CLASS_NAME.search(e) for e in broken), \
        killed.errors
    assert killed.error is None and killed.error_type is None  # done in the end: no error left on the row
    ok = [r.name for r in summary.results if r.name != "rec1"]
    assert {r.name for r in summary.done} == set(ok)
    _check_outputs(out, sums, ok)
    assert not done_marker_path(out / "rec1.h5").exists()
    # The table names every recording and the reason of the failure.
    table = summary.table()
    for i in range(5):
        assert f"rec{i}" in table
    assert "[data]" in table


def test_a_retry_waits_for_the_broken_pools_workers_to_end(tmp_path):
    # rec1's job kills its worker while rec0's job, on the pool's other worker, ignores the
    # pool's SIGTERM and holds rec0's claim 2 s more: the pool has failed rec0's future by then.
    # Retried at once, rec0 was found "held" by that worker; the rebuilt pool takes it only
    # once the broken pool's workers have ended, and finds it finished by this batch.
    recs, sums = _inputs(tmp_path, 2)
    jobs.linger_marker(recs[0].cmcr).touch()
    jobs.kill_once_marker(recs[1].cmcr).touch()
    pool = cf.ProcessPoolExecutor(max_workers=2)
    try:
        summary = run_batch(recs, None, tmp_path / "out", executor=pool, retries=1,
                            job=jobs.outlive_the_pool_job, show_progress=False)
    finally:
        pool.shutdown()
    assert [r.status for r in summary.results] == ["done", "done"], summary.table()
    assert [r.attempts for r in summary.results] == [2, 2], summary.table()
    for row in summary.results:
        assert row.error_types == ["BrokenProcessPool"], (row.name, row.errors)
    _check_outputs(tmp_path / "out", sums, sums)


def test_a_broken_pools_worker_that_ignores_sigterm_is_killed_after_the_grace(tmp_path):
    import time

    from hdmea.pipeline.batch.pool import _end_broken_pool

    pid_file = tmp_path / "pid"
    pool = cf.ProcessPoolExecutor(max_workers=2)
    try:
        lingering = pool.submit(jobs.ignore_sigterm_and_sleep, str(pid_file), 60.0)
        dying = pool.submit(jobs.die_once_file_exists, str(pid_file))
        for future in (dying, lingering):
            with pytest.raises(cf.process.BrokenProcessPool):
                future.result(timeout=30)
        pid = int(pid_file.read_text())
        os.kill(pid, 0)  # the pool failed its futures while this worker still runs
        started = time.monotonic()
        _end_broken_pool(pool, grace=0.5)
        assert time.monotonic() - started < 10.0
        with pytest.raises(ProcessLookupError):  # killed and reaped, not a zombie
            os.kill(pid, 0)
    finally:
        pool.shutdown()


def test_rerun_skips_finished_and_redoes_changed_config(tmp_path):
    recs, sums = _inputs(tmp_path, 3)
    out = tmp_path / "out"
    with cf.ThreadPoolExecutor(2) as ex:
        first = run_batch(recs, None, out, executor=ex, job=jobs.sum_job, show_progress=False)
    assert len(first.done) == 3
    stamps = {r.name: (out / f"{r.name}.h5").stat().st_mtime_ns for r in recs}
    with cf.ThreadPoolExecutor(2) as ex:
        second = run_batch(recs, None, out, executor=ex, job=jobs.sum_job, show_progress=False)
    assert [r.status for r in second.results] == ["skipped"] * 3
    assert stamps == {r.name: (out / f"{r.name}.h5").stat().st_mtime_ns for r in recs}
    # A lost output is redone even though its marker is there.
    (out / "rec0.h5").unlink()
    changed = parse_config({"batch": {"retries": 1}}, check_step_signatures=False)
    with cf.ThreadPoolExecutor(2) as ex:
        third = run_batch(recs, changed, out, executor=ex, job=jobs.sum_job, show_progress=False)
    assert [r.status for r in third.results] == ["done", "skipped", "skipped"]
    # A configuration that changes results redoes everything.
    other = parse_config({"steps": {"compute_eimage_sta": True}},
                         check_step_signatures=False)
    with cf.ThreadPoolExecutor(2) as ex:
        fourth = run_batch(recs, other, out, executor=ex, job=jobs.sum_job, show_progress=False)
    assert [r.status for r in fourth.results] == ["done"] * 3
    _check_outputs(out, sums, sums)


def test_memory_error_is_retried_and_bug_is_not(tmp_path):
    recs, sums = _inputs(tmp_path, 2)
    jobs.kill_once_marker(recs[0].cmcr).touch()
    with cf.ThreadPoolExecutor(1) as ex:
        summary = run_batch(recs, None, tmp_path / "out", executor=ex, retries=1,
                            job=jobs.memory_error_once_job, show_progress=False)
    assert summary["rec0"].status == "done" and summary["rec0"].attempts == 2
    assert summary["rec0"].errors[0] == "attempt 1: [infrastructure] out of memory: simulated allocation failure", summary["rec0"].errors
    assert summary["rec0"].error_types == ["MemoryError"]
    with cf.ThreadPoolExecutor(1) as ex:
        summary = run_batch(recs, None, tmp_path / "out2", executor=ex, retries=3,
                            job=jobs.buggy_job, show_progress=False)
    assert all(r.status == "failed" and r.attempts == 1 and r.kind == "error" for r in summary.results)
    bug = summary["rec1"]
    assert bug.error.startswith("an unexpected error in a step (a bug or a bad parameter): "), bug.error
    assert bug.error.endswith(": a deterministic bug") and not CLASS_NAME.search(bug.error), bug.error
    assert bug.error_type == "ZeroDivisionError" and bug.error_types == ["ZeroDivisionError"]
    row = summary.as_dict()["results"][1]
    assert row["error_type"] == "ZeroDivisionError" and row["error"] == bug.error
    line = next(line for line in summary.table().splitlines() if line.startswith("rec1 "))
    assert "[error] an unexpected error in a step" in line and not CLASS_NAME.search(line), line


def test_retries_exhausted_fail_with_every_reason(tmp_path):
    recs, _ = _inputs(tmp_path, 1)
    with cf.ThreadPoolExecutor(1) as ex:
        summary = run_batch(recs, None, tmp_path / "out", executor=ex, retries=2,
                            job=jobs.io_error_job, show_progress=False)
    res = summary["rec0"]
    assert res.status == "failed" and res.kind == "infrastructure" and res.attempts == 3
    assert len(res.errors) == 3 and all("Input/output error" in e for e in res.errors)
    assert not summary.ok


def test_run_one_is_one_array_task(tmp_path):
    recs, sums = _inputs(tmp_path, 3)
    found = discover_recordings(tmp_path / "in")
    assert [r.name for r in found] == ["rec0", "rec1", "rec2"]
    result = run_one(tmp_path / "in", 2, None, tmp_path / "out", job=jobs.sum_job)
    assert result.status == "done" and result.name == "rec2"
    _check_outputs(tmp_path / "out", sums, ["rec2"])
    again = run_one(tmp_path / "in", 2, None, tmp_path / "out", job=jobs.sum_job)
    assert again.status == "skipped"
    with pytest.raises(ValueError, match="out of range"):
        run_one(tmp_path / "in", 3, None, tmp_path / "out", job=jobs.sum_job)


def test_list_file_and_classification(tmp_path):
    recs, _ = _inputs(tmp_path, 2)
    listing = tmp_path / "list.txt"
    listing.write_text("# two recordings\nin/rec1.cmcr in/rec1.cmtr\nin/rec0.cmcr  # sibling cmtr\n")
    found = discover_recordings(listing)
    assert [r.name for r in found] == ["rec1", "rec0"]
    assert found[1].cmtr == tmp_path / "in" / "rec0.cmtr"
    from h5stream.errors import FormatError, WriteError
    from hdmea.errors import RecordingFormatError

    assert classify_error(RecordingFormatError("x")) == "data"
    assert classify_error(FormatError("x")) == "data"
    assert classify_error(WriteError("x")) == "infrastructure"
    assert classify_error(OSError(5, "Input/output error")) == "infrastructure"
    assert classify_error(cf.process.BrokenProcessPool("x")) == "infrastructure"
    assert classify_error(KeyError("x")) == "error"
    assert isinstance(PipelineConfig().digest(), str)


def test_without_dask_a_rebuilt_process_pool_is_the_default(tmp_path, monkeypatch):
    recs, sums = _inputs(tmp_path, 4)
    jobs.kill_once_marker(recs[1].cmcr).touch()
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if dask were not installed
    summary = run_batch(recs, None, tmp_path / "out", workers=2, retries=2, job=jobs.sum_job,
                        show_progress=False)
    assert summary.executor == "process pool, 2 workers"
    assert summary.ok and len(summary.done) == 4
    assert summary["rec1"].attempts == 2 and summary["rec1"].error_types[0] == "BrokenProcessPool"
    assert summary["rec1"].errors[0].startswith("attempt 1: [infrastructure] the worker died"), summary["rec1"].errors
    assert not CLASS_NAME.search(summary["rec1"].errors[0]), summary["rec1"].errors
    _check_outputs(tmp_path / "out", sums, sums)
    # Each output was written by a worker process, never by this one.
    pids = {r.detail["pid"] for r in summary.results}
    assert os.getpid() not in pids


def test_process_pool_workers_get_their_share_of_the_cores(tmp_path, monkeypatch):
    from hdmea.pipeline.batch import available_cores, threads_per_worker

    recs, sums = _inputs(tmp_path, 3)
    monkeypatch.setitem(sys.modules, "distributed", None)
    cores = available_cores()
    share = max(1, cores // 2)
    assert threads_per_worker(2, cores) == share and threads_per_worker(3 * cores, cores) == 1
    summary = run_batch(recs, None, tmp_path / "out", workers=2, job=jobs.thread_limits_job,
                        show_progress=False)
    assert summary.ok and len(summary.done) == 3
    for r in summary.results:
        # Set in the worker before numba loaded: numba's pool is the share, not every core.
        assert {r.detail[name] for name in jobs.THREAD_VARIABLES} == {str(share)}, r.detail
        assert r.detail["numba_pool"] == share and r.detail["threads_per_job"] == share
        assert r.detail["pid"] != os.getpid()
    # A custom job gets no pipeline warm-up, yet each worker's set-up is timed once, not per job.
    pids = {r.detail["pid"] for r in summary.results}
    assert 1 <= len(summary.worker_setup_seconds) <= len(pids)
    assert sum(r.worker_setup_seconds > 0 for r in summary.results) == len(summary.worker_setup_seconds)


def test_configured_threads_per_job_wins_and_thread_pools_leave_the_process_alone(tmp_path):
    recs, sums = _inputs(tmp_path, 2)
    before = {name: os.environ.get(name) for name in jobs.THREAD_VARIABLES}
    config = parse_config({"batch": {"threads_per_job": 3}})
    with cf.ThreadPoolExecutor(2) as ex:
        summary = run_batch(recs, config, tmp_path / "out", executor=ex, job=jobs.thread_limits_job,
                            show_progress=False)
    assert summary.ok and {r.detail["threads_per_job"] for r in summary.results} == {3}
    assert {name: os.environ.get(name) for name in jobs.THREAD_VARIABLES} == before


def test_free_workers_counts_the_cores_others_leave(monkeypatch):
    """The batch's default worker count: allowed cores less those others keep busy, to the nearest core."""
    import h5stream.cores as cores
    from hdmea.pipeline.batch import free_workers

    seen = []

    def others(samples, gap):
        seen.append((samples, gap))
        return load

    monkeypatch.setattr(cores, "allowed_cores", lambda: 4)
    monkeypatch.setattr(cores, "others_running", others)
    for load, expected in ((0.0, 4), (0.4, 4), (1.0, 3), (2.6, 1), (7.0, 1), (None, 4)):
        assert free_workers() == expected, load
    # readings over about 0.2 s, not the 5 ms a kernel's thread count is decided on
    samples, gap = seen[0]
    assert 0.1 <= (samples - 1) * gap <= 0.5


def test_one_free_core_runs_the_jobs_in_this_process_and_a_named_count_does_not(tmp_path, monkeypatch):
    import hdmea.pipeline.batch.engine as engine

    recs, sums = _inputs(tmp_path, 3)
    monkeypatch.setattr(engine, "free_workers", lambda: 1)
    before = {name: os.environ.get(name) for name in jobs.THREAD_VARIABLES}
    serial = run_batch(recs, None, tmp_path / "out", job=jobs.sum_job, show_progress=False, verify_inputs=False)
    assert len(serial.done) == 3 and "this process" in serial.executor, serial.table()
    assert {r.detail["pid"] for r in serial.done} == {os.getpid()}
    _check_outputs(tmp_path / "out", sums, sums)
    # the jobs' kernels take the one free core; this process's thread settings are left alone
    limited = run_batch(recs, None, tmp_path / "out2", job=jobs.thread_limits_job, show_progress=False,
                        verify_inputs=False)
    assert limited.ok and {r.detail["threads_per_job"] for r in limited.results} == {1}
    assert {name: os.environ.get(name) for name in jobs.THREAD_VARIABLES} == before
    configured = run_batch(recs, parse_config({"batch": {"threads_per_job": 2}}), tmp_path / "out3",
                           job=jobs.thread_limits_job, show_progress=False, verify_inputs=False)
    assert configured.ok and {r.detail["threads_per_job"] for r in configured.results} == {2}
    # a count the caller names is honoured: worker processes, even one
    monkeypatch.setitem(sys.modules, "distributed", None)  # the process pool (quicker to start than a cluster)
    named = run_batch(recs, None, tmp_path / "out1", job=jobs.sum_job, show_progress=False, verify_inputs=False,
                      workers=1)
    assert len(named.done) == 3 and "process pool" in named.executor, named.table()
    assert os.getpid() not in {r.detail["pid"] for r in named.done}
    _check_outputs(tmp_path / "out1", sums, sums)


def test_free_cores_are_measured_before_the_batch_starts_its_own_checks(tmp_path, monkeypatch):
    """The separate process reading the inputs is the batch's own work, not another program's load."""
    import hdmea.pipeline.batch.engine as engine

    recs, sums = _inputs(tmp_path, 2)
    events = []
    checks = engine._check_inputs

    def check_inputs(*args, **kwargs):
        events.append("checks")
        return checks(*args, **kwargs)

    def free_workers():
        events.append("measure")
        return 1

    monkeypatch.setattr(engine, "_check_inputs", check_inputs)
    monkeypatch.setattr(engine, "free_workers", free_workers)
    summary = run_batch(recs, None, tmp_path / "out", job=jobs.sum_job, show_progress=False, verify_inputs=False)
    assert events == ["measure", "checks"] and len(summary.done) == 2
    _check_outputs(tmp_path / "out", sums, sums)


def _raise_value_error(x):
    raise ValueError(f"task {x} failed")


def test_dask_pool_gathers_finished_results_at_once_and_sorts_failures_one_by_one():
    """A Dask client's ended tasks: finished results in one gather, an error and a cancelled task each
    as their exception, in the order asked."""
    distributed = pytest.importorskip("distributed")
    from hdmea.pipeline.batch.executors import make_pool

    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=":0") as cluster, distributed.Client(cluster) as client:
        pool = make_pool(client, None, None)
        assert pool.client is client and pool.slots is None
        squares = pool.submit_many(pow, [2, 3, 4], [2, 2, 2])
        failed = pool.submit(_raise_value_error, 7)
        lone = pool.submit(pow, 5, 2)
        distributed.wait(squares + [failed, lone])
        gathers = []
        real_gather = client.gather
        client.gather = lambda futures, *a, **k: gathers.append(len(futures)) or real_gather(futures, *a, **k)
        try:
            got = pool.outcomes([squares[0], failed, squares[1], lone, squares[2]])
        finally:
            del client.gather
        assert [value for value, _ in got] == [4, None, 9, 25, 16]
        errors = [exc for _, exc in got]
        assert isinstance(errors[1], ValueError) and str(errors[1]) == "task 7 failed"
        assert errors[:1] + errors[2:] == [None] * 4
        assert gathers == [4]  # the four finished results in one request
        cancelled = pool.submit(__import__("time").sleep, 30)
        cancelled.cancel()
        assert cancelled.done() and cancelled.status == "cancelled"
        [(value, exc)] = pool.outcomes([cancelled])
        assert value is None and isinstance(exc, cf.CancelledError)
        assert classify_error(exc) == "infrastructure"
        pool.close()  # a given client stays open
        assert client.status == "running"


def test_the_batch_own_local_cluster_serves_no_dashboard_on_a_local_port():
    """The batch's LocalCluster starts no dashboard (bokeh's start-up is seconds of a short batch);
    the scheduler's HTTP routes listen on a free port of this host, not on Dask's fixed 8787."""
    import urllib.error
    import urllib.request

    pytest.importorskip("distributed")
    from hdmea.pipeline.batch.executors import _dask_local_cluster

    pool = _dask_local_cluster(1)
    assert pool is not None
    try:
        server = pool.client.cluster.scheduler.http_server
        assert server.address == "127.0.0.1" and server.port != 8787
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/health", timeout=10) as reply:
            assert reply.read() == b"ok"
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"http://127.0.0.1:{server.port}/status", timeout=10)
        missing.value.close()
        assert missing.value.code == 404
        assert pool.submit(pow, 3, 2).result() == 9
    finally:
        pool.close()


_FORK_SERVER_CHILD = """
import multiprocessing, sys
from hdmea.pipeline.batch.executors import _forkserver_preload, _start_fork_server
from hdmea.pipeline.batch.workers import WorkerSetup
if __name__ == "__main__":
    cold = WorkerSetup(threads=1, warm=False)
    # the waiting variables, and a server that outlives a SIGTERM to the group (its children take it)
    assert _forkserver_preload(cold) == ["h5stream.quiet_start", "hdmea.pipeline.batch.server_signals"]
    warm = WorkerSetup(threads=1, warm=True)
    assert _start_fork_server(warm)
    # this process has not imported distributed; the server did, and its children start with it and the steps
    assert "distributed" not in sys.modules
    assert _forkserver_preload(warm)[0] == "h5stream.quiet_start"  # before numpy and the kernels load
    check = "[m for m in %r if m not in __import__('sys').modules]" % (_forkserver_preload(warm),)
    with multiprocessing.get_context("forkserver").Pool(1) as pool:
        print(repr(pool.apply(eval, (check,))))
"""


@pytest.mark.skipif(os.name != "posix", reason="the fork server is POSIX only")
def test_the_fork_server_starts_before_the_pool_with_the_workers_modules(tmp_path):
    """The batch starts its workers' fork server before the executor, so the server's imports run while
    this process starts the scheduler; a worker forked from it has every module of the warm-up loaded."""
    import subprocess

    script = tmp_path / "fork_server.py"  # a file: the fork server's children re-import the main module
    script.write_text(_FORK_SERVER_CHILD)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", done.stdout


def test_given_dask_client_runs_the_batch_and_retries_an_infrastructure_error(tmp_path):
    distributed = pytest.importorskip("distributed")
    recs, sums = _inputs(tmp_path, 4)
    jobs.kill_once_marker(recs[2].cmcr).touch()  # memory_error_once_job: a MemoryError the first time
    out = tmp_path / "out"
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=":0") as cluster, distributed.Client(cluster) as client:
        summary = run_batch(recs, None, out, executor=client, retries=1, job=jobs.memory_error_once_job,
                            show_progress=False)
    assert "dask client" in summary.executor
    assert [r.status for r in summary.results] == ["done"] * 4, summary.table()
    assert [r.attempts for r in summary.results] == [1, 1, 2, 1]
    assert summary["rec2"].errors[0] == "attempt 1: [infrastructure] out of memory: simulated allocation failure", summary["rec2"].errors
    assert summary["rec2"].error_types == ["MemoryError"]
    _check_outputs(out, sums, sums)


@pytest.mark.parametrize("free, recordings, expected", [
    (16, 100, (16, 1)), (16, 4, (4, 4)), (16, 5, (5, 3)), (16, 1, (1, 16)), (2, 8, (2, 1)), (1, 8, (1, 1)),
    (3, 2, (2, 1)),
])
def test_the_layout_keeps_the_free_cores_busy(free, recordings, expected):
    from hdmea.pipeline.batch import choose_layout

    workers, threads = choose_layout(free, recordings)
    assert (workers, threads) == expected
    # recordings side by side x threads each: every free core, or as many as whole threads can cover
    assert min(workers, recordings) * threads == max(1, free - free % workers)


def test_the_summary_states_the_layout_the_batch_chose(tmp_path, monkeypatch):
    import hdmea.pipeline.batch.engine as engine

    recs, sums = _inputs(tmp_path, 2)
    monkeypatch.setattr(engine, "free_workers", lambda: 6)  # a 6-core node with 2 recordings to run
    summary = run_batch(recs, None, tmp_path / "out", job=jobs.thread_limits_job, show_progress=False,
                        verify_inputs=False)
    assert summary.ok and summary.executor == "process pool, 2 workers", summary.table()
    assert summary.layout["workers"] == 2 and summary.layout["threads_per_worker"] == 3
    assert summary.layout["busy_cores"] == 6 and summary.layout["free_cores"] == 6
    assert {r.detail["threads_per_job"] for r in summary.results} == {3}
    assert {r.detail["OMP_NUM_THREADS"] for r in summary.results} == {"3"}
    assert "layout: 2 worker(s) x 3 thread(s) = 6 of" in summary.table()
    # one recording: no worker process at all, its kernels on every free core
    one = run_batch(recs[:1], None, tmp_path / "out1", job=jobs.thread_limits_job, show_progress=False,
                    verify_inputs=False)
    assert "this process" in one.executor and one.layout["threads_per_worker"] == 6
    assert one.results[0].detail["threads_per_job"] == 6

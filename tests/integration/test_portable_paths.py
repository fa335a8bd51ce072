"""Every Linux-only mechanism has a portable path, and ``H5STREAM_PORTABLE=1`` forces all of them on Linux.

Two parts: what each portable path does (checked here, with the switch set by
``monkeypatch``: the capabilities read it at each call), and a run of the core
suite's tests of files, claims, cores, reads and batches in a separate pytest
with the switch on.  That run leaves out the tests of the Linux mechanisms
themselves (they assert what ``/proc``, ``O_DIRECT``, ``flock`` or the fork server
do), listed in :data:`LINUX_MECHANISM_TESTS`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from h5stream import capabilities, cores
from h5stream.errors import WriterClaimError
from h5stream.files import WriterClaim
from h5stream.files.claims import hdf5_lock_held, writer_gone
from h5stream.kernels.direct_rows import open_direct_rows

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def portable(monkeypatch):
    monkeypatch.setenv(capabilities.ENV_VAR, "1")


def test_the_switch_turns_every_capability_off(monkeypatch):
    monkeypatch.delenv(capabilities.ENV_VAR, raising=False)
    on_linux = capabilities.describe()
    if sys.platform.startswith("linux"):
        assert all(on_linux.values()), on_linux
    monkeypatch.setenv(capabilities.ENV_VAR, "1")
    assert not any(capabilities.describe().values())
    monkeypatch.setenv(capabilities.ENV_VAR, "0")
    assert capabilities.describe() == on_linux


def test_cores_without_proc_are_the_machines_count(portable, monkeypatch):
    monkeypatch.delenv(cores.ENV_VAR, raising=False)
    assert cores.allowed_cores() == (os.cpu_count() or 1)
    assert cores.others_running() is None  # not measurable: the batch takes every allowed core
    assert cores.free_cores(refresh=True) == (os.cpu_count() or 1)


def test_a_claim_without_fcntl_or_proc_still_admits_one_writer(portable, tmp_path):
    target = tmp_path / "t.h5"
    with h5py.File(target, "w") as f:  # HDF5 holds its lock: the probe is off, the claim file decides
        f["x"] = 1
        assert not hdf5_lock_held(target)
    with WriterClaim(target):
        with pytest.raises(WriterClaimError, match=str(target.name)):
            WriterClaim(target).acquire()
    assert not WriterClaim(target).path.exists()
    # This process is alive; a dead one, which held no liveness lock, is gone.
    assert not writer_gone(os.getpid(), 0.0)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    assert writer_gone(int(dead.stdout), 0.0)


HOLD_A_CLAIM = """
import sys, time
from h5stream.files import WriterClaim
claim = WriterClaim(sys.argv[1]).acquire()
print(claim.read_holder().get("live_lock"), flush=True)
time.sleep(120)
"""


def test_a_claims_holder_is_alive_while_it_holds_its_liveness_lock(portable, tmp_path, child_env):
    """Without signals to probe a pid (Windows; forced here), a writer holds a lock on its liveness file while it
    runs; its claim is refused while it lives and cleared as stale once it is killed."""
    import signal

    from h5stream.errors import StaleClaimWarning
    from h5stream.files.liveness import liveness_lock_path, process_alive

    assert not capabilities.pid_signals()
    target = tmp_path / "t.h5"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_A_CLAIM, str(target)], stdout=subprocess.PIPE, text=True,
                              env={**child_env, capabilities.ENV_VAR: "1"})
    try:
        lock_file = holder.stdout.readline().strip()
        assert lock_file == str(liveness_lock_path(holder.pid)) and Path(lock_file).exists()
        assert process_alive(holder.pid, lock_file) and process_alive(holder.pid)
        with pytest.raises(WriterClaimError, match=f"pid {holder.pid}"):
            WriterClaim(target).acquire()
    finally:
        holder.send_signal(signal.SIGKILL)  # no clean-up: the operating system drops the lock
        holder.wait(timeout=60)
        holder.stdout.close()
    assert Path(lock_file).exists() and not process_alive(holder.pid, lock_file)
    with pytest.warns(StaleClaimWarning, match=f"pid {holder.pid}"):
        with WriterClaim(target) as mine:
            assert mine.read_holder()["live_lock"] == str(liveness_lock_path(os.getpid()))
    assert not WriterClaim(target).path.exists()


def test_a_reused_pid_does_not_pass_for_the_claims_writer(portable, tmp_path):
    """A running process with the claim's pid but not its liveness lock (the pid reused after the writer died)."""
    import json
    import socket

    from h5stream.errors import StaleClaimWarning

    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        target = tmp_path / "t.h5"
        claim = WriterClaim(target).path
        claim.write_text(json.dumps({"host": socket.gethostname(), "pid": other.pid, "thread": 1,
                                     "time": "2026-01-01T00:00:00+00:00", "token": "x",
                                     "live_lock": str(tmp_path / "gone.lock")}))
        with pytest.warns(StaleClaimWarning, match=f"pid {other.pid}"):
            WriterClaim(target).acquire().release()
    finally:
        other.kill()
        other.wait(timeout=60)


def test_a_folder_is_replaced_by_two_renames_without_the_exchange(portable, tmp_path, monkeypatch):
    from h5stream.files import folders

    def refused(a, b):  # the Linux exchange (renameat2) must not be reached with the switch on
        raise AssertionError("renameat2 exchange called")

    monkeypatch.setattr(folders, "_exchange", refused)
    assert not capabilities.rename_exchange()
    target = tmp_path / "d.parquet"
    for content in ("old", "new"):
        with folders.writing_folder(target, overwrite=True, is_replaceable=lambda p: True) as partial:
            (partial / "part.txt").write_text(content)
    assert (target / "part.txt").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.parquet"]


def test_raw_rows_are_read_through_the_page_cache(portable, tmp_path, monkeypatch):
    """The switch turns O_DIRECT reads off for a file they would read (a contiguous dataset)."""
    path = tmp_path / "raw.h5"
    data = np.arange(8192 * 16, dtype=np.int16).reshape(8192, 16)
    with h5py.File(path, "w") as f:
        f["raw"] = data
    with h5py.File(path, "r") as f:
        assert open_direct_rows(f["raw"]) is None
        monkeypatch.delenv(capabilities.ENV_VAR)
        direct = open_direct_rows(f["raw"]) if capabilities.direct_io() else None
        if direct is None:
            pytest.skip("this file system refuses O_DIRECT: nothing for the switch to turn off")
        direct.close()


def test_batch_workers_are_spawned(portable):
    from hdmea.pipeline.batch.executors import _forkserver_preload, _process_pool
    from hdmea.pipeline.batch.workers import WorkerSetup

    assert _forkserver_preload(WorkerSetup(threads=1, warm=True)) == []
    pool = _process_pool(1)
    try:
        assert pool.executor._mp_context.get_start_method() == "spawn"
        assert pool.executor.submit(os.getpid).result(timeout=120) != os.getpid()
    finally:
        pool.close()


#: Tests of the core suite that run with the switch on.
CORE_TESTS = [
    "tests/unit/test_files.py", "tests/unit/test_cores.py", "tests/unit/test_direct_rows.py",
    "tests/unit/test_parallel_read.py", "tests/unit/test_target.py", "tests/unit/test_staging.py",
    "tests/integration/test_writer_claim.py", "tests/integration/test_lock_messages.py",
    "tests/integration/test_crash_safety.py", "tests/integration/test_batch_engine.py",
    "tests/integration/test_eimage_real_layout.py", "tests/integration/test_session_resume.py",
    "tests/integration/test_scptensor_parquet.py",
]

#: Tests that assert what a Linux mechanism itself does; without it they have nothing to test.
LINUX_MECHANISM_TESTS = [
    # /proc/loadavg, /proc/self/task and the cgroup quota
    "tests/unit/test_cores.py::test_allowed_cores_lowered_by_quota",
    "tests/unit/test_cores.py::test_others_running_subtracts_our_threads_and_averages",
    "tests/unit/test_cores.py::test_others_running_never_negative",
    "tests/unit/test_cores.py::test_others_running_scaled_to_our_share_of_the_machine",
    "tests/unit/test_cores.py::test_free_cores_one_busy_core_gives_serial",
    # O_DIRECT reads
    "tests/unit/test_direct_rows.py::test_contiguous_dataset_with_userblock_reads_like_h5py",
    "tests/unit/test_direct_rows.py::test_chunks_of_whole_rows_stored_back_to_back_read_like_h5py",
    "tests/unit/test_direct_rows.py::test_chunks_at_odd_file_offsets_read_like_h5py",
    "tests/unit/test_direct_rows.py::test_chunks_of_two_interleaved_streams_read_like_h5py",
    "tests/unit/test_direct_rows.py::test_datasets_that_are_not_one_plain_run_of_bytes_are_refused",
    "tests/unit/test_direct_rows.py::test_electrical_images_from_a_contiguous_file_equal_the_in_memory_result",
    "tests/unit/test_direct_rows.py::test_electrical_images_from_chunks_in_runs_with_gaps_equal_the_in_memory_result",
    # a reused pid told apart by its start time in /proc; HDF5's flock probed with fcntl
    "tests/integration/test_writer_claim.py::test_claim_of_a_reused_pid_is_stale",
    # a killed, not yet collected process told apart by its state in /proc (a signal probe finds it)
    "tests/integration/test_writer_claim.py::test_claim_of_a_killed_process_its_parent_has_not_collected_is_stale",
    "tests/integration/test_writer_claim.py::test_file_open_for_writing_by_another_program_is_refused",
    "tests/integration/test_lock_messages.py::test_file_held_open_by_another_program_says_so",
    # the fork server
    "tests/integration/test_batch_engine.py::test_the_fork_server_starts_before_the_pool_with_the_workers_modules",
]


@pytest.mark.slow
def test_the_core_suite_passes_with_every_portable_path(child_env, tmp_path):
    argv = [sys.executable, "-m", "pytest", "-q", "-m", "not slow", "-p", "no:randomly",
            f"--basetemp={tmp_path / 'run'}", *CORE_TESTS]
    argv += [f"--deselect={test}" for test in LINUX_MECHANISM_TESTS]
    done = subprocess.run(argv, cwd=REPO, env={**child_env, capabilities.ENV_VAR: "1"}, capture_output=True,
                          text=True, timeout=1800)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert " passed" in done.stdout and " failed" not in done.stdout

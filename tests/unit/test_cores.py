"""The thread-count decision of h5stream.cores, with injected load figures (no timing involved)."""

from __future__ import annotations

import pytest

from h5stream import cores
from h5stream.writer import resolve_threads


@pytest.fixture(autouse=True)
def _no_override_no_cache(monkeypatch):
    monkeypatch.delenv(cores.ENV_VAR, raising=False)
    monkeypatch.setattr(cores, "_cache", None)


@pytest.mark.parametrize(
    ("allowed", "others", "expected"),
    [
        (2, 0.0, 2),  # quiet machine: both cores
        (2, 0.4, 2),  # a bursty neighbour under half a core
        (2, 0.5, 2),  # exactly half a core taken: 1.5 free rounds up
        (2, 0.6, 1),  # more than half a core taken: serial
        (2, 1.0, 1),  # one core busy (a spinning process): serial
        (2, 4.0, 1),  # overloaded: never below one thread
        (8, 2.2, 6),
        (8, 0.0, 8),
        (1, 0.0, 1),
        (2, None, 2),  # not measurable: the allowed cores as before
        (2, float("nan"), 2),
        (2, -1.0, 2),  # a negative reading counts as none
    ],
)
def test_threads_for(allowed, others, expected):
    assert cores.threads_for(allowed, others) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("max 100000", None),
        ("150000 100000", 1.5),
        ("200000 100000", 2.0),
        ("", None),
        ("garbage", None),
        ("0 100000", None),
    ],
)
def test_cgroup_quota(text, expected):
    assert cores._quota(text) == expected


def test_allowed_cores_lowered_by_quota(tmp_path, monkeypatch):
    cpu_max = tmp_path / "cpu.max"
    monkeypatch.setattr(cores, "_affinity", lambda: 8)
    monkeypatch.setattr(cores, "_CPU_MAX", cpu_max)
    assert cores.allowed_cores() == 8  # no file: no quota
    cpu_max.write_text("150000 100000\n")
    assert cores.allowed_cores() == 2  # 1.5 cores of quota round up
    cpu_max.write_text("max 100000\n")
    assert cores.allowed_cores() == 8


@pytest.mark.parametrize(
    ("line", "expected"),
    [("0.50 0.40 0.30 3/120 4567\n", 3), ("1.0 1.0 1.0 12/900 1", 12), ("1.0 1.0", None), ("a b c x/y z", None)],
)
def test_runnable_from_loadavg(line, expected):
    assert cores._runnable(line) == expected


def _task(root, tid: int, name: str, state: str) -> None:
    folder = root / str(tid)
    folder.mkdir()
    (folder / "stat").write_text(f"{tid} ({name}) {state} 1 2 3 4 5\n")


def test_own_running_reads_the_state_after_the_name(tmp_path, monkeypatch):
    # thread names may hold spaces and parentheses; the state is the field after the last ")"
    _task(tmp_path, 10, "python", "R")
    _task(tmp_path, 11, "pool) R (x", "S")
    _task(tmp_path, 12, "worker 2", "R")
    _task(tmp_path, 13, "io", "D")
    monkeypatch.setattr(cores, "_TASKS", tmp_path)
    assert cores._own_running() == 2


def _machine(monkeypatch, runnable: list[int], own: int, allowed: int, online: int) -> None:
    lines = iter(f"1.00 1.00 1.00 {n}/200 999\n" for n in runnable)

    class Reader:
        def read_text(self, encoding=None):
            return next(lines)

    monkeypatch.setattr(cores, "_LOADAVG", Reader())
    monkeypatch.setattr(cores, "_own_running", lambda: own)
    monkeypatch.setattr(cores, "allowed_cores", lambda: allowed)
    monkeypatch.setattr(cores.os, "cpu_count", lambda: online)
    monkeypatch.setattr(cores.time, "sleep", lambda s: None)


def test_others_running_subtracts_our_threads_and_averages(monkeypatch):
    # we run 1 thread; the machine shows 2, 3, 2, 2, 1 runnable: others 1, 2, 1, 1, 0 -> mean 1.0
    _machine(monkeypatch, [2, 3, 2, 2, 1], own=1, allowed=2, online=2)
    assert cores.others_running(samples=5) == pytest.approx(1.0)


def test_others_running_never_negative(monkeypatch):
    # our own running threads can outnumber the machine's count read a moment earlier
    _machine(monkeypatch, [1, 1], own=3, allowed=2, online=2)
    assert cores.others_running(samples=2) == 0.0


def test_others_running_scaled_to_our_share_of_the_machine(monkeypatch):
    # 2 of 16 online cores allowed: 8 other runnable threads spread over 16 cores put 1 on ours
    _machine(monkeypatch, [9, 9], own=1, allowed=2, online=16)
    assert cores.others_running(samples=2) == pytest.approx(1.0)


def test_others_running_unmeasurable(monkeypatch):
    class Missing:
        def read_text(self, encoding=None):
            raise FileNotFoundError("/proc/loadavg")

    monkeypatch.setattr(cores, "_LOADAVG", Missing())
    assert cores.others_running() is None


def test_free_cores_one_busy_core_gives_serial(monkeypatch):
    _machine(monkeypatch, [2] * cores.SAMPLES, own=1, allowed=2, online=2)
    assert cores.free_cores(refresh=True) == 1


def test_free_cores_quiet_machine_gives_all(monkeypatch):
    _machine(monkeypatch, [1] * cores.SAMPLES, own=1, allowed=2, online=2)
    assert cores.free_cores(refresh=True) == 2


def test_free_cores_reuses_a_recent_measurement(monkeypatch):
    calls = []
    monkeypatch.setattr(cores, "allowed_cores", lambda: 4)
    monkeypatch.setattr(cores, "others_running", lambda: calls.append(1) or 1.0)
    assert cores.free_cores() == 3
    assert cores.free_cores() == 3
    assert len(calls) == 1
    assert cores.free_cores(refresh=True) == 3
    assert len(calls) == 2
    # an old measurement is taken anew
    monkeypatch.setattr(cores, "_cache", (cores.time.monotonic() - cores.CACHE_SECONDS - 1, 3))
    cores.free_cores()
    assert len(calls) == 3


def test_environment_override(monkeypatch):
    monkeypatch.setattr(cores, "others_running", lambda: 5.0)  # a loaded machine would give 1
    monkeypatch.setattr(cores, "allowed_cores", lambda: 4)
    monkeypatch.setenv(cores.ENV_VAR, "3")
    assert cores.free_cores() == 3
    assert resolve_threads(None) == 3
    monkeypatch.setenv(cores.ENV_VAR, "all")
    assert cores.free_cores() == 4
    monkeypatch.setenv(cores.ENV_VAR, " ")
    assert cores.free_cores(refresh=True) == 1


@pytest.mark.parametrize("bad", ["0", "-2", "two", "1.5"])
def test_environment_override_rejects_bad_values(monkeypatch, bad):
    monkeypatch.setenv(cores.ENV_VAR, bad)
    with pytest.raises(ValueError, match=f"{cores.ENV_VAR}.*expected a whole number.*found '{bad}'"):
        cores.free_cores()


def test_resolve_threads_argument_wins(monkeypatch):
    monkeypatch.setenv(cores.ENV_VAR, "3")
    assert resolve_threads(2) == 2
    with pytest.raises(ValueError):
        resolve_threads(0)


def test_free_cores_on_this_machine_is_within_the_allowed_cores():
    assert 1 <= cores.free_cores(refresh=True) <= cores.allowed_cores()


def test_sharing_threads_take_every_allowed_core_whatever_the_load(monkeypatch):
    monkeypatch.setattr(cores, "allowed_cores", lambda: 4)
    monkeypatch.setattr(cores, "others_running", lambda: 3.0)  # free_cores would say 1
    assert cores.free_cores(refresh=True) == 1
    assert cores.sharing_threads() == 4
    monkeypatch.setenv(cores.ENV_VAR, "2")
    assert cores.sharing_threads() == 2


def test_gzip_writer_threads_follow_sharing_threads(monkeypatch, tmp_path):
    import h5py
    import numpy as np

    import h5stream.writer.gzip as gzip_writer
    from h5stream.writer import WriteOptions, write_array

    pools = []
    real = gzip_writer.ThreadPoolExecutor

    class Recorder(real):
        def __init__(self, max_workers=None, *args, **kwargs):
            pools.append(max_workers)
            super().__init__(max_workers, *args, **kwargs)

    monkeypatch.setattr(gzip_writer, "ThreadPoolExecutor", Recorder)
    monkeypatch.setattr(cores, "allowed_cores", lambda: 3)
    monkeypatch.setattr(cores, "others_running", lambda: 5.0)
    data = np.arange(64 * 1024, dtype=np.float64).reshape(256, 256)
    with h5py.File(tmp_path / "a.h5", "w") as f:
        write_array(f, "x", data, WriteOptions.build(compression="gzip", level=1))
        write_array(f, "y", data, WriteOptions.build(compression="gzip", level=1, n_threads=1))
    assert pools == [3, 1]
    with h5py.File(tmp_path / "a.h5", "r") as f:
        assert np.array_equal(f["x"][()], data) and np.array_equal(f["y"][()], data)

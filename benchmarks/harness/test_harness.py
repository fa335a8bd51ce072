"""The benchmark harness and runner: interleaved rounds, min and median, noise, ``--check``."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import platform
import sys
import time
import types

import pytest

from benchmarks.harness import machine, rounds, run as runner
from benchmarks.harness.test_table import figures as _figures
from benchmarks.harness import (
    NOISE_MARGIN,
    MachineState,
    Row,
    Timing,
    format_table,
    interleave,
    paired_ratio,
    is_noisy,
    set_round_policy,
    timed_row,
)


@pytest.fixture(autouse=True)
def _restore_policy():
    saved = (rounds.POLICY.rounds, rounds.POLICY.enforce_minimum)
    yield
    rounds.POLICY.rounds, rounds.POLICY.enforce_minimum = saved


@pytest.fixture(autouse=True)
def _quick_disk_sample(monkeypatch):
    monkeypatch.setattr(machine, "DISK_SAMPLE_SECONDS", 0.01)


def _clock(monkeypatch, durations: dict[str, list[float]], log: list[str]):
    """Sides that advance a fake clock by planted durations, so timings are exact."""
    now = [0.0]
    monkeypatch.setattr(machine.time, "perf_counter", lambda: now[0])
    monkeypatch.setattr(machine.time, "sleep", lambda s: None)
    monkeypatch.setattr(machine.MachineState, "now", classmethod(lambda cls, since=None: cls(0.0, 0.0)))

    def side(name):
        def go():
            now[0] += durations[name][sum(1 for x in log if x == name)]
            log.append(name)
        return go

    return {name: side(name) for name in durations}


def test_rounds_alternate_the_order_of_the_sides(monkeypatch):
    set_round_policy(4, enforce_minimum=True)
    log: list[str] = []
    sides = _clock(monkeypatch, {"ours": [1.0] * 4, "peer": [2.0] * 4}, log)
    interleave(sides)
    assert log == ["ours", "peer", "peer", "ours", "ours", "peer", "peer", "ours"]
    log.clear()
    sides = _clock(monkeypatch, {"a": [1.0] * 3, "b": [1.0] * 3, "c": [1.0] * 3}, log)
    set_round_policy(3)
    interleave(sides)
    assert log == list("abc") + list("bca") + list("cab")


def test_min_and_median_of_each_side(monkeypatch):
    set_round_policy(5)
    log: list[str] = []
    sides = _clock(monkeypatch, {"ours": [3.0, 1.0, 2.0, 9.0, 1.5], "peer": [4.0, 8.0, 4.4, 4.2, 5.0]}, log)
    t = interleave(sides)
    assert t["ours"].rounds == pytest.approx([3.0, 1.0, 2.0, 9.0, 1.5])
    assert (t["ours"].min, t["ours"].median) == pytest.approx((1.0, 2.0))
    assert (t["peer"].min, t["peer"].median) == pytest.approx((4.0, 4.4))
    row = timed_row("x", "p", t["peer"], t["ours"], goal=3.0)
    assert (row.peer_value, row.ours, row.peer_median, row.ours_median) == pytest.approx((4.0, 1.0, 4.4, 2.0))
    assert row.ratio == pytest.approx(4.0) and row.holds is True and row.rounds == 5
    # ours' median is 100% above its minimum: noisy
    assert row.noisy


def test_round_policy_minimum_by_round_length(monkeypatch):
    log: list[str] = []
    set_round_policy(None, enforce_minimum=True)
    interleave(_clock(monkeypatch, {"ours": [1.0] * 9, "peer": [1.0] * 9}, log), rounds=1)
    assert len(log) == 2 * rounds.MIN_ROUNDS_SHORT
    log.clear()
    interleave(_clock(monkeypatch, {"ours": [70.0] * 9, "peer": [1.0] * 9}, log), rounds=1)
    assert len(log) == 2 * rounds.MIN_ROUNDS_LONG
    log.clear()
    interleave(_clock(monkeypatch, {"ours": [1.0] * 9, "peer": [1.0] * 9}, log), rounds=5)
    assert len(log) == 10
    # --rounds N overrides the minimum
    set_round_policy(1, enforce_minimum=True)
    log.clear()
    interleave(_clock(monkeypatch, {"ours": [1.0] * 9, "peer": [1.0] * 9}, log), rounds=4)
    assert len(log) == 2
    # a pytest smoke run (no minimum) takes what the benchmark asks for
    set_round_policy(None, enforce_minimum=False)
    log.clear()
    interleave(_clock(monkeypatch, {"ours": [1.0] * 9, "peer": [1.0] * 9}, log), rounds=2)
    assert len(log) == 4
    with pytest.raises(ValueError, match="at least 1"):
        set_round_policy(0)


def test_a_noisy_row_runs_more_rounds_until_it_is_not(monkeypatch):
    set_round_policy(None, enforce_minimum=True)
    log: list[str] = []
    # a stall in ours' rounds 1 and 2: noisy after 3 rounds (median 5 against a minimum of 1), steady after 5
    ours = [1.0, 5.0, 5.0, 1.0, 1.0, 1.0, 1.0]
    t = interleave(_clock(monkeypatch, {"ours": ours, "peer": [2.0] * 7}, log), rounds=3)
    assert len(t["ours"].rounds) == 5 and not is_noisy(t["ours"], t["peer"])
    assert t["ours"].median == pytest.approx(1.0)
    # a row that stays noisy stops at twice its planned rounds
    log.clear()
    t = interleave(_clock(monkeypatch, {"ours": [1.0, 5.0, 5.0] * 3, "peer": [2.0] * 9}, log), rounds=3)
    assert len(t["ours"].rounds) == 6 and is_noisy(t["ours"])
    # ... and at MAX_ROUNDS_WHEN_NOISY in all
    log.clear()
    t = interleave(_clock(monkeypatch, {"ours": [1.0] + [5.0] * 11, "peer": [2.0] * 12}, log), rounds=5)
    assert len(t["ours"].rounds) == rounds.MAX_ROUNDS_WHEN_NOISY
    # a quiet row runs its planned rounds; --rounds N and pytest smoke runs are never extended
    log.clear()
    t = interleave(_clock(monkeypatch, {"ours": [1.0] * 9, "peer": [2.0] * 9}, log), rounds=3)
    assert len(t["ours"].rounds) == 3
    for policy in ((3, True), (None, False)):
        set_round_policy(*policy)
        log.clear()
        t = interleave(_clock(monkeypatch, {"ours": [1.0, 5.0, 5.0] * 3, "peer": [2.0] * 9}, log), rounds=3)
        assert len(t["ours"].rounds) == 3


def test_setup_warmup_and_self_timed_sides():
    set_round_policy(2)
    calls: list[str] = []
    t = interleave({"a": lambda: calls.append("a") or 0.25, "b": lambda: calls.append("b") or 0.5},
                   setup={"a": lambda: calls.append("setup-a")}, warmup=1, self_timed=True)
    assert calls == ["setup-a", "a", "b", "setup-a", "a", "b", "b", "setup-a", "a"]
    assert t["a"].rounds == [0.25, 0.25] and t["b"].rounds == [0.5, 0.5]
    with pytest.raises(ValueError, match="unknown sides"):
        interleave({"a": lambda: None}, setup={"z": lambda: None})


def test_noisy_margin():
    assert not is_noisy(Timing([1.0, 1.0 + NOISE_MARGIN * 0.9, 1.2]), Timing([2.0, 2.0, 2.0]))
    assert is_noisy(Timing([1.0, 1.0 + NOISE_MARGIN * 1.1, 1.3]), Timing([2.0, 2.0, 2.0]))
    assert is_noisy(Timing([1.0]), Timing([2.0, 2.0 * (1 + NOISE_MARGIN) + 0.01, 3.0]))


def test_paired_ratio_cancels_a_load_that_changes_between_rounds():
    # ours costs 3% more in every round; the machine's load differs from round to round,
    # and ours happened to run alone in the quietest round: the minima say ours is faster
    load = [1.30, 1.00, 1.45, 1.12, 1.21]
    peer = [10.0 * x for x in load]
    ours = [10.3 * x for x in load]
    ours[1] = 9.9
    assert min(peer) / min(ours) > 1.0
    assert paired_ratio(peer, ours) == pytest.approx(1 / 1.03)
    with pytest.raises(ValueError, match="equal"):
        paired_ratio([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="non-zero"):
        paired_ratio([], [])


def test_machine_state_is_recorded_before_and_after():
    set_round_policy(2)
    t = interleave({"ours": lambda: None, "peer": lambda: None})
    for timing in t.values():
        assert timing.before is not None and timing.after is not None
        assert timing.before.load_1min is not None and timing.before.load_1min >= 0
        assert timing.before.disk_busy is None or 0.0 <= timing.before.disk_busy <= 1.0


def test_disk_busy_share_from_io_ticks(monkeypatch):
    ticks = iter([1000, 1250])
    monkeypatch.setattr(machine, "_disk_name", lambda path: "vdz")
    monkeypatch.setattr(machine, "_io_ticks", lambda device: next(ticks))
    clock = iter([10.0, 10.5])
    monkeypatch.setattr(machine.time, "perf_counter", lambda: next(clock))
    # 250 ms busy over 0.5 s of wall time
    assert machine.disk_busy_share("/", 0.5) == pytest.approx(0.5)
    monkeypatch.setattr(machine, "_disk_name", lambda path: None)
    assert machine.disk_busy_share("/", 0.5) is None


def test_cpu_steal_from_proc_stat(tmp_path, monkeypatch):
    stat = tmp_path / "stat"
    monkeypatch.setattr(machine, "PROC_STAT", str(stat))
    # user nice system idle iowait irq softirq steal guest guest_nice
    stat.write_text("cpu  600 0 100 250 10 0 0 40 0 0\ncpu0 300 0 50 125 5 0 0 20 0 0\n")
    assert machine.cpu_ticks() == (40, 1000)
    stat.write_text("cpu  1200 0 200 500 20 0 0 80 0 0\n")
    assert machine.steal_share((40, 1000), machine.cpu_ticks()) == pytest.approx(40 / 1000)
    assert machine.steal_share((40, 1000), (40, 1000)) is None  # no ticks between the readings
    stat.write_text("intr 1 2 3\n")
    assert machine.cpu_ticks() is None
    monkeypatch.setattr(machine, "PROC_STAT", str(tmp_path / "missing"))
    assert machine.cpu_ticks() is None


def test_state_after_a_row_covers_the_whole_row(monkeypatch):
    # before: start and end of its window; after (since before): only the end of its own
    readings = iter([(10, 100), (10, 110), (31, 1120)])
    monkeypatch.setattr(machine, "cpu_ticks", lambda: next(readings))
    monkeypatch.setattr(machine, "disk_busy_share", lambda: 0.0)
    before = MachineState.now()
    after = MachineState.now(since=before)
    assert before.cpu_steal == 0.0  # over its own sampling window
    # from the end of the sample before (10, 110) to the end of the one after (31, 1120)
    assert after.cpu_steal == pytest.approx(21 / 1010)
    assert set(after.as_dict()) == {"load_1min", "disk_busy", "cpu_steal"}


def _row(name, ratio, goal, lower=False, sizes=("small", "full")):
    return Row(benchmark=name, peer="p", peer_value=ratio, ours=1.0, unit="s", ratio=ratio, goal=goal,
               lower_is_better=lower, before=MachineState(1.0, 0.1), after=MachineState(2.0, 0.2), goal_sizes=sizes)


fake_policies: list = []


@pytest.fixture
def fake_modules(monkeypatch, tmp_path):
    fake_policies.clear()
    rows = {
        "bench_fake_ok": [_row("fine row", 2.0, 1.5),
                          Row(benchmark="report only", peer="p", peer_value=1.0, ours=1.0, unit="s", ratio=1.0,
                              goal=None)],
        "bench_fake_miss": [_row("slow row", 1.1, 1.5), _row("memory row", 3.0, 2.0, lower=True)],
    }
    def seen_policy(made):
        def run(size):
            policies.append((rounds.POLICY.rounds, rounds.POLICY.enforce_minimum))
            return list(made)
        return run

    policies = fake_policies
    for name, made in rows.items():
        monkeypatch.setitem(sys.modules, f"{runner.SUITE}.{name}", types.SimpleNamespace(run=seen_policy(made)))
    monkeypatch.setattr(runner, "discover", lambda: sorted(rows))
    monkeypatch.setattr(machine.MachineState, "now", classmethod(lambda cls, since=None: cls(0.0, 0.0)))
    return tmp_path


def test_check_prints_only_missed_rows_and_exits_non_zero(fake_modules, capsys):
    code = runner.main(["--check", "--json", str(fake_modules / "t.json")])
    out = capsys.readouterr().out
    assert code == 1
    assert "slow row" in out and "memory row" in out
    assert "fine row" not in out and "report only" not in out
    saved = json.loads((fake_modules / "t.json").read_text())
    assert [r["benchmark"] for r in saved["rows"]] == ["slow row", "memory row", "fine row", "report only"]
    assert saved["meta"]["noise_margin"] == NOISE_MARGIN


def test_check_passes_quietly_when_every_goal_holds(fake_modules, capsys):
    code = runner.main(["--check", "--only", "fake_ok", "--json", str(fake_modules / "t.json")])
    assert code == 0 and capsys.readouterr().out == ""


def test_full_table_and_rounds_option(fake_modules, capsys):
    set_round_policy(None, enforce_minimum=False)
    code = runner.main(["--rounds", "2", "--json", str(fake_modules / "t.json")])
    out = capsys.readouterr().out
    assert fake_policies == [(2, True), (2, True)]
    assert code == 0 and "fine row" in out and "slow row" in out
    # the runner's policy holds while it runs, and the caller's comes back afterwards
    assert rounds.POLICY.rounds is None and not rounds.POLICY.enforce_minimum
    saved = json.loads((fake_modules / "t.json").read_text())
    assert saved["meta"]["rounds"] == 2
    states = {r["benchmark"]: (r["before"], r["after"]) for r in saved["rows"]}
    # a row that recorded its own machine state keeps it; the runner fills in the others
    assert states["fine row"] == ({"load_1min": 1.0, "disk_busy": 0.1, "cpu_steal": None},
                                  {"load_1min": 2.0, "disk_busy": 0.2, "cpu_steal": None})
    assert states["report only"] == ({"load_1min": 0.0, "disk_busy": 0.0, "cpu_steal": None},) * 2
    with pytest.raises(SystemExit):
        runner.main(["--rounds", "0"])


def test_a_run_stopped_part_way_keeps_the_rows_of_the_modules_it_finished(monkeypatch, fake_modules):
    def stopped(size):
        raise KeyboardInterrupt  # the run is stopped while the second module runs

    monkeypatch.setitem(sys.modules, "benchmarks.suite.bench_fake_ok", types.SimpleNamespace(run=stopped))
    path = fake_modules / "t.json"
    with pytest.raises(KeyboardInterrupt):
        runner.main(["--json", str(path)])
    saved = json.loads(path.read_text())
    assert saved["meta"]["complete"] is False and saved["meta"]["done"] == ["bench_fake_miss"]
    assert [r["benchmark"] for r in saved["rows"]] == ["slow row", "memory row"]
    monkeypatch.setitem(sys.modules, "benchmarks.suite.bench_fake_ok",
                        types.SimpleNamespace(run=lambda size: [_row("fine row", 2.0, 1.5)]))
    runner.main(["--json", str(path)])
    saved = json.loads(path.read_text())
    assert saved["meta"]["complete"] is True and saved["meta"]["done"] == ["bench_fake_miss", "bench_fake_ok"]


def test_an_unwritable_table_path_fails_before_the_first_module(monkeypatch, fake_modules):
    ran = []
    monkeypatch.setitem(sys.modules, "benchmarks.suite.bench_fake_ok",
                        types.SimpleNamespace(run=lambda size: ran.append(size) or []))
    blocker = fake_modules / "not_a_folder"
    blocker.write_text("a file where the table's folder should be")
    for extra in ([], ["--pair"]):
        with pytest.raises(OSError):
            runner.main(["--only", "fake_ok", "--json", str(blocker / "t.json"), *extra])
    assert ran == []


def test_failed_module_is_a_miss(monkeypatch, fake_modules, capsys):
    def broken(size):
        raise RuntimeError("boom")

    monkeypatch.setitem(sys.modules, "benchmarks.suite.bench_fake_ok", types.SimpleNamespace(run=broken))
    code = runner.main(["--check", "--only", "fake_ok", "--json", str(fake_modules / "t.json")])
    assert code == 1 and "bench_fake_ok FAILED" in capsys.readouterr().out
    assert math.isnan(json.loads((fake_modules / "t.json").read_text(), parse_constant=float)["rows"][0]["ratio"])


def test_real_timing_smoke():
    set_round_policy(3)
    t = interleave({"ours": lambda: time.sleep(0.001), "peer": lambda: time.sleep(0.002)})
    assert len(t["ours"].rounds) == 3 and t["peer"].min >= 0.002


def test_busy_core_spins_in_its_own_session_and_is_reaped():
    import os

    with machine.busy_core() as busy:
        pid = busy.proc.pid
        assert busy.proc.poll() is None
        assert os.getsid(pid) == pid != os.getsid(0)  # a session of its own, as another user's job
        assert machine._cpu_ticks(pid) >= 5  # already spinning when the block starts
    assert busy.proc.returncode is not None


def test_busy_core_is_reaped_when_the_block_fails():
    with pytest.raises(KeyError):
        with machine.busy_core() as busy:
            raise KeyError("x")
    assert busy.proc.returncode is not None


def test_cpu_ticks_of_a_missing_process():
    assert machine._cpu_ticks(2**22 + 12345) is None



def _state(pid: int) -> str:
    """A process's state letter ("gone" once /proc no longer lists it)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            return fh.read().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return "gone"


def test_busy_core_spinner_ends_with_a_killed_parent():
    """A benchmark killed by a signal cannot reap its spinner: the spinner ends by itself."""
    import os
    import signal
    import subprocess
    from pathlib import Path

    code = (
        "import time\n"
        "from benchmarks.harness import busy_core\n"
        "with busy_core() as b:\n"
        "    print(b.proc.pid, flush=True)\n"
        "    time.sleep(600)\n"
    )
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    with subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env) as parent:
        spinner = int(parent.stdout.readline())
        assert _state(spinner) in ("R", "S")
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and _state(spinner) not in ("Z", "gone"):
        time.sleep(0.05)
    state = _state(spinner)
    if state not in ("Z", "gone"):
        os.kill(spinner, signal.SIGKILL)
    assert state in ("Z", "gone"), f"the spinner outlived its killed parent (state {state})"


def _spinners() -> list[int]:
    """Pids of this process's children that run the busy-core spinner (read from /proc)."""
    import os

    pids = []
    for task in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{task}/children", encoding="ascii") as fh:
            pids += [int(p) for p in fh.read().split()]
    found = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                args = fh.read().split(b"\0")
        except OSError:
            continue
        if machine.busy_core.CODE.encode() in args:
            found.append(pid)
    return found


@pytest.mark.parametrize("flag", [True, False])
def test_busy_core_option_spins_for_the_whole_run_and_says_so(monkeypatch, fake_modules, capsys, flag):
    seen: list[tuple[list[int], list[int]]] = []

    def run(size):
        outside = _spinners()
        # a row's own one-core-busy variant shares the runner's spinner: still one busy core
        with machine.busy_core() as busy:
            inside = _spinners()
            assert busy.proc.poll() is None and busy.proc.pid in inside
        assert _spinners() == outside
        seen.append((outside, inside))
        return [_row("fine row", 2.0, 1.5)]

    monkeypatch.setitem(sys.modules, "benchmarks.suite.bench_fake_ok", types.SimpleNamespace(run=run))
    code = runner.main(["--only", "fake_ok", "--json", str(fake_modules / "t.json")]
                       + (["--busy-core"] if flag else []))
    out = capsys.readouterr().out
    assert code == 0 and len(seen) == 1
    outside, inside = seen[0]
    if flag:
        assert len(outside) == 1 and inside == outside
        assert out.splitlines()[0].startswith("size small, ONE CORE BUSY")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and _state(outside[0]) != "gone":
            time.sleep(0.01)
        assert _state(outside[0]) == "gone"  # killed and reaped when the run ends
    else:
        assert outside == [] and len(inside) == 1
        assert out.splitlines()[0].startswith("size small, no core kept busy")
    assert _spinners() == [] and machine.busy_core.active is None
    saved = json.loads((fake_modules / "t.json").read_text())
    assert saved["meta"]["busy_core"] is flag


def test_a_row_that_needs_both_cores_is_judged_by_its_one_core_goal_in_a_busy_run():
    row = Row(benchmark="parallel", peer="serial", peer_value=1.2, ours=1.0, unit="s", ratio=1.2, goal=1.8,
              busy_goal=1.0)
    assert row.applied_goal == 1.8 and row.holds is False
    assert ">= 1.8 " in _figures(format_table([row]), "parallel")
    assert "(1 core)" not in _figures(format_table([row]), "parallel")
    row.one_core_busy = True
    assert row.applied_goal == 1.0 and row.holds is True
    assert ">= 1 (1 core)" in _figures(format_table([row]), "parallel")
    saved = row.as_dict()
    assert saved["goal"] == 1.8 and saved["busy_goal"] == 1.0 and saved["applied_goal"] == 1.0 and saved["holds"]
    # without a one-core goal a row keeps its goal whatever the load
    plain = Row(benchmark="b", peer="p", peer_value=1.2, ours=1.0, unit="s", ratio=1.2, goal=1.8, one_core_busy=True)
    assert plain.applied_goal == 1.8 and plain.holds is False


@pytest.mark.parametrize("flag", [True, False])
def test_the_runner_applies_one_core_goals_only_in_a_busy_run(monkeypatch, fake_modules, capsys, flag):
    def run(size):
        return [Row(benchmark="parallel", peer="serial", peer_value=1.2, ours=1.0, unit="s", ratio=1.2, goal=1.8,
                    busy_goal=1.0, goal_sizes=("small", "full"))]

    monkeypatch.setitem(sys.modules, "benchmarks.suite.bench_fake_ok", types.SimpleNamespace(run=run))
    monkeypatch.setattr(machine, "busy_core", lambda: contextlib.nullcontext(types.SimpleNamespace(
        proc=types.SimpleNamespace(pid=0))))
    monkeypatch.setattr(runner, "busy_core", machine.busy_core)
    code = runner.main(["--check", "--only", "fake_ok", "--json", str(fake_modules / "t.json")]
                       + (["--busy-core"] if flag else []))
    assert code == (0 if flag else 1)
    saved = json.loads((fake_modules / "t.json").read_text())["rows"][0]
    assert saved["one_core_busy"] is flag and saved["holds"] is flag


def test_pair_runs_each_module_quiet_then_busy_and_compares_the_tables(monkeypatch, fake_modules, capsys):
    calls = []

    quiet_saved = []

    def recording(name, make):
        def run(size):
            active = machine.busy_core.active
            busy = active is not None and active.poll() is None
            calls.append((name, busy))
            if busy:  # the module's quiet rows are on disk before its busy run starts
                saved = json.loads((fake_modules / "t-quiet.json").read_text())
                quiet_saved.append((saved["meta"]["done"][-1], saved["meta"]["complete"]))
            return make()
        return run

    # a row whose work needs both cores, at 1.2 against 1.8 (one-core goal 1.0): its verdict differs
    parallel = lambda: [Row(benchmark="parallel", peer="serial", peer_value=1.2, ours=1.0, unit="s",  # noqa: E731
                            ratio=1.2, goal=1.8, busy_goal=1.0, goal_sizes=("small", "full"))]
    monkeypatch.setitem(sys.modules, "benchmarks.suite.bench_fake_ok", types.SimpleNamespace(run=recording("ok", parallel)))
    monkeypatch.setitem(sys.modules, "benchmarks.suite.bench_fake_miss",
                        types.SimpleNamespace(run=recording("miss", lambda: [_row("fine row", 2.0, 1.5)])))
    code = runner.main(["--pair", "--json", str(fake_modules / "t.json")])
    out = capsys.readouterr().out
    # each module quiet, then at once with the spinner running; the spinner stops between modules
    assert calls == [("miss", False), ("miss", True), ("ok", False), ("ok", True)]
    assert quiet_saved == [("bench_fake_miss", False), ("bench_fake_ok", False)]
    assert _spinners() == [] and machine.busy_core.active is None
    quiet = json.loads((fake_modules / "t-quiet.json").read_text())
    busy = json.loads((fake_modules / "t-busy.json").read_text())
    assert (quiet["meta"]["busy_core"], busy["meta"]["busy_core"]) == (False, True)
    assert quiet["meta"]["paired"] and busy["meta"]["paired"] and quiet["meta"]["complete"]
    assert [r["holds"] for r in quiet["rows"]] == [True, False] and [r["holds"] for r in busy["rows"]] == [True, True]
    assert "ONE CORE BUSY: a spinning process started by the runner ran for each module right after" in out
    assert code == 1 and "DIFFER  parallel" in out and "the same on 1 of 2 rows with a goal" in out
    # verdicts that agree: exit 0
    calls.clear()
    assert runner.main(["--pair", "--only", "fake_miss", "--json", str(fake_modules / "t.json")]) == 0
    assert calls == [("miss", False), ("miss", True)]
    assert "the same on 1 of 1 rows with a goal" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        runner.main(["--pair", "--busy-core"])


def test_cores_note_is_written_into_the_table_and_handed_to_the_modules(monkeypatch, fake_modules):
    seen = []

    def run(size):
        seen.append(os.environ.get(runner.CORES_NOTE_ENV))
        return [_row("fine row", 2.0, 1.5)]

    monkeypatch.delenv(runner.CORES_NOTE_ENV, raising=False)
    monkeypatch.setitem(sys.modules, "benchmarks.suite.bench_fake_ok", types.SimpleNamespace(run=run))
    note = "16-core node, x86-64, one local disk"
    assert runner.main(["--only", "fake_ok", "--json", str(fake_modules / "c.json"), "--cores", note]) == 0
    assert runner.main(["--only", "fake_ok", "--json", str(fake_modules / "d.json")]) == 0
    assert seen == [note, None] and runner.CORES_NOTE_ENV not in os.environ  # the note does not outlive the run
    given = json.loads((fake_modules / "c.json").read_text())["meta"]["cores"]
    default = json.loads((fake_modules / "d.json").read_text())["meta"]["cores"]
    assert given["note"] == note and given["count"] == os.cpu_count() >= given["usable"] >= 1
    assert default["note"] == f"host {platform.node()}" and default["count"] == os.cpu_count()


def test_a_goal_is_judged_only_at_the_sizes_it_names(monkeypatch, fake_modules, capsys):
    """A goal set for full size says nothing at small size: the row prints its ratio without a verdict,
    and ``--check`` fails at small size only on the goals that name it."""
    made = {"bench_fake_ok": [_row("full-only row", 0.5, 1.0, sizes=("full",)), _row("both sizes row", 2.0, 1.0)]}
    monkeypatch.setitem(sys.modules, "benchmarks.suite.bench_fake_ok",
                        types.SimpleNamespace(run=lambda size: [dataclasses.replace(r) for r in made["bench_fake_ok"]]))
    path = fake_modules / "t.json"
    assert runner.main(["--size", "small", "--check", "--only", "fake_ok", "--json", str(path)]) == 0
    assert capsys.readouterr().out == ""
    rows = {r["benchmark"]: r for r in json.loads(path.read_text())["rows"]}
    assert rows["full-only row"]["size"] == "small" and rows["full-only row"]["holds"] is None
    assert rows["full-only row"]["applied_goal"] is None and rows["full-only row"]["goal"] == 1.0
    assert rows["both sizes row"]["holds"] is True
    runner.main(["--size", "small", "--only", "fake_ok", "--json", str(path)])
    table = capsys.readouterr().out
    line = _figures(table, "full-only row")
    assert "0.5" in line and "(goal at full)" in line and "NO" not in line
    assert ">= 1 (small+full)" in _figures(table, "both sizes row")
    # at full size the same row misses its goal
    assert runner.main(["--size", "full", "--check", "--only", "fake_ok", "--json", str(path)]) == 1
    assert "full-only row" in capsys.readouterr().out
    with pytest.raises(ValueError, match="unknown sizes"):
        _row("typo", 1.0, 1.0, sizes=("ful",))

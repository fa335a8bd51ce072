"""One writer per target: threads, processes, stale and foreign claims, HDF5's own lock."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from h5stream.errors import FormatError, StaleClaimWarning, StaleFilesWarning, WriterClaimError
from h5stream.files import WriterClaim, claim_path, create_atomic, open_validated, update_atomic

RACER = textwrap.dedent(
    """
    import os, sys, time
    import numpy as np
    from h5stream.errors import WriterClaimError
    from h5stream.files import create_atomic

    target, go = sys.argv[1], sys.argv[2]
    print("ready", flush=True)
    while not os.path.exists(go):
        time.sleep(0.001)
    atomic = create_atomic(target, overwrite=True)
    try:
        f = atomic.open()
    except WriterClaimError as exc:
        print("lost", exc, flush=True)
        sys.exit(0)
    print("won", os.getpid(), flush=True)
    f["writer"] = np.int64(os.getpid())
    time.sleep(1.0)  # hold the claim while the other racer tries
    atomic.commit()
    """
)


def _child_env() -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}


def test_two_processes_exactly_one_writes_and_the_other_names_it(tmp_path):
    target = tmp_path / "race.h5"
    go = tmp_path / "go"
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, str(target), str(go)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_child_env(),
        )
        for _ in range(2)
    ]
    for racer in racers:  # both imported and polling for the start signal
        assert racer.stdout.readline().strip() == "ready"
    go.touch()
    outputs = [r.communicate(timeout=60) for r in racers]
    assert [r.returncode for r in racers] == [0, 0], [err for _, err in outputs]
    lines = [out.strip() for out, _ in outputs]
    winners = [line for line in lines if line.startswith("won")]
    losers = [line for line in lines if line.startswith("lost")]
    assert len(winners) == 1 and len(losers) == 1, lines
    winner_pid = int(winners[0].split()[1])
    assert f"pid {winner_pid}" in losers[0]
    assert socket.gethostname() in losers[0]
    assert str(target) in losers[0]
    with open_validated(target) as f:
        assert int(f["writer"][()]) == winner_pid
    assert not claim_path(target).exists()


def test_two_threads_exactly_one_writes(tmp_path):
    target = tmp_path / "threads.h5"
    barrier = threading.Barrier(2)
    outcome: dict[str, object] = {}
    held = threading.Event()

    def write(name: str) -> None:
        barrier.wait()
        atomic = create_atomic(target, overwrite=True)
        try:
            f = atomic.open()
        except WriterClaimError as exc:
            outcome[name] = exc
            held.set()
            return
        outcome[name] = threading.get_ident()
        f["writer"] = name
        held.wait(10)  # keep the claim until the other thread has failed
        atomic.commit()

    threads = [threading.Thread(target=write, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    errors = {k: v for k, v in outcome.items() if isinstance(v, WriterClaimError)}
    winners = {k: v for k, v in outcome.items() if isinstance(v, int)}
    assert len(errors) == 1 and len(winners) == 1, outcome
    (winner, ident), = winners.items()
    message = str(next(iter(errors.values())))
    assert f"pid {os.getpid()}" in message and f"thread {ident}" in message
    with open_validated(target) as f:
        assert f["writer"][()].decode() == winner


def test_claim_names_holder_while_held_and_is_removed_after(tmp_path):
    target = tmp_path / "a.h5"
    with WriterClaim(target) as claim:
        holder = json.loads(claim_path(target).read_text())
        assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
        assert {"thread", "time", "token"} <= holder.keys()
        with pytest.raises(WriterClaimError) as info:
            WriterClaim(target).acquire()
        assert holder["time"] in str(info.value)
        with pytest.raises(WriterClaimError, match="already held"):
            claim.acquire()
    assert not claim_path(target).exists()


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _write_claim(target: Path, **holder) -> Path:
    path = claim_path(target)
    base = {"host": socket.gethostname(), "pid": 1, "thread": 1, "time": "2020-01-01T00:00:00+00:00",
            "token": "old"}
    path.write_text(json.dumps({**base, **holder}))
    return path


LIVE_WRITER = (
    "import time\n"
    "from h5stream.files.liveness import hold_liveness_lock\n"
    "hold_liveness_lock()\n"  # what a writer takes where no signal probes a pid (H5STREAM_PORTABLE=1)
    "print('ready', flush=True)\n"
    "time.sleep(120)\n"
)


@pytest.fixture
def live_writer():
    """A running process that holds what a writer holds: its pid and its liveness lock."""
    child = subprocess.Popen([sys.executable, "-c", LIVE_WRITER], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        yield child.pid
    finally:
        child.kill()
        child.wait(timeout=60)
        child.stdout.close()


def test_stale_claim_of_dead_process_is_cleared_with_warning(tmp_path, live_writer):
    target = tmp_path / "a.h5"
    pid = _dead_pid()
    _write_claim(target, pid=pid)
    leftover = tmp_path / f"a.h5.partial-{pid}-0"
    leftover.write_bytes(b"half a file")
    half_claim = tmp_path / f"a.h5.claim.tmp-{pid}-3"
    half_claim.write_bytes(b"{")
    other_dead = tmp_path / "a.h5.partial-999999999-0"  # no such pid on Linux (pid_max <= 2**22)
    other_dead.write_bytes(b"another dead writer's")
    live = tmp_path / f"a.h5.partial-{live_writer}-0"  # a running writer that started before it
    live.write_bytes(b"a live writer's")
    other_target = tmp_path / f"b.h5.partial-{pid}-0"
    other_target.write_bytes(b"another target's")
    with pytest.warns(StaleClaimWarning) as record:
        with create_atomic(target) as f:
            f["x"] = np.arange(3)
    messages = [str(w.message) for w in record]
    assert [type(w.message) for w in record] == [StaleClaimWarning, StaleFilesWarning]
    assert f"pid {pid}" in messages[0]
    for name in (leftover.name, half_claim.name, other_dead.name):
        assert name in messages[1]
    assert not leftover.exists()  # the dead writer's partial file went with its claim
    assert not half_claim.exists()
    assert not other_dead.exists()
    assert live.exists() and other_target.exists()
    with open_validated(target) as f:
        assert f["x"][()].tolist() == [0, 1, 2]
    assert not claim_path(target).exists()


def test_claim_of_a_reused_pid_is_stale(tmp_path):
    target = tmp_path / "a.h5"
    # The parent process is alive, but it started at another moment than the recorded one.
    _write_claim(target, pid=os.getppid(), pid_start=1)
    with pytest.warns(StaleClaimWarning):
        WriterClaim(target).acquire().release()


def test_claim_from_another_host_is_reported_with_the_way_to_clear_it(tmp_path):
    target = tmp_path / "a.h5"
    path = _write_claim(target, host="node-17.cluster.example", pid=4242)
    with pytest.raises(WriterClaimError) as info:
        create_atomic(target).open()
    message = str(info.value)
    assert "pid 4242" in message and "node-17.cluster.example" in message
    assert f"delete {path}" in message
    assert path.exists()  # never cleared automatically: that host may still be writing
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.h5.claim"]


def test_unreadable_claim_is_respected_while_fresh_and_cleared_when_old(tmp_path):
    target = tmp_path / "a.h5"
    path = claim_path(target)
    path.write_text("{not json")
    with pytest.raises(WriterClaimError, match="unknown writer"):
        WriterClaim(target).acquire()
    old = time.time() - 3600
    os.utime(path, (old, old))
    with pytest.warns(StaleClaimWarning):
        WriterClaim(target).acquire().release()
    assert not path.exists()


def test_release_never_removes_a_claim_taken_over_by_another_writer(tmp_path):
    target = tmp_path / "a.h5"
    claim = WriterClaim(target).acquire()
    claim_path(target).unlink()
    other = WriterClaim(target).acquire()
    claim.release()
    assert claim_path(target).exists()
    other.release()
    assert not claim_path(target).exists()


def test_a_claim_released_and_retaken_while_a_third_writer_looks_is_never_held_twice(tmp_path):
    # The interleaving of three writers meeting on one lock: B holds it; A fails to create the
    # claim; B releases; A reads nothing; C takes the claim; A must not clear C's claim as stale.
    target = tmp_path / "s.json"
    first = WriterClaim(target).acquire()
    others: list[WriterClaim] = []

    class Looking(WriterClaim):
        reads = 0

        def read_holder(self, path=None):
            holder = super().read_holder(path)
            if path is None and self.reads == 0:
                self.reads += 1
                first.release()
                holder = None  # read just after the holder left
            return holder

        def _is_stale(self, holder):
            stale = super()._is_stale(holder)
            if not others:
                others.append(WriterClaim(target).acquire())  # a third writer claims it now
            return stale

    looking = Looking(target)
    with contextlib.suppress(WriterClaimError):
        looking.acquire()
    holders = [c for c in (looking, *others) if c.held]
    assert len(holders) == 1
    assert json.loads(claim_path(target).read_text())["token"] == holders[0]._payload["token"]


HOLDER = textwrap.dedent(
    """
    import sys, h5py
    f = h5py.File(sys.argv[1], "a")
    print("open", flush=True)
    sys.stdin.readline()
    f.close()
    """
)


def test_file_open_for_writing_by_another_program_is_refused(tmp_path):
    target = tmp_path / "a.h5"
    with h5py.File(target, "w") as f:
        f["x"] = 1
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(target)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=_child_env(),
    )
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(WriterClaimError, match="held by another program.*HDF5 file lock") as info:
            update_atomic(target).open()
        assert info.value.other_program and info.value.holder is None
        assert not claim_path(target).exists()
        with pytest.raises(FormatError, match="held by another program"):
            open_validated(target)
    finally:
        holder.communicate("\n", timeout=30)
    with update_atomic(target) as f:
        f["x"][()] = 2
    with open_validated(target) as f:
        assert int(f["x"][()]) == 2


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="process states are read from /proc (Linux)")
def test_claim_of_a_killed_process_its_parent_has_not_collected_is_stale(tmp_path):
    """A killed writer stays a zombie until its parent collects it; it still answers a signal probe
    (``os.kill(pid, 0)``), yet it runs nothing, so its claim is stale, not held (a killed batch worker
    is one until its pool cleans it up)."""
    from h5stream.files.liveness import process_alive

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        assert process_alive(child.pid)
        os.kill(child.pid, 9)
        deadline = time.monotonic() + 30
        while b") Z" not in Path(f"/proc/{child.pid}/stat").read_bytes():  # not collected: a zombie
            assert time.monotonic() < deadline, "the killed child never became a zombie"
            time.sleep(0.01)
        os.kill(child.pid, 0)  # the signal probe alone still finds it
        assert not process_alive(child.pid)
        target = tmp_path / "a.h5"
        _write_claim(target, pid=child.pid)
        with pytest.warns(StaleClaimWarning, match=f"pid {child.pid}"):
            WriterClaim(target).acquire().release()
    finally:
        child.kill()
        child.wait(timeout=60)

"""A writer killed with SIGKILL at any moment never damages the file already saved.

A real child process (forked from the test after h5py is imported, so each of the
30 writers starts in milliseconds; it runs ``_crash_writer.write_version``) writes 24 MB versions of one target through
``create_atomic(overwrite=True)`` or ``update_atomic`` and reports each phase on a
pipe; the test kills it at a chosen phase plus a random delay, after a random
time, or while it is held at a chosen phase (the writer stops right after reporting
it, so that kill lands there whatever the speed of the disk).  After every kill the
target must be absent (nothing committed yet), the previous complete version, or (only once the rename has started) the new complete
version, open cleanly with ``open_validated`` and hold exactly that version's data.
"""

from __future__ import annotations

import os
import select
import signal
import time
import traceback
import warnings
from pathlib import Path

import numpy as np
import pytest

from h5stream.files import open_validated

from tests.integration._crash_writer import CHUNK_VALUES, expected_values, write_version

N_VALUES = 6 * CHUNK_VALUES  # 24 MB: kills land inside data writes
N_DATA_PHASES = 6


HOLD_SECONDS = 60.0  # a held writer waits this long for its kill


def _start_writer(target: Path, version: int, mode: str,
                  hold: tuple[str, int] | None = None) -> tuple[int, int, int]:
    """Fork a writer; returns (pid, read end of its phase pipe, read end of its stderr pipe).

    With ``hold`` (phase, occurrence), the writer stops right after reporting
    that occurrence of that phase and waits to be killed.
    """
    phase_r, phase_w = os.pipe()
    err_r, err_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the writer: never returns into pytest
        code = 1
        try:
            os.close(phase_r)
            os.close(err_r)
            seen: dict[str, int] = {}

            def report(name: str) -> None:
                os.write(phase_w, (name + "\n").encode())
                seen[name] = seen.get(name, 0) + 1
                if hold is not None and (name, seen[name]) == hold:
                    time.sleep(HOLD_SECONDS)

            with warnings.catch_warnings():
                # A stale claim of the previous (killed) writer is expected here.
                warnings.simplefilter("ignore")
                write_version(str(target), version, N_VALUES, mode, report)
            code = 0
        except BaseException:  # noqa: BLE001 - reported to the test through the pipe
            os.write(err_w, traceback.format_exc().encode())
        finally:
            os._exit(code)
    os.close(phase_w)
    os.close(err_w)
    return pid, phase_r, err_r


def run_writer(target: Path, version: int, mode: str, kill_at: tuple[str, int] | float | None,
               delay: float | None) -> tuple[list[str], int]:
    """Run one writer; kill it at ``kill_at`` (phase and occurrence, or seconds after start).

    ``delay`` is the time between reaching ``kill_at`` and the kill; ``None``
    holds the writer at the phase ``kill_at`` names and kills it there.
    Returns the phases the writer started (all of them, read after its death) and
    its exit status (0, or -SIGKILL).
    """
    hold = kill_at if delay is None else None
    assert hold is None or isinstance(hold, tuple), "only a phase can be held"
    pid, fd, err_fd = _start_writer(target, version, mode, hold)
    phases: list[str] = []
    buffer = b""
    started = time.monotonic()
    deadline = started + 60

    def reached() -> bool:
        if kill_at is None:
            return False
        if isinstance(kill_at, float):
            return time.monotonic() - started >= kill_at
        name, occurrence = kill_at
        return phases.count(name) >= occurrence

    eof = False
    while not reached() and time.monotonic() < deadline:
        wait = 0.002 if isinstance(kill_at, float) else 1.0
        ready, _, _ = select.select([fd], [], [], wait)
        if not ready:
            continue
        chunk = os.read(fd, 4096)
        if not chunk:
            eof = True
            break  # the writer finished before the planned moment
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        phases += [line.decode() for line in lines]
    if not eof and reached():
        time.sleep(delay or 0.0)
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    while chunk := os.read(fd, 65536):
        buffer += chunk
    errors = b""
    while chunk := os.read(err_fd, 65536):
        errors += chunk
    os.close(fd)
    os.close(err_fd)
    phases += [line for line in buffer.decode().split("\n") if line]
    code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
    if code not in (0, -signal.SIGKILL):
        pytest.fail(f"writer failed with code {code}:\n{errors.decode()}")
    return phases, code


def read_version(target: Path) -> int | None:
    """The complete version at ``target`` (None when absent), checked value by value."""
    if not target.exists():
        return None
    with open_validated(target) as f:
        version = int(f.attrs["version"])
        np.testing.assert_array_equal(f["data"][()], expected_values(version, N_VALUES))
    return version


def allowed_versions(phases: list[str], previous: int | None, new: int) -> set:
    if "replaced" in phases:
        return {new}
    if "replace" in phases:
        return {previous, new}  # killed during the rename itself
    return {previous}


def kill_plan(rng: np.random.Generator, n_kills: int) -> list[tuple]:
    """(kill_at, delay) pairs: every commit phase, several data chunks, and random times.

    One data chunk and one commit phase are held (delay ``None``), so kills land
    inside the data and inside the commit on any disk; the rest follow the writer
    at its own pace.
    """
    at_phases = [("opened", 1), ("closing", 1), ("fsync", 1), ("fsynced", 1), ("replace", 1),
                 ("replaced", 1), ("dirsynced", 1)]
    plan = [(p, float(rng.uniform(0, 0.004))) for p in at_phases]
    plan += [(("data", int(rng.integers(1, N_DATA_PHASES))), None), (("fsynced", 1), None)]
    while len(plan) < n_kills - 4:
        plan.append((("data", int(rng.integers(1, N_DATA_PHASES + 1))), float(rng.uniform(0, 0.02))))
    plan += [(float(rng.uniform(0.01, 0.4)), 0.0) for _ in range(n_kills - len(plan))]
    order = rng.permutation(len(plan))
    return [plan[i] for i in order]


def leftover_partials(target: Path) -> list[str]:
    return sorted(p.name for p in target.parent.iterdir() if ".partial-" in p.name)


def check_directory(target: Path) -> None:
    for p in target.parent.iterdir():
        assert p == target or p.name.startswith(target.name + "."), p  # nothing else is created
        if p != target:
            assert ".partial-" in p.name or ".claim" in p.name, p


def test_create_atomic_survives_sigkill_at_20_moments(tmp_path):
    rng = np.random.default_rng(20260521)
    target = tmp_path / "recording.h5"
    # The first kill lands in the data of the very first version: nothing may appear.
    plan = [(("data", 2), None)] + kill_plan(rng, 19)
    previous: int | None = None
    outcomes = []
    for version, (kill_at, delay) in enumerate(plan, start=1):
        phases, code = run_writer(target, version, "create", kill_at, delay)
        found = read_version(target)
        assert found in allowed_versions(phases, previous, version), (kill_at, phases, found)
        check_directory(target)
        outcomes.append((kill_at, phases[-1] if phases else "start", found))
        previous = found
    assert outcomes[0][2] is None
    # Kills landed inside data writes and inside the commit, and some versions got through.
    last_phases = [o[1] for o in outcomes]
    assert last_phases.count("data") >= 2
    assert "fsynced" in last_phases
    assert any(o[2] is not None for o in outcomes)
    # A clean writer finishes, and clears every partial file the killed ones left behind.
    phases, code = run_writer(target, 99, "create", None, 0.0)
    assert code == 0 and phases[-1] == "done"
    assert read_version(target) == 99
    assert leftover_partials(target) == []


def test_update_atomic_survives_sigkill(tmp_path):
    rng = np.random.default_rng(7)
    target = tmp_path / "recording.h5"
    phases, code = run_writer(target, 1, "create", None, 0.0)
    assert code == 0 and read_version(target) == 1
    plan = [
        (("opened", 1), 0.0),
        (("data", int(rng.integers(1, N_DATA_PHASES + 1))), float(rng.uniform(0, 0.02))),
        (("data", N_DATA_PHASES), 0.0),
        (("fsync", 1), 0.001),
        (("replace", 1), 0.0),
        (("replaced", 1), 0.0),
        (float(rng.uniform(0.01, 0.3)), 0.0),
    ]
    previous = 1
    for version, (kill_at, delay) in enumerate(plan, start=2):
        phases, code = run_writer(target, version, "update", kill_at, delay)
        found = read_version(target)
        assert found in allowed_versions(phases, previous, version), (kill_at, phases, found)
        check_directory(target)
        previous = found
    phases, code = run_writer(target, 50, "update", None, 0.0)
    assert code == 0 and read_version(target) == 50
    assert leftover_partials(target) == []

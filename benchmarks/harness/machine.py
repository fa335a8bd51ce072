"""The machine a row runs on: its load, its disk's busy share, the CPU time the host steals, and one core
kept busy.

A row records :class:`MachineState` just before and just after it: the 1-minute load average, the disk's busy
share (the device holding the scratch folder, from ``/proc/diskstats``, sampled over
:data:`DISK_SAMPLE_SECONDS`) and the share of CPU time the host stole for other virtual machines while it
ran (from ``/proc/stat``: a busy neighbour that no load average here shows).

One core busy: :class:`busy_core` keeps another process (in its own session, as another user's job)
spinning on one core while a block runs; rows that depend on both cores have a variant measured inside it.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: seconds over which the disk's busy share is sampled before and after a row
DISK_SAMPLE_SECONDS = 0.5


def bench_parent() -> str:
    """The folder holding the benchmark's scratch files."""
    return os.environ.get("H5STREAM_BENCH_DIR") or tempfile.gettempdir()


def _disk_name(path: str | os.PathLike) -> str | None:
    """The block device (``/proc/diskstats`` name) holding ``path``; None when it has none."""
    try:
        dev = os.stat(path).st_dev
        link = Path(f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}")
        return link.resolve().name if link.exists() else None
    except OSError:
        return None


def _io_ticks(device: str) -> int | None:
    """Milliseconds the device has spent doing I/O since boot."""
    try:
        with open("/proc/diskstats", encoding="ascii") as fh:
            for line in fh:
                fields = line.split()
                if len(fields) >= 13 and fields[2] == device:
                    return int(fields[12])
    except OSError:
        return None
    return None


def disk_busy_share(path: str | os.PathLike | None = None, seconds: float | None = None) -> float | None:
    """Share of the next ``seconds`` the disk holding ``path`` was busy (io_ticks delta / wall time)."""
    device = _disk_name(path or bench_parent())
    if device is None:
        return None
    seconds = DISK_SAMPLE_SECONDS if seconds is None else seconds
    t0, a = time.perf_counter(), _io_ticks(device)
    if a is None:
        return None
    time.sleep(seconds)
    b, t1 = _io_ticks(device), time.perf_counter()
    if b is None or t1 <= t0:
        return None
    return min(1.0, (b - a) / 1000.0 / (t1 - t0))


#: the machine's CPU counters since boot (Linux)
PROC_STAT = "/proc/stat"


def cpu_ticks() -> tuple[int, int] | None:
    """``(stolen, total)`` CPU ticks of all cores since boot, from the ``cpu`` line of ``/proc/stat``.

    Stolen ticks are those a virtual machine's cores were ready to run but the host
    ran something else (another guest): a busy neighbour that no load average of this
    machine shows.  None where the file or the field is missing.
    """
    try:
        with open(PROC_STAT, encoding="ascii") as fh:
            fields = fh.readline().split()
    except OSError:
        return None
    if len(fields) < 9 or fields[0] != "cpu":
        return None
    try:
        # user nice system idle iowait irq softirq steal (guest time is counted inside user)
        ticks = [int(v) for v in fields[1:9]]
    except ValueError:
        return None
    return ticks[7], sum(ticks)


def steal_share(start: tuple[int, int] | None, end: tuple[int, int] | None) -> float | None:
    """Share of the CPU ticks between two :func:`cpu_ticks` readings that the host stole."""
    if start is None or end is None or end[1] <= start[1]:
        return None
    return min(1.0, max(0.0, (end[0] - start[0]) / (end[1] - start[1])))


@dataclasses.dataclass
class MachineState:
    """The 1-minute load average, the disk's busy share and the CPU share stolen by the host.

    ``cpu_steal`` of a state taken with ``since`` (the state after a row) covers the
    whole span since that earlier state; otherwise the short sampling window.
    """

    load_1min: float | None
    disk_busy: float | None
    cpu_steal: float | None = None
    #: the :func:`cpu_ticks` reading at the end of the sample (not written to tables)
    ticks: tuple[int, int] | None = dataclasses.field(default=None, repr=False, compare=False)

    @classmethod
    def now(cls, since: "MachineState | None" = None) -> "MachineState":
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
        # stolen share over the whole span since ``since``, else over the disk's sampling window
        start = since.ticks if since is not None and since.ticks is not None else cpu_ticks()
        disk = disk_busy_share()
        end = cpu_ticks()
        return cls(load_1min=load, disk_busy=disk, cpu_steal=steal_share(start, end), ticks=end)

    def as_dict(self) -> dict:
        return {"load_1min": self.load_1min, "disk_busy": self.disk_busy, "cpu_steal": self.cpu_steal}

    def __str__(self) -> str:
        load = "n/a" if self.load_1min is None else f"{self.load_1min:.2f}"
        disk = "n/a" if self.disk_busy is None else f"{self.disk_busy:.0%}"
        steal = "n/a" if self.cpu_steal is None else f"{self.cpu_steal:.0%}"
        return f"load {load}, disk busy {disk}, CPU stolen by the host {steal}"


class busy_core:
    """Context manager: another process spins on one core while the block runs.

    The spinner is started in a session of its own (``start_new_session``), as another
    user's job would be: Linux's session autogrouping then shares the cores between
    that session and ours, not between threads, so a benchmark's extra threads cannot
    out-vote it.  It is killed and reaped on exit, also when the block fails.

    Nested blocks share the outermost spinner: a row measured "with one core busy"
    inside a whole run with one core busy (``python -m benchmarks --busy-core``)
    still has one busy core, not two.
    """

    #: what the spinner runs: it spins until its parent is gone, so a benchmark killed by a
    #: signal (``timeout``), which cannot run ``__exit__``, leaves no spinner behind
    CODE = "import os\nparent = os.getppid()\nwhile os.getppid() == parent:\n    pass\n"

    #: the spinner of the outermost block running now (None when no block runs)
    active: "subprocess.Popen | None" = None

    def __enter__(self) -> "busy_core":
        if busy_core.active is not None and busy_core.active.poll() is None:
            self.proc, self.owner = busy_core.active, False
            return self
        self.owner = True
        self.proc = subprocess.Popen([sys.executable, "-c", self.CODE], start_new_session=True,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        # the interpreter's start-up is not yet a busy core: wait until it runs the loop
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline and self.proc.poll() is None:
            ticks = _cpu_ticks(self.proc.pid)
            if ticks is None or ticks >= 5:
                break
            time.sleep(0.02)
        if self.proc.poll() is not None:
            raise RuntimeError(f"the busy-core process ended at once (exit code {self.proc.returncode})")
        busy_core.active = self.proc
        return self

    def __exit__(self, *exc) -> None:
        if not self.owner:
            return
        busy_core.active = None
        self.proc.kill()
        self.proc.wait()


def _cpu_ticks(pid: int) -> int | None:
    """User + system clock ticks a process has used (None when /proc cannot tell)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            fields = fh.read().rsplit(")", 1)[-1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return None

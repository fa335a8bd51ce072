"""Shared measuring tools for the benchmark suite.

Every benchmark module ``benchmarks/bench_*.py`` exposes ``run(size) -> list[Row]``
(``size`` is ``"small"`` or ``"full"``) for the runner (``python -m benchmarks``)
and pytest functions that run the same code once at small size.

Fairness rules: a write is timed to durable bytes (fsync) on both sides; a read
is timed from uncached pages (``posix_fadvise(DONTNEED)`` first) on both sides.
Peak memory is the resident set of a fresh subprocess (``ru_maxrss``).

Rounds: :func:`interleave` times ours and the peer in alternating rounds (the
order rotates each round, so a slow spell of the machine falls on both sides).
Under the runner (``python -m benchmarks``) every interleaved row takes at least
:data:`MIN_ROUNDS_SHORT` rounds when each side's round lasts under a minute and
:data:`MIN_ROUNDS_LONG` otherwise; ``--rounds N`` sets the count outright.  A row
records the 1-minute load average and the disk's busy share (the device holding
the scratch folder, from ``/proc/diskstats``) just before and just after it, the
share of CPU time the host stole for other virtual machines while it ran (from
``/proc/stat``: a busy neighbour that no load average here shows), and
is marked noisy when either side's median is more than :data:`NOISE_MARGIN`
above its minimum.

One core busy: :class:`busy_core` keeps another process (in its own session, as
another user's job) spinning on one core while a block runs; rows that depend on
both cores have a variant measured inside it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from benchmarks._scratch import (  # noqa: F401  (the benchmark modules import them from here)
    drop_page_cache,
    peak_rss_mb,
    raw_read_seconds,
    raw_write_seconds,
    require_free_space,
    scratch_dir,
)
from h5stream.files import fsync_path as fsync_file  # noqa: F401  (the benchmark modules' fsync)

SIZES = ("small", "full")

#: a row is noisy when a side's median exceeds its minimum by more than this share
NOISE_MARGIN = 0.15
#: fewest interleaved rounds when every side's round lasts under :data:`LONG_ROUND_SECONDS`
MIN_ROUNDS_SHORT = 3
#: fewest interleaved rounds for longer rounds
MIN_ROUNDS_LONG = 2
LONG_ROUND_SECONDS = 60.0
#: a noisy row (:func:`is_noisy`) runs more rounds, until it is not noisy any more, up to twice its
#: planned rounds and at most this many in all (the runner only, without ``--rounds``)
MAX_ROUNDS_WHEN_NOISY = 7
#: seconds over which the disk's busy share is sampled before and after a row
DISK_SAMPLE_SECONDS = 0.5


@dataclasses.dataclass
class RoundPolicy:
    """How many rounds :func:`interleave` runs.

    ``rounds`` (``--rounds N``) overrides everything; otherwise, with ``enforce_minimum``
    (the runner), a row runs at least the minimum for its round length; without it (a
    pytest smoke run) the count the benchmark asks for.
    """

    rounds: int | None = None
    enforce_minimum: bool = False

    def count(self, requested: int, first_round_seconds: float) -> int:
        if self.rounds is not None:
            return self.rounds
        if not self.enforce_minimum:
            return max(1, requested)
        floor = MIN_ROUNDS_SHORT if first_round_seconds < LONG_ROUND_SECONDS else MIN_ROUNDS_LONG
        return max(requested, floor)

    def more(self, planned: int, done: int, noisy: bool) -> bool:
        """Whether a row that ran ``done`` of its ``planned`` rounds runs one more: only when it is still
        noisy, under the runner's own round counts, up to ``min(2 * planned, MAX_ROUNDS_WHEN_NOISY)``.

        A disk stall or a burst of another process's work lands on one round of one side and makes
        the row noisy; more rounds give its minimum and its median a chance to be the machine's.
        """
        if not noisy or self.rounds is not None or not self.enforce_minimum:
            return False
        return done < min(2 * planned, MAX_ROUNDS_WHEN_NOISY)


POLICY = RoundPolicy()


def set_round_policy(rounds: int | None = None, enforce_minimum: bool = True) -> None:
    """Set the process-wide round policy (the runner calls this once)."""
    if rounds is not None and rounds < 1:
        raise ValueError(f"rounds must be at least 1, got {rounds}")
    POLICY.rounds = rounds
    POLICY.enforce_minimum = enforce_minimum


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


@dataclasses.dataclass
class Row:
    """One line of the benchmark table.

    ``ratio`` is how many times better ours is than the peer (for times:
    peer / ours; for throughputs: ours / peer).  ``goal`` is the ratio to reach
    (``None`` when the row only reports).  ``lower_is_better`` flips the goal test
    for rows whose ratio must stay *under* the goal (e.g. memory).

    ``goal_sizes`` names the sizes (``"small"``, ``"full"``) the goal applies to: a goal set for
    full size, where fixed costs vanish, says nothing of the small size, whose rows measure fixed
    costs; a row that measures a fixed cost names the small size too (with its own goal where it
    differs).  ``size`` is the size the row was measured at (set by the runner); at a size the goal
    does not name, the row prints its ratio without a verdict (``holds`` None).

    ``busy_goal`` is the goal of a row whose work needs both cores when the row
    was measured while another process kept one core busy (``one_core_busy``, set
    by the runner for ``--busy-core`` runs): the issue's "not slower than the
    serial peer" (1.0) for rows against a single-threaded peer, the quiet goal
    scaled by the share of cores left for rows against a physical limit.  None:
    the row keeps ``goal`` whatever the load.
    """

    benchmark: str
    peer: str
    peer_value: float
    ours: float
    unit: str
    ratio: float
    goal: float | None
    lower_is_better: bool = False
    details: str = ""
    #: medians of the two sides (None when the row is not made of rounds)
    peer_median: float | None = None
    ours_median: float | None = None
    rounds: int | None = None
    noisy: bool = False
    before: MachineState | None = None
    after: MachineState | None = None
    busy_goal: float | None = None
    one_core_busy: bool = False
    #: the sizes the goal (and ``busy_goal``) applies to
    goal_sizes: tuple[str, ...] = ("full",)
    #: the size the row was measured at (None: unknown, e.g. a module's own test; the goal applies)
    size: str | None = None

    def __post_init__(self) -> None:
        unknown = set(self.goal_sizes) - set(SIZES)
        if unknown:
            raise ValueError(f"{self.benchmark}: goal_sizes names unknown sizes {sorted(unknown)}; sizes are {SIZES}")
        self.goal_sizes = tuple(self.goal_sizes)

    @property
    def goal_applies(self) -> bool:
        """Whether the row's goal applies at the size it was measured at."""
        return self.size is None or self.size in self.goal_sizes

    @property
    def applied_goal(self) -> float | None:
        """The goal this row is judged by: None at a size the goal does not name; ``busy_goal`` when
        measured with one core busy and it has one."""
        if not self.goal_applies:
            return None
        if self.one_core_busy and self.busy_goal is not None:
            return self.busy_goal
        return self.goal

    @property
    def holds(self) -> bool | None:
        goal = self.applied_goal
        if goal is None or not np.isfinite(self.ratio):
            return None
        return self.ratio <= goal if self.lower_is_better else self.ratio >= goal

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        for key in ("before", "after"):
            state = getattr(self, key)
            d[key] = None if state is None else state.as_dict()
        d["applied_goal"] = self.applied_goal
        d["holds"] = self.holds
        d["noise_margin"] = NOISE_MARGIN
        return d


@dataclasses.dataclass
class Timing:
    """Seconds of repeated rounds."""

    rounds: list[float]
    #: the machine just before and just after the rounds (set by :func:`interleave`)
    before: MachineState | None = None
    after: MachineState | None = None

    @property
    def min(self) -> float:
        return min(self.rounds)

    @property
    def median(self) -> float:
        return statistics.median(self.rounds)

    @property
    def spread(self) -> float:
        """How far the median lies above the minimum, as a share of the minimum."""
        return self.median / self.min - 1.0 if self.min > 0 else math.inf

    def __str__(self) -> str:
        return f"min {self.min:.3f} s, median {self.median:.3f} s over {len(self.rounds)}"


def is_noisy(*timings: Timing) -> bool:
    """Whether any side's median lies more than :data:`NOISE_MARGIN` above its minimum."""
    return any(t.spread > NOISE_MARGIN for t in timings)


def interleave(
    sides: dict[str, Callable[[], object]],
    rounds: int = MIN_ROUNDS_SHORT,
    *,
    setup: dict[str, Callable[[], object]] | None = None,
    warmup: int = 0,
    self_timed: bool = False,
    log: list[str] | None = None,
) -> dict[str, Timing]:
    """Time every side in alternating rounds; return each side's :class:`Timing`.

    Round ``r`` runs the sides in their given order rotated by ``r`` (two sides:
    AB, BA, AB, ...).  ``setup[name]`` runs untimed before each of that side's
    rounds; ``warmup`` untimed rounds of every side come first.  With
    ``self_timed`` each side returns its own seconds (e.g. a subprocess's wall
    time) instead of being timed here.  The number of rounds follows
    :data:`POLICY` (decided after the first round, whose length it needs); a
    row still noisy after them runs more (:meth:`RoundPolicy.more`).
    ``log`` collects the order the sides ran in (for tests).
    """
    names = list(sides)
    if not names:
        raise ValueError("interleave needs at least one side")
    setup = setup or {}
    unknown = set(setup) - set(names)
    if unknown:
        raise ValueError(f"setup names unknown sides {sorted(unknown)}; sides are {names}")

    def one(name: str) -> float:
        if name in setup:
            setup[name]()
        t0 = time.perf_counter()
        result = sides[name]()
        elapsed = time.perf_counter() - t0
        if log is not None:
            log.append(name)
        return float(result) if self_timed else elapsed

    for _ in range(warmup):
        for name in names:
            one(name)
    before = MachineState.now()
    times: dict[str, list[float]] = {name: [] for name in names}
    r = 0
    total = None
    while total is None or r < total:
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            times[name].append(one(name))
        if total is None:
            total = planned = POLICY.count(rounds, max(t[0] for t in times.values()))
        r += 1
        if r == total and POLICY.more(planned, r, is_noisy(*(Timing(t) for t in times.values()))):
            total += 1
    after = MachineState.now(since=before)
    return {name: Timing(t, before=before, after=after) for name, t in times.items()}


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


def timed_row(benchmark: str, peer: str, peer_time: Timing, ours_time: Timing, goal: float | None,
              details: str = "", *, busy_goal: float | None = None) -> Row:
    """A row comparing two timings: the fastest rounds, ratio peer / ours.

    ``details`` starts with both timings and the ratio of their medians;
    ``details`` given here follows.
    """
    text = f"ours {ours_time}; peer {peer_time}; median ratio {peer_time.median / ours_time.median:.2f}"
    return Row(benchmark=benchmark, peer=peer, peer_value=peer_time.min, ours=ours_time.min, unit="s",
               ratio=peer_time.min / ours_time.min, goal=goal, busy_goal=busy_goal,
               details=f"{text}; {details}" if details else text,
               peer_median=peer_time.median, ours_median=ours_time.median,
               rounds=min(len(peer_time.rounds), len(ours_time.rounds)), noisy=is_noisy(peer_time, ours_time),
               before=ours_time.before or peer_time.before, after=ours_time.after or peer_time.after)


def time_rounds(
    fn: Callable[[], object],
    rounds: int = 3,
    setup: Callable[[], object] | None = None,
    warmup: int = 0,
) -> Timing:
    """Time ``fn`` ``rounds`` times; ``setup`` runs untimed before each round.

    One side alone, for figures without a peer; a comparison uses :func:`interleave`.
    """
    for _ in range(warmup):
        if setup is not None:
            setup()
        fn()
    out = []
    for _ in range(rounds):
        if setup is not None:
            setup()
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return Timing(out)


@contextlib.contextmanager
def checksums_off():
    """Atomic writes made inside record no digests and write no checksum manifest (for the cost figures)."""
    from h5stream.files import atomic

    original = atomic.AtomicFile.__init__

    def without(self, *args, **kwargs):
        original(self, *args, **{**kwargs, "checksums": False})

    atomic.AtomicFile.__init__ = without
    try:
        yield
    finally:
        atomic.AtomicFile.__init__ = original


def paired_ratio(peer: list[float], ours: list[float]) -> float:
    """The median over rounds of ``peer[r] / ours[r]``.

    For two sides that differ by a few percent: each round runs both back to back
    (:func:`interleave`), so a change of the machine's load from one round to the
    next moves both of that round's times and cancels in their ratio, where the
    minimum of each side may come from different rounds, under different load.
    """
    if len(peer) != len(ours) or not peer:
        raise ValueError(f"paired rounds: expected equal, non-zero counts (found {len(peer)} and {len(ours)})")
    return statistics.median(p / o for p, o in zip(peer, ours))


def checksum_cost(on: list[float], off: list[float]) -> str:
    """The checksums' cost from CPU seconds with and without them: min, median and paired median."""
    return (f"{min(on) / min(off) - 1:+.1%} (min), {statistics.median(on) / statistics.median(off) - 1:+.1%} "
            f"(median), {1 / paired_ratio(off, on) - 1:+.1%} (median of the {len(on)} rounds' own ratios)")


def _value(minimum: float, median: float | None, unit: str) -> str:
    if median is None:
        return f"{minimum:.4g} {unit}".strip()
    return f"{minimum:.4g} / {median:.4g} {unit}".strip()


def _states(before: MachineState | None, after: MachineState | None) -> tuple[str, str]:
    def load(s):
        return "?" if s is None or s.load_1min is None else f"{s.load_1min:.1f}"

    def disk(s):
        return "?" if s is None or s.disk_busy is None else f"{s.disk_busy:.0%}"

    return f"{load(before)} > {load(after)}", f"{disk(before)} > {disk(after)}"


def format_table(rows: list[Row], title: str | None = None) -> str:
    """The table: figures as ``min / median``, the ratio of minima, rounds, noise and the
    machine's load and disk busy share before > after each row and the CPU share stolen during it;
    ``title`` is its first line."""
    head = ["benchmark", "peer or limit", "peer min / med", "ours min / med", "ratio", "goal", "holds",
            "rounds", "noisy", "load", "disk busy", "stolen"]
    body = []
    for r in rows:
        applied = r.applied_goal
        goal = "-" if applied is None else (f"<= {applied:.3g}" if r.lower_is_better else f">= {applied:.3g}")
        if applied is not None and applied != r.goal:
            goal += " (1 core)"
        if r.goal is not None and r.size is not None:
            sizes = "+".join(r.goal_sizes) or "no size"
            goal += f" ({sizes})" if r.goal_applies else f" (goal at {sizes})"
        holds = {True: "yes", False: "NO", None: "-"}[r.holds]
        load, disk = _states(r.before, r.after)
        stolen = "?" if r.after is None or r.after.cpu_steal is None else f"{r.after.cpu_steal:.0%}"
        body.append(
            [
                r.benchmark,
                r.peer,
                _value(r.peer_value, r.peer_median, r.unit),
                _value(r.ours, r.ours_median, r.unit),
                f"{r.ratio:.3g}",
                goal,
                holds,
                "-" if r.rounds is None else str(r.rounds),
                "NOISY" if r.noisy else "-",
                load,
                disk,
                stolen,
            ]
        )
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]
    lines = [title] if title else []
    lines.append("  ".join(h.ljust(w) for h, w in zip(head, widths)).rstrip())
    lines.append("  ".join("-" * w for w in widths))
    for b in body:
        lines.append("  ".join(str(x).ljust(w) for x, w in zip(b, widths)).rstrip())
    lines.append(f"(min / median over interleaved rounds; ratio of minima; goal (1 core): the goal of a row whose "
                 f"work needs both cores, measured with one core busy; noisy: a side's median over "
                 f"{NOISE_MARGIN:.0%} above its minimum; load: 1-minute load average, disk busy: share of "
                 f"{DISK_SAMPLE_SECONDS:g} s the disk was busy, each before > after the row; stolen: share of "
                 f"CPU time the host gave to other virtual machines during the row; (small+full): the sizes a "
                 f"goal applies to; at another size the row has no verdict)")
    return "\n".join(lines)


def main(run: Callable[[str], list[Row]]) -> None:
    """``python -m benchmarks.bench_<area> [small|full]``: one module's table, then each row's details."""
    started = time.perf_counter()
    rows = run(sys.argv[1] if len(sys.argv) > 1 else "small")
    print(format_table(rows))
    for row in rows:
        print(f"- {row.benchmark}: {row.details}")
    print(f"({time.perf_counter() - started:.0f} s)")


def write_json(rows: list[Row], path: str | os.PathLike, **meta) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        json.dump({"meta": meta, "rows": [r.as_dict() for r in rows]}, fh, indent=2)

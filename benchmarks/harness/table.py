"""The benchmark table: one :class:`Row` per comparison, its verdict, the printed table and its JSON.

A row's ratio says how many times better ours is than the peer or the physical limit; its goal applies at
the sizes it names (:attr:`Row.goal_sizes`), and with one core busy a row whose work needs both cores is
judged by its one-core goal (:attr:`Row.busy_goal`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from benchmarks.harness.machine import DISK_SAMPLE_SECONDS, MachineState
from benchmarks.harness.rounds import NOISE_MARGIN, Timing, is_noisy

SIZES = ("small", "full")

#: what a row's ratio is taken of (:attr:`Row.ratio_of`) -> how the table names it (the ratio it is, min or med,
#: and for a median where it comes from, as the table's columns ``by`` and ``med of`` say)
RATIO_STATISTICS = {
    "min": "min",             # the two sides' minima over the rounds
    "median": "med, sides",   # the two sides' medians over the rounds
    "rounds": "med, rounds",  # the median of the rounds' own ratios (:func:`benchmarks.harness.paired_ratio`)
    "one": "one",             # a single measurement or count
}
#: where a row's median ratio (:attr:`Row.median_ratio`) comes from -> how the table names it
MEDIAN_SOURCES = {
    "rounds": "rounds",      # the median of the rounds' own ratios, as the row recorded it
    "sides": "sides",        # the ratio of the two sides' medians (rows that did not record their rounds' ratios)
    "one": "one",            # a single measurement: its own median
}
#: the printed table's width: every line of it fits
TABLE_WIDTH = 120


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
    #: the measured quantities behind the row, by name, as a record keeps them (e.g. ``peak_rss_mb``)
    fields: dict = dataclasses.field(default_factory=dict)
    #: the statistic the ratio is taken of, a key of :data:`RATIO_STATISTICS`; None: the minima where the row
    #: has rounds (medians), else one measurement (:attr:`statistic`)
    ratio_of: str | None = None

    def __post_init__(self) -> None:
        unknown = set(self.goal_sizes) - set(SIZES)
        if unknown:
            raise ValueError(f"{self.benchmark}: goal_sizes names unknown sizes {sorted(unknown)}; sizes are {SIZES}")
        if self.ratio_of is not None and self.ratio_of not in RATIO_STATISTICS:
            raise ValueError(f"{self.benchmark}: ratio_of is {self.ratio_of!r}; expected one of "
                             f"{sorted(RATIO_STATISTICS)}")
        self.goal_sizes = tuple(self.goal_sizes)

    @property
    def statistic(self) -> str:
        """The statistic the ratio is taken of (a key of :data:`RATIO_STATISTICS`)."""
        if self.ratio_of is not None:
            return self.ratio_of
        return "one" if self.peer_median is None and self.ours_median is None else "min"

    def _quotient(self, peer: float | None, ours: float | None) -> float | None:
        """``peer`` and ``ours`` as a ratio the way the row's ratio is taken (times better than the peer):
        the way its recorded figures give its ratio, else peer / ours for times and ours / peer for
        throughputs and for rows that must stay under their limit."""
        if peer is None or ours is None or peer == 0 or ours == 0:
            return None
        for a, b in ((self.peer_value, self.ours), (self.peer_median, self.ours_median)):
            if a and b and _close(self.ratio, a / b):
                return peer / ours
            if a and b and _close(self.ratio, b / a):
                return ours / peer
        return ours / peer if self.lower_is_better or "/s" in self.unit else peer / ours

    @property
    def min_ratio(self) -> float:
        """The ratio of the two sides' minima (a single measurement's ratio where the row has no rounds)."""
        if self.statistic == "one":
            return self.ratio
        quotient = self._quotient(self.peer_value, self.ours)
        return self.ratio if quotient is None else quotient

    @property
    def median_ratio(self) -> tuple[float | None, str]:
        """The median ratio and where it comes from (a key of :data:`MEDIAN_SOURCES`): the median of the
        rounds' own ratios where the row recorded it, else the ratio of the two sides' medians, else a single
        measurement's ratio (None where a row of rounds kept no medians)."""
        if self.statistic in ("rounds", "one"):
            return self.ratio, self.statistic
        return self._quotient(self.peer_median, self.ours_median), "sides"

    @property
    def judged_by(self) -> str:
        """Which of the table's ratios the verdict reads: ``min``, ``med`` or ``one``."""
        return {"min": "min", "one": "one"}.get(self.statistic, "med")

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
        d["ratio_of"] = self.statistic
        d["noise_margin"] = NOISE_MARGIN
        return d


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-6 * abs(b)


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


def _value(minimum: float, median: float | None, unit: str) -> str:
    if median is None:
        return f"{minimum:.3g} {unit}".strip()
    return f"{minimum:.3g} / {median:.3g} {unit}".strip()


def _states(before: MachineState | None, after: MachineState | None) -> tuple[str, str]:
    def load(s):
        return "?" if s is None or s.load_1min is None else f"{s.load_1min:.1f}"

    def disk(s):
        return "?" if s is None or s.disk_busy is None else f"{s.disk_busy:.0%}"

    return f"{load(before)} > {load(after)}", f"{disk(before)} > {disk(after)}"


def _goal_text(r: Row) -> str:
    applied = r.applied_goal
    goal = "-" if applied is None else (f"<= {applied:.3g}" if r.lower_is_better else f">= {applied:.3g}")
    if applied is not None and applied != r.goal:
        goal += " (1 core)"
    if r.goal is not None and r.size is not None:
        sizes = "+".join(r.goal_sizes) or "no size"
        goal += f" ({sizes})" if r.goal_applies else f" (goal at {sizes})"
    return goal


def _state_text(r: Row) -> str:
    load, disk = _states(r.before, r.after)
    stolen = "?" if r.after is None or r.after.cpu_steal is None else f"{r.after.cpu_steal:.0%}"
    text = f"load {load.replace(' > ', '>')} disk {disk.replace(' > ', '>')}"
    return text if stolen == "?" else f"{text} stolen {stolen}"


def _name_lines(r: Row, width: int) -> list[str]:
    return textwrap.wrap(f"{r.benchmark}  vs  {r.peer}", width=width, subsequent_indent="      ",
                         break_long_words=True, break_on_hyphens=False) or [r.benchmark]


def format_table(rows: list[Row], title: str | None = None, *, legend: bool = True) -> str:
    """The table, :data:`TABLE_WIDTH` columns wide at most: per row, what is compared with what on its first
    line(s), then its figures (ours and the peer as ``min / median``), its ratio the same way (the ratio of
    the minima, :attr:`Row.min_ratio`, then the median ratio, :attr:`Row.median_ratio`, with where the median
    comes from), its goal, verdict and which of the two ratios the verdict reads, and the machine's state
    (rounds, the load and the disk busy share before > after the row, the CPU share stolen during it);
    ``title`` is its first line, and ``legend`` ends it with what each column means (:func:`table_legend`)."""
    head = ["", "ours min / med", "peer min / med", "ratio min / med", "med of", "goal", "holds", "by", "n",
            "machine"]
    body = []
    for r in rows:
        holds = {True: "yes", False: "NO", None: "-"}[r.holds] + (" NOISY" if r.noisy else "")
        median, source = r.median_ratio
        ratios = (f"{r.ratio:.3g}" if r.statistic == "one" else
                  f"{r.min_ratio:.3g} / {'?' if median is None else f'{median:.3g}'}")
        body.append(["", _value(r.ours, r.ours_median, r.unit), _value(r.peer_value, r.peer_median, r.unit),
                     ratios, MEDIAN_SOURCES[source], _goal_text(r), holds, r.judged_by,
                     "-" if r.rounds is None else str(r.rounds), _state_text(r)])
    states = {cells[-1] for cells in body}
    if len(states) == 1 and title:
        # one machine state for every row: said once, after the title
        title = f"{title}; machine {states.pop()}"
        head, body = head[:-1], [cells[:-1] for cells in body]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]
    widths[0] = 0
    # the columns that fit the width; the others go to a line of their own under them, the same in every row
    cut = len(widths)
    while cut > 2 and sum(widths[:cut]) + 2 * (cut - 1) > TABLE_WIDTH:
        cut -= 1

    indent = max(4, TABLE_WIDTH - sum(widths[cut:]) - 2 * (len(widths) - cut - 1))

    def line(cells: list[str]) -> str:
        first = "  ".join(str(x).ljust(w) for x, w in zip(cells[:cut], widths)).rstrip()
        rest = "  ".join(str(x).ljust(w) for x, w in zip(cells[cut:], widths[cut:])).rstrip()
        return first if not rest else first + "\n" + " " * indent + rest

    lines = textwrap.wrap(title, width=TABLE_WIDTH) if title else []
    lines.append(line(head))
    lines.append("-" * min(TABLE_WIDTH, max(len(x) for x in line(head).splitlines())))
    for r, b in zip(rows, body):
        lines.extend(_name_lines(r, TABLE_WIDTH))
        lines.append(line(b))
    if legend:
        lines.append(table_legend())
    return "\n".join(lines)


def table_legend() -> str:
    """What the columns of :func:`format_table` mean, wrapped to :data:`TABLE_WIDTH` columns."""
    return "\n".join(textwrap.wrap(
        f"Each row: what  vs  the peer or physical limit, then min / median over interleaved rounds. ratio: "
        f"times better than the peer (for a goal of <=, the share of the limit), of the minima / the median "
        f"ratio; med of: where the median ratio comes from: rounds = the median of the rounds' own ratios, "
        f"sides = the ratio of the two sides' medians (runs that did not record their rounds' ratios), "
        f"one = a single measurement (one figure, its own min and median). by: the ratio the verdict (holds) "
        f"reads, min or med, as the run judged it. goal: (1 core) = the goal of a row "
        f"whose work needs both cores, measured with one core busy; (small+full) = the sizes a goal applies "
        f"to (at another size the row has no verdict). NOISY: a side's median over {NOISE_MARGIN:.0%} above "
        f"its minimum. n: rounds. machine: load = 1-minute load average, disk = share of {DISK_SAMPLE_SECONDS:g} s the "
        f"disk was busy, each before > after the row; stolen = share of CPU time the host gave to other "
        f"virtual machines during the row.", width=TABLE_WIDTH))


def format_details(rows: list[Row]) -> str:
    """Each row's details, wrapped to :data:`TABLE_WIDTH` columns."""
    out = []
    for r in rows:
        if r.details and not r.benchmark.endswith("FAILED"):
            out.extend(textwrap.wrap(f"- {r.benchmark}: {r.details}", width=TABLE_WIDTH, subsequent_indent="    ",
                                     break_long_words=True, break_on_hyphens=False))
    return "\n".join(out)


def main(run: Callable[[str], list[Row]], size: str | None = None) -> None:
    """``python -m benchmarks.suite.bench_<area> [small|full]``: one module's table, then each row's details.

    ``size``: the size a module's own argument parser read (default: the first argument, else small).
    """
    started = time.perf_counter()
    rows = run(size or (sys.argv[1] if len(sys.argv) > 1 else "small"))
    print(format_table(rows))
    print(format_details(rows))
    print(f"({time.perf_counter() - started:.0f} s)")


#: environment variable naming the folder a run's tables go to when no path is given
RESULTS_ENV = "H5STREAM_BENCH_RESULTS"


def results_dir() -> Path:
    """Where a run writes its tables when no path is given: ``$H5STREAM_BENCH_RESULTS``, else
    ``h5stream-benchmarks`` in the user's cache folder (``$XDG_CACHE_HOME`` or ``~/.cache``), outside the
    source tree; a table is kept in ``benchmarks/records/`` only when someone copies it there."""
    chosen = os.environ.get(RESULTS_ENV)
    if chosen:
        return Path(chosen)
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "h5stream-benchmarks"


def write_json(rows: list[Row], path: str | os.PathLike, **meta) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        json.dump({"meta": meta, "rows": [r.as_dict() for r in rows]}, fh, indent=2)

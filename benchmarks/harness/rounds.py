"""Rounds: ours and the peer timed in alternating rounds, and when a row is noisy.

:func:`interleave` times the sides in alternating rounds (the order rotates each round, so a slow spell of
the machine falls on both sides).  Under the runner (``python -m benchmarks``) every interleaved row takes
at least :data:`MIN_ROUNDS_SHORT` rounds when each side's round lasts under a minute and
:data:`MIN_ROUNDS_LONG` otherwise (:data:`POLICY`); ``--rounds N`` sets the count outright.  A side is noisy
when its median is more than :data:`NOISE_MARGIN` above its minimum (:func:`is_noisy`); a noisy row runs
more rounds.  Costs of a few percent (the checksums') are the median of each round's own ratio
(:func:`paired_ratio`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import statistics
import time
from collections.abc import Callable

from benchmarks.harness.machine import MachineState

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

"""The units' footprints as evidence of how a ``.cmcr`` stores its frames (:mod:`hdmea.io.frame_order`).

A unit's spike-triggered trough lies at the sorter's sensor (its ``SensorID``)
under the right reading of the stored frames.  :func:`footprint_evidence` tests
the readings a recording's regions admit (:func:`candidate_readings`: the stored
layout ``"col_row"``/``"row_col"``, each with the ``Region.*`` fields as written
or swapped) on the units themselves:

- a unit is a candidate when its sensor lies in a recorded region under some
  reading, in different places under the readings (more than :data:`MAX_DISTANCE`
  electrode apart: units on the diagonal fit every reading and tell nothing), with
  at least :data:`MIN_SPIKES` spikes inside the raw frames; units located under
  every reading come first (they hold a footprint whichever reading is right),
  then those located under some only (a unit whose sensor lies in a region only
  under a wrong reading has nothing there to find), each group by spikes;
- up to :data:`MAX_SPIKES` spikes each are read: :data:`WINDOW` samples around
  the spike, less the mean of the first :data:`BASELINE_SAMPLES`, over the
  neighbourhoods (radius :data:`PATCH_RADIUS`) where the unit lies under each
  reading;
- a unit *has a footprint* when the deepest trough of its averaged windows is
  clear (:func:`_footprint_trough`: :data:`TROUGH_NOISE` times the average's
  noise, :data:`TROUGH_SPIKE_NOISE` times one window's noise in half the unit's
  spikes, :data:`TROUGH_CONTRAST` times the neighbourhoods' median depth, and off
  a side where the neighbourhood was cut); the trough is mapped to the chip under
  each reading, *on target* within :data:`MAX_DISTANCE` electrode (Chebyshev) of
  the unit's ``(row, col)``;
- units are tested in rounds of :data:`MAX_UNITS` until that many have a
  footprint, the counted ones decide (:func:`footprint_verdict`: at least
  :data:`MIN_UNITS` units and a margin of :data:`MARGIN` between the two best
  readings' fractions on target), or :data:`MAX_TESTED` were tested: a unit
  without a footprint does not take the slot of one that has one.

Only those windows are read: one read of ``WINDOW`` frames of a region per spike
and region (the neighbourhoods are cut from it), before any pass over the whole
raw data, :data:`READ_DEPTH` of them in flight at once where the region's rows lie
in plain runs of the file (the reads are small and scattered: their cost is the
disk's latency).  A recording that decides in the first round reads at most
``MAX_UNITS x MAX_SPIKES`` windows; one that needs every round, three times that.

:func:`image_evidence` runs the same test on finished electrical images (chip
``(window, 65, 65)`` arrays) against their units' positions: ``hdmea migrate``
uses it on archives written by the original pipeline.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from hdmea.io.mcs import GRID_SIZE

__all__ = ["FootprintEvidence", "Reading", "READINGS", "candidate_readings", "footprint_evidence",
           "footprint_verdict", "layout_verdict", "worst_reading", "image_evidence", "reading_name", "MIN_UNITS", "MARGIN", "MIN_SPIKES",
           "MAX_SPIKES", "MAX_UNITS", "MAX_TESTED", "MAX_DISTANCE", "TROUGH_NOISE", "TROUGH_SPIKE_NOISE",
           "TROUGH_CONTRAST"]

#: Units with a footprint needed before the footprints decide.
MIN_UNITS = 4
#: The two readings' fractions of units on target must differ by at least this much.
MARGIN = 0.5
#: Spikes inside the raw frames a unit needs to be tested.
MIN_SPIKES = 5
#: Spikes averaged per unit (spread evenly over the unit's usable spikes).
MAX_SPIKES = 12
#: Units with a footprint counted at most.
MAX_UNITS = 16
#: Units tested at most, in rounds of :data:`MAX_UNITS`, while the counted ones do not decide: a unit
#: without a footprint (one located only under a wrong reading, or silent in the raw frames) does not
#: take a slot of the ones that can.
MAX_TESTED = 3 * MAX_UNITS
#: A trough this many electrodes (Chebyshev) from the unit's sensor is on target.
MAX_DISTANCE = 1
#: Radius of the neighbourhood cut around each candidate sensor (one read of the region's frames
#: serves them all, so a wider one costs arithmetic only): wide enough that a footprint of a few
#: electrodes' spread does not fill it.
PATCH_RADIUS = 4
#: Samples read around a spike at t: [t + WINDOW[0], t + WINDOW[1]).
WINDOW = (-12, 8)
#: The first samples of the window, before the spike, give each sensor's baseline.
BASELINE_SAMPLES = 8
#: The deepest trough of a unit's averaged windows must be this many times the average's noise (from
#: a robust standard deviation of the windows' baseline samples over the unit's neighbourhoods) ...
TROUGH_NOISE = 8.0
#: ... at least this many times one window's noise in half the unit's spikes or more: a trough of the
#: unit, not of another unit firing with a few of its spikes.
TROUGH_SPIKE_NOISE = 3.0
#: ... and this many times the median trough depth of its neighbourhoods: a trough peaked in space (a
#: footprint), not a frame-wide swing.  A Gaussian footprint of spread 3 electrodes still gives 2.1.
TROUGH_CONTRAST = 1.5
#: :func:`image_evidence` on finished chip images: the trough against the image's median depth.
IMAGE_TROUGH_CONTRAST = 4.0

#: A way to read a region: the stored frame layout and whether its Region.* fields are swapped.
Reading = tuple  # (order, swapped)
READINGS: tuple[Reading, ...] = (("col_row", False), ("row_col", False), ("col_row", True), ("row_col", True))


def reading_name(reading: Reading) -> str:
    order, swapped = reading
    return order + ("+swapped_fields" if swapped else "")


@dataclasses.dataclass
class FootprintEvidence:
    """What :func:`footprint_evidence` found: units tested and how many were on target under each reading."""

    readings: tuple = ()
    n_units: int = 0
    on_target: dict = dataclasses.field(default_factory=dict)
    n_spikes_max: int = 0
    near_diagonal: int = 0
    too_few_spikes: int = 0
    no_trough: int = 0
    not_recorded: int = 0
    n_tested: int = 0

    def fraction(self, reading) -> float:
        if isinstance(reading, str):
            reading = (reading, False)
        if not self.n_units or reading not in self.on_target:
            return float("nan")
        return self.on_target[reading] / self.n_units

    def skipped_text(self) -> str:
        parts = [(self.too_few_spikes, f"fewer than {MIN_SPIKES} spikes inside the raw frames"),
                 (self.near_diagonal, "a sensor where every reading agrees (near the diagonal)"),
                 (self.no_trough, "no clear trough"), (self.not_recorded, "a sensor in no region")]
        return ", ".join(f"{n} with {what}" for n, what in parts if n)


@dataclasses.dataclass(frozen=True)
class _Region:
    name: str
    shape: tuple[int, int, int]
    fields: tuple  # 1-based (left, top, right, bottom) as stored

    def fits(self, reading: Reading) -> bool:
        from hdmea.io.cmcr_meta import orders_fitting_fields

        order, swapped = reading
        return order in orders_fitting_fields(self._fields(swapped), self.shape)

    def _fields(self, swapped: bool):
        from hdmea.io.cmcr_meta import swap_region_fields

        return swap_region_fields(self.fields) if swapped else self.fields

    def offset(self, reading: Reading) -> tuple[int, int]:
        left, top, _r, _b = self._fields(reading[1])
        return top - 1, left - 1

    def locate(self, row: int, col: int, reading: Reading) -> tuple[int, int] | None:
        """Stored (axis 1, axis 2) index of chip (row, col) under ``reading``, None when outside."""
        top, left = self.offset(reading)
        r, c = row - top, col - left
        i, j = (c, r) if reading[0] == "col_row" else (r, c)
        return (i, j) if 0 <= i < self.shape[1] and 0 <= j < self.shape[2] else None

    def to_chip(self, i: int, j: int, reading: Reading) -> tuple[int, int]:
        top, left = self.offset(reading)
        return (top + j, left + i) if reading[0] == "col_row" else (top + i, left + j)


def regions_of(cmcr) -> list[_Region]:
    return [_Region(name, shape, fields) for name, shape, fields in cmcr.stored_regions()]


def candidate_readings(regions: list[_Region]) -> list[Reading]:
    """The readings every region's shape fits, without two that place every region the same way."""
    out, seen = [], set()
    for reading in READINGS:
        if not all(r.fits(reading) for r in regions):
            continue
        key = (reading[0], tuple(r.offset(reading) for r in regions))
        if key not in seen:
            seen.add(key)
            out.append(reading)
    return out


def _locate(regions: list[_Region], row: int, col: int, reading: Reading):
    for k, region in enumerate(regions):
        ij = region.locate(row, col, reading)
        if ij is not None:
            return k, ij
    return None


def footprint_evidence(cmcr, positions: Sequence[tuple[int, int]], spike_times: Sequence[np.ndarray], *,
                       readings: Sequence[Reading] | None = None, max_units: int = MAX_UNITS,
                       max_spikes: int = MAX_SPIKES, max_tested: int = MAX_TESTED) -> FootprintEvidence:
    """Test ``readings`` (default: the ones the shapes allow) on the units' spike-triggered troughs.

    ``positions``: each unit's 0-based chip ``(row, col)``; ``spike_times``: its spikes
    as sample indices of the raw frames.  Units located under every reading come
    first (they hold a footprint whichever reading is right), then those located
    under some only (a unit whose sensor lies in a region under a wrong reading
    only has nothing there to find); each group by usable spikes.  They are tested
    in rounds of ``max_units`` until ``max_units`` of them have a footprint, the
    counted ones decide (:func:`footprint_verdict`) or ``max_tested`` were tested.
    Reads only the windows needed (see the module docstring).
    """
    regions = regions_of(cmcr)
    readings = tuple(candidate_readings(regions) if readings is None else readings)
    evidence = FootprintEvidence(readings=readings, on_target={r: 0 for r in readings})
    if not regions or len(readings) < 2:
        return evidence
    n_frames = min(r.shape[0] for r in regions)
    w0, w1 = WINDOW
    candidates = []
    for u, ((row, col), times) in enumerate(zip(positions, spike_times)):
        where = {reading: _locate(regions, int(row), int(col), reading) for reading in readings}
        located = [w for w in where.values() if w is not None]
        if not located:
            evidence.not_recorded += 1
            continue
        if len(located) == len(readings) and all(
                k == located[0][0] and max(abs(i - located[0][1][0]), abs(j - located[0][1][1])) <= MAX_DISTANCE
                for k, (i, j) in located):
            evidence.near_diagonal += 1
            continue
        times = np.asarray(times, dtype=np.int64)
        usable = times[(times + w0 >= 0) & (times + w1 <= n_frames)]
        if usable.size < MIN_SPIKES:
            evidence.too_few_spikes += 1
            continue
        candidates.append((len(located) < len(readings), -usable.size, u, sorted(set(located)), usable))
    candidates.sort(key=lambda c: c[:3])
    datasets = [cmcr.h5[r.name] for r in regions]
    tested = 0
    while tested < min(len(candidates), max_tested) and evidence.n_units < max_units:
        batch = candidates[tested:min(len(candidates), max_tested, tested + max_units - evidence.n_units)]
        tested += len(batch)
        _test_units(cmcr, regions, datasets, positions, batch, readings, max_spikes, evidence)
        if footprint_verdict(evidence)[0]:
            break
    evidence.n_tested = tested
    return evidence


def _test_units(cmcr, regions, datasets, positions, batch, readings, max_spikes, evidence) -> None:
    """Average ``batch``'s windows over their neighbourhoods and tally the units with a footprint."""
    w0, w1 = WINDOW
    chosen, stacks, reads = [], [], []
    for *_rank, u, places, usable in batch:
        pick = usable[np.unique(np.linspace(0, usable.size - 1, min(max_spikes, usable.size)).round().astype(int))]
        patches = []
        for k, (i, j) in places:
            shape = regions[k].shape
            i0, i1 = max(0, i - PATCH_RADIUS), min(shape[1], i + PATCH_RADIUS + 1)
            j0, j1 = max(0, j - PATCH_RADIUS), min(shape[2], j + PATCH_RADIUS + 1)
            reads += [(int(t), len(stacks), s, k, i0, i1, j0, j1) for s, t in enumerate(pick)]
            patches.append((k, i0, j0, len(stacks)))
            stacks.append(np.zeros((pick.size, w1 - w0, i1 - i0, j1 - j0), dtype=np.float32))
        chosen.append((u, int(pick.size), patches))
    reads.sort(key=lambda r: (r[0], r[3]))
    windows = _read_windows(cmcr, regions, datasets, sorted({(t, k) for t, _slot, _s, k, *_ in reads}))
    for t, slot, s, k, i0, i1, j0, j1 in reads:
        # one read of the region's frames serves every neighbourhood of this spike
        x = windows[(t, k)][:, i0:i1, j0:j1].astype(np.float32)
        stacks[slot][s] = x - x[:BASELINE_SAMPLES].mean(axis=0)
    for u, n_spikes, patches in chosen:
        found = _footprint_trough([(k, i0, j0, stacks[slot]) for k, i0, j0, slot in patches],
                                 [regions[k].shape for k, *_ in patches])
        if found is None:
            evidence.no_trough += 1
            continue
        k, i0, j0, di, dj = found
        evidence.n_units += 1
        evidence.n_spikes_max = max(evidence.n_spikes_max, n_spikes)
        row, col = positions[u]
        for reading in readings:
            r, c = regions[k].to_chip(i0 + int(di), j0 + int(dj), reading)
            evidence.on_target[reading] += max(abs(r - row), abs(c - col)) <= MAX_DISTANCE


def _footprint_trough(patches, shapes):
    """``(region, i0, j0, di, dj)`` of a unit's trough in its neighbourhoods, None when it has no clear one.

    ``patches``: ``(region, i0, j0, windows)``, the windows ``(spikes, samples, h, w)``
    less each spike's baseline.  The deepest trough of the average (from 4 samples
    before the spike on) counts when it is :data:`TROUGH_NOISE` times the average's
    noise, :data:`TROUGH_CONTRAST` times the neighbourhoods' median depth, its
    sensor and sample are at least :data:`TROUGH_SPIKE_NOISE` times one window's
    noise deep in half the unit's spikes or more (a trough of the unit, not of
    another unit that fired with a few of its spikes), and it lies off the sides
    where the neighbourhood was cut out of its region (there the deepest point
    may lie outside: the edge of a footprint centred elsewhere).  ``shapes``: the
    stored shape of each patch's region.
    """
    n = patches[0][3].shape[0]
    baseline = np.concatenate([w[:, :BASELINE_SAMPLES].ravel() for *_, w in patches])
    noise = 1.4826 * float(np.median(np.abs(baseline)))  # of one window; the average's is noise / sqrt(n)
    means = [(k, i0, j0, w[:, BASELINE_SAMPLES - 4:].mean(axis=0)) for k, i0, j0, w in patches]
    depths = [-m.min(axis=0) for *_, m in means]
    best = int(np.argmax([d.max() for d in depths]))
    k, i0, j0, mean = means[best]
    di, dj = np.unravel_index(int(np.argmax(depths[best])), depths[best].shape)
    trough = float(depths[best][di, dj])
    sample = int(np.argmin(mean[:, di, dj])) + BASELINE_SAMPLES - 4
    per_spike = -np.median(patches[best][3][:, sample, di, dj])
    every = np.concatenate([d.ravel() for d in depths])
    h, w = mean.shape[1:]
    shape = shapes[best]
    on_cut_side = ((di == 0 and i0 > 0) or (di == h - 1 and i0 + h < shape[1])
                   or (dj == 0 and j0 > 0) or (dj == w - 1 and j0 + w < shape[2]))
    if not on_cut_side and (trough > TROUGH_NOISE * noise / math.sqrt(n) and trough > TROUGH_CONTRAST * float(np.median(every))
            and per_spike > TROUGH_SPIKE_NOISE * noise):
        return k, i0, j0, di, dj
    return None


def footprint_verdict(evidence: FootprintEvidence) -> tuple[bool, list, float]:
    """``(clear, readings ranked by their fraction on target, margin of the first over the second)``.

    Clear: at least :data:`MIN_UNITS` units counted and a margin of at least :data:`MARGIN`.
    """
    readings = list(evidence.readings)
    fractions = {r: evidence.fraction(r) for r in readings}
    ranked = sorted(readings, key=lambda r: -fractions[r] if np.isfinite(fractions[r]) else 0.0)
    margin = (fractions[ranked[0]] - fractions[ranked[1]]) if len(ranked) > 1 and evidence.n_units else 0.0
    return evidence.n_units >= MIN_UNITS and margin >= MARGIN, ranked, margin


def layout_verdict(evidence: FootprintEvidence, ranked: list) -> tuple[Reading | None, float]:
    """The reading to take when the two best readings share their stored layout, and that layout's margin.

    Where a region lies within an electrode or two of where its swapped ``Region.*`` fields would put it
    (a square region next to the diagonal), the right layout's two field readings both find the units on
    target: their margin is near 0, yet they agree on the layout, and the other layout's best reading
    scores far below.  Returns ``(reading, margin)``: the layout's reading with the fields as written
    where it scores as well as the swapped one (else the better one), and the margin of the layout's
    best over the other layout's best; ``(None, 0.0)`` when the two best readings differ in layout or
    fewer than :data:`MIN_UNITS` units were counted.  The layout is clear when the margin is at least
    :data:`MARGIN`.
    """
    if evidence.n_units < MIN_UNITS or len(ranked) < 2 or ranked[0][0] != ranked[1][0]:
        return None, 0.0
    order = ranked[0][0]
    best = evidence.fraction(ranked[0])
    others = [evidence.fraction(r) for r in ranked if r[0] != order]
    other = max((f for f in others if np.isfinite(f)), default=0.0)
    as_written = (order, False)
    reading = as_written if as_written in ranked and evidence.fraction(as_written) >= best else ranked[0]
    return reading, best - other


def worst_reading(evidence: FootprintEvidence, reading: Reading) -> bool:
    """True when the footprints score ``reading`` strictly below the best of the readings tested and no
    reading lower: a fallback must not take it (readings all alike, or no units, are no evidence)."""
    fractions = [evidence.fraction(r) for r in evidence.readings]
    fractions = [f for f in fractions if np.isfinite(f)]
    own = evidence.fraction(reading)
    if not evidence.n_units or not fractions or not np.isfinite(own):
        return False
    return own < max(fractions) and own <= min(fractions)


#: Windows read at once: the decision's reads are small and scattered, so its time is the disk's
#: latency; with this many in flight it is paid about once per batch instead of once per window.
READ_DEPTH = 32


def _read_windows(cmcr, regions, datasets, keys):
    """``{(t, k): frames [t + WINDOW[0], t + WINDOW[1]) of region k}`` for ``keys`` (time order).

    A region stored as plain runs of rows (:func:`h5stream.kernels.direct_rows.open_direct_rows`)
    is read with :data:`READ_DEPTH` reads in flight, straight from the disk; any other
    through h5py, one window after the other.
    """
    import concurrent.futures

    from h5stream.kernels.direct_rows import open_direct_rows

    w0, w1 = WINDOW
    direct = {}
    try:
        for k in sorted({k for _t, k in keys}):
            with cmcr.guard(regions[k].name):
                reader = open_direct_rows(datasets[k], depth=1)
            if reader is not None:
                direct[k] = reader

        def read(key):
            t, k = key
            with cmcr.guard(regions[k].name):
                if k in direct:
                    reader = direct[k]
                    return np.array(reader.read(t + w0, t + w1, reader.buffer(w1 - w0)))
                return datasets[k][t + w0:t + w1]

        out = {key: read(key) for key in keys if key[1] not in direct}
        concurrent_keys = [key for key in keys if key[1] in direct]
        if concurrent_keys:
            with concurrent.futures.ThreadPoolExecutor(min(READ_DEPTH, len(concurrent_keys)),
                                                       thread_name_prefix="frame-order-read") as pool:
                out.update(zip(concurrent_keys, pool.map(read, concurrent_keys)))
        return out
    finally:
        for reader in direct.values():
            reader.close()


def image_evidence(images, positions: Sequence[tuple[int, int]], n_spikes: Sequence[int] | None = None,
                   *, min_spikes: int = 20) -> FootprintEvidence:
    """The footprint test on finished chip images ``(window, 65, 65)``: on target as stored (``"col_row"`` slot,
    meaning the image's ``(row, col)``) and transposed (``"row_col"`` slot, meaning ``(col, row)``).

    Units near the diagonal, with fewer than ``min_spikes`` spikes (when ``n_spikes``
    is given), or without a clear trough (the image's deepest value at least
    :data:`IMAGE_TROUGH_CONTRAST` times its median depth) are not counted.
    """
    as_stored, transposed = ("col_row", False), ("row_col", False)
    evidence = FootprintEvidence(readings=(as_stored, transposed), on_target={as_stored: 0, transposed: 0})
    for u, (image, (row, col)) in enumerate(zip(images, positions)):
        if not (0 <= row < GRID_SIZE and 0 <= col < GRID_SIZE):
            evidence.not_recorded += 1
            continue
        if abs(row - col) <= MAX_DISTANCE:
            evidence.near_diagonal += 1
            continue
        if n_spikes is not None and n_spikes[u] < min_spikes:
            evidence.too_few_spikes += 1
            continue
        image = np.asarray(image, dtype=np.float64)
        depth = -np.where(np.isfinite(image), image, 0.0).min(axis=0)  # not recorded: no trough
        r, c = np.unravel_index(int(np.argmax(depth)), depth.shape)
        floor = float(np.median(np.abs(depth)))
        if not depth[r, c] > IMAGE_TROUGH_CONTRAST * floor:
            evidence.no_trough += 1
            continue
        evidence.n_units += 1
        evidence.on_target[as_stored] += max(abs(r - row), abs(c - col)) <= MAX_DISTANCE
        evidence.on_target[transposed] += max(abs(r - col), abs(c - row)) <= MAX_DISTANCE
    return evidence

"""Which way round a ``.cmcr`` stores its frames, decided per recording from the data.

A stored frame of ``Acquisition/Sensor Data/SensorData {roi} {chunk}`` is either
``[col - Region.Left, row - Region.Top]`` (``"col_row"``, the layout the vendor's
reader documents) or ``[row - Region.Top, col - Region.Left]`` (``"row_col"``,
what the original lab pipeline assumed).  The public evidence disagrees and no
real file is public, so with ``sensor_axis_order="auto"`` (the default) each
recording is decided from its own data, in this order:

1. **shape** (:meth:`hdmea.io.cmcr.CmcrFile.orders_by_shape`): where a region's
   stored shape fits only one reading of its ``Region.*`` fields (a non-square
   region), that reading;
2. **footprints** (:func:`footprint_evidence`): a unit's spike-triggered trough
   lies at the sorter's sensor (its ``SensorID``) under the right reading.  For
   up to :data:`MAX_UNITS` units whose sensor lies in different places under the
   readings (more than :data:`MAX_DISTANCE` electrode apart: units on the diagonal
   fit both readings and tell nothing), up to :data:`MAX_SPIKES` spikes each (at least
   :data:`MIN_SPIKES` inside the raw frames) are averaged over the two
   neighbourhoods (radius :data:`PATCH_RADIUS`) where the unit lies under either
   reading: raw counts from :data:`WINDOW` samples around the spike, minus the
   mean of the first :data:`BASELINE_SAMPLES` of them.  The deepest trough of the
   two neighbourhoods is mapped to the chip under each reading; a unit counts
   (has a footprint) when that trough is at least :data:`TROUGH_CONTRAST` times
   the median trough depth of the neighbourhoods.  A reading is *on target* for a
   unit when the trough lies within :data:`MAX_DISTANCE` electrode (Chebyshev) of
   the unit's ``(row, col)``.  The footprints decide when at least
   :data:`MIN_UNITS` units have a footprint and the two readings' fractions on
   target differ by at least :data:`MARGIN`;
3. **undecided** (too few units, too little raw data, readings alike): the
   vendor's documented layout :data:`~hdmea.io.cmcr.VENDOR_AXIS_ORDER`, with a
   warning stored in the recording (``pipeline/session_info/warnings``) and shown
   by the run summary, ``hdmea inspect``, ``hdmea report`` and ``hdmea view``.

Only those windows are read: at most ``MAX_UNITS x MAX_SPIKES`` reads of
``WINDOW`` frames of a region (one per spike and region; the neighbourhoods are
cut from it), before any pass over the whole raw data, :data:`READ_DEPTH` of them
in flight at once where the region's rows lie in plain runs of the file (the
reads are small and scattered: their cost is the disk's latency).  ``"col_row"``/``"row_col"`` force a reading
(``decided_by = "forced"``).

The decision and its evidence are stored in the recording at
:data:`FRAME_ORDER_METADATA` (:meth:`FrameOrderDecision.as_record`).

:func:`image_evidence` runs the same test on finished electrical images (chip
``(window, 65, 65)`` arrays) against their units' positions: ``hdmea migrate``
uses it on archives written by the original pipeline.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Sequence

import numpy as np

from hdmea.io.cmcr import AUTO, SENSOR_AXIS_ORDERS, VENDOR_AXIS_ORDER
from hdmea.io.mcs import GRID_SIZE

__all__ = ["FrameOrderDecision", "FootprintEvidence", "decide_frame_order", "footprint_evidence", "image_evidence",
           "settle_frame_order", "record_frame_order", "stored_frame_order", "FRAME_ORDER_METADATA",
           "MIN_UNITS", "MARGIN", "MIN_SPIKES", "MAX_SPIKES", "MAX_UNITS", "MAX_DISTANCE", "TROUGH_CONTRAST"]

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

#: Where a recording stores the decision and its evidence.
FRAME_ORDER_METADATA = "metadata/frame_order"
#: Units with a footprint needed before the footprints decide.
MIN_UNITS = 4
#: The two readings' fractions of units on target must differ by at least this much.
MARGIN = 0.5
#: Spikes inside the raw frames a unit needs to be tested.
MIN_SPIKES = 5
#: Spikes averaged per unit (spread evenly over the unit's usable spikes).
MAX_SPIKES = 12
#: Units tested at most (those with the most usable spikes first).
MAX_UNITS = 16
#: A trough this many electrodes (Chebyshev) from the unit's sensor is on target.
MAX_DISTANCE = 1
#: Radius of the neighbourhood read around each candidate sensor.
PATCH_RADIUS = 2
#: Samples read around a spike at t: [t + WINDOW[0], t + WINDOW[1]).
WINDOW = (-12, 8)
#: The first samples of the window, before the spike, give each sensor's baseline.
BASELINE_SAMPLES = 8
#: The deepest trough must be this many times the neighbourhoods' median trough depth.
TROUGH_CONTRAST = 4.0

_LAYOUT = {"col_row": "[col, row]", "row_col": "[row, col]"}


@dataclasses.dataclass(frozen=True)
class FrameOrderDecision:
    """How a recording's stored frames are read, what decided it and the evidence.

    ``decided_by``: ``"forced"`` (the setting named the order), ``"shape"`` (a
    region's stored shape fits only one reading), ``"footprints"`` or
    ``"undecided"`` (the vendor's layout, with a warning).  ``fraction_col_row`` /
    ``fraction_row_col``: fraction of the ``n_units`` tested units whose trough is on
    target under each reading (NaN when the footprints were not tested).
    """

    order: str
    decided_by: str
    setting: str = AUTO
    n_units: int = 0
    fraction_col_row: float = float("nan")
    fraction_row_col: float = float("nan")
    n_spikes_per_unit: int = 0
    reason: str = ""
    source: str = ""
    swapped_fields: bool = False
    fractions: str = ""

    @property
    def undecided(self) -> bool:
        return self.decided_by == "undecided"

    def as_record(self) -> dict:
        """Plain values, stored at :data:`FRAME_ORDER_METADATA`."""
        return {
            "sensor_axis_order": self.order, "decided_by": self.decided_by, "setting": self.setting,
            "n_units": int(self.n_units), "fraction_col_row": float(self.fraction_col_row),
            "fraction_row_col": float(self.fraction_row_col), "n_spikes_per_unit": int(self.n_spikes_per_unit),
            "reason": self.reason, "source": self.source, "swapped_fields": bool(self.swapped_fields),
            "fractions": self.fractions, "min_units": MIN_UNITS, "margin": MARGIN,
            "min_spikes": MIN_SPIKES, "max_spikes_per_unit": MAX_SPIKES, "max_units": MAX_UNITS,
            "max_distance": MAX_DISTANCE, "default": VENDOR_AXIS_ORDER,
        }

    @classmethod
    def from_record(cls, record: dict) -> FrameOrderDecision:
        def value(key, default):
            v = record.get(key, default)
            v = v.item() if hasattr(v, "item") else v
            return v.decode() if isinstance(v, bytes) else v

        return cls(order=str(value("sensor_axis_order", VENDOR_AXIS_ORDER)),
                   decided_by=str(value("decided_by", "undecided")), setting=str(value("setting", AUTO)),
                   n_units=int(value("n_units", 0)), fraction_col_row=float(value("fraction_col_row", math.nan)),
                   fraction_row_col=float(value("fraction_row_col", math.nan)),
                   n_spikes_per_unit=int(value("n_spikes_per_unit", 0)), reason=str(value("reason", "")),
                   source=str(value("source", "")), swapped_fields=bool(value("swapped_fields", False)),
                   fractions=str(value("fractions", "")))

    def summary(self) -> str:
        """One line for a person: the reading, what decided it and the evidence."""
        text = f"frames read as {_LAYOUT.get(self.order, self.order)} ({self.order}), {self.decided_by}"
        if self.swapped_fields:
            text += " (Region.* fields swapped)"
        if self.n_units:
            text += f": {self.n_units} units tested, on target {self.fractions}"
        if self.reason:
            text += f"; {self.reason}"
        return text

    def warning_text(self, recording: str) -> str:
        if self.swapped_fields:
            return (f"{recording}: the raw file's Region.* fields are swapped (Left/Right hold the rows, Top/Bottom "
                    f"the columns); the units' footprints decided the frames are {_LAYOUT[self.order]} "
                    f"({self.fractions}); the regions were placed accordingly")
        return (f"{recording}: the raw frames' order could not be decided from the data ({self.reason}); read as "
                f"the vendor's documented {_LAYOUT[VENDOR_AXIS_ORDER]} ({VENDOR_AXIS_ORDER}), so electrical images "
                f"may be mirrored across the diagonal; if they are, rerun with sensor_axis_order='row_col' "
                f"(hdmea run --sensor-axis-order row_col)")


def _pct(x: float) -> str:
    return "n/a" if not np.isfinite(x) else f"{x:.0%}"


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
        left, top, right, bottom = self.fields
        return (top, left, bottom, right) if swapped else (left, top, right, bottom)

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


def _regions_of(cmcr) -> list[_Region]:
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
                       max_spikes: int = MAX_SPIKES) -> FootprintEvidence:
    """Test ``readings`` (default: the ones the shapes allow) on the units' spike-triggered troughs.

    ``positions``: each unit's 0-based chip ``(row, col)``; ``spike_times``: its spikes
    as sample indices of the raw frames.  Reads only the neighbourhoods needed (see
    the module docstring).
    """
    regions = _regions_of(cmcr)
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
        candidates.append((usable.size, u, sorted(set(located)), usable))
    candidates.sort(key=lambda c: (-c[0], c[1]))
    datasets = [cmcr.h5[r.name] for r in regions]
    chosen, sums, reads = [], [], []
    for _n, u, places, usable in candidates[:max_units]:
        pick = usable[np.unique(np.linspace(0, usable.size - 1, min(max_spikes, usable.size)).round().astype(int))]
        patches = []
        for k, (i, j) in places:
            shape = regions[k].shape
            i0, i1 = max(0, i - PATCH_RADIUS), min(shape[1], i + PATCH_RADIUS + 1)
            j0, j1 = max(0, j - PATCH_RADIUS), min(shape[2], j + PATCH_RADIUS + 1)
            reads += [(int(t), len(sums), k, i0, i1, j0, j1) for t in pick]
            patches.append((k, i0, j0, len(sums)))
            sums.append(np.zeros((w1 - w0, i1 - i0, j1 - j0), dtype=np.float64))
        chosen.append((u, int(pick.size), patches))
    reads.sort(key=lambda r: (r[0], r[2]))
    windows = _read_windows(cmcr, regions, datasets, sorted({(t, k) for t, _slot, k, *_ in reads}))
    for t, slot, k, i0, i1, j0, j1 in reads:
        # one read of the region's frames serves every neighbourhood of this spike
        x = windows[(t, k)][:, i0:i1, j0:j1].astype(np.float64)
        sums[slot] += x - x[:BASELINE_SAMPLES].mean(axis=0)
    for u, n_spikes, patches in chosen:
        # depth of the trough, from 4 samples before the spike on
        depths = [(k, i0, j0, -(sums[slot][BASELINE_SAMPLES - 4:] / n_spikes).min(axis=0))
                  for k, i0, j0, slot in patches]
        every = np.concatenate([d.ravel() for *_, d in depths])
        k, i0, j0, depth = depths[int(np.argmax([d.max() for *_, d in depths]))]
        di, dj = np.unravel_index(int(np.argmax(depth)), depth.shape)
        if not depth[di, dj] > TROUGH_CONTRAST * float(np.median(np.abs(every))):
            evidence.no_trough += 1
            continue
        evidence.n_units += 1
        evidence.n_spikes_max = max(evidence.n_spikes_max, n_spikes)
        row, col = positions[u]
        for reading in readings:
            r, c = regions[k].to_chip(i0 + int(di), j0 + int(dj), reading)
            evidence.on_target[reading] += max(abs(r - row), abs(c - col)) <= MAX_DISTANCE
    return evidence


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


def decide_frame_order(cmcr, positions: Sequence[tuple[int, int]], spike_times: Sequence[np.ndarray]
                       ) -> FrameOrderDecision | None:
    """Decide how ``cmcr`` (a :class:`~hdmea.io.cmcr.CmcrFile`) stores its frames and read it that way from now on.

    None when the file has no raw sensor data (nothing to decide).
    """
    source = cmcr.path.name
    regions = _regions_of(cmcr)
    if not regions:
        return None
    setting = cmcr.axis_order_setting
    if setting != AUTO:
        decision = FrameOrderDecision(setting, "forced", setting, source=source)
        cmcr.use_sensor_axis_order(decision.order, decision.decided_by)
        return decision
    by_shape = cmcr.orders_by_shape()  # also refuses shapes that fit no reading
    if all(r.shape[1] == r.shape[2] == 1 for r in regions):
        decision = FrameOrderDecision(VENDOR_AXIS_ORDER, "shape", setting, source=source,
                                      reason="every region is a single sensor: both readings are the same")
        cmcr.use_sensor_axis_order(decision.order, decision.decided_by)
        return decision
    readings = candidate_readings(regions)
    ev = footprint_evidence(cmcr, positions, spike_times, readings=readings)
    fractions = {r: ev.fraction(r) for r in readings}
    common = dict(setting=setting, n_units=ev.n_units, fraction_col_row=ev.fraction("col_row"),
                  fraction_row_col=ev.fraction("row_col"), n_spikes_per_unit=ev.n_spikes_max, source=source,
                  fractions=", ".join(f"{reading_name(r)} {_pct(f)}" for r, f in fractions.items()))
    ranked = sorted(readings, key=lambda r: -fractions[r] if np.isfinite(fractions[r]) else 0.0)
    margin = (fractions[ranked[0]] - fractions[ranked[1]]) if len(ranked) > 1 and ev.n_units else 0.0
    clear = ev.n_units >= MIN_UNITS and margin >= MARGIN
    skipped = ev.skipped_text()
    if clear and (len(by_shape) != 1 or ranked[0] != (by_shape[0], False)):
        order, swapped = ranked[0]
        reason = f"margin {margin:.2f} >= {MARGIN} over {ev.n_units} units (>= {MIN_UNITS} needed)"
        if swapped:
            reason += ("; the Region.* fields are swapped (Left/Right hold the rows): the shape alone "
                       "would have read the frames transposed")
        decision = FrameOrderDecision(order, "footprints", reason=reason, swapped_fields=swapped, **common)
    elif len(by_shape) == 1:
        decision = FrameOrderDecision(by_shape[0], "shape", reason=(
            "a non-square region's stored shape fits only this reading of its Region.* fields"
            + ("; the footprints agree" if clear else "")), **common)
    elif not positions:
        decision = FrameOrderDecision(VENDOR_AXIS_ORDER, "undecided", reason=(
            "no units to test the footprints with (no spike sorting given)"), **common)
    elif ev.n_units < MIN_UNITS:
        decision = FrameOrderDecision(VENDOR_AXIS_ORDER, "undecided", reason=(
            f"{ev.n_units} of {len(positions)} units had a footprint to test, {MIN_UNITS} needed"
            + (f"; not tested: {skipped}" if skipped else "")), **common)
    else:
        decision = FrameOrderDecision(VENDOR_AXIS_ORDER, "undecided", reason=(
            f"the readings are alike: {common['fractions']} of {ev.n_units} units on target, a margin of "
            f"{MARGIN} needed"), **common)
    cmcr.use_sensor_axis_order(decision.order, decision.decided_by, swapped_fields=decision.swapped_fields)
    return decision


def stored_frame_order(target) -> FrameOrderDecision | None:
    """The decision a recording holds at :data:`FRAME_ORDER_METADATA` (None when it has none)."""
    try:
        record = target.get(FRAME_ORDER_METADATA, None)
    except (KeyError, ValueError):
        return None
    return FrameOrderDecision.from_record(record) if isinstance(record, dict) else None


def record_frame_order(target, decision: FrameOrderDecision, recording: str) -> None:
    """Store ``decision`` in the recording; when undecided, log and store its warning."""
    target.put(FRAME_ORDER_METADATA, decision.as_record())
    if decision.undecided or decision.swapped_fields:
        text = decision.warning_text(recording)
        logger.warning(text)
        target.add_warning(text)
    else:
        logger.info("%s: %s", recording, decision.summary())


def settle_frame_order(target, cmcr, recording: str, positions, spike_times) -> FrameOrderDecision | None:
    """The decision for ``cmcr`` in this recording: the stored one when it was made the same way, else a new one.

    A new decision is recorded (:func:`record_frame_order`); ``cmcr`` reads its frames
    the decided way afterwards.
    """
    stored = stored_frame_order(target)
    if (stored is not None and stored.setting == cmcr.axis_order_setting and stored.source == cmcr.path.name
            and stored.order in SENSOR_AXIS_ORDERS):
        cmcr.use_sensor_axis_order(stored.order, stored.decided_by, swapped_fields=stored.swapped_fields)
        return stored
    decision = decide_frame_order(cmcr, positions, spike_times)
    if decision is not None:
        record_frame_order(target, decision, recording)
    return decision


def image_evidence(images, positions: Sequence[tuple[int, int]], n_spikes: Sequence[int] | None = None,
                   *, min_spikes: int = 20) -> FootprintEvidence:
    """The footprint test on finished chip images ``(window, 65, 65)``: on target as stored (``"col_row"`` slot,
    meaning the image's ``(row, col)``) and transposed (``"row_col"`` slot, meaning ``(col, row)``).

    Units near the diagonal, with fewer than ``min_spikes`` spikes (when ``n_spikes``
    is given), or without a clear trough (the image's deepest value at least
    :data:`TROUGH_CONTRAST` times its median depth) are not counted.
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
        if not depth[r, c] > TROUGH_CONTRAST * floor:
            evidence.no_trough += 1
            continue
        evidence.n_units += 1
        evidence.on_target[as_stored] += max(abs(r - row), abs(c - col)) <= MAX_DISTANCE
        evidence.on_target[transposed] += max(abs(r - col), abs(c - row)) <= MAX_DISTANCE
    return evidence

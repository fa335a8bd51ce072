"""Which way round a ``.cmcr`` stores its frames, decided per recording from the data.

A stored frame of ``Acquisition/Sensor Data/SensorData {roi} {chunk}`` is either
``[col - Region.Left, row - Region.Top]`` (``"col_row"``, the layout the vendor's
reader documents) or ``[row - Region.Top, col - Region.Left]`` (``"row_col"``,
what the original lab pipeline assumed).  The public evidence disagrees and no
real file is public, so with ``sensor_axis_order="auto"`` (the default) each
recording is decided from its own data (:func:`decide_frame_order`):

1. **footprints** (:mod:`hdmea.io.frame_footprints`): the units' spike-triggered
   troughs lie at their sensors under the right reading; when they are clear
   (at least :data:`MIN_UNITS` units with a footprint, a margin of at least
   :data:`MARGIN` between the readings' fractions on target), they decide, also
   against the shape: a file whose ``Region.*`` fields are swapped (Left/Right
   holding the rows) is then read with its fields swapped, and says so;
2. **shape** (:meth:`hdmea.io.cmcr.CmcrFile.orders_by_shape`): where a region's
   stored shape fits only one reading of its ``Region.*`` fields as written (a
   non-square region) and the footprints do not point elsewhere, that reading;
3. **undecided**: the shape fits one reading and the footprints point to
   another, not clearly; or neither decides (too few units, too little raw data,
   readings alike).  The shape's reading, else the vendor's documented layout
   :data:`~hdmea.io.cmcr.VENDOR_AXIS_ORDER`, with a warning naming why and the
   other setting, stored in the recording (``pipeline/session_info/warnings``) and
   shown by the run summary, ``hdmea inspect``, ``hdmea report`` and ``hdmea view``.

``"col_row"``/``"row_col"`` force the stored layout (``decided_by = "forced"``),
with the reading of the ``Region.*`` fields the regions' shapes admit
(:func:`hdmea.io.cmcr_meta.fields_swapped_to_fit`; where both fit and place the
regions differently, the footprints choose when clear): a forced setting reads
every file whose shape admits it, so the setting a warning advises always works.

The decision and its evidence are stored in the recording at
:data:`FRAME_ORDER_METADATA` (:meth:`FrameOrderDecision.as_record`).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Sequence

import numpy as np

from hdmea.io.cmcr import AUTO, SENSOR_AXIS_ORDERS, VENDOR_AXIS_ORDER
from hdmea.io.frame_footprints import (  # noqa: F401  (the footprint test's names, re-exported)
    MARGIN,
    MAX_DISTANCE,
    MAX_SPIKES,
    MAX_TESTED,
    MAX_UNITS,
    MIN_SPIKES,
    MIN_UNITS,
    TROUGH_CONTRAST,
    TROUGH_NOISE,
    TROUGH_SPIKE_NOISE,
    FootprintEvidence,
    candidate_readings,
    footprint_evidence,
    footprint_verdict,
    image_evidence,
    layout_verdict,
    worst_reading,
    reading_name,
    regions_of,
)

__all__ = ["FrameOrderDecision", "FootprintEvidence", "decide_frame_order", "footprint_evidence", "image_evidence",
           "settle_frame_order", "record_frame_order", "stored_frame_order", "FRAME_ORDER_METADATA",
           "MIN_UNITS", "MARGIN", "MIN_SPIKES", "MAX_SPIKES", "MAX_UNITS", "MAX_TESTED", "MAX_DISTANCE",
           "TROUGH_NOISE", "TROUGH_SPIKE_NOISE", "TROUGH_CONTRAST"]

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

#: Where a recording stores the decision and its evidence.
FRAME_ORDER_METADATA = "metadata/frame_order"
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
            "max_distance": MAX_DISTANCE, "max_tested": MAX_TESTED, "default": VENDOR_AXIS_ORDER,
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

    def words(self) -> str:
        """How the raw frames were read and what decided it, in a person's words (no field names)."""
        axes = _LAYOUT.get(self.order, self.order)
        if self.decided_by == "footprints":
            units = f"{self.n_units} unit" + ("" if self.n_units == 1 else "s")
            text = f"read as {axes}, which the spike footprints of {units} agree on"
        elif self.decided_by == "undecided":
            whose = ("the vendor's order" if self.order == VENDOR_AXIS_ORDER and not self.swapped_fields
                     else "the reading the spike footprints favour, not clearly")
            text = f"read as {axes} ({whose}): the data could not tell"
        elif self.decided_by == "forced":
            text = f"read as {axes}, as the configuration or --sensor-axis-order says"
        elif self.decided_by == "shape":
            text = f"read as {axes}, the only reading the recorded region's shape allows"
        else:
            text = f"read as {axes}"
        return text + (" (the file's region fields are swapped)" if self.swapped_fields else "")

    def warning_text(self, recording: str) -> str:
        if self.swapped_fields and not self.undecided:
            by = "the units' footprints decided" if self.decided_by == "footprints" else "the forced order reads"
            return (f"{recording}: the raw file's Region.* fields are swapped (Left/Right hold the rows, Top/Bottom "
                    f"the columns); {by} the frames as {_LAYOUT[self.order]} "
                    f"({self.fractions or self.reason}); the regions were placed accordingly")
        # the other order always reads this file: a forced order takes the fields' reading its shape admits
        other = "row_col" if self.order == "col_row" else "col_row"
        whose = "the vendor's documented " if self.order == VENDOR_AXIS_ORDER else ""
        return (f"{recording}: the raw frames' order could not be decided from the data ({self.reason}); read as "
                f"{whose}{_LAYOUT[self.order]} ({self.order}), so electrical images may be mirrored across the "
                f"diagonal; if they are, rerun with sensor_axis_order='{other}' "
                f"(hdmea run --sensor-axis-order {other})")


def _pct(x: float) -> str:
    return "n/a" if not np.isfinite(x) else f"{x:.0%}"



def decide_frame_order(cmcr, positions: Sequence[tuple[int, int]], spike_times: Sequence[np.ndarray]
                       ) -> FrameOrderDecision | None:
    """Decide how ``cmcr`` (a :class:`~hdmea.io.cmcr.CmcrFile`) stores its frames and read it that way from now on.

    None when the file has no raw sensor data (nothing to decide).
    """
    source = cmcr.path.name
    regions = regions_of(cmcr)
    if not regions:
        return None
    setting = cmcr.axis_order_setting
    if setting != AUTO:
        decision = _forced_decision(cmcr, regions, setting, positions, spike_times)
        cmcr.use_sensor_axis_order(decision.order, decision.decided_by, swapped_fields=decision.swapped_fields)
        return decision
    by_shape = cmcr.orders_by_shape()  # also refuses shapes that fit no reading
    if all(r.shape[1] == r.shape[2] == 1 for r in regions):
        decision = FrameOrderDecision(VENDOR_AXIS_ORDER, "shape", setting, source=source,
                                      reason="every region is a single sensor: both readings are the same")
        cmcr.use_sensor_axis_order(decision.order, decision.decided_by)
        return decision
    readings = candidate_readings(regions)
    ev = footprint_evidence(cmcr, positions, spike_times, readings=readings)
    clear, ranked, margin = footprint_verdict(ev)
    agreed, layout_margin = (None, 0.0) if clear else layout_verdict(ev, ranked)
    if agreed is not None and layout_margin >= MARGIN:  # the two best readings share the layout: take it
        clear, margin = True, layout_margin
        ranked = [agreed] + [r for r in ranked if r != agreed]
    else:
        agreed = None
    fractions = {r: ev.fraction(r) for r in readings}
    common = dict(setting=setting, n_units=ev.n_units, fraction_col_row=ev.fraction("col_row"),
                  fraction_row_col=ev.fraction("row_col"), n_spikes_per_unit=ev.n_spikes_max, source=source,
                  fractions=", ".join(f"{reading_name(r)} {_pct(f)}" for r, f in fractions.items()))
    shape = (by_shape[0], False) if len(by_shape) == 1 else None
    # the footprints lean against the shape: more units on target under another reading
    against = shape is not None and ev.n_units and ev.on_target[ranked[0]] > ev.on_target.get(shape, 0)
    skipped = ev.skipped_text()
    counted = f"{ev.n_units} of {len(positions)} units had a footprint ({ev.n_tested} tested)"
    if clear and ranked[0] != shape:
        order, swapped = ranked[0]
        reason = f"margin {margin:.2f} >= {MARGIN} over {ev.n_units} units (>= {MIN_UNITS} needed)"
        if agreed is not None:
            reason = (f"the two best readings both read {order}, a margin of {margin:.2f} >= {MARGIN} over the "
                      f"other layout's best, {ev.n_units} units (>= {MIN_UNITS} needed); the Region.* fields' two "
                      f"readings place the regions within reach of each other and score alike: read "
                      f"{'swapped' if swapped else 'as written'}")
        if swapped:
            reason += ("; the Region.* fields are swapped (Left/Right hold the rows): the shape alone "
                       "would have read the frames transposed")
        decision = FrameOrderDecision(order, "footprints", reason=reason, swapped_fields=swapped, **common)
    elif shape is not None and not against:
        decision = FrameOrderDecision(by_shape[0], "shape", reason=(
            "a non-square region's stored shape fits only this reading of its Region.* fields"
            + ("; the footprints agree" if clear else "")), **common)
    elif shape is not None:
        decision = _fallback(shape, ev, ranked, common, reason=(
            f"the regions' shape fits only {reading_name(shape)} as their Region.* fields are written, but the "
            f"footprints point to {reading_name(ranked[0])} ({common['fractions']} on target; {counted}), not "
            f"clearly: {MIN_UNITS} units and a margin of {MARGIN} needed"))
    elif not positions:
        decision = FrameOrderDecision(VENDOR_AXIS_ORDER, "undecided", reason=(
            "no units to test the footprints with (no spike sorting given)"), **common)
    elif ev.n_units < MIN_UNITS:
        decision = _fallback((VENDOR_AXIS_ORDER, False), ev, ranked, common, reason=(
            f"{counted}, {MIN_UNITS} needed" + (f"; not tested: {skipped}" if skipped else "")))
    else:
        decision = _fallback((VENDOR_AXIS_ORDER, False), ev, ranked, common, reason=(
            f"the readings are alike: {common['fractions']} of {ev.n_units} units on target, a margin of "
            f"{MARGIN} needed"))
    cmcr.use_sensor_axis_order(decision.order, decision.decided_by, swapped_fields=decision.swapped_fields)
    return decision


def _fallback(reading, ev, ranked: list, common: dict, *, reason: str) -> FrameOrderDecision:
    """The undecided decision: ``reading`` (the shape's or the vendor's), unless the footprints score it worst
    of all (:func:`~hdmea.io.frame_footprints.worst_reading`); then their best reading, and the reason says so."""
    if worst_reading(ev, reading) and ranked and ranked[0] != reading:
        best = ranked[0]
        reason += (f"; {reading_name(reading)} is the reading the footprints score worst, so their best, "
                   f"{reading_name(best)}, is read")
        reading = best
    return FrameOrderDecision(reading[0], "undecided", reason=reason, swapped_fields=reading[1], **common)


def _forced_decision(cmcr, regions, setting, positions, spike_times) -> FrameOrderDecision:
    """A forced order, with the reading of the ``Region.*`` fields its shapes admit.

    Where the order fits the regions only with their fields swapped, they are read
    swapped (the forced order reads every file whose shape admits it); where it
    fits both ways and the two place the regions differently, the footprints choose
    when they are clear, else the fields are read as written.
    """
    from hdmea.io.cmcr_meta import fields_swapped_to_fit

    source = cmcr.path.name
    swapped = fields_swapped_to_fit(setting, [(r.fields, r.shape) for r in regions])
    readings = [r for r in candidate_readings(regions) if r[0] == setting]
    if len(readings) < 2 or not positions:
        reason = "the Region.* fields read swapped: only so does the order fit the regions' shape" if swapped else ""
        return FrameOrderDecision(setting, "forced", setting, source=source, swapped_fields=swapped, reason=reason)
    ev = footprint_evidence(cmcr, positions, spike_times, readings=readings)
    clear, ranked, margin = footprint_verdict(ev)
    fractions = ", ".join(f"{reading_name(r)} {_pct(ev.fraction(r))}" for r in readings)
    if clear:
        swapped = ranked[0][1]
        reason = f"Region.* fields read {'swapped' if swapped else 'as written'} by the footprints ({fractions})"
    else:
        reason = f"Region.* fields read as written (the footprints do not tell: {fractions} of {ev.n_units} units)"
    return FrameOrderDecision(setting, "forced", setting, n_units=ev.n_units, fraction_col_row=ev.fraction("col_row"),
                              fraction_row_col=ev.fraction("row_col"), n_spikes_per_unit=ev.n_spikes_max,
                              source=source, swapped_fields=swapped, reason=reason, fractions=fractions)


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


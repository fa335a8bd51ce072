"""Square regions at every offset from the chip's diagonal, frames stored row-major and column-major.

A square region whose top edge lies ``k`` rows below its left edge (``Region.Top = Region.Left + k``) fits
every reading of its ``Region.*`` fields by shape; for small ``k`` the two readings of the fields place it
within an electrode or two of each other, so the right layout's two field readings score alike (a margin
near 0 between the two best readings) while the wrong layout scores far below.  Each file is written by
hand with plain h5py (:mod:`tests.mcs_handmade`) with units planted inside the region (Gaussian footprints,
off the diagonal); the decision must read the planted layout, for ``k = 0 .. SIDE`` (at ``SIDE`` the region
no longer touches the diagonal) and both layouts.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from hdmea.io.cmcr import CmcrFile
from hdmea.io.cmtr import read_units
from hdmea.io.frame_order import decide_frame_order

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.mcs_handmade import Region, sensor_id, write_cmcr, write_cmtr  # noqa: E402

SIDE, LEFT = 14, 12
FRAMES, N_UNITS, N_SPIKES = 500, 6, 14
FS = 20000.0


def _units(region: Region, seed: int, n_units: int = N_UNITS) -> list[tuple[int, int]]:
    """1-based (row, col) of ``n_units`` units inside the region, off the diagonal, spaced apart."""
    rng = np.random.default_rng(seed)
    cells = [(r, c) for r in range(region.top + 1, region.bottom) for c in range(region.left + 1, region.right)
             if abs(r - c) > 2]
    units: list[tuple[int, int]] = []
    for k in rng.permutation(len(cells)):
        r, c = cells[k]
        if all(max(abs(r - r2), abs(c - c2)) >= 4 for r2, c2 in units):
            units.append((r, c))
        if len(units) == n_units:
            break
    assert len(units) == n_units, region
    return units


def _write(tmp_path: Path, k: int, layout: str, seed: int, n_units: int = N_UNITS):
    region = Region(top=LEFT + k, left=LEFT, bottom=LEFT + k + SIDE - 1, right=LEFT + SIDE - 1)
    units = _units(region, seed, n_units)
    rng = np.random.default_rng(seed)
    counts = rng.normal(0.0, 5.0, size=(FRAMES, 65, 65)).astype(np.float32)
    gy, gx = np.mgrid[0:65, 0:65]
    waveform = np.array([-1.0, -0.45, 0.0, 0.2], dtype=np.float32)
    spikes = []
    for row, col in units:
        footprint = 160.0 * np.exp(-((gy - row + 1) ** 2 + (gx - col + 1) ** 2) / (2 * 1.5**2))
        times = np.sort(rng.choice(np.arange(30, FRAMES - 30, 7), size=N_SPIKES, replace=False))
        spikes.append(times)
        for t in times:
            counts[t:t + waveform.size] += waveform[:, None, None] * footprint[None].astype(np.float32)
    cmcr, cmtr = tmp_path / f"k{k}-{layout}.cmcr", tmp_path / f"k{k}-{layout}.cmtr"
    # transposed=True stores [frame, row, col] (row-major: "row_col"); the default [frame, col, row]
    write_cmcr(cmcr, [region], np.rint(counts).astype(np.int32), transposed=layout == "row_col",
               single_factor=1000, factors_as="none")
    write_cmtr(cmtr, [dict(unit_id=1 + i, sensor_id=sensor_id(r, c), row=r, col=c, spikes=s)
                      for i, ((r, c), s) in enumerate(zip(units, spikes))], duration_us=FRAMES * 50)
    return cmcr, cmtr


@pytest.mark.parametrize("layout", ["row_col", "col_row"])
def test_square_region_at_every_offset_from_the_diagonal_reads_the_planted_layout(tmp_path, layout):
    wrong = []
    for k in range(SIDE + 1):
        cmcr_path, cmtr_path = _write(tmp_path, k, layout, seed=100 + k)
        units = read_units(cmtr_path, FS, waveform=False)
        with CmcrFile(cmcr_path) as cmcr:
            decision = decide_frame_order(cmcr, [(u.row - 1, u.col - 1) for u in units],
                                          [u.spike_times for u in units])
            read_as = cmcr.sensor_axis_order
        assert decision is not None
        if decision.order != layout or read_as != layout or decision.swapped_fields:
            wrong.append((k, decision.order, decision.decided_by, decision.fractions, decision.reason))
    assert not wrong, "\n".join(map(str, wrong))


def _decide(cmcr_path, cmtr_path):
    units = read_units(cmtr_path, FS, waveform=False)
    with CmcrFile(cmcr_path) as cmcr:
        decision = decide_frame_order(cmcr, [(u.row - 1, u.col - 1) for u in units], [u.spike_times for u in units])
        return decision, cmcr.sensor_axis_order


def test_too_few_units_never_fall_back_to_the_reading_the_footprints_score_worst(tmp_path):
    """Three units (four decide): undecided, but the vendor's col_row, which finds none of them on target
    while row_col finds them all, is not read; the warning says undecided and why."""
    decision, read_as = _decide(*_write(tmp_path, 1, "row_col", seed=7, n_units=3))
    assert decision.decided_by == "undecided" and decision.n_units == 3
    assert decision.fraction_row_col == 1.0 and decision.fraction_col_row == 0.0
    assert decision.order == read_as == "row_col" and not decision.swapped_fields
    assert "score worst" in decision.reason and "rerun with sensor_axis_order='col_row'" in decision.warning_text("t")


def test_too_few_units_keep_the_vendor_reading_when_it_scores_best(tmp_path):
    decision, read_as = _decide(*_write(tmp_path, 3, "col_row", seed=8, n_units=3))
    assert decision.decided_by == "undecided" and decision.order == read_as == "col_row"
    assert "score worst" not in decision.reason


def test_layout_verdict_and_worst_reading_on_counted_evidence():
    from hdmea.io.frame_footprints import MARGIN, FootprintEvidence, footprint_verdict, layout_verdict, worst_reading

    readings = (("col_row", False), ("row_col", False), ("col_row", True), ("row_col", True))
    ev = FootprintEvidence(readings=readings, n_units=8, on_target=dict(zip(readings, (0, 8, 1, 8))))
    clear, ranked, margin = footprint_verdict(ev)
    assert not clear and margin == 0.0 and {r[0] for r in ranked[:2]} == {"row_col"}
    reading, layout_margin = layout_verdict(ev, ranked)
    assert reading == ("row_col", False) and layout_margin == pytest.approx(7 / 8) and layout_margin >= MARGIN
    assert worst_reading(ev, ("col_row", False)) and not worst_reading(ev, ("col_row", True))
    # the swapped reading is taken only when it scores better than the fields as written
    ev = FootprintEvidence(readings=readings, n_units=8, on_target=dict(zip(readings, (0, 6, 0, 8))))
    assert layout_verdict(ev, footprint_verdict(ev)[1]) == (("row_col", True), pytest.approx(1.0))
    # the two best readings differ in layout: no verdict; all alike: no reading is the worst
    ev = FootprintEvidence(readings=readings, n_units=8, on_target=dict(zip(readings, (7, 8, 0, 0))))
    assert layout_verdict(ev, footprint_verdict(ev)[1]) == (None, 0.0)
    ev = FootprintEvidence(readings=readings, n_units=8, on_target=dict(zip(readings, (4, 4, 4, 4))))
    assert not any(worst_reading(ev, r) for r in readings)
    assert not worst_reading(FootprintEvidence(readings=readings), ("col_row", False))

"""The raw frames' order decided per recording, on files written by hand with plain h5py.

Each layout is written both ways round ([col, row] as the vendor documents, [row, col] as the original
pipeline read it); ``sensor_axis_order="auto"`` must find the order (by shape where the region's shape
fits one reading only, else by the units' footprints) and put each unit's electrical image on its own
sensor: the trough of at least 90% of the units with >= 20 spikes used lies within one electrode of the
unit's (row, col).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from hdmea.errors import RecordingFormatError
from hdmea.io.cmcr import CmcrFile
from hdmea.io.frame_order import FRAME_ORDER_METADATA, MARGIN, MIN_UNITS
from hdmea.pipeline import load_recording
from hdmea.steps.eimage import compute_eimage_sta

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.mcs_handmade import Region, sensor_id, write_cmcr, write_cmtr  # noqa: E402

FRAMES = 3000
SPIKES_PER_UNIT = 24
# 1-based (row, col) of the units, all away from the chip's diagonal
UNITS = [(10, 40), (25, 52), (50, 14), (33, 61), (58, 30), (12, 20), (40, 8), (21, 35)]


def _truth(units, seed):
    """Chip counts (frames, 65, 65) with noise and each unit's footprint at its spikes, and the spikes."""
    rng = np.random.default_rng(seed)
    counts = rng.normal(0.0, 6.0, size=(FRAMES, 65, 65)).astype(np.float32)
    spikes = []
    for row, col in units:
        times = np.sort(rng.choice(np.arange(30, FRAMES - 60, 40), size=SPIKES_PER_UNIT, replace=False))
        spikes.append(times)
        r, c = row - 1, col - 1
        for t in times:
            counts[t, r, c] -= 260
            counts[t + 1, r, c] -= 110
            counts[t + 3, r, c] += 50
            for dr, dc in ((1, 0), (-1, 0), (0, 1), (0, -1)):
                if 0 <= r + dr < 65 and 0 <= c + dc < 65:
                    counts[t, r + dr, c + dc] -= 90
    return np.rint(counts).astype(np.int32), spikes


def _write(tmp_path, regions, units, *, transposed, seed=1, swap_fields=False, zero_based=False, name="hand"):
    counts, spikes = _truth(units, seed)
    cmcr, cmtr = tmp_path / f"{name}.cmcr", tmp_path / f"{name}.cmtr"
    write_cmcr(cmcr, regions, counts, transposed=transposed, single_factor=1000, factors_as="none")
    if swap_fields:
        with h5py.File(cmcr, "r+") as f:
            meta = f["Acquisition/Sensor Data/SensorMeta"][()]
            swapped = meta.copy()
            swapped["Region.Left"], swapped["Region.Top"] = meta["Region.Top"], meta["Region.Left"]
            swapped["Region.Right"], swapped["Region.Bottom"] = meta["Region.Bottom"], meta["Region.Right"]
            f["Acquisition/Sensor Data/SensorMeta"][...] = swapped
    shift = 1 if zero_based else 0
    write_cmtr(cmtr, [dict(unit_id=3 + i, sensor_id=sensor_id(r, c), row=r - shift, col=c - shift, spikes=s)
                      for i, ((r, c), s) in enumerate(zip(units, spikes))], duration_us=FRAMES * 50)
    return cmcr, cmtr


def _run(tmp_path, cmcr, cmtr, **kwargs):
    h5 = tmp_path / "out.h5"
    load_recording(cmcr, cmtr, output_path=h5, waveforms=False, **kwargs)
    result = compute_eimage_sta(h5, **kwargs)
    return h5, result


def _decision(h5):
    with h5py.File(h5, "r") as f:
        g = f[FRAME_ORDER_METADATA]
        out = {k: g[k][()] for k in g}
        out.update(g.attrs)
    return {k: (v.decode() if isinstance(v, bytes) else np.asarray(v).reshape(-1)[0].item()
                if np.ndim(v) <= 1 and not isinstance(v, str) else v) for k, v in out.items()}


def _warnings(h5):
    with h5py.File(h5, "r") as f:
        stored = f["pipeline/session_info/warnings"][()] if "pipeline/session_info/warnings" in f else []
    return [w.decode() if isinstance(w, bytes) else str(w) for w in np.atleast_1d(stored)]


def on_target_fraction(h5, *, min_spikes=20) -> tuple[float, int]:
    """Fraction of units with >= min_spikes used whose image's trough is within one electrode of (row, col)."""
    hits = n = 0
    with h5py.File(h5, "r") as f:
        for u in f["units"]:
            g = f[f"units/{u}/features/eimage_sta"]
            if int(np.asarray(g.attrs["n_spikes_used"]).reshape(-1)[0]) < min_spikes:
                continue
            image = g["data"][()]
            row = int(np.asarray(f[f"units/{u}"].attrs["row"]).reshape(-1)[0]) - 1
            col = int(np.asarray(f[f"units/{u}"].attrs["col"]).reshape(-1)[0]) - 1
            _t, r, c = np.unravel_index(np.argmin(np.where(np.isfinite(image), image, np.inf)), image.shape)
            n += 1
            hits += max(abs(r - row), abs(c - col)) <= 1
    return (hits / n if n else float("nan")), n


ORDERS = [pytest.param(False, id="stored_col_row"), pytest.param(True, id="stored_row_col")]


def _order(transposed):
    return "row_col" if transposed else "col_row"


@pytest.mark.parametrize("transposed", ORDERS)
def test_full_chip_is_decided_by_the_footprints(tmp_path, transposed):
    cmcr, cmtr = _write(tmp_path, [Region(1, 1, 65, 65)], UNITS, transposed=transposed)
    h5, result = _run(tmp_path, cmcr, cmtr)
    d = _decision(h5)
    assert d["sensor_axis_order"] == _order(transposed) and d["decided_by"] == "footprints"
    assert d["n_units"] == len(UNITS) and d["setting"] == "auto"
    right, wrong = (d["fraction_row_col"], d["fraction_col_row"]) if transposed else (
        d["fraction_col_row"], d["fraction_row_col"])
    assert right == 1.0 and wrong == 0.0 and d["margin"] == MARGIN and d["min_units"] == MIN_UNITS
    assert result.frame_order.decided_by == "footprints"
    fraction, n = on_target_fraction(h5)
    assert n == len(UNITS) and fraction >= 0.9
    assert not [w for w in _warnings(h5) if "could not be decided" in w]


@pytest.mark.parametrize("transposed", ORDERS)
def test_non_square_region_with_true_fields_is_decided_by_its_shape(tmp_path, transposed):
    region = Region(top=5, left=6, bottom=62, right=64)  # 58 rows x 59 columns
    cmcr, cmtr = _write(tmp_path, [region], UNITS, transposed=transposed)
    h5, _result = _run(tmp_path, cmcr, cmtr)
    d = _decision(h5)
    assert d["sensor_axis_order"] == _order(transposed) and d["decided_by"] == "shape"
    assert "footprints agree" in d["reason"]
    fraction, n = on_target_fraction(h5)
    assert n == len(UNITS) and fraction >= 0.9


@pytest.mark.parametrize("transposed", ORDERS)
def test_non_square_region_with_swapped_fields_is_placed_by_the_footprints(tmp_path, transposed):
    region = Region(top=5, left=6, bottom=62, right=64)
    cmcr, cmtr = _write(tmp_path, [region], UNITS, transposed=transposed, swap_fields=True)
    h5, _result = _run(tmp_path, cmcr, cmtr)
    d = _decision(h5)
    assert d["sensor_axis_order"] == _order(transposed) and d["decided_by"] == "footprints"
    assert bool(d["swapped_fields"])
    assert any("Region.* fields are swapped" in w for w in _warnings(h5))
    fraction, n = on_target_fraction(h5)
    assert n == len(UNITS) and fraction >= 0.9


@pytest.mark.parametrize("transposed", ORDERS)
def test_two_square_regions(tmp_path, transposed):
    regions = [Region(top=1, left=1, bottom=33, right=33), Region(top=33, left=33, bottom=65, right=65)]
    # units inside either region, away from the diagonal of the chip
    units = [(5, 20), (20, 6), (28, 12), (9, 30), (40, 55), (60, 38), (50, 62), (36, 47)]
    cmcr, cmtr = _write(tmp_path, regions, units, transposed=transposed)
    h5, _result = _run(tmp_path, cmcr, cmtr)
    d = _decision(h5)
    assert d["sensor_axis_order"] == _order(transposed) and d["decided_by"] == "footprints"
    fraction, n = on_target_fraction(h5)
    assert n == len(units) and fraction >= 0.9
    with h5py.File(h5, "r") as f:  # sensors outside both regions are not recorded
        images = [f[f"units/{u}/features/eimage_sta/data"][()] for u in f["units"]]
    assert len(images) == len(units)
    for image in images:
        assert np.isnan(image[:, 0, 40]).all() and np.isnan(image[:, 40, 0]).all()


@pytest.mark.parametrize("transposed", ORDERS)
def test_a_forced_order_reads_several_non_square_regions(tmp_path, transposed):
    regions = [Region(top=1, left=1, bottom=30, right=45), Region(top=36, left=5, bottom=65, right=64)]
    units = [(5, 20), (20, 6), (28, 40), (9, 30), (40, 55), (60, 38), (50, 62), (36, 47)]
    cmcr, cmtr = _write(tmp_path, regions, units, transposed=transposed)
    h5, result = _run(tmp_path, cmcr, cmtr, sensor_axis_order=_order(transposed))
    assert result.frame_order.decided_by == "forced"
    fraction, n = on_target_fraction(h5)
    assert n == len(units) and fraction >= 0.9


@pytest.mark.parametrize("transposed", ORDERS)
def test_one_by_one_regions_with_a_forced_order_and_auto(tmp_path, transposed):
    # one 1 x 1 region per unit: both readings are the same, so the shape settles it without a warning,
    # and every image lands on its unit whichever order is forced
    regions = [Region(r, c, r, c) for r, c in UNITS]
    cmcr, cmtr = _write(tmp_path, regions, UNITS, transposed=transposed)
    h5, _result = _run(tmp_path, cmcr, cmtr)
    d = _decision(h5)
    assert d["decided_by"] == "shape" and "single sensor" in d["reason"]
    assert not [w for w in _warnings(h5) if "could not be decided" in w]
    fraction, n = on_target_fraction(h5)
    assert n == len(UNITS) and fraction >= 0.9
    forced_dir = tmp_path / "forced"
    forced_dir.mkdir()
    h5, result = _run(forced_dir, cmcr, cmtr, sensor_axis_order=_order(transposed))
    assert result.frame_order.decided_by == "forced" and _decision(h5)["setting"] == _order(transposed)
    fraction, n = on_target_fraction(h5)
    assert n == len(UNITS) and fraction >= 0.9


@pytest.mark.parametrize("transposed", ORDERS)
def test_too_few_units_leave_it_undecided_with_a_warning(tmp_path, transposed, caplog):
    units = UNITS[:MIN_UNITS - 1]
    cmcr, cmtr = _write(tmp_path, [Region(1, 1, 65, 65)], units, transposed=transposed)
    with caplog.at_level(logging.WARNING):
        h5, result = _run(tmp_path, cmcr, cmtr)
    d = _decision(h5)
    # Undecided, but never the reading the footprints score worst: the vendor's col_row is kept where
    # it finds the units, left for row_col where it finds none of them
    assert d["decided_by"] == "undecided" and d["sensor_axis_order"] == _order(transposed)
    assert d["n_units"] == MIN_UNITS - 1 and f"{MIN_UNITS} needed" in d["reason"]
    assert ("score worst" in d["reason"]) == transposed
    stored = [w for w in _warnings(h5) if "could not be decided" in w]
    other = "col_row" if transposed else "row_col"
    assert len(stored) == 1 and f"sensor_axis_order='{other}'" in stored[0]
    assert any("could not be decided" in r.getMessage() for r in caplog.records)
    fraction, n = on_target_fraction(h5)
    assert fraction == 1.0
    # forcing the order puts every image on its unit
    forced_dir = tmp_path / "forced"
    forced_dir.mkdir()
    h5, result = _run(forced_dir, cmcr, cmtr, sensor_axis_order=_order(transposed))
    assert result.frame_order.decided_by == "forced"
    assert on_target_fraction(h5)[0] == 1.0


@pytest.mark.parametrize("transposed", ORDERS)
def test_square_sub_region_whose_only_clue_is_the_footprints(tmp_path, transposed):
    region = Region(top=3, left=6, bottom=62, right=65)  # 60 x 60, offset differently in rows and columns
    units = [(10, 40), (25, 52), (50, 14), (33, 61), (58, 30), (12, 20), (40, 8), (21, 35)]
    cmcr, cmtr = _write(tmp_path, [region], units, transposed=transposed)
    with CmcrFile(cmcr) as f:
        assert f.orders_by_shape() == ("col_row", "row_col")  # the shape cannot tell
    h5, _result = _run(tmp_path, cmcr, cmtr)
    d = _decision(h5)
    assert d["sensor_axis_order"] == _order(transposed) and d["decided_by"] == "footprints"
    assert not bool(d["swapped_fields"])
    fraction, n = on_target_fraction(h5)
    assert n == len(units) and fraction >= 0.9


def test_row_major_files_load_with_a_forced_order_and_sweeps_stay_refused(tmp_path):
    region = Region(top=5, left=6, bottom=62, right=64)
    cmcr, cmtr = _write(tmp_path, [region], UNITS, transposed=True)
    h5, result = _run(tmp_path, cmcr, cmtr, sensor_axis_order="row_col")
    assert result.frame_order.decided_by == "forced" and on_target_fraction(h5)[0] >= 0.9
    # the other order fits the shape only with the Region.* fields swapped: forced, it reads the file so
    # (what a person asked for: every image mirrored across the diagonal), and the recording says so
    other = tmp_path / "other"
    other.mkdir()
    h5_other, result = _run(other, cmcr, cmtr, sensor_axis_order="col_row")
    d = _decision(h5_other)
    assert d["decided_by"] == "forced" and d["sensor_axis_order"] == "col_row" and bool(d["swapped_fields"])
    assert any("Region.* fields are swapped" in w for w in _warnings(h5_other))
    assert on_target_fraction(h5_other)[0] == 0.0
    with h5py.File(cmcr, "r+") as f:  # a second sweep of the region
        f["Acquisition/Sensor Data"].copy("SensorData 1 1", "SensorData 1 2")
    with pytest.raises(RecordingFormatError) as err:
        compute_eimage_sta(h5, cmcr, sensor_axis_order="row_col", force=True)
    assert "sweeps" in str(err.value) and "time between sweeps is not stored" in str(err.value)


def test_sensor_id_places_units_whose_row_and_column_are_zero_based(tmp_path, caplog):
    units = [(1, 40)] + UNITS[1:]  # row 1 becomes 0: outside 1..65
    cmcr, cmtr = _write(tmp_path, [Region(1, 1, 65, 65)], units, transposed=False, zero_based=True)
    with caplog.at_level(logging.WARNING):
        h5, _result = _run(tmp_path, cmcr, cmtr)
    with h5py.File(h5, "r") as f:
        placed = [(int(np.asarray(f[f"units/{u}"].attrs["row"]).reshape(-1)[0]),
                   int(np.asarray(f[f"units/{u}"].attrs["col"]).reshape(-1)[0])) for u in sorted(f["units"])]
    assert placed == units
    warned = [w for w in _warnings(h5) if "placed by SensorID" in w]
    assert len(warned) == 1 and "unit ids 3, 4, 5" in warned[0] and "unit 3 (0, 39)" in warned[0]
    assert on_target_fraction(h5)[0] >= 0.9


def test_spikeinterface_adapter_decides_with_the_sorting(tmp_path, caplog):
    pytest.importorskip("spikeinterface.core")
    from hdmea.interop.spikeinterface import read_cmcr

    cmcr, cmtr = _write(tmp_path, [Region(1, 1, 65, 65)], UNITS, transposed=True)
    counts, _spikes = _truth(UNITS, 1)
    rec = read_cmcr(cmcr, cmtr_path=cmtr)
    assert rec.frame_order.order == "row_col" and rec.frame_order.decided_by == "footprints"
    assert "footprints" in rec.get_annotation("frame_order")
    traces = rec.get_traces(start_frame=100, end_frame=140)  # int16: stored uint16 - 32768 (ADZero)
    rows, cols = rec.get_property("chip_row"), rec.get_property("chip_col")
    np.testing.assert_array_equal(traces, counts[100:140, rows, cols])
    with caplog.at_level(logging.WARNING):
        plain = read_cmcr(cmcr)  # no sorting: nothing to test the footprints with
    assert plain.frame_order.decided_by == "undecided" and "no spike sorting" in plain.frame_order.reason
    assert any("could not be decided" in r.getMessage() for r in caplog.records)
    assert read_cmcr(cmcr, sensor_axis_order="row_col").frame_order.decided_by == "forced"

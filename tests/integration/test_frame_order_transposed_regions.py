"""Region recordings whose frames and ``Region.*`` fields are both stored transposed, written by hand with
plain h5py: the frames ``[row, col]`` and ``Region.Left/Right`` holding the rows, ``Region.Top/Bottom`` the
columns.  The region's shape then fits the vendor's ``[col, row]`` reading of the fields as written, so the
shape alone reads every image mirrored; only the units' footprints can tell.

Each file plants units inside the region (down to :data:`~hdmea.io.frame_order.MIN_UNITS`) with Gaussian
footprints wide enough to fill a 5 x 5 neighbourhood, plus more active units outside it whose sensors lie
inside the region only under the wrong reading, with more spikes than the units inside (so the ones a
test by spike count would pick first).  With no setting, every image of a unit inside the region must land
on the unit's own sensor (the planted truth); with one unit too few, the recording says it is undecided
and why, and the setting its warning advises reads the file with every image on its unit.
"""

from __future__ import annotations

import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from hdmea.io.cmcr import CmcrFile
from hdmea.io.frame_order import FRAME_ORDER_METADATA, MIN_UNITS
from hdmea.pipeline import load_recording
from hdmea.steps.eimage import compute_eimage_sta

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.mcs_handmade import Region, sensor_id, write_cmcr, write_cmtr  # noqa: E402

FRAMES = 3000
INSIDE_SPIKES = 24
OUTSIDE_SPIKES = 40
N_OUTSIDE = 20  # more than the 16 units the footprint test counts at most
# (top, left, bottom, right): wide, tall, a strip of whole rows, a small one off the diagonal
SHAPES = [(5, 20, 30, 60), (20, 10, 50, 25), (1, 1, 20, 65), (30, 30, 60, 45)]


def _positions(region: Region, n_inside: int, seed: int):
    """1-based (row, col) of units inside the region and of units outside it that lie inside only transposed."""
    rng = np.random.default_rng(seed)

    def inside(r, c):
        return region.top <= r <= region.bottom and region.left <= c <= region.right

    def spaced(r, c, taken, gap):
        return all(max(abs(r - r2), abs(c - c2)) >= gap for r2, c2 in taken)

    chip = [(r, c) for r in range(3, 64) for c in range(3, 64) if abs(r - c) > 3]
    order = rng.permutation(len(chip))
    units_in, units_out = [], []
    for k in order:
        r, c = chip[k]
        if inside(r, c) and len(units_in) < n_inside and spaced(r, c, units_in, 7):
            units_in.append((r, c))
        elif not inside(r, c) and inside(c, r) and len(units_out) < N_OUTSIDE and spaced(r, c, units_out, 3):
            units_out.append((r, c))
    assert len(units_in) == n_inside and len(units_out) == N_OUTSIDE
    return units_in, units_out


def _truth(units, n_spikes, seed):
    """Chip counts (frames, 65, 65): noise plus each unit's Gaussian footprint (spread 1.5-2.5 electrodes)."""
    rng = np.random.default_rng(seed)
    counts = rng.normal(0.0, 6.0, size=(FRAMES, 65, 65)).astype(np.float32)
    gy, gx = np.mgrid[0:65, 0:65]
    waveform = np.array([-1.0, -0.45, 0.0, 0.2], dtype=np.float32)
    spikes = []
    for (row, col), n in zip(units, n_spikes):
        spread = rng.uniform(1.5, 2.5)
        footprint = (180.0 * np.exp(-((gy - row + 1) ** 2 + (gx - col + 1) ** 2) / (2 * spread**2))).astype(np.float32)
        times = np.sort(rng.choice(np.arange(30, FRAMES - 60, 13), size=n, replace=False))
        spikes.append(times)
        for t in times:
            counts[t:t + waveform.size] += waveform[:, None, None] * footprint[None]
    return np.rint(counts).astype(np.int32), spikes


def _write(tmp_path, shape, n_inside, seed):
    region = Region(*shape)
    units_in, units_out = _positions(region, n_inside, seed)
    units = units_in + units_out
    counts, spikes = _truth(units, [INSIDE_SPIKES] * len(units_in) + [OUTSIDE_SPIKES] * len(units_out), seed)
    cmcr, cmtr = tmp_path / "t.cmcr", tmp_path / "t.cmtr"
    write_cmcr(cmcr, [region], counts, transposed=True, single_factor=1000, factors_as="none")
    with h5py.File(cmcr, "r+") as f:  # Left/Right hold the rows, Top/Bottom the columns
        meta = f["Acquisition/Sensor Data/SensorMeta"][()]
        swapped = meta.copy()
        swapped["Region.Left"], swapped["Region.Top"] = meta["Region.Top"], meta["Region.Left"]
        swapped["Region.Right"], swapped["Region.Bottom"] = meta["Region.Bottom"], meta["Region.Right"]
        f["Acquisition/Sensor Data/SensorMeta"][...] = swapped
    write_cmtr(cmtr, [dict(unit_id=2 + i, sensor_id=sensor_id(r, c), row=r, col=c, spikes=s)
                      for i, ((r, c), s) in enumerate(zip(units, spikes))], duration_us=FRAMES * 50)
    return cmcr, cmtr, units_in


def _run(out_dir: Path, cmcr, cmtr, **kwargs):
    out_dir.mkdir(exist_ok=True)
    h5 = out_dir / "t.h5"
    load_recording(cmcr, cmtr, output_path=h5, waveforms=False, **kwargs)
    compute_eimage_sta(h5, **kwargs)
    with h5py.File(h5, "r") as f:
        decision = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f[FRAME_ORDER_METADATA].attrs.items()}
        stored = f["pipeline/session_info/warnings"][()] if "pipeline/session_info/warnings" in f else []
        troughs = {}
        for u in f["units"]:
            g = f[f"units/{u}"]
            at = (int(np.asarray(g.attrs["row"]).reshape(-1)[0]), int(np.asarray(g.attrs["col"]).reshape(-1)[0]))
            image = g["features/eimage_sta/data"][()]
            _t, r, c = np.unravel_index(np.argmin(np.where(np.isfinite(image), image, np.inf)), image.shape)
            troughs[at] = (int(r) + 1, int(c) + 1)
    warnings = [w.decode() if isinstance(w, bytes) else str(w) for w in np.atleast_1d(stored)]
    return decision, warnings, troughs


def _on_their_units(troughs, units_in):
    return [u for u in units_in if max(abs(troughs[u][0] - u[0]), abs(troughs[u][1] - u[1])) <= 1]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("n_inside", [MIN_UNITS, 8])
def test_no_setting_puts_every_image_on_its_unit(tmp_path, shape, n_inside):
    cmcr, cmtr, units_in = _write(tmp_path, shape, n_inside, seed=sum(shape) + n_inside)
    decision, warnings, troughs = _run(tmp_path / "auto", cmcr, cmtr)
    assert (decision["decided_by"], decision["sensor_axis_order"]) == ("footprints", "row_col")
    assert bool(decision["swapped_fields"]) and int(decision["n_units"]) >= MIN_UNITS
    assert _on_their_units(troughs, units_in) == units_in
    assert not [w for w in warnings if "could not be decided" in w]
    # the setting that reads it so, forced, is accepted and reads it the same way
    decision, _warnings, troughs = _run(tmp_path / "forced", cmcr, cmtr, sensor_axis_order="row_col")
    assert decision["decided_by"] == "forced" and bool(decision["swapped_fields"])
    assert _on_their_units(troughs, units_in) == units_in


@pytest.mark.parametrize("shape", SHAPES[:2], ids=lambda s: "x".join(map(str, s)))
def test_too_few_units_against_the_shape_is_undecided_and_its_advice_works(tmp_path, shape):
    cmcr, cmtr, units_in = _write(tmp_path, shape, MIN_UNITS - 1, seed=7 + sum(shape))
    decision, warnings, troughs = _run(tmp_path / "auto", cmcr, cmtr)
    # undecided, but the shape's reading, which the footprints score worst, is not the one read
    assert decision["decided_by"] == "undecided" and decision["sensor_axis_order"] == "row_col"
    assert bool(decision["swapped_fields"]) and "score worst" in decision["reason"]
    assert "footprints point to row_col+swapped_fields" in decision["reason"]
    assert f"{MIN_UNITS - 1} of {MIN_UNITS - 1 + 20} units had a footprint" in decision["reason"]
    assert _on_their_units(troughs, units_in) == units_in
    advice = [w for w in warnings if "could not be decided" in w]
    assert len(advice) == 1 and "rerun with sensor_axis_order='col_row'" in advice[0]
    decision, _warnings, troughs = _run(tmp_path / "advised", cmcr, cmtr, sensor_axis_order="row_col")
    assert decision["decided_by"] == "forced" and bool(decision["swapped_fields"])
    assert _on_their_units(troughs, units_in) == units_in


def test_a_forced_order_opens_the_raw_file_with_the_fields_its_shape_admits(tmp_path):
    shape = SHAPES[0]
    cmcr, _cmtr, _units = _write(tmp_path, shape, MIN_UNITS, seed=3)
    top, left, bottom, right = shape
    with CmcrFile(cmcr, sensor_axis_order="row_col") as f:  # fits only with Left/Right as the rows
        (info,) = f.sensor_datasets()
        assert f.region_fields_swapped and f.axis_order_source == "forced"
        assert (info.row_offset, info.col_offset, info.n_rows, info.n_cols) == (
            top - 1, left - 1, bottom - top + 1, right - left + 1)
    with CmcrFile(cmcr, sensor_axis_order="col_row") as f:  # fits the fields as written
        (info,) = f.sensor_datasets()
        assert not f.region_fields_swapped
        assert (info.row_offset, info.col_offset, info.n_rows, info.n_cols) == (
            left - 1, top - 1, right - left + 1, bottom - top + 1)

"""The demo and the synthetic generator's defaults carry enough raw data for the footprints to decide."""

from __future__ import annotations

import h5py
import pytest

from hdmea.io.frame_order import FRAME_ORDER_METADATA


def test_the_demo_prints_the_decision(tmp_path):
    from hdmea.demo import run_demo

    result = run_demo(tmp_path / "demo", eimage=True)
    text = result.describe()
    assert "raw frame order    read as [col, row], which the spike footprints of" in text
    checked = result.pipeline["orientation"]["n_units_checked"]
    assert f"electrical images  {checked} of {checked} units peak at their own electrode" in text
    assert "warning" not in text


# Seed 1 places two of its five firing units on the chip's diagonal, where both readings agree: three
# units cannot decide (4 needed), and it says so; 7 of the seeds 1-8 decide.
@pytest.mark.parametrize("seed,decided_by", [(1, "undecided"), (3, "footprints"), (8, "footprints")])
def test_the_generator_defaults_decide_by_footprints(tmp_path, seed, decided_by):
    from hdmea.pipeline import load_recording
    from hdmea.synthetic import SyntheticConfig, generate_recording

    rec = generate_recording(tmp_path, "g", config=SyntheticConfig(), seed=seed)
    h5 = tmp_path / "g.h5"
    load_recording(rec.cmcr_path, rec.cmtr_path, output_path=h5, waveforms=False)
    with h5py.File(h5, "r") as f:
        g = f[FRAME_ORDER_METADATA]
        record = {k: g[k][()] if k in g else g.attrs[k] for k in ("decided_by", "sensor_axis_order", "reason")}
    record = {k: (v.decode() if isinstance(v, bytes) else str(v)) for k, v in record.items()}
    assert (record["decided_by"], record["sensor_axis_order"]) == (decided_by, "col_row")
    if decided_by == "undecided":
        assert "3 of 6 units" in record["reason"] and "2 with a sensor where every reading agrees" in record["reason"]

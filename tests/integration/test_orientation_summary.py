"""The electrical images' orientation self-check reaches the run summary and the command line's report."""

from __future__ import annotations

import h5py
import pytest

from hdmea.config import load_config
from hdmea.steps.eimage import ORIENTATION_METADATA
from hdmea.pipeline.run import run_pipeline


@pytest.mark.slow
def test_run_summary_carries_the_orientation_check(tmp_path, capsys, monkeypatch):
    import dataclasses

    from hdmea.cli import _print_outcome
    from hdmea.steps import eimage
    from hdmea.synthetic import SyntheticConfig, generate_recording

    # a small recording with a few seconds of raw data; units with a few spikes are checked
    recording = generate_recording(tmp_path, "rec", config=dataclasses.replace(SyntheticConfig.tiny(), raw_seconds=3.0),
                                   seed=7)
    monkeypatch.setattr(eimage, "MIN_SPIKES_FOR_ORIENTATION_CHECK", 3)

    config_path = tmp_path / "pipeline.toml"
    config_path.write_text(
        '[stimulus]\nfile = "{dir}/{name}.stimulus.json"\n\n[steps]\ncompute_eimage_sta = true\n'
    )
    config = load_config(config_path)
    out = tmp_path / "out" / "rec.h5"
    out.parent.mkdir()
    report = run_pipeline(recording.cmcr_path, recording.cmtr_path, out, config)
    with h5py.File(out, "r") as f:
        group = f[ORIENTATION_METADATA]
        stored = {k: group[k][()] if k in group else group.attrs[k] for k in ("fraction_own", "n_units_checked")}
    check = report.as_dict()["orientation"]
    assert check is not None and check["n_units_checked"] == int(stored["n_units_checked"]) > 0
    assert check["fraction_own"] == pytest.approx(float(stored["fraction_own"]))
    # planted footprints peak on the units' own electrodes: the vendor orientation fits
    assert check["fraction_own"] >= check["fraction_transposed"] and check["fraction_own"] == 1.0
    assert _print_outcome("rec", out, {"status": "done", "seconds": 1.0, "detail": report.as_dict()}) == 0
    text = capsys.readouterr().out
    n = check["n_units_checked"]
    assert f"electrical images: {n} of {n} units peak at their own electrode" in text

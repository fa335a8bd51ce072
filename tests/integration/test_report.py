"""The visual report of a synthetic recording: every figure is a real, non-blank PNG."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from hdmea.config import parse_config
from hdmea.pipeline.batch import run_pipeline
from hdmea.synthetic import generate_recording

pytest.importorskip("matplotlib")


@pytest.fixture(scope="module")
def processed(tmp_path_factory):
    src = tmp_path_factory.mktemp("report_src")
    made = generate_recording(src, "rep", n_units=6, seed=11, noise_images=1200, base_rate_hz=(14.0, 24.0), raw_seconds=0.5)
    config = parse_config({"stimulus": {"file": "{dir}/{name}.stimulus.json"},
                           "steps": {"compute_eimage_sta": True}}, base_dir=src)
    report = run_pipeline(made.cmcr_path, made.cmtr_path, src / "rep.h5", config, dataset_id="rep")
    assert [s.status for s in report.steps] == ["ran"] * 6
    return src / "rep.h5", made


@pytest.mark.slow
def test_report_files_are_real_images(processed, tmp_path):
    import matplotlib.image as mpimg

    from hdmea.report import write_report

    path, made = processed
    report = write_report(path, tmp_path / "out")
    names = [p.name for p in report.figures]
    assert names == [
        "rep_sta_dense_noise_15x15_mosaic.png",
        "rep_eimage.png",
        "rep_raster_dense_noise_15x15.png",
        "rep_raster_step_up_5s_5i_3x.png",
        "rep_steps_step_up_5s_5i_3x.png",
    ]
    page = report.html.read_text(encoding="utf-8")
    for png in report.figures:
        assert png.stat().st_size > 20_000
        image = mpimg.imread(png)
        assert image.ndim == 3 and image.shape[0] >= 500 and image.shape[1] >= 900
        pixels = image[..., :3].reshape(-1, 3)
        # Not blank: a good share of the canvas is drawn, in several colours.
        assert (pixels.min(axis=1) < 0.9).mean() > 0.01
        assert len(np.unique((pixels * 255).astype(np.uint8), axis=0)) > 50
        assert f"src='{png.name}'" in page
    # The page lists every unit with its planted spike count.
    truth = made.truth()
    for uid, unit in truth.units.items():
        assert f"<td>{uid}</td><td>{unit.row}</td><td>{unit.col}</td><td>{unit.spike_times.size}</td>" in page
    assert "Steps completed: load_recording, add_section_time" in page


def test_report_centres_match_planted_receptive_fields(processed):
    from hdmea.report.data import read_recording_data

    path, made = processed
    data = read_recording_data(path)
    truth = made.truth()
    maps = data.sta[0]
    hits = 0
    tested = 0
    for uid, (r, c) in zip(maps.unit_ids, maps.centres):
        unit = truth.units[uid]
        if unit.kind == "silent":
            continue
        pr, pc = np.unravel_index(np.argmax(np.abs(unit.spatial_rf)), unit.spatial_rf.shape)
        tested += 1
        hits += int(abs(r - pr) <= 1.5 and abs(c - pc) <= 1.5)
    assert tested == 5 and hits >= 4
    # Electrical-image centres sit near the sorter's sensor of units that fired.
    eim = data.eimage
    near = [max(abs(r - (truth.units[u].row - 1)), abs(c - (truth.units[u].col - 1))) <= 3
            for u, (r, c) in zip(eim.unit_ids, eim.centres) if truth.units[u].kind != "silent"]
    assert sum(near) >= len(near) - 1


def test_missing_matplotlib_is_a_clear_error(processed, tmp_path, monkeypatch):
    from hdmea.report import write_report

    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r"pip install 'h5stream\[report\]'"):
        write_report(processed[0], tmp_path / "none")
    assert not (tmp_path / "none").exists()


def test_report_of_a_non_recording_fails_clearly(tmp_path):
    from h5stream.errors import FormatError
    from hdmea.report import write_report

    bogus = tmp_path / "x.h5"
    bogus.write_bytes(b"not hdf5" * 100)
    with pytest.raises(FormatError, match="x.h5"):
        write_report(bogus, tmp_path / "out")

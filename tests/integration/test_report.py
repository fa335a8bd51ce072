"""The visual report of a synthetic recording: every figure is a real, non-blank PNG."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest
from pathlib import Path

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


@pytest.fixture(scope="module")
def drawn(processed):
    """The report's data and its figures, drawn once for the tests that inspect them."""
    from hdmea.report import report_figures
    from hdmea.report.data import read_recording_data

    data = read_recording_data(processed[0])
    return data, report_figures(data)


@pytest.mark.slow
def test_report_files_are_real_images(processed, tmp_path):
    import matplotlib.image as mpimg

    from hdmea.report import write_report

    path, made = processed
    report = write_report(path, tmp_path / "out")
    names = [p.name for p in report.figures]
    assert names == [
        "rep_sta_dense_noise_15x15_p1.png",
        "rep_sta_dense_noise_15x15_mosaic.png",
        "rep_eimage_p1.png",
        "rep_eimage_centres.png",
        "rep_spikes_dense_noise_15x15.png",
        "rep_spikes_step_up_5s_5i_3x.png",
        "rep_steps_step_up_5s_5i_3x.png",
    ]
    page = report.html.read_text(encoding="utf-8")
    for png in report.figures:
        assert png.stat().st_size > 20_000
        image = mpimg.imread(png)
        assert image.ndim == 3 and image.shape[0] >= 300 and image.shape[1] >= 700
        pixels = image[..., :3].reshape(-1, 3)
        # Not blank: a good share of the canvas is drawn, in several colours.
        assert (pixels.min(axis=1) < 0.9).mean() > 0.005
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


def test_sta_panels_use_the_tables_peak_lag_and_say_it_in_ms(processed, drawn):
    path, made = processed
    data, figures = drawn
    suffix, _title, caption, page = figures[0]
    assert suffix == "sta_dense_noise_15x15_p1"
    assert "peak_lag_frames" in caption and "1 = the frame before it" in caption
    panels = {a.get_label()[5:]: a for a in page.axes if a.get_label().startswith("unit:")}
    assert list(panels) == data.unit_ids  # every unit on the one page
    with h5py.File(path, "r") as f:
        fs = float(f["metadata/sampling_rate"][()])
        frame_ms = float(np.median(np.diff(f["stimulus/frame_time/default"][()].astype(float)))) / fs * 1000
        for uid, ax in panels.items():
            feature = f[f"units/{uid}/features"]
            table_lag = int(feature["rf_dense_noise_15x15"].attrs["peak_lag_frames"])
            if f[f"units/{uid}/spike_times"].shape[0] == 0:
                assert table_lag == -1 and not ax.images
                assert any("no spikes" in t.get_text() for t in ax.texts)
                continue
            # independent: the STA index of the largest deviation, counted back from the spike's frame
            sta = feature["sta_dense_noise_15x15/data"][()].astype(float)
            k = np.unravel_index(np.argmax(np.abs(sta - sta.mean())), sta.shape)[0]
            lag = int(feature["sta_dense_noise_15x15"].attrs["first_lag"]) + sta.shape[0] - 1 - k
            assert lag == table_lag
            assert ax.get_title().endswith(f"{lag * frame_ms:.0f} ms, {lag} frames before spike")
            (img,) = ax.images
            assert img.colorbar is not None and img.colorbar.ax.get_ylabel()
            # the planted temporal filter peaks at that lag, within a frame
            planted = int(np.argmax(np.abs(made.truth().units[uid].temporal_filter))) + 1
            assert abs(lag - planted) <= 1


def test_every_heat_map_has_a_colour_bar_with_units_and_panels_have_ticks(drawn):
    heat_maps = 0
    for suffix, _title, _caption, figure in drawn[1]:
        bars = {id(a) for a in figure.axes for img in a.images if img.colorbar is not None}
        for ax in figure.axes:
            for img in ax.images:
                heat_maps += 1
                label = img.colorbar.ax.get_ylabel()
                assert "(" in label and ")" in label, (suffix, label)  # a unit in brackets
            if ax.get_label().startswith("unit:") and ax.images:
                assert len(ax.get_xticks()) >= 2 and len(ax.get_yticks()) >= 2, suffix
        assert len(bars) == sum(len(a.images) for a in figure.axes)
    assert heat_maps == 5 + 5 + 1 + 1  # STA and eimage panels (one unit without spikes), rate image, step map


def test_eimage_panels_are_labelled_by_time_from_the_spike(processed, drawn):
    path, _made = processed
    data, figures = drawn
    (page,) = [fig for suffix, _t, _c, fig in figures if suffix == "eimage_p1"]
    panels = {a.get_label()[5:]: a for a in page.axes if a.get_label().startswith("unit:")}
    assert list(panels) == data.unit_ids
    with h5py.File(path, "r") as f:
        fs = float(f["metadata/sampling_rate"][()])
        for uid, ax in panels.items():
            group = f[f"units/{uid}/features/eimage_sta"]
            if int(group.attrs["n_spikes_used"]) == 0:
                assert any("no spikes" in t.get_text() for t in ax.texts)
                continue
            images = group["data"][()].astype(float)
            centred = images - np.nanmedian(images, axis=0)
            t = int(np.nanargmin(np.nanmin(centred.reshape(images.shape[0], -1), axis=1)))
            ms = (int(group.attrs["window"][0]) + t) / fs * 1000
            assert ax.get_title().endswith(f"trough at {ms:+.2f} ms from spike")


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv to drop the override capabilities")
@pytest.mark.parametrize("sub", ["", "new/inner"])
def test_report_into_a_read_only_folder_is_a_typed_error(processed, sub):
    import tempfile

    # A folder outside pytest's 0700 tree, read-only; the command runs without the
    # capabilities that let root write there anyway.
    base = Path(tempfile.mkdtemp(prefix="hdmea-ro-"))
    try:
        readable = base / "rec.h5"
        shutil.copyfile(processed[0], readable)
        read_only = base / "ro"
        read_only.mkdir()
        os.chmod(base, 0o755)
        os.chmod(readable, 0o644)
        os.chmod(read_only, 0o555)
        out = read_only / sub if sub else read_only
        command = ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner", sys.executable, "-m",
                   "hdmea", "report", str(readable), "--out", str(out)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert done.returncode == 1, done.stderr
        assert "Traceback" not in done.stderr and "PermissionError" not in done.stderr
        assert done.stderr.startswith(f"hdmea report: {out}") and "WriteError" not in done.stderr
        assert "choose another --out folder" in done.stderr
        assert list(read_only.iterdir()) == []
    finally:
        os.chmod(base / "ro", 0o755)
        shutil.rmtree(base)


def test_a_failed_report_leaves_no_folder_it_created(tmp_path):
    from h5stream.errors import FormatError
    from hdmea.report import write_report

    bogus = tmp_path / "x.h5"
    bogus.write_bytes(b"not hdf5" * 100)
    with pytest.raises(FormatError):
        write_report(bogus, tmp_path / "a" / "b")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.h5"]
    (tmp_path / "file").write_text("x")
    from h5stream.errors import WriteError

    with pytest.raises(WriteError, match="not a folder"):
        write_report(bogus, tmp_path / "file")

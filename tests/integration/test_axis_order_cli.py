"""`hdmea run` with no axis-order setting on four variants of one recording, written by hand with plain h5py:
the vendor's order, the full chip stored [row, col], a non-square region, and that region stored [row, col]
with its true Region.* fields.  Each run puts >= 90% of the units with >= 20 spikes used on their own sensor.
An undecided recording shows its warning in the run summary, `hdmea inspect`, `hdmea report` and the viewer.
"""

from __future__ import annotations

import sys
from pathlib import Path

import h5py
import pytest

from hdmea.cli import main

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.integration.test_axis_order import UNITS, _decision, _write, on_target_fraction  # noqa: E402
from tests.mcs_handmade import Region  # noqa: E402

#: how an undecided recording read as the footprints favour (not the vendor's order) is described
UNDECIDED = "read as [row, col] (the reading the spike footprints favour, not clearly): the data could not tell"
FULL = Region(1, 1, 65, 65)
SUB = Region(top=5, left=6, bottom=62, right=64)  # 58 rows x 59 columns


def _config(tmp_path) -> Path:
    path = tmp_path / "pipeline.toml"
    path.write_text("[steps]\ncompute_eimage_sta = true\n")
    return path


@pytest.mark.parametrize("region,transposed,decided_by", [
    pytest.param(FULL, False, "footprints", id="vendor_order"),
    pytest.param(FULL, True, "footprints", id="full_chip_row_col"),
    pytest.param(SUB, False, "shape", id="non_square_region"),
    pytest.param(SUB, True, "shape", id="non_square_region_row_col"),
])
def test_hdmea_run_without_a_setting_puts_images_on_their_units(tmp_path, capsys, region, transposed, decided_by):
    cmcr, cmtr = _write(tmp_path, [region], UNITS, transposed=transposed)
    out = tmp_path / "out" / "rec.h5"
    assert main(["run", str(cmcr), str(cmtr), "--config", str(_config(tmp_path)), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    d = _decision(out)
    order = "row_col" if transposed else "col_row"
    assert d["sensor_axis_order"] == order and d["decided_by"] == decided_by and d["setting"] == "auto"
    why = {"footprints": "which the spike footprints of", "shape": "the only reading the recorded region's shape"}
    assert f"raw frames: read as {'[row, col]' if transposed else '[col, row]'}, {why[decided_by]}" in printed
    assert "warning" not in printed
    fraction, n = on_target_fraction(out)
    assert n == len(UNITS) and fraction >= 0.9


def test_an_undecided_recording_says_so_everywhere(tmp_path, capsys):
    cmcr, cmtr = _write(tmp_path, [FULL], UNITS[:3], transposed=True)
    out = tmp_path / "out" / "rec.h5"
    assert main(["run", str(cmcr), str(cmtr), "--config", str(_config(tmp_path)), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    # undecided (three units, four decide), read as the footprints score best: the vendor's col_row finds none
    assert f"raw frames: {UNDECIDED}" in printed
    assert "warning: hand: the raw frames' order could not be decided" in printed
    assert "--sensor-axis-order col_row" in printed

    assert main(["inspect", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"raw frames: {UNDECIDED}" in printed
    assert "warning: hand: the raw frames' order could not be decided" in printed

    assert main(["report", str(out), "--out", str(tmp_path / "report")]) == 0
    capsys.readouterr()
    html = (tmp_path / "report" / "index.html").read_text() if (tmp_path / "report" / "index.html").exists() else \
        next((tmp_path / "report").glob("*.html")).read_text()
    assert f"Raw frames: {UNDECIDED}" in html
    assert "could not be decided" in html

    # forcing the order on the command line puts the images on their units
    forced = tmp_path / "forced" / "rec.h5"
    assert main(["run", str(cmcr), str(cmtr), "--config", str(_config(tmp_path)), "--out", str(forced),
                 "--sensor-axis-order", "row_col"]) == 0
    printed = capsys.readouterr().out
    assert "raw frames: read as [row, col], as the configuration or --sensor-axis-order says" in printed and "warning" not in printed
    assert on_target_fraction(forced) == (1.0, 3)


def test_the_configuration_sets_the_order_and_rejects_a_bad_one(tmp_path):
    from hdmea.config import load_config
    from hdmea.errors import ConfigError

    path = tmp_path / "c.toml"
    path.write_text('[recording]\nsensor_axis_order = "row_col"\n')
    config = load_config(path)
    assert config.sensor_axis_order == "row_col"
    assert config.digest() != load_config(_config(tmp_path)).digest()
    path.write_text('[recording]\nsensor_axis_order = "yx"\n')
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "recording.sensor_axis_order" in str(err.value) and "'auto'" in str(err.value)


def test_the_viewer_shows_the_decision_and_the_warning(tmp_path):
    from hdmea.view.access import file_version
    from hdmea.view.recording import recording_summary

    cmcr, cmtr = _write(tmp_path, [FULL], UNITS[:3], transposed=True)
    out = tmp_path / "out" / "rec.h5"
    assert main(["run", str(cmcr), str(cmtr), "--config", str(_config(tmp_path)), "--out", str(out)]) == 0
    with h5py.File(out, "r") as f:
        summary = recording_summary(f, file_version(f))
    assert summary.frame_order.startswith(UNDECIDED)
    assert any("could not be decided" in w for w in summary.warnings)

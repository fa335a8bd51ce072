"""Report figures drawn from planted maps and spikes (no pipeline run): what a reader relies on is drawn.

Each test builds the data with numpy, draws the figure, saves it, decodes the PNG
and checks it against the planted ground truth.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from hdmea.report import figures  # noqa: E402
from hdmea.report.data import MovieTrials, UnitMaps  # noqa: E402

SHAPE = (15, 15)


def _planted_mosaic(n_units: int, seed: int = 3):
    """Gaussian receptive fields at random sub-check centres, alternating ON/OFF; one unit without spikes."""
    rng = np.random.default_rng(seed)
    rows, cols = np.indices(SHAPE)
    centres = rng.uniform(0.0, SHAPE[0] - 1.0, size=(n_units, 2))
    centres[0] = (0.0, 0.0)  # corner and edge fields must not be clipped
    centres[1] = (14.0, 7.3)
    maps, polarity = [], []
    for i, (r, c) in enumerate(centres):
        sign = 1 if i % 2 == 0 else -1
        maps.append(sign * 30.0 * np.exp(-((rows - r) ** 2 + (cols - c) ** 2) / (2 * 1.2 ** 2)))
        polarity.append(sign)
    n_spikes = [500] * n_units
    n_spikes[-1] = 0
    maps[-1] = np.zeros(SHAPE)
    polarity[-1] = 0
    ids = [f"unit_{i:03d}" for i in range(n_units)]
    data = UnitMaps(ids, maps, [tuple(map(float, c)) for c in centres], [4] * n_units, "sta_noise",
                    times_ms=[4 * 16.67] * n_units, n_spikes=n_spikes, polarity=polarity,
                    value_unit="stimulus values", frame_ms=16.67)
    data.centres[-1] = (float("nan"), float("nan"))
    return data, centres


def _decoded(fig, tmp_path, name="f.png"):
    import matplotlib.image as mpimg

    path = figures._save(fig, tmp_path / name)
    return mpimg.imread(path)


def test_mosaic_of_120_units_draws_planted_centres_and_fitting_labels(tmp_path):
    maps, centres = _planted_mosaic(120)
    fig, counts = figures.rf_mosaic(maps, "noise")
    assert counts == {"drawn": 119, "labelled": counts["labelled"], "without_map": 1}
    image = _decoded(fig, tmp_path)
    assert image.shape[:2] == (860, 800)  # the canvas the figure objects describe
    ax = next(a for a in fig.axes if a.get_label() == "mosaic")
    (marks,) = [line for line in ax.lines if line.get_label() == "centres"]
    np.testing.assert_allclose(np.column_stack([marks.get_ydata(), marks.get_xdata()]), centres[:119])
    # In the decoded image, every planted centre is a dark dot where the axes map it.
    height = image.shape[0]
    pixels = ax.transData.transform(np.column_stack([centres[:119, 1], centres[:119, 0]]))
    dark = 0
    for x, y in pixels:
        patch = image[int(round(height - y)) - 1:int(round(height - y)) + 2, int(round(x)) - 1:int(round(x)) + 2, :3]
        dark += int(patch.max(axis=2).min() < 0.3)
    assert dark == 119
    # Labels: only where they fit, none outside the axes, none overlapping another.
    renderer = fig.canvas.get_renderer()
    box = ax.get_window_extent(renderer)
    labels = [t for t in ax.texts]
    assert 20 <= len(labels) < 119 and len(labels) == counts["labelled"]
    extents = [t.get_window_extent(renderer) for t in labels]
    for e in extents:
        assert box.x0 <= e.x0 and e.x1 <= box.x1 and box.y0 <= e.y0 and e.y1 <= box.y1
    for i, a in enumerate(extents):
        assert not any(a.overlaps(b) for b in extents[i + 1:])
    # Outlines coloured by polarity, all inside the axes (the corner unit's outline too).
    colours = {tuple(np.round(c.get_edgecolor()[0][:3], 3)) for c in ax.collections if hasattr(c, "get_paths")
               and len(c.get_edgecolor())}
    from matplotlib.colors import to_rgb

    assert {tuple(np.round(to_rgb(figures.ON_COLOUR), 3)), tuple(np.round(to_rgb(figures.OFF_COLOUR), 3))} <= colours
    limits = (ax.get_xlim(), ax.get_ylim())
    for collection in ax.collections:
        for path in collection.get_paths():
            v = path.vertices
            if v.size:
                assert v[:, 0].min() > limits[0][0] and v[:, 0].max() < limits[0][1]
                assert v[:, 1].min() > limits[1][1] and v[:, 1].max() < limits[1][0]


def test_sta_pages_show_every_unit_with_colour_bar_ticks_and_lag_in_ms(tmp_path):
    maps, _ = _planted_mosaic(30)
    pages = figures.sta_pages(maps, "noise")
    assert len(pages) == 2
    seen = []
    for fig in pages:
        panels = [a for a in fig.axes if a.get_label().startswith("unit:")]
        seen += [a.get_label()[5:] for a in panels]
        for ax in panels:
            if ax.get_label() == "unit:unit_029":  # the unit without spikes
                assert not ax.images
                assert any("no spikes" in t.get_text() for t in ax.texts)
                continue
            (img,) = ax.images
            assert img.colorbar is not None and "stimulus values" in img.colorbar.ax.get_ylabel()
            assert len(ax.get_xticks()) >= 2 and len(ax.get_yticks()) >= 2
            assert ax.get_title().endswith("67 ms, 4 frames before spike")
        image = _decoded(fig, tmp_path)
        assert image.shape[1] == 1400
    assert seen == maps.unit_ids
    first = [a for a in pages[0].axes if a.get_label().startswith("unit:")]
    assert len(first) == figures.PER_PAGE


def test_eimage_panels_label_time_from_spike_and_mark_the_sensor(tmp_path):
    rows, cols = np.indices((65, 65))
    maps = []
    for r, c in ((10, 20), (60, 3)):
        m = -80.0 * np.exp(-((rows - r) ** 2 + (cols - c) ** 2) / 4.0)
        m[:, 25:] = np.nan  # not recorded
        maps.append(m)
    data = UnitMaps(["u1", "u2", "u3"], maps + [np.zeros((65, 65))], [(10.0, 20.0), (60.0, 3.0), (np.nan, np.nan)],
                    [-3, 2, -10], "eimage_sta", times_ms=[-0.15, 0.1, -0.5], n_spikes=[40, 12, 0], value_unit="uV")
    (fig,) = figures.eimage_pages(data, {"u1": (11, 21), "u2": (61, 4), "u3": (5, 5)})
    panels = {a.get_label()[5:]: a for a in fig.axes if a.get_label().startswith("unit:")}
    assert list(panels) == ["u1", "u2", "u3"]
    assert panels["u1"].get_title().endswith("-0.15 ms from spike")
    assert panels["u2"].get_title().endswith("+0.10 ms from spike")
    assert any("no spikes" in t.get_text() for t in panels["u3"].texts)
    for uid, (row, col) in (("u1", (11, 21)), ("u2", (61, 4))):
        ax = panels[uid]
        (img,) = ax.images
        assert img.colorbar.ax.get_ylabel() == "voltage (uV)"
        # 1-based electrode numbers; the trough (planted at 0-based (r, c)) sits at the sensor's mark
        x0, x1, y1, y0 = img.get_extent()
        crop = img.get_array()
        pr, pc = np.unravel_index(np.nanargmin(crop), crop.shape)
        assert (y0 + 0.5 + pr, x0 + 0.5 + pc) == (row, col)
        (mark,) = ax.lines
        assert (mark.get_ydata()[0], mark.get_xdata()[0]) == (row, col)
        # electrodes not recorded (columns >= 26, 1-based) lie in u1's window only
        assert np.isnan(np.ma.getdata(crop)).any() == (uid == "u1")
    _decoded(fig, tmp_path)


def _movie(n_units: int, n_trials: int, repeated: bool, duration: float, seed: int = 0) -> MovieTrials:
    rng = np.random.default_rng(seed)
    spikes = [[np.sort(rng.uniform(0, duration, rng.integers(20, 60))) for _ in range(n_trials)]
              for _ in range(n_units)]
    spikes[1] = [np.zeros(0) for _ in range(n_trials)]
    return MovieTrials("movie", duration, n_trials, [f"unit_{i:03d}" for i in range(n_units)], spikes, repeated)


def test_dense_noise_spikes_are_a_rate_image_of_every_unit(tmp_path):
    movie = _movie(150, 1, False, 80.0)
    fig, caption = figures.movie_rates(movie)
    ax = next(a for a in fig.axes if a.get_label() == "spikes")
    (img,) = ax.images
    rates = img.get_array()
    assert rates.shape[0] == 150 and not ax.collections  # no tick raster
    bin_s = 80.0 / rates.shape[1]
    expected = np.histogram(movie.spikes[7][0], bins=np.linspace(0, 80.0, rates.shape[1] + 1))[0] / bin_s
    np.testing.assert_allclose(rates[7], expected)
    assert "Hz" in img.colorbar.ax.get_ylabel()
    assert "all 150 units" in caption and "1 unit without spikes" in caption
    _decoded(fig, tmp_path)


def test_step_raster_and_heat_map_mark_light_on_and_off(tmp_path):
    movie = _movie(30, 6, True, 10.0)
    on, off = figures.step_on_off(10.0)
    assert (on, off) == pytest.approx((1.0, 6.0))  # frames 60 and 360 of a 600-frame trial
    fig, caption = figures.movie_rates(movie, is_step=True)
    assert f"first {figures.RASTER_UNITS} of 30 units" in caption and "light on (1.00-6.00 s" in caption
    fig2, caption2 = figures.step_responses(movie)
    heat = next(a for a in fig2.axes if a.get_label() == "step heat map")
    xs = sorted(line.get_xdata()[0] for line in heat.lines)
    assert xs == pytest.approx([1.0, 6.0])
    assert {t.get_text() for t in heat.texts} >= {"light on", "light off", "no spikes in this movie"}
    (img,) = heat.images
    assert img.get_array().shape[0] == 30 and "peak" in img.colorbar.ax.get_ylabel()
    assert "1 unit without spikes" in caption2
    for f in (fig, fig2):
        _decoded(f, tmp_path)

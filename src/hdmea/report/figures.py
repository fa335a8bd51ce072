"""Figures of the report, drawn with matplotlib's object API (no pyplot, no global backend).

Each ``*_figure`` function takes data from :mod:`hdmea.report.data` and returns
matplotlib ``Figure`` objects (so tests can inspect what is drawn); :func:`save`
writes one as PNG.  What every figure holds to:

* every heat map has a colour bar naming its unit;
* small per-unit panels have ticks on both axes;
* per-unit panels are paginated (``PER_PAGE`` a page), so every unit is shown;
* a unit whose map averages no spike gets a blank panel saying so;
* the receptive-field mosaic draws every unit's half-maximum outline coloured by
  polarity and labels only those units whose label fits without overlapping
  another or leaving the axes.

Panels carry their unit in the axes label (``"unit:<id>"``) and the mosaic's
centre markers the label ``"centres"``, so a test can find them.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np

from h5stream.files import write_bytes_atomic
from hdmea.report.data import MovieTrials, UnitMaps
from hdmea.progress import counted

__all__ = ["require_matplotlib", "sta_pages", "rf_mosaic", "eimage_pages", "eimage_centres",
           "movie_rates", "step_responses", "step_on_off", "PER_PAGE", "RASTER_UNITS"]

PER_PAGE = 24
PAGE_COLS = 6
RASTER_UNITS = 12
EIMAGE_HALF_WIDTH = 10  # electrodes shown either side of the unit's sensor
DPI = 100
ON_COLOUR = "#c0392b"
OFF_COLOUR = "#1f5fa8"
NONE_COLOUR = "0.45"
TICK_SIZE = 5


def require_matplotlib():
    """Import matplotlib's Agg canvas and Figure, or say how to install them."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError(
            "the report draws its figures with matplotlib, which is not installed: "
            "pip install 'h5stream[report]'"
        ) from exc
    return Figure, FigureCanvasAgg


def _new_figure(width: float, height: float):
    Figure, FigureCanvasAgg = require_matplotlib()
    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: Path) -> Path:
    """Draw ``fig`` as PNG and write it durably: a crash leaves the old image or the new one."""
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=DPI, format="png")
    return write_bytes_atomic(path, buffer.getvalue())


def _colormap(name: str):
    from matplotlib import colormaps

    return colormaps[name].with_extremes(bad="0.82")  # NaN (not recorded) drawn grey


def _pages(n: int, per_page: int) -> list[range]:
    return [range(i, min(i + per_page, n)) for i in range(0, n, per_page)] or [range(0)]


def _symmetric_limit(image: np.ndarray) -> float:
    finite = np.abs(image[np.isfinite(image)])
    return float(finite.max()) if finite.size and finite.max() > 0 else 1.0


def _colourbar(fig, image, ax, label: str, limit: float):
    # an inset beside the panel: every panel, drawn or blank, keeps the same size
    bar = fig.colorbar(image, cax=ax.inset_axes((1.04, 0.0, 0.06, 1.0)))
    bar.set_ticks([-limit, 0.0, limit])
    bar.ax.set_yticklabels([f"{-limit:.3g}", "0", f"{limit:.3g}"], fontsize=TICK_SIZE)
    bar.set_label(label, fontsize=TICK_SIZE, labelpad=1)
    bar.ax.tick_params(length=2, pad=1)
    return bar


def _blank_panel(ax, text: str) -> None:
    ax.set_box_aspect(1)
    ax.set_facecolor("0.96")
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize=6, wrap=True,
            color="0.25")
    ax.set_xticks([])
    ax.set_yticks([])


def _page_figure(n_panels: int):
    rows = max(1, math.ceil(n_panels / PAGE_COLS))
    fig = _new_figure(14, 1.0 + 2.25 * rows)
    grid = fig.add_gridspec(rows, PAGE_COLS, wspace=0.6, hspace=0.55, left=0.03, right=0.94,
                            top=1 - 0.75 / (1.0 + 2.25 * rows), bottom=0.35 / (1.0 + 2.25 * rows))
    return fig, grid


def _lag_text(lag: int, time_ms: float) -> str:
    if lag < 0:
        return "no peak"
    ms = f"{time_ms:.0f} ms, " if np.isfinite(time_ms) else ""
    return f"{ms}{lag} frame{'s' if lag != 1 else ''} before spike"


def sta_pages(maps: UnitMaps, movie: str) -> list:
    """One figure per ``PER_PAGE`` units: each unit's STA frame at its peak lag, with a colour bar."""
    figures = []
    pages = _pages(len(maps.unit_ids), PER_PAGE)
    cmap = _colormap("RdBu_r")
    for number, page in enumerate(pages, 1):
        fig, grid = _page_figure(len(page))
        for slot, i in enumerate(page):
            ax = fig.add_subplot(grid[slot // PAGE_COLS, slot % PAGE_COLS], label=f"unit:{maps.unit_ids[i]}")
            uid = maps.unit_ids[i]
            if maps.n_spikes[i] <= 0 or maps.peak_lags[i] < 0:
                ax.set_title(uid, fontsize=7)
                reason = ("no spikes during the movie:\nnothing to average" if maps.n_spikes[i] <= 0
                          else "STA is flat:\nno peak")
                _blank_panel(ax, reason)
                continue
            image = maps.maps[i]
            limit = _symmetric_limit(image)
            drawn = ax.imshow(image, cmap=cmap, vmin=-limit, vmax=limit, interpolation="nearest")
            _colourbar(fig, drawn, ax, f"STA - mean ({maps.value_unit})", limit)
            r, c = maps.centres[i]
            if np.isfinite(r):
                ax.plot([c], [r], marker="+", color="k", markersize=6, markeredgewidth=0.8)
            h, w = image.shape
            ax.set_xticks([0, w // 2, w - 1])
            ax.set_yticks([0, h // 2, h - 1])
            ax.tick_params(labelsize=TICK_SIZE, length=2, pad=1)
            ax.set_title(f"{uid}\n{_lag_text(maps.peak_lags[i], maps.times_ms[i])}", fontsize=6.5)
        fig.suptitle(f"{movie}: STA at the peak lag (page {number} of {len(pages)}, units "
                     f"{page.start + 1}-{page.stop} of {len(maps.unit_ids)}); axes in checks (row, column)",
                     fontsize=10)
        figures.append(fig)
    return figures


def _half_max_outline(image: np.ndarray, centre: tuple[float, float], polarity: int):
    """The map restricted to its half-maximum region nearest the centre, zero-padded, and the contour level.

    Contouring the values (not a 0/1 mask) gives an interpolated outline; the
    one-check zero border closes outlines of fields that reach the stimulus edge.
    Returns None when the map has no peak of the unit's polarity.
    """
    from scipy.ndimage import binary_dilation, label

    signed = np.nan_to_num(np.asarray(image, dtype=np.float64)) * (polarity if polarity else 1)
    peak = signed.max()
    if not np.isfinite(peak) or peak <= 0:
        return None
    regions, n = label(signed >= 0.5 * peak)
    rows, cols = np.nonzero(regions)
    r, c = centre
    nearest = np.argmin((rows - r) ** 2 + (cols - c) ** 2) if np.isfinite(r) else np.argmax(signed[rows, cols])
    keep = binary_dilation(regions == regions[rows[nearest], cols[nearest]])
    return np.pad(np.where(keep, signed, 0.0), 1), 0.5 * peak


def _polarity_colour(polarity: int) -> str:
    return ON_COLOUR if polarity > 0 else OFF_COLOUR if polarity < 0 else NONE_COLOUR


def _place_labels(fig, ax, points: list[tuple[str, float, float]]) -> int:
    """Label the points whose text fits inside the axes without overlapping another label; returns how many."""
    renderer = fig.canvas.get_renderer()
    inside = ax.get_window_extent(renderer)
    placed = []
    for text, x, y in points:
        artist = ax.annotate(text, (x, y), xytext=(2, 2), textcoords="offset points", fontsize=6,
                             color="0.1", annotation_clip=True)
        box = artist.get_window_extent(renderer)
        fits = (box.x0 >= inside.x0 and box.x1 <= inside.x1 and box.y0 >= inside.y0 and box.y1 <= inside.y1
                and not any(box.overlaps(other) for other in placed))
        if fits:
            placed.append(box)
        else:
            artist.remove()
    return len(placed)


def rf_mosaic(maps: UnitMaps, movie: str):
    """Every unit's receptive field: half-maximum outline (colour: polarity) and centre, labels where they fit."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Rectangle

    shape = next((m.shape for m, n in zip(maps.maps, maps.n_spikes) if n > 0), maps.maps[0].shape)
    fig = _new_figure(8, 8.6)
    ax = fig.add_axes((0.1, 0.1, 0.86, 0.8), label="mosaic")
    # one check of margin: outlines closed along the stimulus edge stay inside the axes
    ax.set_xlim(-1.0, shape[1])
    ax.set_ylim(shape[0], -1.0)
    ax.set_aspect("equal")
    ax.set_facecolor("0.97")
    ax.add_patch(Rectangle((-0.5, -0.5), shape[1], shape[0], fill=False, edgecolor="0.6", linewidth=0.6,
                           linestyle=":"))
    drawn = []
    counts = {1: 0, -1: 0, 0: 0}
    for uid, image, centre, polarity, n in zip(maps.unit_ids, maps.maps, maps.centres, maps.polarity,
                                               maps.n_spikes):
        if n <= 0 or not np.isfinite(centre[0]):
            continue
        counts[int(np.sign(polarity))] += 1
        outline = _half_max_outline(image, centre, polarity)
        if outline is not None:
            values, level = outline
            grid_rows, grid_cols = np.arange(-1, values.shape[0] - 1), np.arange(-1, values.shape[1] - 1)
            ax.contour(grid_cols, grid_rows, values, levels=[level], colors=[_polarity_colour(polarity)],
                       linewidths=0.9, alpha=0.8)
        drawn.append((uid, centre))
    rows = [r for _, (r, _c) in drawn]
    cols = [c for _, (_r, c) in drawn]
    ax.plot(cols, rows, linestyle="none", marker="o", markersize=2.5, color="k", label="centres")
    fig.canvas.draw()  # label extents need a laid-out figure
    labelled = _place_labels(fig, ax, [(uid.replace("unit_", ""), c, r) for uid, (r, c) in drawn])
    ax.set_xticks(range(0, shape[1], max(1, shape[1] // 8)))
    ax.set_yticks(range(0, shape[0], max(1, shape[0] // 8)))
    ax.tick_params(labelsize=7)
    ax.set_xlabel("stimulus column (checks)")
    ax.set_ylabel("stimulus row (checks)")
    legend = [Line2D([], [], color=ON_COLOUR, label=f"ON ({counts[1]})"),
              Line2D([], [], color=OFF_COLOUR, label=f"OFF ({counts[-1]})"),
              Line2D([], [], linestyle="none", marker="o", markersize=3, color="k", label="centre")]
    if counts[0]:
        legend.insert(2, Line2D([], [], color=NONE_COLOUR, label=f"no polarity ({counts[0]})"))
    ax.legend(handles=legend, loc="upper center", bbox_to_anchor=(0.5, -0.07), ncol=len(legend), fontsize=7,
              frameon=False)
    fig.suptitle(f"{movie}: receptive-field mosaic, {len(drawn)} of {counted(len(maps.unit_ids), 'unit')}\n"
                 f"half-maximum outlines; {labelled} labelled where the label fits", fontsize=9)
    return fig, {"drawn": len(drawn), "labelled": labelled, "without_map": len(maps.unit_ids) - len(drawn)}


def _zoom(position: tuple[int, int], centre: tuple[float, float], shape: tuple[int, int]) -> tuple[slice, slice]:
    """Rows and columns (0-based) of a window around the unit's sensor (1-based), else its centre."""
    row, col = position
    if not (row and col):
        if not np.isfinite(centre[0]):
            return slice(0, shape[0]), slice(0, shape[1])
        row, col = int(round(centre[0])) + 1, int(round(centre[1])) + 1
    size = 2 * EIMAGE_HALF_WIDTH + 1
    r0 = min(max(row - 1 - EIMAGE_HALF_WIDTH, 0), max(shape[0] - size, 0))
    c0 = min(max(col - 1 - EIMAGE_HALF_WIDTH, 0), max(shape[1] - size, 0))
    return slice(r0, min(r0 + size, shape[0])), slice(c0, min(c0 + size, shape[1]))


def eimage_pages(maps: UnitMaps, positions: dict[str, tuple[int, int]]) -> list:
    """One figure per ``PER_PAGE`` units: each electrical image at its trough, around the unit's sensor."""
    figures = []
    pages = _pages(len(maps.unit_ids), PER_PAGE)
    cmap = _colormap("RdBu_r")
    unit = maps.value_unit or "stored units"
    for number, page in enumerate(pages, 1):
        fig, grid = _page_figure(len(page))
        for slot, i in enumerate(page):
            uid = maps.unit_ids[i]
            ax = fig.add_subplot(grid[slot // PAGE_COLS, slot % PAGE_COLS], label=f"unit:{uid}")
            image = maps.maps[i]
            if maps.n_spikes[i] <= 0 or not np.isfinite(image).any():
                ax.set_title(uid, fontsize=7)
                _blank_panel(ax, "no spikes in the averaged\ntime range: no image" if maps.n_spikes[i] <= 0
                             else "no electrode recorded")
                continue
            rows, cols = _zoom(positions.get(uid, (0, 0)), maps.centres[i], image.shape)
            crop = image[rows, cols]
            limit = _symmetric_limit(crop)
            # extent in 1-based electrode numbers, the table's (row, col)
            extent = (cols.start + 0.5, cols.stop + 0.5, rows.stop + 0.5, rows.start + 0.5)
            drawn = ax.imshow(crop, cmap=cmap, vmin=-limit, vmax=limit, interpolation="nearest", extent=extent)
            _colourbar(fig, drawn, ax, f"voltage ({unit})", limit)
            row, col = positions.get(uid, (0, 0))
            if row and col:
                ax.plot([col], [row], marker="x", color="k", markersize=5, markeredgewidth=0.8)
            ax.set_xticks([cols.start + 1, cols.stop])
            ax.set_yticks([rows.start + 1, rows.stop])
            ax.tick_params(labelsize=TICK_SIZE, length=2, pad=1)
            ax.set_title(f"{uid}\ntrough at {maps.times_ms[i]:+.2f} ms from spike", fontsize=6.5)
        fig.suptitle(f"electrical images at the trough (page {number} of {len(pages)}, units "
                     f"{page.start + 1}-{page.stop} of {len(maps.unit_ids)}); axes: electrode row and column, "
                     "x: the sorter's sensor, grey: not recorded", fontsize=10)
        figures.append(fig)
    return figures


def eimage_centres(maps: UnitMaps, positions: dict[str, tuple[int, int]], orientation: str = ""):
    """Every unit's electrical-image centre on the whole array, joined to the sorter's sensor."""
    from matplotlib.lines import Line2D

    shape = maps.maps[0].shape
    fig = _new_figure(8, 8.6)
    ax = fig.add_axes((0.1, 0.1, 0.86, 0.8), label="eimage centres")
    ax.set_xlim(0.5, shape[1] + 0.5)
    ax.set_ylim(shape[0] + 0.5, 0.5)
    ax.set_aspect("equal")
    shown = 0
    for uid, (r, c), n in zip(maps.unit_ids, maps.centres, maps.n_spikes):
        row, col = positions.get(uid, (0, 0))
        if row and col:
            ax.plot([col], [row], marker="x", color=OFF_COLOUR, markersize=4, markeredgewidth=0.8)
        if n <= 0 or not np.isfinite(r):
            continue
        shown += 1
        ax.plot([c + 1], [r + 1], marker="+", color=ON_COLOUR, markersize=5)
        if row and col:
            ax.plot([col, c + 1], [row, r + 1], color="0.5", linewidth=0.6)
    ax.set_xticks([1, 17, 33, 49, 65])
    ax.set_yticks([1, 17, 33, 49, 65])
    ax.tick_params(labelsize=7)
    ax.set_xlabel("electrode column")
    ax.set_ylabel("electrode row")
    ax.legend(handles=[Line2D([], [], linestyle="none", marker="+", color=ON_COLOUR, label="image centre"),
                       Line2D([], [], linestyle="none", marker="x", color=OFF_COLOUR, label="sorter's sensor")],
              loc="upper center", bbox_to_anchor=(0.5, -0.07), ncol=2, fontsize=7, frameon=False)
    fig.suptitle(f"electrical-image centres of {shown} of {counted(len(maps.unit_ids), 'unit')} on the 65 x 65 array"
                 + (f"\n{orientation}" if orientation else ""), fontsize=9)
    return fig


def _rate(trials: list[np.ndarray], duration: float, bin_s: float) -> tuple[np.ndarray, np.ndarray]:
    edges = np.arange(0.0, duration + bin_s * 0.5, bin_s)
    if edges.size < 2:
        edges = np.array([0.0, max(duration, bin_s)])
    if not trials:
        return edges, np.zeros(edges.size - 1)
    counts = sum(np.histogram(t, bins=edges)[0] for t in trials)
    return edges, counts / (len(trials) * bin_s)


def step_on_off(duration_s: float) -> tuple[float, float]:
    """Light on and off (s from trial start) of the lab's step trial, scaled to the trial's duration.

    The step-response windows (:data:`hdmea.features.extractors.STEP_WINDOWS`)
    put the light on where the ON transient starts and off where the OFF
    transient starts, as fractions of a ``STEP_TRIAL_FRAMES`` trial.
    """
    from hdmea.features.extractors import STEP_TRIAL_FRAMES, STEP_WINDOWS

    on = STEP_WINDOWS["on_transient"][0] / STEP_TRIAL_FRAMES
    off = STEP_WINDOWS["off_transient"][0] / STEP_TRIAL_FRAMES
    return on * duration_s, off * duration_s


def _mark_step(ax, on_off: tuple[float, float] | None, *, shade: bool) -> None:
    if on_off is None:
        return
    on, off = on_off
    if shade:
        ax.axvspan(on, off, color="#f5d76e", alpha=0.35, linewidth=0, label="light on")
    for t, text in ((on, "on"), (off, "off")):
        ax.axvline(t, color="0.2" if shade else "w", linestyle="--", linewidth=0.9)
        if not shade:
            ax.text(t, 1.005, f"light {text}", transform=ax.get_xaxis_transform(), ha="center", va="bottom",
                    fontsize=7, color="0.1")


def _unit_ticks(ax, unit_ids: list[str], max_labels: int = 40) -> None:
    step = max(1, math.ceil(len(unit_ids) / max_labels))
    shown = list(range(0, len(unit_ids), step))
    ax.set_yticks([i + 0.5 for i in shown])
    ax.set_yticklabels([unit_ids[i] for i in shown], fontsize=6)


def movie_rates(movie: MovieTrials, is_step: bool = False):
    """Spikes of one movie.

    A movie of repeated trials: a raster of its first ``RASTER_UNITS`` units
    (trials stacked) over the mean rate of all units.  Any other movie (dense
    noise): every unit's firing rate binned into a rate image, over the mean rate.
    Returns the figure and a caption saying which units are shown.
    """
    fig = _new_figure(11, 7.5)
    grid = fig.add_gridspec(2, 2, height_ratios=[3, 1.2], width_ratios=[1, 0.025], hspace=0.28, wspace=0.03,
                            left=0.11, right=0.93, top=0.93, bottom=0.08)
    ax = fig.add_subplot(grid[0, 0], label="spikes")
    duration = movie.trial_duration_s
    on_off = step_on_off(duration) if is_step else None
    n_units = len(movie.unit_ids)
    if movie.repeated_trials:
        shown = list(range(min(n_units, RASTER_UNITS)))
        row = 0
        ticks, labels = [], []
        for i in shown:
            trials = movie.spikes[i]
            for t in trials:
                ax.vlines(t, row + 0.1, row + 0.9, linewidth=0.6, color=f"C{i % 10}")
                row += 1
            if not any(t.size for t in trials):
                ax.text(duration / 2, row - len(trials) / 2, "no spikes in this movie", ha="center", va="center",
                        fontsize=7, color="0.3")
            ticks.append(row - len(trials) / 2)
            labels.append(movie.unit_ids[i])
            ax.axhline(row, color="0.85", linewidth=0.5)
        ax.set_xlim(0, duration)
        ax.set_ylim(max(row, 1), 0)
        ax.set_yticks(ticks)
        ax.set_yticklabels(labels, fontsize=7)
        _mark_step(ax, on_off, shade=True)
        ax.set_title(f"{movie.movie}: raster of {len(shown)} of {counted(n_units, 'unit')}, {counted(movie.n_trials, 'trial')} each",
                     fontsize=10)
        fig.add_subplot(grid[0, 1]).set_axis_off()
        subset = (f"the raster shows the first {len(shown)} of {counted(n_units, 'unit')} in unit order (a raster of more "
                  "would be unreadable); the rate below averages all units" if len(shown) < n_units
                  else f"all {counted(n_units, 'unit')}")
        caption = f"{counted(movie.n_trials, 'trial')} of {duration:.2f} s; {subset}."
        bin_s = 0.05
    else:
        bin_s = max(0.25, round(duration / 200.0 * 4) / 4)
        matrix = np.vstack([_rate(trials, duration, bin_s)[1] for trials in movie.spikes]) if n_units else \
            np.zeros((0, 1))
        finite = matrix[matrix > 0]
        top = float(np.percentile(finite, 99)) if finite.size else 1.0
        image = ax.imshow(matrix, aspect="auto", interpolation="nearest", cmap="magma", vmin=0, vmax=top,
                          extent=(0, duration, n_units, 0))
        bar = fig.colorbar(image, cax=fig.add_subplot(grid[0, 1]), extend="max" if finite.size and
                           matrix.max() > top else "neither")
        bar.set_label(f"firing rate (Hz, {bin_s:g} s bins)", fontsize=8)
        bar.ax.tick_params(labelsize=7)
        _unit_ticks(ax, movie.unit_ids)
        silent = [i for i in range(n_units) if not matrix[i].any()]
        if n_units <= 40:
            for i in silent:
                ax.text(duration / 2, i + 0.5, "no spikes in this movie", ha="center", va="center", fontsize=7,
                        color="w")
        ax.set_ylabel("unit")
        ax.set_title(f"{movie.movie}: firing rate of all {counted(n_units, 'unit')}"
                     + (f", mean of {movie.n_trials} occurrences" if movie.n_trials > 1 else ""), fontsize=10)
        caption = (f"{movie.n_trials} occurrence{'s' if movie.n_trials != 1 else ''} of {duration:.2f} s; "
                   f"rate image of all {counted(n_units, 'unit')} in {bin_s:g} s bins (colour scale up to the 99th "
                   "percentile of the rates).")
        if silent:
            caption += (f" {len(silent)} unit{'s' if len(silent) != 1 else ''} without spikes in this movie "
                        f"(black row{'s' if len(silent) != 1 else ''}).")
    plt_rate = fig.add_subplot(grid[1, 0], sharex=ax, label="mean rate")
    all_trials = [t for unit in movie.spikes for t in unit]
    edges, rate = _rate(all_trials, duration, bin_s)
    plt_rate.stairs(rate, edges, color="k", linewidth=1)
    _mark_step(plt_rate, on_off, shade=True)
    plt_rate.set_xlabel("time from trial start (s)")
    plt_rate.set_ylabel(f"mean rate, all units\n(Hz, {bin_s * 1000:.0f} ms bins)", fontsize=8)
    fig.add_subplot(grid[1, 1]).set_axis_off()
    if on_off is not None:
        caption += (f" Shaded: light on ({on_off[0]:.2f}-{on_off[1]:.2f} s of the trial, the step-response "
                    "windows' convention).")
    return fig, caption


def step_responses(movie: MovieTrials):
    """Trial-averaged rate of every unit (heat map, each unit scaled to its peak) over the mean, light on/off marked."""
    n_units = len(movie.unit_ids)
    height = max(6.0, 3.0 + 0.09 * n_units)
    fig = _new_figure(11, height)
    grid = fig.add_gridspec(2, 2, height_ratios=[max(2.5, 0.09 * n_units), 1.2], width_ratios=[1, 0.025],
                            hspace=0.12, wspace=0.03, left=0.11, right=0.93, top=1 - 0.55 / height,
                            bottom=0.45 / height)
    bin_s = 1 / 60
    duration = movie.trial_duration_s
    rates = [_rate(trials, duration, bin_s) for trials in movie.spikes]
    edges = rates[0][0] if rates else np.array([0.0, duration])
    matrix = np.vstack([r for _, r in rates]) if rates else np.zeros((0, edges.size - 1))
    peak = matrix.max(axis=1, keepdims=True) if matrix.size else np.zeros((n_units, 1))
    # units without a spike in this movie: NaN rows, drawn grey
    scaled = np.where(peak > 0, matrix / np.where(peak > 0, peak, 1.0), np.nan)
    silent = [uid for uid, p in zip(movie.unit_ids, peak.ravel()) if p <= 0]
    ax = fig.add_subplot(grid[0, 0], label="step heat map")
    image = ax.imshow(scaled, aspect="auto", interpolation="nearest", cmap=_colormap("viridis"), vmin=0, vmax=1,
                      extent=(0, duration, n_units, 0))
    bar = fig.colorbar(image, cax=fig.add_subplot(grid[0, 1]))
    bar.set_label("rate / the unit's peak rate (1 = peak)", fontsize=8)
    bar.ax.tick_params(labelsize=7)
    _unit_ticks(ax, movie.unit_ids)
    for i, uid in enumerate(movie.unit_ids):
        if uid in silent and n_units <= 40:
            ax.text(duration / 2, i + 0.5, "no spikes in this movie", ha="center", va="center", fontsize=6)
    on_off = step_on_off(duration)
    _mark_step(ax, on_off, shade=False)
    ax.tick_params(labelbottom=False)
    ax.set_title(f"{movie.movie}: trial-averaged rate of all {counted(n_units, 'unit')} ({counted(movie.n_trials, 'trial')})", fontsize=10,
                 pad=14)
    ax_mean = fig.add_subplot(grid[1, 0], sharex=ax, label="mean rate")
    if matrix.size:
        ax_mean.stairs(matrix.mean(axis=0), edges, color="k", linewidth=1)
    _mark_step(ax_mean, on_off, shade=True)
    ax_mean.set_xlabel("time from trial start (s)")
    ax_mean.set_ylabel("mean rate (Hz)", fontsize=8)
    fig.add_subplot(grid[1, 1]).set_axis_off()
    caption = (f"Rate of every unit averaged over {counted(movie.n_trials, 'trial')} in display-frame bins (1/60 s), each row "
               f"scaled to its own peak; dashed lines and shading: light on at {on_off[0]:.2f} s and off at "
               f"{on_off[1]:.2f} s (the step-response windows' convention).")
    if silent:
        caption += f" Grey rows: {len(silent)} unit{'s' if len(silent) != 1 else ''} without spikes in this movie."
    return fig, caption

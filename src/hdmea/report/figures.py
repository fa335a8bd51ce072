"""Figures of the report, drawn with matplotlib's object API (no pyplot, no global backend).

Every function takes data from :mod:`hdmea.report.data` and a path, writes one
PNG and returns its path.  Large recordings are summarised: at most
``MAX_PANELS`` per-unit panels, and summary panels that show every unit.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np

from h5stream.files import write_bytes_atomic
from hdmea.report.data import MovieTrials, UnitMaps, smoothed_magnitude

__all__ = ["require_matplotlib", "rf_mosaic", "eimage_maps", "raster_and_rate", "step_responses"]

MAX_PANELS = 24
RASTER_UNITS = 12
DPI = 100


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


def _grid(n: int) -> tuple[int, int]:
    cols = min(6, max(1, math.ceil(math.sqrt(n))))
    return math.ceil(n / cols), cols


def _map_panels(fig, outer, maps: UnitMaps, cmap: str, label: str) -> None:
    n = min(len(maps.unit_ids), MAX_PANELS)
    rows, cols = _grid(n)
    inner = outer.subgridspec(rows, cols, wspace=0.15, hspace=0.35)
    for i in range(n):
        ax = fig.add_subplot(inner[i // cols, i % cols])
        image = maps.maps[i]
        finite = np.abs(image[np.isfinite(image)])
        limit = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
        # rows down, columns across: the same (row, col) orientation as the recording's arrays;
        # NaN (electrodes not recorded) is drawn blank
        ax.imshow(image, cmap=cmap, vmin=-limit, vmax=limit, interpolation="nearest")
        r, c = maps.centres[i]
        if np.isfinite(r):
            ax.plot([c], [r], marker="+", color="k", markersize=8)
        ax.set_title(f"{maps.unit_ids[i]} ({label} {maps.peak_lags[i]})", fontsize=7)
        ax.set_xticks([])
        ax.set_yticks([])


def _centres_panel(ax, maps: UnitMaps, shape: tuple[int, int], title: str) -> None:
    ax.set_xlim(-0.5, shape[1] - 0.5)
    ax.set_ylim(shape[0] - 0.5, -0.5)
    ax.set_aspect("equal")
    rows, cols = np.indices(shape)
    for uid, image, (r, c) in zip(maps.unit_ids, maps.maps, maps.centres):
        if not np.isfinite(r):
            continue
        magnitude = smoothed_magnitude(image)
        # Only the lobe around the centre: noise elsewhere would draw rings all over the map.
        magnitude[(np.abs(rows - r) > 3) | (np.abs(cols - c) > 3)] = 0.0
        peak = magnitude.max()
        if peak > 0:
            ax.contour(magnitude, levels=[0.5 * peak], linewidths=0.8, alpha=0.7)
        ax.plot([c], [r], "k.", markersize=4)
        ax.annotate(uid.replace("unit_", ""), (c, r), fontsize=6, xytext=(2, 2), textcoords="offset points")
    ax.set_title(title, fontsize=9)


def rf_mosaic(maps: UnitMaps, path: Path) -> Path:
    """Spatial STA maps at their peak lag, and every unit's centre and half-maximum contour."""
    fig = _new_figure(13, 6)
    outer = fig.add_gridspec(1, 2, width_ratios=[2.2, 1], wspace=0.15)
    _map_panels(fig, outer[0], maps, "RdBu_r", "lag")
    ax = fig.add_subplot(outer[1])
    _centres_panel(ax, maps, maps.maps[0].shape,
                   f"receptive-field mosaic: {len(maps.unit_ids)} units (half-maximum contours)")
    ax.set_xlabel("stimulus column (checks)")
    ax.set_ylabel("stimulus row (checks)")
    fig.suptitle(f"{maps.name}: spatial maps at the peak lag", fontsize=11)
    return _save(fig, path)


def eimage_maps(maps: UnitMaps, positions: dict[str, tuple[int, int]], path: Path) -> Path:
    """Electrical images at the spike's trough, and their centres on the 65 x 65 array."""
    fig = _new_figure(13, 6)
    outer = fig.add_gridspec(1, 2, width_ratios=[2.2, 1], wspace=0.15)
    _map_panels(fig, outer[0], maps, "RdBu_r", "t")
    ax = fig.add_subplot(outer[1])
    _centres_panel(ax, maps, maps.maps[0].shape, f"electrical-image centres: {len(maps.unit_ids)} units")
    for uid in maps.unit_ids:
        row, col = positions.get(uid, (0, 0))
        if row and col:  # the sorter's sensor (1-based row/col) of the unit
            ax.plot([col - 1], [row - 1], "rx", markersize=4)
    ax.set_xlabel("electrode column (x = sorter's sensor)")
    ax.set_ylabel("electrode row")
    fig.suptitle("electrical images (mean filtered voltage around the spikes)", fontsize=11)
    return _save(fig, path)


def _rate(trials: list[np.ndarray], duration: float, bin_s: float) -> tuple[np.ndarray, np.ndarray]:
    edges = np.arange(0.0, duration + bin_s, bin_s)
    if not trials:
        return edges[:-1], np.zeros(max(edges.size - 1, 0))
    counts = sum(np.histogram(t, bins=edges)[0] for t in trials)
    return edges[:-1], counts / (len(trials) * bin_s)


def raster_and_rate(movie: MovieTrials, path: Path, bin_s: float = 0.05) -> Path:
    """Raster of up to ``RASTER_UNITS`` units (trials stacked) and the mean firing rate of all units."""
    fig = _new_figure(10, 7)
    grid = fig.add_gridspec(2, 1, height_ratios=[3, 1.3], hspace=0.25)
    ax = fig.add_subplot(grid[0])
    shown = list(range(min(len(movie.unit_ids), RASTER_UNITS)))
    row = 0
    ticks, labels = [], []
    for i in shown:
        trials = movie.spikes[i]
        for t in trials:
            ax.vlines(t, row + 0.1, row + 0.9, linewidth=0.6, color=f"C{i % 10}")
            row += 1
        ticks.append(row - len(trials) / 2)
        labels.append(movie.unit_ids[i])
        ax.axhline(row, color="0.85", linewidth=0.5)
    ax.set_xlim(0, movie.trial_duration_s)
    ax.set_ylim(row, 0)
    ax.set_yticks(ticks)
    ax.set_yticklabels(labels, fontsize=7)
    ax.set_title(f"{movie.movie}: {movie.n_trials} trials, {len(movie.unit_ids)} units "
                 f"(raster of {len(shown)})", fontsize=10)
    ax_rate = fig.add_subplot(grid[1], sharex=ax)
    all_trials = [t for unit in movie.spikes for t in unit]
    centres, rate = _rate(all_trials, movie.trial_duration_s, bin_s)
    ax_rate.step(centres, rate, where="post", color="k", linewidth=1)
    ax_rate.set_xlabel("time from trial start (s)")
    ax_rate.set_ylabel(f"rate (Hz, {bin_s * 1000:.0f} ms bins)")
    return _save(fig, path)


def step_responses(movie: MovieTrials, path: Path, bin_s: float = 1 / 60) -> Path:
    """Trial-averaged firing rate of every unit (heat map, each unit scaled to its peak) and the mean."""
    fig = _new_figure(10, 7)
    grid = fig.add_gridspec(2, 1, height_ratios=[2.5, 1], hspace=0.25)
    rates = []
    for trials in movie.spikes:
        centres, rate = _rate(trials, movie.trial_duration_s, bin_s)
        rates.append(rate)
    matrix = np.vstack(rates) if rates else np.zeros((0, 0))
    peak = matrix.max(axis=1, keepdims=True) if matrix.size else matrix
    scaled = np.divide(matrix, peak, out=np.zeros_like(matrix), where=peak > 0)
    ax = fig.add_subplot(grid[0])
    ax.imshow(scaled, aspect="auto", interpolation="nearest", cmap="viridis",
              extent=(0, movie.trial_duration_s, len(rates), 0))
    ax.set_ylabel("unit")
    ax.set_yticks(np.arange(len(rates)) + 0.5)
    ax.set_yticklabels(movie.unit_ids, fontsize=6)
    ax.set_title(f"{movie.movie}: step responses, trial-averaged rate per unit (scaled to its peak)",
                 fontsize=10)
    ax_mean = fig.add_subplot(grid[1], sharex=ax)
    if matrix.size:
        ax_mean.plot(centres, matrix.mean(axis=0), color="k", linewidth=1)
    ax_mean.set_xlabel("time from trial start (s)")
    ax_mean.set_ylabel("mean rate (Hz)")
    return _save(fig, path)

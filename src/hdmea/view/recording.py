"""The recording view: a receptive-field mosaic to pick units from, and each unit's page.

What is read and how it is labelled comes from the static report
(:mod:`hdmea.report.data`, :mod:`hdmea.report.figures`): the STA's spatial map
at its peak lag and the lag's text, the table's centre and polarity, the
half-maximum outline of the mosaic, the electrical image centred on its
median with the crop around the unit's sensor, sectioned spikes per movie and
the step's light on/off.  Orientation is the report's: stimulus rows and
electrode rows grow downwards, columns to the right, electrodes 1-based.

The mosaic needs every unit's STA; it is read once per version of the file
(:func:`hdmea.view.access.file_version`) and kept, so filters and unit pages do
not read it again.  A unit page reads that unit's groups only.
"""

from __future__ import annotations

import dataclasses
import json
import threading

import h5py
import numpy as np

from hdmea.io.recording import Recording, UnitView
from hdmea.view.access import NodeMissing
from hdmea.report import data as rdata
from hdmea.report import figures as rfig
from hdmea.io.layout_names import sta_dataset
from hdmea.view.plots import image_renderer, new_figure, trial_axis
from hdmea.view.tree import text

__all__ = ["RecordingSummary", "recording_summary", "mosaic_plot", "unit_page", "UnitFilter"]


@dataclasses.dataclass
class UnitRow:
    uid: str
    row: int
    col: int
    spike_count: int
    rate_hz: float
    snr: float
    centre: tuple[float, float] = (float("nan"), float("nan"))
    polarity: int = 0
    peak_lag: int = -1
    n_spikes: int = 0
    outline: list[tuple[list[float], list[float]]] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class RecordingSummary:
    dataset_id: str
    sampling_rate: float
    duration_s: float
    completed_steps: list[str]
    movie: str | None  # the noise movie of the mosaic
    map_shape: tuple[int, int]
    frame_ms: float
    units: list[UnitRow]
    frame_order: str = ""  # how the raw frames were read and why (hdmea.io.frame_order)
    warnings: list[str] = dataclasses.field(default_factory=list)  # the file's pipeline warnings


@dataclasses.dataclass
class UnitFilter:
    """Which units the mosaic shows: polarity ``"on"``/``"off"``/``"all"``, firing rate (Hz), SNR."""

    polarity: str = "all"
    min_rate: float | None = None
    max_rate: float | None = None
    min_snr: float | None = None

    def keeps(self, unit: UnitRow) -> bool:
        if self.polarity == "on" and unit.polarity <= 0:
            return False
        if self.polarity == "off" and unit.polarity >= 0:
            return False
        if self.min_rate is not None and not unit.rate_hz >= self.min_rate:
            return False
        if self.max_rate is not None and not unit.rate_hz <= self.max_rate:
            return False
        return self.min_snr is None or unit.snr >= self.min_snr

    def describe(self) -> str:
        parts = []
        if self.polarity in ("on", "off"):
            parts.append(f"{self.polarity.upper()} units")
        if self.min_rate is not None:
            parts.append(f"rate >= {self.min_rate:g} Hz")
        if self.max_rate is not None:
            parts.append(f"rate <= {self.max_rate:g} Hz")
        if self.min_snr is not None:
            parts.append(f"SNR >= {self.min_snr:g}")
        return ", ".join(parts)


_cache: dict[tuple, RecordingSummary] = {}
_cache_lock = threading.Lock()
CACHE_SIZE = 8


def _width(data_w: float, data_h: float, inner_h: int, margin: int) -> int:
    """Figure width giving square data units when the plot area is ``inner_h`` pixels high."""
    return int(round(inner_h * data_w / max(data_h, 1e-9))) + margin


def _outline(image: np.ndarray, centre: tuple[float, float], polarity: int) -> list[tuple[list[float], list[float]]]:
    """The report's half-maximum outline (:func:`hdmea.report.figures._half_max_outline`) as lines in checks."""
    outline = rfig._half_max_outline(image, centre, polarity)
    if outline is None:
        return []
    import contourpy

    values, level = outline
    rows = np.arange(-1, values.shape[0] - 1, dtype=np.float64)
    cols = np.arange(-1, values.shape[1] - 1, dtype=np.float64)
    lines = contourpy.contour_generator(cols, rows, values).lines(level)
    return [(line[:, 0].tolist(), line[:, 1].tolist()) for line in lines]


def recording_summary(f: h5py.File, version: tuple) -> RecordingSummary:
    """Units, their positions, rates, SNR and receptive fields; one read per version of the file."""
    key = (f.filename, version)
    with _cache_lock:
        if key in _cache:
            return _cache[key]
    from hdmea.report.tree import recording_overview

    recording = Recording.of(f)
    overview = recording_overview(recording.file)
    fs = recording.sampling_rate
    frame_ms = recording.frame_period_ms
    units_read = list(recording.units())
    movies = sorted({name[4:] for unit in units_read for name in unit.feature_names() if name.startswith("sta_")})
    movie = movies[0] if movies else None
    units: list[UnitRow] = []
    shape = (0, 0)
    for unit in units_read:
        count = unit.spike_count
        snr = unit.attr("quality_SNR", float("nan"))
        position = unit.position()
        row = UnitRow(unit.uid, position[0], position[1], count, float("nan"),
                      float(snr) if isinstance(snr, (int, float)) else float("nan"))
        name = f"sta_{movie}"
        if movie is not None and unit.has_feature(name) and sta_dataset(unit.feature(name)) is not None:
            features = {n: unit.feature(n) for n in (name, f"rf_{movie}") if unit.has_feature(n)}
            spatial, centre, lag, polarity = rdata._sta_measures(features, name)
            shape = spatial.shape
            row.centre, row.peak_lag, row.polarity = centre, lag, polarity
            row.n_spikes = features[name].attr_int("n_spikes_used", count)
            if row.n_spikes > 0 and np.isfinite(centre[0]):
                row.outline = _outline(spatial, centre, polarity)
        units.append(row)
    duration = recording.duration_s()
    for row in units:
        row.rate_hz = row.spike_count / duration if duration > 0 else float("nan")
    summary = RecordingSummary(str(overview["attrs"].get("dataset_id", "")), fs, duration,
                               overview["completed_steps"], movie, tuple(shape), frame_ms, units,
                               overview["frame_order"], list(overview["warnings"]))
    with _cache_lock:
        if len(_cache) >= CACHE_SIZE:
            _cache.pop(next(iter(_cache)))
        _cache[key] = summary
    return summary


def mosaic_plot(summary: RecordingSummary, keep: UnitFilter, backend: str = "canvas"):
    """The receptive-field mosaic of the kept units; tapping a centre opens that unit's page."""
    from bokeh.models import ColumnDataSource, CustomJS, HoverTool, TapTool

    drawn = [u for u in summary.units if u.n_spikes > 0 and np.isfinite(u.centre[0])]
    kept = [u for u in drawn if keep.keeps(u)]
    h, w = summary.map_shape
    filters = keep.describe()
    title = (f"{summary.movie}: receptive-field mosaic, {len(kept)} of {len(summary.units)} units"
             + (f" ({filters})" if filters else ""))
    fig = new_figure(title, backend, x_axis_label="stimulus column (checks)", y_axis_label="stimulus row (checks)",
                     sizing_mode="fixed", width=_width(w + 1, h + 1, 560, 140), height=600,
                     x_range=(-1.0, w), y_range=(h, -1.0))
    fig.rect(x=(w - 1) / 2, y=(h - 1) / 2, width=w, height=h, fill_alpha=0, line_color="#999999",
             line_dash="dotted")
    for polarity, colour, label in ((1, rfig.ON_COLOUR, "ON"), (-1, rfig.OFF_COLOUR, "OFF"),
                                    (0, rfig.NONE_COLOUR, "no polarity")):
        group = [u for u in kept if int(np.sign(u.polarity)) == polarity]
        xs = [line[0] for u in group for line in u.outline]
        ys = [line[1] for u in group for line in u.outline]
        if group:
            fig.multi_line(xs, ys, line_color=colour, line_width=1.5, line_alpha=0.85,
                           legend_label=f"{label} ({len(group)})")
    source = ColumnDataSource({
        "x": [u.centre[1] for u in kept], "y": [u.centre[0] for u in kept], "uid": [u.uid for u in kept],
        "label": [u.uid.replace("unit_", "") for u in kept],
        "polarity": ["ON" if u.polarity > 0 else "OFF" if u.polarity < 0 else "none" for u in kept],
        "rate": [u.rate_hz for u in kept], "snr": [u.snr for u in kept],
        "lag_ms": [u.peak_lag * summary.frame_ms if u.peak_lag >= 0 else float("nan") for u in kept],
    }, name="centres")
    dots = fig.scatter("x", "y", source=source, size=9, color="black", legend_label="centre",
                       selection_color="#f39c12", nonselection_alpha=0.6)
    fig.text("x", "y", text="label", source=source, x_offset=5, y_offset=-3, text_font_size="8pt",
             text_color="#1a1a1a")
    fig.add_tools(HoverTool(renderers=[dots], tooltips=[("unit", "@uid"), ("polarity", "@polarity"),
                                                        ("centre (row, col)", "(@y{0.0}, @x{0.0})"),
                                                        ("peak lag", "@lag_ms{0} ms"),
                                                        ("rate", "@rate{0.0} Hz"), ("SNR", "@snr{0.0}")]))
    fig.add_tools(TapTool(renderers=[dots]))
    source.selected.js_on_change("indices", CustomJS(args={"source": source}, code="""
const i = source.selected.indices[0];
if (i !== undefined && window.hdmeaOpenUnit) window.hdmeaOpenUnit(source.data.uid[i]);
"""))
    fig.legend.location = "top_left"
    fig.legend.label_text_font_size = "8pt"
    fig.legend.background_fill_alpha = 0.7
    info = {"title": title, "shown": [u.uid for u in kept], "without_map": [u.uid for u in summary.units
                                                                              if u not in drawn]}
    return fig, info


def _features_table(unit: UnitView) -> list[list[str]]:
    """(feature, name, value) rows: the unit's attributes and every feature's scalar attributes."""
    def shown(value) -> str:
        return f"{value:.4g}" if isinstance(value, float) else text(value)

    rows = [["unit", key, shown(value)] for key, value in unit.attrs().items()]
    for name in unit.feature_names():
        for key, value in unit.feature(name).attrs().items():
            if key in ("version", "params_hash", "extracted_at", "name"):
                continue
            if isinstance(value, np.ndarray) and value.size > 8:
                continue
            rows.append([name, key, shown(value)])
    return rows


def _sta_figures(unit: UnitView, uid: str, summary: RecordingSummary, backend: str) -> list[tuple[str, object]]:
    out = []
    features = {name: unit.feature(name) for name in unit.feature_names()}
    for name, group in features.items():
        if not name.startswith("sta_") or sta_dataset(group) is None:
            continue
        sta = group.array(sta_dataset(group), np.float64)
        first_lag = group.attr_int("first_lag", 1)
        spatial, lag, polarity = rdata.sta_spatial_map(sta, first_lag)
        movie = name[4:]
        match = next((u for u in summary.units if u.uid == uid), None) if movie == summary.movie else None
        centre = rdata._map_centre(spatial)
        if match is not None:
            centre, lag = match.centre, match.peak_lag
        frame_ms = summary.frame_ms
        lag_text = rfig._lag_text(lag, lag * frame_ms if lag >= 0 else float("nan"))
        h, w = spatial.shape
        title = f"{uid}: STA ({movie}) at {lag_text}"
        fig = new_figure(title, backend, x_axis_label="stimulus column (checks)", y_axis_label="stimulus row (checks)",
                         sizing_mode="fixed", width=_width(w, h, 380, 230), height=440)
        image_renderer(fig, spatial.astype(np.float32), x=-0.5, y=-0.5, dw=w, dh=h,
                       label="STA - mean (stimulus values)", symmetric=True, palette="RdBu11")
        fig.x_range.range_padding = fig.y_range.range_padding = 0
        fig.y_range.flipped = True
        if np.isfinite(centre[0]):
            fig.scatter([centre[1]], [centre[0]], marker="cross", size=14, color="black", line_width=2)
        out.append((f"sta:{movie}", fig))
        # the centre's time course: the table's temporal profile, else the STA at the centre check
        rf = features.get(f"rf_{movie}")
        if rf is not None and "temporal_profile" in rf:
            profile = rf.array("temporal_profile", np.float64).ravel()
            what = "receptive-field centre's time course (table's temporal_profile)"
        else:
            r, c = (int(round(centre[0])), int(round(centre[1]))) if np.isfinite(centre[0]) else (h // 2, w // 2)
            profile = sta[:, r, c] - sta.mean()
            what = "STA - mean at the centre check"
        lags = first_lag + profile.size - 1 - np.arange(profile.size)
        times = -lags * frame_ms if np.isfinite(frame_ms) else -lags.astype(np.float64)
        x_label = "time before the spike (ms)" if np.isfinite(frame_ms) else "display frames before the spike"
        course = new_figure(f"{uid}: {what}, {movie}", backend, x_axis_label=x_label,
                            y_axis_label="STA - mean (stimulus values)", height=300)
        from bokeh.models import ColumnDataSource, HoverTool, Span

        source = ColumnDataSource({"t": times, "v": profile, "lag": lags})
        course.line("t", "v", source=source, line_width=2, color=rfig.ON_COLOUR if polarity >= 0 else rfig.OFF_COLOUR)
        course.scatter("t", "v", source=source, size=4, color="#333333")
        course.add_tools(HoverTool(tooltips=[("time", "@t{0.0} ms"), ("lag (frames)", "@lag"), ("value", "@v{0.000}")]))
        if lag >= 0:
            course.add_layout(Span(location=-lag * frame_ms if np.isfinite(frame_ms) else -lag, dimension="height",
                                   line_dash="dashed", line_color="#555555"))
        out.append((f"course:{movie}", course))
    return out


def _eimage_figure(unit: UnitView, uid: str, summary: RecordingSummary, backend: str):
    from bokeh.layouts import column
    from bokeh.models import ColumnDataSource, CustomJS, Slider

    if not unit.has_feature("eimage_sta") or "data" not in unit.feature("eimage_sta"):
        return None
    group = unit.feature("eimage_sta")
    data = group.array("data", np.float64)
    spatial, trough = rdata.eimage_map(data)
    recorded = np.isfinite(data).any(axis=0)
    filled = np.where(recorded[None], data, 0.0)
    centred = np.where(recorded[None], filled - np.median(filled, axis=0, keepdims=True), np.nan)
    window = np.asarray(group.attr("window", 0)).ravel()
    first = int(window[0]) if window.size else 0
    fs = summary.sampling_rate
    position = unit.position()
    rows, cols = rfig._zoom(position, rdata._map_centre(np.minimum(spatial, 0.0)), spatial.shape)
    crop = centred[:, rows, cols].astype(np.float32)
    unit_text = group.attr("value_unit", "") or "stored units"
    ms = [(t + first) / fs * 1000.0 for t in range(crop.shape[0])]
    title = f"{uid}: electrical image at {ms[trough]:+.2f} ms from spike"
    fig = new_figure(title, backend, x_axis_label="electrode column", y_axis_label="electrode row",
                     sizing_mode="fixed", width=_width(cols.stop - cols.start, rows.stop - rows.start, 380, 230),
                     height=440)
    limit = float(np.nanmax(np.abs(crop))) if np.isfinite(crop).any() else 1.0
    source, mapper = image_renderer(fig, crop[trough], x=cols.start + 0.5, y=rows.start + 0.5,
                                    dw=cols.stop - cols.start, dh=rows.stop - rows.start,
                                    label=f"voltage ({unit_text})", symmetric=True, palette="RdBu11")
    mapper.low, mapper.high = -limit, limit  # one scale for every time
    fig.x_range.range_padding = fig.y_range.range_padding = 0
    fig.y_range.flipped = True
    if position[0] and position[1]:
        fig.scatter([position[1]], [position[0]], marker="x", size=12, color="black", line_width=2)
    frames = ColumnDataSource({"frame": [frame for frame in crop], "ms": ms}, name="eimage_frames")
    step = 1000.0 / fs
    slider = Slider(start=ms[0], end=ms[-1], value=ms[trough], step=step, format="0.00",
                    title="time from spike (ms)", sizing_mode="stretch_width", name="eimage_slider")
    slider.js_on_change("value", CustomJS(args={"source": source, "frames": frames, "title": fig.title}, code=f"""
const i = Math.max(0, Math.min(frames.data.frame.length - 1, Math.round((cb_obj.value - ({ms[0]})) / {step})));
source.data = {{...source.data, image: [frames.data.frame[i]]}};
title.text = {json.dumps(uid)} + ": electrical image at " + (frames.data.ms[i] >= 0 ? "+" : "") + frames.data.ms[i].toFixed(2) + " ms from spike";
"""))
    return column(slider, fig, sizing_mode="stretch_width")


def _movie_figures(recording: Recording, uid: str, summary: RecordingSummary, backend: str) -> list[tuple[str, object]]:
    from bokeh.layouts import column
    from bokeh.models import BoxAnnotation, ColumnDataSource, HoverTool, Span

    out = []
    features = recording.unit(uid).feature_names()
    for movie in rdata._movie_trials(recording, [uid]):
        trials = movie.spikes[0]
        duration = movie.trial_duration_s
        is_step = f"step_response_{movie.movie}" in features
        on_off = rfig.step_on_off(duration) if is_step else None
        x = np.concatenate(trials) if trials else np.zeros(0)
        trial = np.concatenate([np.full(t.size, i, dtype=np.float64) for i, t in enumerate(trials)]) if trials else x
        n = len(trials)
        raster = new_figure(f"{uid}: {movie.movie}, raster of {n} trial{'s' if n != 1 else ''} of {duration:.2f} s",
                            backend, x_axis_label="time from trial start (s)", y_axis_label="trial",
                            height=max(180, min(420, 80 + 22 * n)), x_range=(0, duration), y_range=(max(n, 1), 0))
        trial_axis(raster, max(n, 1))
        source = ColumnDataSource({"x": x, "y0": trial + 0.1, "y1": trial + 0.9,
                                   "number": (trial + 1).astype(np.int64)})
        seg = raster.segment(x0="x", x1="x", y0="y0", y1="y1", source=source, color="#222222", line_width=1)
        raster.add_tools(HoverTool(renderers=[seg], tooltips=[("time (s)", "@x{0.000}"), ("trial", "@number")]))
        bin_s = 0.05 if movie.repeated_trials or duration <= 20 else max(0.25, round(duration / 200.0 * 4) / 4)
        edges, rate = rfig._rate(trials, duration, bin_s)
        psth = new_figure(f"{uid}: {movie.movie}, PSTH ({bin_s * 1000:.0f} ms bins, mean of {n} trial"
                          f"{'s' if n != 1 else ''})", backend, x_axis_label="time from trial start (s)",
                          y_axis_label="rate (Hz)", height=220, x_range=raster.x_range)
        psth.quad(left=edges[:-1], right=edges[1:], bottom=0, top=rate, fill_color="#555555", line_color=None)
        psth.add_tools(HoverTool(tooltips=[("from (s)", "@left{0.00}"), ("rate (Hz)", "@top{0.0}")]))
        for fig in (raster, psth):
            if on_off is not None:
                fig.add_layout(BoxAnnotation(left=on_off[0], right=on_off[1], fill_color="#f5d76e", fill_alpha=0.35))
                for t in on_off:
                    fig.add_layout(Span(location=t, dimension="height", line_dash="dashed", line_color="#333333"))
        out.append((f"movie:{movie.movie}", column(raster, psth, sizing_mode="stretch_width")))
    return out


def unit_page(f: h5py.File, uid: str, summary: RecordingSummary, backend: str = "canvas") -> dict:
    """The unit's figures (key, Bokeh model) and its features table."""
    recording = Recording.of(f)
    if uid not in recording.unit_ids:
        raise NodeMissing(f"no unit {uid!r} in /units")
    unit = recording.unit(uid)
    figures = _sta_figures(unit, uid, summary, backend)
    eimage = _eimage_figure(unit, uid, summary, backend)
    if eimage is not None:
        figures.append(("eimage", eimage))
    figures.extend(_movie_figures(recording, uid, summary, backend))
    match = next((u for u in summary.units if u.uid == uid), None)
    head = {"uid": uid, "row": match.row if match else 0, "col": match.col if match else 0,
            "spike_count": match.spike_count if match else 0,
            "rate_hz": None if match is None or not np.isfinite(match.rate_hz) else round(match.rate_hz, 3),
            "polarity": None if match is None else ("ON" if match.polarity > 0 else "OFF" if match.polarity < 0
                                                    else "none")}
    return {"unit": head, "figures": figures, "features": _features_table(unit)}

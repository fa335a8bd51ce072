"""A dataset drawn by kind, from a bounded read: what the viewer shows when a dataset is clicked.

Kinds (:func:`hdmea.view.tree.dataset_kind`): ``line`` for 1-D data (and 2-D
data with one row or column), ``image`` for 2-D data with a colour bar,
``stack`` for 3-D data (an image of one index of the first axis, a slider over
that axis; more axes: index 0 of the leading ones), ``raster`` for spike times
(trials of a sectioned movie stacked as rows when the dataset's group holds
``trial_offsets`` and ``trial_bounds``), ``text`` for everything else.

Reads are bounded, whatever the dataset's size: a line reads at most
:data:`LINE_WINDOW` elements (a window that a slider moves along the data) and
draws the minimum and maximum of each of :data:`LINE_BINS` bins; an image reads
at most :data:`IMAGE_READ` elements (rows from a slider's position) and averages
blocks down to at most :data:`IMAGE_PIXELS` a side; a raster reads at most
:data:`MAX_SPIKES` spikes.  HDF5 reads only the chunks the selection touches, so
a 10 GB dataset costs the same first plot as a 10 MB one.  Titles say what is
shown when it is not everything.

Every plot has Bokeh's pan, box zoom, wheel zoom, reset, hover and save tools;
``backend="svg"`` draws with SVG so the save tool writes SVG instead of PNG.
"""

from __future__ import annotations

import base64
import json
import math

import h5py
import numpy as np

from hdmea.io.recording import Recording
from hdmea.view.access import NodeMissing
from hdmea.view.tree import clean_node, dataset_kind, get_dataset

__all__ = ["trial_axis", "dataset_plot", "dataset_slice", "LINE_WINDOW", "LINE_BINS", "IMAGE_READ", "IMAGE_PIXELS",
           "MAX_SPIKES", "TOOLS", "new_figure", "image_renderer", "encode"]

LINE_WINDOW = 1_000_000
LINE_BINS = 2000
IMAGE_READ = 4_000_000
IMAGE_PIXELS = 800
MAX_SPIKES = 200_000
TOOLS = "pan,box_zoom,wheel_zoom,reset,save"
PALETTE = "Viridis256"


def new_figure(title: str, backend: str = "canvas", **kwargs):
    from bokeh.plotting import figure

    kwargs.setdefault("sizing_mode", "stretch_width")
    kwargs.setdefault("height", 420)
    fig = figure(title=title, tools=TOOLS, output_backend="svg" if backend == "svg" else "canvas",
                 active_scroll="wheel_zoom", **kwargs)
    fig.title.text_font_size = "12pt"
    return fig


def encode(array: np.ndarray) -> dict:
    """A float32 array as base64 with its shape, for the browser (NaN kept)."""
    array = np.ascontiguousarray(array, dtype="<f4")
    return {"shape": list(array.shape), "data": base64.b64encode(array.tobytes()).decode("ascii")}


def _as_float(values: np.ndarray) -> np.ndarray:
    return np.asarray(values, dtype=np.float64)


# --------------------------------------------------------------------------- bounded reads


def line_window(ds: h5py.Dataset, start: int) -> dict:
    """Min/max envelope of at most :data:`LINE_WINDOW` elements from ``start`` of the 1-D view of ``ds``."""
    n = int(ds.size)
    start = int(min(max(start, 0), max(n - 1, 0)))
    stop = min(n, start + LINE_WINDOW)
    if ds.ndim == 1:
        values = _part(ds, slice(start, stop))
    else:  # 2-D with one row or one column
        values = _part(ds, (0, slice(start, stop)) if ds.shape[0] == 1 else (slice(start, stop), 0))
    values = _as_float(values).ravel()
    count = values.size
    if count > 2 * LINE_BINS:
        per = math.ceil(count / LINE_BINS)
        pad = (-count) % per
        padded = np.concatenate([values, np.full(pad, np.nan)]) if pad else values
        blocks = padded.reshape(-1, per)
        with np.errstate(all="ignore"):
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                low, high = np.nanmin(blocks, axis=1), np.nanmax(blocks, axis=1)
        starts = start + np.arange(blocks.shape[0]) * per
        x = np.repeat(starts + per / 2.0, 2)
        y = np.column_stack([low, high]).ravel()
        note = f"min/max of {per} samples per point"
    else:
        x = np.arange(start, stop, dtype=np.float64)
        y = values
        note = ""
    return {"x": x, "y": y, "start": start, "stop": stop, "n": n, "note": note}


def image_block(ds: h5py.Dataset, index: int, start: int) -> dict:
    """At most :data:`IMAGE_READ` elements of a 2-D view of ``ds``, block-averaged to the display size.

    2-D data: rows from ``start``; 3-D and more: the image at ``index`` of the
    first axis (index 0 of any further leading axis), rows from ``start``.
    """
    lead: tuple = ()
    if ds.ndim >= 3:
        index = int(min(max(index, 0), ds.shape[0] - 1))
        lead = (index,) + (0,) * (ds.ndim - 3)
    rows_total, cols_total = ds.shape[-2], ds.shape[-1]
    cols = min(cols_total, IMAGE_READ)
    rows = max(1, min(rows_total, IMAGE_READ // cols))
    start = int(min(max(start, 0), max(rows_total - rows, 0)))
    block = _as_float(_part(ds, lead + (slice(start, start + rows), slice(0, cols))))
    step_r = max(1, math.ceil(block.shape[0] / IMAGE_PIXELS))
    step_c = max(1, math.ceil(block.shape[1] / IMAGE_PIXELS))
    read_rows, read_cols = block.shape
    if step_r > 1 or step_c > 1:  # block means; the last blocks are padded with NaN, not dropped
        import warnings

        r, c = -(-read_rows // step_r) * step_r, -(-read_cols // step_c) * step_c
        padded = np.full((r, c), np.nan)
        padded[:read_rows, :read_cols] = block
        block = padded.reshape(r // step_r, step_r, c // step_c, step_c)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            block = np.nanmean(block, axis=(1, 3))
    return {"image": block, "row0": start, "rows": read_rows, "cols": read_cols,
            "dh": block.shape[0] * step_r, "dw": block.shape[1] * step_c, "index": index if lead else None,
            "rows_total": rows_total, "cols_total": cols_total, "step": (step_r, step_c)}


def _part(ds: h5py.Dataset, selection) -> np.ndarray:
    """Part of ``ds``, read through the recording's reader."""
    return Recording.of(ds.file).read_part(ds.name, selection)


def _fs(f: h5py.File) -> float:
    return Recording.of(f).sampling_rate


def raster_data(f: h5py.File, ds: h5py.Dataset) -> dict:
    """Spike times in s: per trial from its start when the group is a sectioned movie, else from 0."""
    fs = _fs(f)
    group = ds.parent
    n = int(ds.shape[0])
    shown = min(n, MAX_SPIKES)
    values = np.asarray(_part(ds, slice(0, shown)), dtype=np.int64)
    if "trial_offsets" in group and "trial_bounds" in group:
        recording = Recording.of(f)
        offsets = recording.read(f"{group.name}/trial_offsets", np.int64).ravel()
        bounds = recording.read(f"{group.name}/trial_bounds", np.int64).reshape(-1, 2)
        n_trials = min(bounds.shape[0], max(offsets.size - 1, 0))
        trial = np.searchsorted(offsets, np.arange(shown), side="right") - 1
        trial = np.clip(trial, 0, max(n_trials - 1, 0))
        x = (values - bounds[trial, 0]) / fs if n_trials else values / fs
        duration = float(np.median(bounds[:, 1] - bounds[:, 0]) / fs) if bounds.size else float(x.max(initial=0))
        return {"x": x, "trial": trial.astype(np.float64), "n_trials": max(n_trials, 1), "duration": duration,
                "sectioned": True, "n": n, "shown": shown, "fs": fs}
    x = values / fs
    return {"x": x, "trial": np.zeros(shown), "n_trials": 1, "duration": float(x.max(initial=0.0)),
            "sectioned": False, "n": n, "shown": shown, "fs": fs}


# --------------------------------------------------------------------------- figures


def trial_axis(fig, n_rows: int, label: str = "trial") -> None:
    """Rows of a raster: row ``i`` spans ``i``-``i + 1`` and is labelled ``i + 1``, first row at the top."""
    from bokeh.models import FixedTicker

    step = max(1, math.ceil(n_rows / 20))
    ticks = [i + 0.5 for i in range(0, n_rows, step)]
    fig.yaxis.ticker = FixedTicker(ticks=ticks)
    fig.yaxis.major_label_overrides = {t: str(int(t - 0.5) + 1) for t in ticks}
    fig.yaxis.axis_label = label
    fig.y_range.start, fig.y_range.end = n_rows, 0


def image_renderer(fig, image: np.ndarray, *, x: float, y: float, dw: float, dh: float, label: str,
                   symmetric: bool = False, palette: str | None = None):
    """An image with a colour bar named ``label`` and hover showing row, column and value."""
    from bokeh.models import ColorBar, ColumnDataSource, HoverTool, LinearColorMapper

    finite = image[np.isfinite(image)]
    if symmetric:
        limit = float(np.abs(finite).max()) if finite.size and np.abs(finite).max() > 0 else 1.0
        low, high = -limit, limit
        palette = palette or "RdBu11"
    else:
        low = float(finite.min()) if finite.size else 0.0
        high = float(finite.max()) if finite.size else 1.0
        if high <= low:
            high = low + 1.0
    if palette == "RdBu11":
        from bokeh.palettes import RdBu11, interp_palette

        colours = interp_palette(RdBu11, 255)  # blue negative to red positive, as the report's RdBu_r
    else:
        from bokeh.palettes import Viridis256

        colours = Viridis256
    mapper = LinearColorMapper(palette=colours, low=low, high=high, nan_color="#d1d1d1")
    source = ColumnDataSource({"image": [np.asarray(image, dtype=np.float32)], "x": [x], "y": [y], "dw": [dw],
                               "dh": [dh]}, name="image_source")
    glyph = fig.image(image="image", x="x", y="y", dw="dw", dh="dh", color_mapper=mapper, source=source)
    bar = ColorBar(color_mapper=mapper, title=label, location=(0, 0))
    fig.add_layout(bar, "right")
    fig.add_tools(HoverTool(renderers=[glyph], tooltips=[("row", "$y{0,0.0}"), ("col", "$x{0,0.0}"),
                                                         ("value", "@image{0.000g}")]))
    return source, mapper


def _slider_js(file_id: str, node: str, param: str) -> str:
    """CustomJS code: fetch the slice at the slider's value and put it into the plot's source."""
    return f"""
const url = "api/slice?file=" + encodeURIComponent({json.dumps(file_id)}) + "&node=" + encodeURIComponent({json.dumps(node)})
          + "&{param}=" + Math.round(cb_obj.value);
fetch(url).then(r => r.json()).then(d => {{
  if (d.error) {{ title.text = d.error; return; }}
  const raw = Uint8Array.from(atob(d.data), c => c.charCodeAt(0));
  const flat = new Float32Array(raw.buffer);
  if (d.kind === "line") {{
    const n = flat.length / 2;
    source.data = {{x: Array.from(flat.subarray(0, n)), y: Array.from(flat.subarray(n))}};
  }} else {{
    const {{ndarray}} = Bokeh.require("core/util/ndarray");
    const image = ndarray(flat, {{dtype: "float32", shape: d.shape}});
    source.data = {{image: [image], x: [0], y: [d.row0], dw: [d.cols], dh: [d.rows]}};
    if (mapper && d.low !== null) {{ mapper.setv({{low: d.low, high: d.high}}); }}
  }}
  title.text = d.title;
  document.dispatchEvent(new CustomEvent("hdmea-slice", {{detail: d}}));
}});
"""


def _line_title(node: str, w: dict) -> str:
    part = ""
    if w["start"] > 0 or w["stop"] < w["n"]:
        part = f", elements {w['start']:,}-{w['stop'] - 1:,} of {w['n']:,}"
    return f"{node}{part}" + (f" ({w['note']})" if w["note"] else "")


def _image_title(node: str, b: dict) -> str:
    parts = []
    if b["index"] is not None:
        parts.append(f"[{b['index']}]")
    text = node + "".join(parts)
    if b["rows"] < b["rows_total"] or b["cols"] < b["cols_total"]:
        text += f", rows {b['row0']:,}-{b['row0'] + b['rows'] - 1:,} of {b['rows_total']:,}"
        if b["cols"] < b["cols_total"]:
            text += f", columns 0-{b['cols'] - 1:,} of {b['cols_total']:,}"
    if b["step"] != (1, 1):
        text += f" (mean of {b['step'][0]}x{b['step'][1]} blocks)"
    return text


def dataset_plot(f: h5py.File, node: str, file_id: str, backend: str = "canvas") -> tuple[object | None, dict]:
    """The Bokeh layout for the dataset ``node`` (None for text) and a description of it."""
    from bokeh.layouts import column
    from bokeh.models import ColumnDataSource, CustomJS, HoverTool, Slider

    node = clean_node(node)
    ds = get_dataset(f, node)
    kind = dataset_kind(ds)
    info = {"kind": kind, "title": node, "shape": list(ds.shape), "dtype": str(ds.dtype)}
    if kind == "text":
        recording = Recording.of(f)
        value = (recording.read(ds.name) if ds.size <= 64 or not ds.ndim
                 else recording.read_part(ds.name, (slice(0, 64),) + (0,) * (ds.ndim - 1)))
        from hdmea.view.tree import text

        info["text"] = text(value)
        if isinstance(value, np.ndarray) and value.dtype.kind in "OSU" and value.size <= 64:
            info["text"] = ", ".join(text(v) for v in value.ravel().tolist())
        return None, info
    if kind == "line":
        w = line_window(ds, 0)
        title = _line_title(node, w)
        fig = new_figure(title, backend, x_axis_label="index", y_axis_label=f"value ({ds.dtype})")
        source = ColumnDataSource({"x": w["x"], "y": w["y"]}, name="line_source")
        fig.line("x", "y", source=source, line_width=1)
        from bokeh.models import NumeralTickFormatter

        fig.xaxis.formatter = NumeralTickFormatter(format="0,0")
        fig.add_tools(HoverTool(tooltips=[("index", "@x{0,0}"), ("value", "@y{0.000g}")], mode="vline"))
        info["title"] = title
        if w["stop"] - w["start"] < w["n"]:
            slider = Slider(start=0, end=max(w["n"] - LINE_WINDOW, 0), value=0, step=max(1, LINE_WINDOW // 10),
                            title=f"first element shown (window of {LINE_WINDOW:,})", sizing_mode="stretch_width",
                            name="window_slider")
            slider.js_on_change("value_throttled", CustomJS(args={"source": source, "title": fig.title, "mapper": None},
                                                            code=_slider_js(file_id, node, "start")))
            return column(slider, fig, sizing_mode="stretch_width"), info
        return fig, info
    if kind == "raster":
        r = raster_data(f, ds)
        what = "trial" if r["sectioned"] else "unit"
        title = f"{node}: {r['shown']:,} spike{'s' if r['shown'] != 1 else ''}" + (
            f" (first {r['shown']:,} of {r['n']:,})" if r["shown"] < r["n"] else "")
        info["title"] = title
        x_label = "time from trial start (s)" if r["sectioned"] else "time from recording start (s)"
        fig = new_figure(title, backend, x_axis_label=x_label, y_axis_label=what,
                         height=max(200, min(600, 60 + 24 * r["n_trials"])), y_range=(r["n_trials"], 0))
        source = ColumnDataSource({"x": r["x"], "y0": r["trial"] + 0.1, "y1": r["trial"] + 0.9,
                                   "number": (r["trial"] + 1).astype(np.int64)})
        seg = fig.segment(x0="x", x1="x", y0="y0", y1="y1", source=source, line_width=1, color="#222222")
        fig.add_tools(HoverTool(renderers=[seg], tooltips=[("time (s)", "@x{0.0000}"), (what, "@number")]))
        trial_axis(fig, r["n_trials"], what)
        return fig, info
    b = image_block(ds, 0, 0)
    title = _image_title(node, b)
    info["title"] = title
    # square pixels when that fits in 300-900 pixels of width, else the page's width; the ranges follow the data
    width = int(max(300, 440 * b["dw"] / max(b["dh"], 1) + 170))
    size = {"sizing_mode": "fixed", "width": width} if width <= 900 else {"sizing_mode": "stretch_width"}
    fig = new_figure(title, backend, x_axis_label=f"column (axis {ds.ndim - 1})",
                     y_axis_label=f"row (axis {ds.ndim - 2})", height=520, **size)
    source, mapper = image_renderer(fig, b["image"], x=0, y=b["row0"], dw=b["dw"], dh=b["dh"],
                               label=f"value ({ds.dtype})")
    fig.x_range.range_padding = 0
    fig.y_range.range_padding = 0
    fig.y_range.flipped = True  # row 0 at the top, as the report's images
    widgets = []
    if kind == "stack":
        slider = Slider(start=0, end=ds.shape[0] - 1, value=0, step=1, title=f"index along axis 0 (of {ds.shape[0]})",
                        sizing_mode="stretch_width", name="index_slider")
        slider.js_on_change("value_throttled", CustomJS(args={"source": source, "title": fig.title, "mapper": mapper},
                                                        code=_slider_js(file_id, node, "index")))
        widgets.append(slider)
    elif b["rows"] < b["rows_total"]:
        slider = Slider(start=0, end=b["rows_total"] - b["rows"], value=0, step=1, title="first row shown",
                        sizing_mode="stretch_width", name="window_slider")
        slider.js_on_change("value_throttled", CustomJS(args={"source": source, "title": fig.title, "mapper": mapper},
                                                        code=_slider_js(file_id, node, "start")))
        widgets.append(slider)
    if widgets:
        return column(*widgets, fig, sizing_mode="stretch_width"), info
    return fig, info


def dataset_slice(f: h5py.File, node: str, index: int = 0, start: int = 0) -> dict:
    """What a slider asks for: the window or image at its position, encoded for the browser."""
    node = clean_node(node)
    ds = get_dataset(f, node)
    kind = dataset_kind(ds)
    if kind == "line":
        w = line_window(ds, start)
        out = encode(np.concatenate([w["x"], w["y"]]))
        out.update(kind="line", title=_line_title(node, w))
        return out
    if kind in ("image", "stack"):
        b = image_block(ds, index, start)
        out = encode(b["image"])
        finite = b["image"][np.isfinite(b["image"])]
        low, high = (float(finite.min()), float(finite.max())) if finite.size else (None, None)
        if low is not None and high <= low:
            high = low + 1.0
        out.update(kind="image", title=_image_title(node, b), row0=b["row0"], rows=b["dh"], cols=b["dw"], low=low,
                   high=high)
        return out
    raise NodeMissing(f"{node} has no slices (drawn as {kind})")

"""Visual report of a processed recording: PNG figures and one HTML page.

``write_report(file, out_dir)`` draws what the file holds: a receptive-field
mosaic per noise movie (STA spatial maps at the peak lag, centres and
half-maximum contours), electrical-image maps, a raster and firing-rate plot
per movie, and step-response summaries for movies made of repeated trials; the
page lists the steps completed and the scalar features per unit.

matplotlib is an optional extra (``pip install 'h5stream[report]'``) imported
only when a report is drawn; without it :func:`write_report` raises an
``ImportError`` that says what to install.  :func:`describe_recording` (the
text of ``hdmea inspect``) needs nothing beyond h5py.
"""

from __future__ import annotations

import dataclasses
import html
import os
import re
from pathlib import Path

from h5stream.files import write_bytes_atomic
from hdmea.report.tree import describe_recording

__all__ = ["Report", "write_report", "describe_recording"]


@dataclasses.dataclass
class Report:
    """Files of one recording's report."""

    html: Path
    figures: list[Path]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "x"


def write_report(path: str | os.PathLike, out_dir: str | os.PathLike) -> Report:
    """Write the figures and ``<dataset_id>.html`` of the recording file ``path`` into ``out_dir``.

    Returns
    -------
    Report
        The page and the figures, in the order the page shows them.

    Raises
    ------
    ImportError
        matplotlib is not installed.
    hdmea.errors.RecordingFormatError, h5stream.errors.FormatError
        ``path`` is not a readable recording file.
    """
    from hdmea.report import figures as fig
    from hdmea.report.data import read_recording_data

    fig.require_matplotlib()  # fail before reading anything when the extra is missing
    data = read_recording_data(path)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = _slug(data.dataset_id)
    sections: list[tuple[str, str, Path]] = []  # (title, caption, png)
    for maps in data.sta:
        png = fig.rf_mosaic(maps, out / f"{stem}_{_slug(maps.name)}_mosaic.png")
        sections.append((f"Receptive fields ({maps.name[4:]})",
                         f"STA spatial maps at the peak lag of {len(maps.unit_ids)} units; "
                         "crosses and contours mark the centres and half-maximum outlines.", png))
    if data.eimage is not None:
        png = fig.eimage_maps(data.eimage, data.unit_positions, out / f"{stem}_eimage.png")
        sections.append(("Electrical images",
                         f"Mean filtered voltage of {len(data.eimage.unit_ids)} units at the spike trough "
                         "on the 65 x 65 array; red crosses: the spike sorter's sensor.", png))
    for movie in data.movies:
        png = fig.raster_and_rate(movie, out / f"{stem}_raster_{_slug(movie.movie)}.png")
        sections.append((f"Raster and firing rate: {movie.movie}",
                         f"{movie.n_trials} trials of {movie.trial_duration_s:.2f} s.", png))
        if movie.repeated_trials:
            png = fig.step_responses(movie, out / f"{stem}_steps_{_slug(movie.movie)}.png")
            sections.append((f"Step responses: {movie.movie}",
                             "Trial-averaged rate of every unit in display-frame bins.", png))
    page = out / f"{stem}.html"
    write_bytes_atomic(page, _html_page(data, sections).encode("utf-8"))
    return Report(html=page, figures=[png for _, _, png in sections])


def _html_page(data, sections) -> str:
    esc = html.escape
    rows = "".join(
        f"<tr><td>{esc(uid)}</td><td>{data.unit_positions[uid][0]}</td><td>{data.unit_positions[uid][1]}</td>"
        f"<td>{data.spike_counts[uid]}</td></tr>"
        for uid in data.unit_ids
    )
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{esc(data.dataset_id)}: hdmea report</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}"
        "img{max-width:100%;border:1px solid #ddd}table{border-collapse:collapse;font-size:12px}"
        "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}</style></head><body>",
        f"<h1>{esc(data.dataset_id)}</h1>",
        f"<p>File: <code>{esc(str(data.path))}</code><br>Sampling rate: {data.sampling_rate:g} Hz<br>"
        f"Steps completed: {esc(', '.join(data.completed_steps) or 'none')}<br>"
        f"Units: {len(data.unit_ids)}, spikes: {sum(data.spike_counts.values())}</p>",
    ]
    if not sections:
        parts.append("<p>This recording has no receptive fields, electrical images or sectioned spikes yet.</p>")
    for title, caption, png in sections:
        parts.append(f"<h2>{esc(title)}</h2><p>{esc(caption)}</p>"
                     f"<img src='{esc(png.name)}' alt='{esc(title)}'>")
    for feature, per_unit in sorted(data.feature_scalars.items()):
        names = sorted({k for values in per_unit.values() for k in values})
        head = "".join(f"<th>{esc(n)}</th>" for n in names)
        body = "".join(
            f"<tr><td>{esc(uid)}</td>" + "".join(
                f"<td>{_fmt(values.get(n))}</td>" for n in names) + "</tr>"
            for uid, values in per_unit.items()
        )
        parts.append(f"<h2>Feature {esc(feature)}</h2><table><tr><th>unit</th>{head}</tr>{body}</table>")
    parts.append("<h2>Units</h2><table><tr><th>unit</th><th>row</th><th>col</th><th>spikes</th></tr>"
                 f"{rows}</table></body></html>")
    return "\n".join(parts)


def _fmt(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape(str(value))

"""Visual report of a processed recording: PNG figures and one HTML page.

``write_report(file, out_dir)`` draws what the file holds: per noise movie,
pages of every unit's STA at its peak lag (labelled in the table's
``peak_lag_frames`` and in ms) and a receptive-field mosaic; pages of
electrical images at their trough (time from the spike in ms) and their
centres on the array; per movie, a firing-rate image of all units (or, for
movies of repeated trials, a raster of the first units over the mean rate);
and step-response heat maps with light on and off marked.  Every heat map has
a colour bar naming its unit; each caption on the page says which units a
figure shows.  The page lists the steps completed and the scalar features per
unit.  :func:`report_figures` returns the figures unsaved, for inspection.

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
import tempfile
from pathlib import Path

from h5stream.errors import WriteError
from h5stream.files import write_bytes_atomic
from hdmea.report.tree import describe_recording
from hdmea.progress import counted

__all__ = ["Report", "write_report", "report_figures", "describe_recording"]


@dataclasses.dataclass
class Report:
    """Files of one recording's report."""

    html: Path
    figures: list[Path]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "x"


def _prepare_output(out: Path) -> list[Path]:
    """Create ``out`` if needed and prove it writable with a probe file; returns the folders created.

    Raises :class:`h5stream.errors.WriteError` (never a bare ``OSError``) naming the
    folder, what was found and what to do; folders it created are removed again.
    """
    created: list[Path] = []
    missing = out
    while not missing.exists() and missing != missing.parent:
        created.insert(0, missing)
        missing = missing.parent
    if not missing.is_dir():
        raise WriteError("the report folder is not a folder", path=out, expected="a folder (or a new path)",
                         found=f"a file at {missing}", hint="choose another --out folder")
    try:
        for folder in created:
            folder.mkdir()
    except OSError as exc:
        _remove_folders(created)
        raise WriteError("cannot create the report folder", path=out, expected="a folder that can be created",
                         found=f"{exc.strerror or exc} at {exc.filename or missing}",
                         hint="choose another --out folder or create it with write permission first") from exc
    try:
        fd, probe = tempfile.mkstemp(prefix=".hdmea-report-probe-", dir=out)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        _remove_folders(created)
        raise WriteError("the report folder is not writable", path=out, expected="a folder this user can write",
                         found=f"{exc.strerror or exc} creating a file in it",
                         hint="choose another --out folder or fix its permissions") from exc
    return created


def _remove_folders(created: list[Path]) -> None:
    """Remove the folders ``_prepare_output`` created, deepest first, if they are still empty."""
    for folder in reversed(created):
        try:
            folder.rmdir()
        except OSError:
            return


def report_figures(data) -> list[tuple[str, str, str, object]]:
    """The report's figures for ``data`` (:func:`hdmea.report.data.read_recording_data`), in page order.

    Each entry is (file-name suffix, title, caption, matplotlib Figure); the
    figures are not saved, so a test can inspect exactly what the page shows.
    """
    from hdmea.report import figures as fig

    out: list[tuple[str, str, str, object]] = []
    for maps in data.sta:
        movie = maps.name[4:]
        pages = fig.sta_pages(maps, movie)
        frame = f"{maps.frame_ms:.2f} ms" if maps.frame_ms == maps.frame_ms else "unknown"
        for number, figure in enumerate(pages, 1):
            out.append((f"{_slug(maps.name)}_p{number}", f"STA spatial maps ({movie}), page {number} of {len(pages)}",
                        f"The STA of each of the {counted(len(maps.unit_ids), 'unit')} at its peak lag, {counted(fig.PER_PAGE, 'unit')} "
                        "a page. Each panel is labelled by the time of that frame before the spike, in display "
                        "frames as the table's peak_lag_frames (frames between the map's frame and the frame in "
                        "which the spike fell, 1 = the frame before it) and in ms (those frames times the "
                        f"display's frame period, {frame}). "
                        f"Colour: STA minus its mean in {maps.value_unit}, each panel on its own symmetric scale; "
                        "+: the receptive-field centre of the table.", figure))
        mosaic, counts = fig.rf_mosaic(maps, movie)
        n = counts["without_map"]
        skipped = (f" {n} unit{'s' if n != 1 else ''} without spikes or without a peak "
                   f"{'have' if n != 1 else 'has'} no outline." if n else "")
        out.append((f"{_slug(maps.name)}_mosaic", f"Receptive-field mosaic ({movie})",
                     f"Half-maximum outlines of the STA at the peak lag, red for ON and blue for OFF units (the "
                     f"table's polarity), and the table's centres (dots) of {counts['drawn']} units; "
                     f"{counts['labelled']} are labelled (a label is drawn only where it fits without overlapping "
                     f"another).{skipped}", mosaic))
    if data.eimage is not None:
        eim = data.eimage
        pages = fig.eimage_pages(eim, data.unit_positions)
        for number, figure in enumerate(pages, 1):
            out.append((f"eimage_p{number}", f"Electrical images, page {number} of {len(pages)}",
                        f"Mean filtered voltage ({eim.value_unit or 'stored units'}) of {len(eim.unit_ids)} units "
                        f"at the trough, labelled by its time from the spike in ms; each panel shows "
                        f"{2 * fig.EIMAGE_HALF_WIDTH + 1} x {2 * fig.EIMAGE_HALF_WIDTH + 1} electrodes around the "
                        "spike sorter's sensor (x) of the 65 x 65 array, electrode numbers as in the unit "
                        "table; grey electrodes were not recorded.", figure))
        out.append(("eimage_centres", "Electrical-image centres",
                    "Centre of each electrical image (+) joined to the spike sorter's sensor (x) on the whole "
                    "array.", fig.eimage_centres(eim, data.unit_positions)))
    for movie in data.movies:
        is_step = f"step_response_{movie.movie}" in data.feature_scalars
        figure, caption = fig.movie_rates(movie, is_step=is_step)
        title = "Raster and firing rate" if movie.repeated_trials else "Firing rate"
        out.append((f"spikes_{_slug(movie.movie)}", f"{title}: {movie.movie}", caption, figure))
        if movie.repeated_trials:
            figure, caption = fig.step_responses(movie)
            out.append((f"steps_{_slug(movie.movie)}", f"Step responses: {movie.movie}", caption, figure))
    return out


def write_report(path: str | os.PathLike, out_dir: str | os.PathLike) -> Report:
    """Write the figures and ``<dataset_id>.html`` of the recording file ``path`` into ``out_dir``.

    ``out_dir`` is created if needed and checked writable before the file is read;
    a report that fails leaves no folder it created behind.

    Returns
    -------
    Report
        The page and the figures, in the order the page shows them.

    Raises
    ------
    ImportError
        matplotlib is not installed.
    h5stream.errors.WriteError
        ``out_dir`` cannot be created or written (permissions, read-only or full disk).
    hdmea.errors.RecordingFormatError, h5stream.errors.FormatError
        ``path`` is not a readable recording file.
    """
    from hdmea.report import figures as fig
    from hdmea.report.data import read_recording_data

    fig.require_matplotlib()  # fail before reading anything when the extra is missing
    out = Path(out_dir)
    created = _prepare_output(out)
    try:
        data = read_recording_data(path)
        stem = _slug(data.dataset_id)
        sections: list[tuple[str, str, Path]] = []  # (title, caption, png)
        for suffix, title, caption, figure in report_figures(data):
            sections.append((title, caption, fig._save(figure, out / f"{stem}_{suffix}.png")))
        page = out / f"{stem}.html"
        write_bytes_atomic(page, _html_page(data, sections).encode("utf-8"))
    except BaseException:
        _remove_folders(created)
        raise
    return Report(html=page, figures=[png for _, _, png in sections])


def _html_page(data, sections) -> str:
    esc = html.escape
    rows = "".join(
        # a position the file does not store is said so, never shown as a row or column number
        f"<tr><td>{esc(uid)}</td><td>{data.unit_positions[uid][0] or 'not stored'}</td>"
        f"<td>{data.unit_positions[uid][1] or 'not stored'}</td>"
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
        f"Units: {len(data.unit_ids)}, spikes: {sum(data.spike_counts.values())}"
        + (f"<br>Raw frames: {esc(data.frame_order)}" if data.frame_order else "") + "</p>",
    ]
    parts += [f"<p class='warning'><b>Warning:</b> {esc(text)}</p>" for text in data.warnings]
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

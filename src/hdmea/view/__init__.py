"""``hdmea view``: browse recording files in a local web browser.

``hdmea view REC.h5`` serves one page on ``http://127.0.0.1:<free port>/``: the
file's tree with sizes, dtypes, shapes and attributes; a dataset clicked in the
tree drawn by kind (line, image with colour bar, image with a slider over the
first axis, spike raster) with zoom, pan, hover values and PNG or SVG export;
and a recording view, the receptive-field mosaic filtered by polarity, firing
rate and SNR, where tapping a unit opens its page (STA map and time course,
electrical image with a time slider, raster and PSTH per movie, features).

Why Bokeh on Tornado: Bokeh is what many neuroscience and imaging tools
already draw with, is maintained by a large project (NumFOCUS), and ships
BokehJS inside the Python package, so the viewer works without internet and
without a JavaScript build; its plots come with pan, zoom, hover and a save
tool, and an SVG backend.  Tornado is Bokeh's own web server dependency, so
the extra adds nothing else.  The application is a small set of stateless
JSON routes returning Bokeh documents (``bokeh.embed.json_item``) rather than a
Bokeh server application: no per-browser session holds a file open, each
request opens the file read-only, reads what it shows and closes it, which is
what lets a pipeline replace the file while it is being viewed.

Safety: see :mod:`hdmea.view.access` (which files, how they are opened) and
:mod:`hdmea.view.server` (what is served).  Bokeh and Tornado are the optional
extra ``h5stream[view]``.
"""

from __future__ import annotations

import os
import sys
import warnings

from hdmea.view.server import ViewerServer, is_loopback, require_bokeh

__all__ = ["ViewerServer", "serve", "require_bokeh", "NonLoopbackWarning"]


class NonLoopbackWarning(UserWarning):
    """The viewer listens on an address other machines may reach."""


def serve(paths: list[str | os.PathLike], *, host: str = "127.0.0.1", port: int = 0, out=None) -> None:
    """Serve ``paths`` (recording files or folders) until interrupted, printing the address first."""
    out = out or sys.stdout
    if not is_loopback(host):
        warnings.warn(
            f"the viewer listens on {host}, not on this machine's loopback address: anyone who can reach "
            "this address can read the served files (it serves them read-only and nothing else)",
            NonLoopbackWarning, stacklevel=2)
    import logging

    logging.getLogger("tornado.access").setLevel(logging.WARNING)  # refusals and errors only, not every request
    server = ViewerServer(list(paths), host=host, port=port)
    folders = ", ".join(str(r) for r in server.folders.roots)
    print(f"hdmea view: serving {folders} at {server.url}  (Ctrl-C to stop)", file=out, flush=True)
    server.serve_forever()

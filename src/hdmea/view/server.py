"""The viewer's web server: one page, its script, BokehJS and a small JSON API, nothing else.

Routes (GET only; anything else is 404 or 405):

``/``, ``/app.js``, ``/app.css``
    the page (:mod:`hdmea.view.page`);
``/bokeh/bokeh.min.js``, ``/bokeh/bokeh-widgets.min.js``
    BokehJS from the installed ``bokeh`` package (works offline);
``/api/files``
    recording files of the served folders;
``/api/tree?file=&node=``
    one group's members (:mod:`hdmea.view.tree`);
``/api/plot?file=&node=&backend=``, ``/api/slice?file=&node=&index=&start=``
    a dataset's plot and a slider's next slice (:mod:`hdmea.view.plots`);
``/api/recording?file=&polarity=&min_rate=&max_rate=&min_snr=``, ``/api/unit?file=&unit=``
    the mosaic and a unit's page (:mod:`hdmea.view.recording`).

A path outside the served folders is refused with 403, a missing file or object
is 404, a file that is not a readable recording is 422 with the typed error's
message.  On a loopback address, requests whose ``Host`` header is not that
address are refused (403), so a web page elsewhere cannot reach the viewer
through a rebinding DNS name.  File reads run in a thread pool so one slow read
does not stall the page.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import math
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np

from hdmea.view.access import AccessDenied, FileMissing, NodeMissing, ServedFolders, file_version

__all__ = ["ViewerServer", "make_app", "require_bokeh", "is_loopback", "BOKEH_FILES"]

BOKEH_FILES = ("bokeh.min.js", "bokeh-widgets.min.js")
CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data: blob:; connect-src 'self'; font-src 'self' data:; object-src 'none'; "
       "base-uri 'none'; frame-ancestors 'none'; form-action 'none'")


def require_bokeh():
    """Import bokeh and tornado, or say how to install them."""
    try:
        import bokeh  # noqa: F401
        import tornado  # noqa: F401
    except ImportError as exc:
        raise ImportError("the viewer needs bokeh and tornado, which are not installed: "
                          "pip install 'h5stream[view]'") from exc


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    return value


def make_app(folders: ServedFolders, allowed_hosts: set[str] | None):
    """The tornado application serving ``folders``; ``allowed_hosts`` None accepts any Host header."""
    require_bokeh()
    import bokeh.layouts  # noqa: F401 - imported once here, so no request pays for it
    import bokeh.models  # noqa: F401
    import bokeh.plotting  # noqa: F401
    import tornado.web
    from bokeh.embed import json_item
    from bokeh.util.paths import bokehjs_path

    from h5stream.errors import H5StreamError
    from hdmea.view import page, plots, recording, tree

    bokeh_dir = Path(bokehjs_path()) / "js"

    class Base(tornado.web.RequestHandler):
        def set_default_headers(self):
            self.set_header("Content-Security-Policy", CSP)
            self.set_header("X-Content-Type-Options", "nosniff")
            self.set_header("Referrer-Policy", "no-referrer")
            self.set_header("X-Frame-Options", "DENY")
            self.set_header("Cache-Control", "no-store")
            self.clear_header("Server")

        def prepare(self):
            if allowed_hosts is not None and self.request.host.lower() not in allowed_hosts:
                raise tornado.web.HTTPError(403, reason="unexpected Host header")

        def write_error(self, status_code, **kwargs):
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps({"error": self._reason, "status": status_code}))

    class Fixed(Base):
        def initialize(self, body: Callable[[], bytes], content_type: str):
            self.body, self.content_type = body, content_type

        def get(self):
            self.set_header("Content-Type", self.content_type)
            self.finish(self.body())

    class Api(Base):
        def initialize(self, work: Callable):
            self.work = work

        async def get(self):
            args = {k: self.get_query_argument(k) for k in self.request.query_arguments}
            try:
                result = await asyncio.get_running_loop().run_in_executor(None, self.work, args)
            except AccessDenied as exc:
                raise tornado.web.HTTPError(403, reason=str(exc)) from None
            except (FileMissing, NodeMissing) as exc:
                raise tornado.web.HTTPError(404, reason=str(exc).strip("'\"")) from None
            except H5StreamError as exc:
                raise tornado.web.HTTPError(422, reason=str(exc).replace("\n", " ")) from None
            except (ValueError, TypeError) as exc:
                raise tornado.web.HTTPError(400, reason=str(exc).replace("\n", " ")) from None
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps(_jsonable(result), allow_nan=False))

    class NotFound(Base):
        def prepare(self):
            raise tornado.web.HTTPError(404, reason="not part of the viewer")

    def _file(args) -> str:
        if "file" not in args:
            raise ValueError("the request names no file")
        return args["file"]

    def _number(args, key) -> float | None:
        text = args.get(key, "").strip()
        return float(text) if text else None

    def files(args):
        return {"files": folders.listing(), "first": folders.first,
                "folders": [str(r) for r in folders.roots]}

    def tree_of(args):
        with folders.open(_file(args)) as (f, _path):
            return tree.children(f, args.get("node", "/"))

    def plot(args):
        backend = "svg" if args.get("backend") == "svg" else "canvas"
        with folders.open(_file(args)) as (f, _path):
            model, info = plots.dataset_plot(f, args.get("node", "/"), _file(args), backend)
            if model is not None:
                model.name = "dataset_plot"
                info["item"] = json_item(model, "plot")
            return info

    def slice_of(args):
        with folders.open(_file(args)) as (f, _path):
            return plots.dataset_slice(f, args.get("node", "/"), int(args.get("index", 0) or 0),
                                       int(args.get("start", 0) or 0))

    def recording_view(args):
        keep = recording.UnitFilter(args.get("polarity", "all") or "all", _number(args, "min_rate"),
                                    _number(args, "max_rate"), _number(args, "min_snr"))
        backend = "svg" if args.get("backend") == "svg" else "canvas"
        with folders.open(_file(args)) as (f, _path):
            summary = recording.recording_summary(f, file_version(f))
            out = {"dataset_id": summary.dataset_id, "steps": summary.completed_steps, "movie": summary.movie,
                   "n_units": len(summary.units), "duration_s": summary.duration_s,
                   "units": [u.uid for u in summary.units], "frame_order": summary.frame_order,
                   "warnings": summary.warnings}
            if summary.movie is None:
                out["item"] = None
                out["title"] = "no receptive fields in this file (compute_sta has not run)"
                return out
            fig, info = recording.mosaic_plot(summary, keep, backend)
            fig.name = "mosaic"
            out.update(info)
            out["item"] = json_item(fig, "mosaic")
            return out

    def unit_view(args):
        uid = args.get("unit", "")
        backend = "svg" if args.get("backend") == "svg" else "canvas"
        with folders.open(_file(args)) as (f, _path):
            summary = recording.recording_summary(f, file_version(f))
            result = recording.unit_page(f, uid, summary, backend)
            figures = []
            for number, (key, model) in enumerate(result["figures"]):
                model.name = f"unit_{key}"
                figures.append({"key": key, "item": json_item(model, f"unit-fig-{number}")})
            result["figures"] = figures
            return result

    def bokeh_js(name):
        cached: list[bytes] = []

        def body() -> bytes:
            if not cached:
                cached.append((bokeh_dir / name).read_bytes())
            return cached[0]

        return body

    routes = [
        (r"/", Fixed, {"body": page.html, "content_type": "text/html; charset=utf-8"}),
        (r"/app\.js", Fixed, {"body": page.script, "content_type": "text/javascript; charset=utf-8"}),
        (r"/app\.css", Fixed, {"body": page.style, "content_type": "text/css; charset=utf-8"}),
        (r"/api/files", Api, {"work": files}),
        (r"/api/tree", Api, {"work": tree_of}),
        (r"/api/plot", Api, {"work": plot}),
        (r"/api/slice", Api, {"work": slice_of}),
        (r"/api/recording", Api, {"work": recording_view}),
        (r"/api/unit", Api, {"work": unit_view}),
    ]
    routes += [(rf"/bokeh/{name.replace('.', chr(92) + '.')}", Fixed,
                {"body": bokeh_js(name), "content_type": "text/javascript; charset=utf-8"}) for name in BOKEH_FILES]
    return tornado.web.Application(routes, default_handler_class=NotFound, compress_response=True,
                                   xsrf_cookies=False, serve_traceback=False)


class ViewerServer:
    """The viewer bound to ``host``:``port`` (0: a free port), serving ``paths`` (files or folders).

    :meth:`serve_forever` runs it in this thread (the command line);
    :meth:`start` runs it in a background thread and :meth:`stop` ends it
    (tests, notebooks).
    """

    def __init__(self, paths: list, host: str = "127.0.0.1", port: int = 0):
        require_bokeh()
        from tornado.netutil import bind_sockets

        self.folders = ServedFolders(paths)
        self.host = host
        self.sockets = bind_sockets(port, address=host)
        self.port = int(self.sockets[0].getsockname()[1])
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{self.port}/"
        if is_loopback(host):
            names = {shown, "localhost", "127.0.0.1", "[::1]"}
            self.allowed_hosts: set[str] | None = {f"{n}:{self.port}".lower() for n in names}
        else:
            self.allowed_hosts = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped: asyncio.Event | None = None

    async def _main(self, ready: threading.Event | None = None) -> None:
        from tornado.httpserver import HTTPServer

        server = HTTPServer(make_app(self.folders, self.allowed_hosts), xheaders=False)
        server.add_sockets(self.sockets)
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        if ready is not None:
            ready.set()
        try:
            await self._stopped.wait()
        finally:
            server.stop()
            await server.close_all_connections()

    def serve_forever(self) -> None:
        try:
            asyncio.run(self._main())
        except KeyboardInterrupt:
            pass

    def start(self) -> "ViewerServer":
        ready = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main(ready)), name="hdmea-view",
                                        daemon=True)
        self._thread.start()
        if not ready.wait(30):
            raise RuntimeError("the viewer did not start within 30 s")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stopped is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

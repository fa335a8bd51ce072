"""The viewer's server without a browser: bounded reads of a 10 GB dataset, refusals, read-only
behaviour next to a writer, and the ``hdmea view`` command."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import quote, urlsplit

import numpy as np
import pytest

from tests.browser.conftest import BIG2_SHAPE, BIG_CHUNK, BIG_SHAPE


def _get(url: str, headers: dict | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        body = exc.read()
        return exc.code, json.loads(body) if body.startswith(b"{") else {"raw": body.decode(errors="replace")}


def _raw(server, method: str, target: str, host: str | None = None) -> int:
    """Status of a request sent verbatim (no client-side normalisation of ``..``)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=20)
    try:
        connection.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        connection.putheader("Host", host or f"127.0.0.1:{server.port}")
        connection.endheaders()
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def _rchar() -> int:
    """Bytes this process has read through read()/pread() so far (Linux)."""
    with open("/proc/self/io") as io:
        return next(int(line.split()[1]) for line in io if line.startswith("rchar:"))


def _envelope(values: np.ndarray, per: int) -> np.ndarray:
    """min, max of each block of ``per`` values, interleaved: what the line draws (reference)."""
    blocks = values[: values.size // per * per].reshape(-1, per)
    return np.column_stack([blocks.min(axis=1), blocks.max(axis=1)]).ravel()


@pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="bytes read are measured through /proc/self/io")
def test_first_plot_of_10_gb_dataset_reads_only_what_is_shown(served):
    from hdmea.view.access import ServedFolders
    from hdmea.view.plots import LINE_WINDOW, dataset_plot

    import bokeh.plotting  # noqa: F401 - the running viewer imported it at start

    folders = ServedFolders([served["folder"]])
    declared = BIG_SHAPE[0] * 2
    assert declared >= 10 * 1024**3
    before, started = _rchar(), time.perf_counter()
    with folders.open("0/big.h5") as (f, _path):
        model, info = dataset_plot(f, "/raw/trace", "0/big.h5")
    seconds, read = time.perf_counter() - started, _rchar() - before
    assert seconds < 2.0 * max(1.0, os.getloadavg()[0] / (os.cpu_count() or 1))
    assert read < 16 * 1024**2, f"{read} bytes read for a plot of {LINE_WINDOW} values"
    # what is drawn: the min/max of each 500 values of the first million, as numpy computes them
    source = next(m for m in model.references() if m.name == "line_source")
    per = 500
    expected = _envelope(served["big_values"][:LINE_WINDOW], per)
    np.testing.assert_array_equal(np.asarray(source.data["y"]), expected)
    assert info["title"] == f"/raw/trace, elements 0-999,999 of {BIG_SHAPE[0]:,} (min/max of {per} samples per point)"

    before, started = _rchar(), time.perf_counter()
    with folders.open("0/big.h5") as (f, _path):
        _model, info = dataset_plot(f, "/raw/frames", "0/big.h5")
    seconds, read = time.perf_counter() - started, _rchar() - before
    assert seconds < 2.0 * max(1.0, os.getloadavg()[0] / (os.cpu_count() or 1)) and read < 32 * 1024**2, (seconds, read)
    assert BIG2_SHAPE[0] * BIG2_SHAPE[1] * 2 >= 10 * 1024**3


def test_slider_windows_match_the_data(served, viewer):
    from hdmea.view.plots import LINE_WINDOW

    start = 3 * BIG_CHUNK + 12_345  # the last written chunk and the unwritten fill after it
    code, body = _get(f"{viewer.url}api/slice?file=0/big.h5&node=/raw/trace&start={start}")
    assert code == 200, body
    import base64

    flat = np.frombuffer(base64.b64decode(body["data"]), dtype="<f4")
    x, y = flat[: flat.size // 2], flat[flat.size // 2:]
    window = np.zeros(LINE_WINDOW, dtype=np.int16)
    written = served["big_values"][start:start + LINE_WINDOW]
    window[: written.size] = written
    np.testing.assert_array_equal(y, _envelope(window, 500).astype(np.float32))
    assert x[0] == start + 250
    assert body["title"].startswith(f"/raw/trace, elements {start:,}-{start + LINE_WINDOW - 1:,} of ")


def test_requests_outside_the_served_folder_are_refused(served, viewer, tmp_path):
    secret = served["secret"]
    # a symbolic link inside a served folder that points outside it
    link = served["folder"] / "link.h5"
    if not link.exists():
        link.symlink_to(secret)
    cases = {
        f"0/../{secret.parent.name}/{secret.name}": 403,
        str(secret): 403,
        "0/" + str(secret): 403,
        "0/link.h5": 403,
        "7/rec.h5": 403,
        "0/" + "../" * 12 + "etc/passwd": 403,
        "0/missing.h5": 404,
    }
    for file_id, status in cases.items():
        code, body = _get(f"{viewer.url}api/tree?file={quote(file_id, safe='')}&node=/")
        assert code == status, (file_id, code, body)
    # objects inside a served file: missing ones are 404, and a path cannot climb out of the file
    assert _get(f"{viewer.url}api/plot?file=0/rec.h5&node=/no/such")[0] == 404
    assert _get(f"{viewer.url}api/tree?file=0/rec.h5&node=/units/../..")[0] == 404
    assert _get(f"{viewer.url}api/unit?file=0/rec.h5&unit=../metadata")[0] == 404
    # nothing but the application: raw paths, other methods, other Host names
    for target in ("/../../etc/passwd", "/bokeh/../app.js", "/bokeh/bokeh-api.min.js", f"/{secret}",
                   "/static/js/bokeh.min.js", "/api"):
        assert _raw(viewer, "GET", target) == 404, target
    assert _raw(viewer, "GET", "/bokeh/bokeh.min.js") == 200
    assert _raw(viewer, "POST", "/api/tree?file=0/rec.h5") == 405
    assert _raw(viewer, "GET", "/", host=f"attacker.example:{viewer.port}") == 403
    assert _raw(viewer, "GET", "/", host=f"localhost:{viewer.port}") == 200
    link.unlink()


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_viewing_reads_only_and_a_writer_replaces_the_file_meanwhile(served, tmp_path):
    from hdmea.io.hdf5_store import open_recording_hdf5
    from hdmea.view import ViewerServer

    folder = tmp_path / "live"
    folder.mkdir()
    rec = folder / "rec.h5"
    shutil.copy(served["rec"], rec)
    stat, digest = rec.stat(), _digest(rec)
    server = ViewerServer([rec]).start()
    try:
        base = f"{server.url}api/"
        first, other = served["units"][0], served["units"][2]
        for query in ("tree?file=0/rec.h5&node=/units", f"plot?file=0/rec.h5&node=/units/{first}/spike_times",
                      "recording?file=0/rec.h5", f"unit?file=0/rec.h5&unit={other}",
                      f"slice?file=0/rec.h5&node=/units/{first}/features/eimage_sta/data&index=3"):
            code, body = _get(base + query)
            assert code == 200, (query, body)
        code, body = _get(base + "recording?file=0/rec.h5")
        import h5py

        with h5py.File(rec, "r", locking=False) as f:
            units = sorted(f["units"])
        assert body["units"] == units
        for uid in units:  # every unit has a page, with or without a receptive field
            code, page = _get(base + f"unit?file=0/rec.h5&unit={uid}")
            assert code == 200 and page["unit"]["uid"] == uid and page["features"], (uid, page)
        assert sorted(p.name for p in folder.iterdir()) == ["rec.h5"]  # no claim, no partial, no lock file

        assert (rec.stat().st_mtime_ns, rec.stat().st_ino, _digest(rec)) == (stat.st_mtime_ns, stat.st_ino, digest)

        # a pipeline's writer opens the file while the viewer is serving it (the viewer holds no lock) ...
        writer = open_recording_hdf5(rec, "a")
        writer[f"units/{first}"].attrs["viewer_test"] = 42
        code, body = _get(base + "tree?file=0/rec.h5&node=/units")
        assert code == 200 and "viewer_test" not in json.dumps(body)  # the last complete version
        writer.close()  # ... and replaces it atomically
        assert rec.stat().st_ino != stat.st_ino
        code, body = _get(base + "tree?file=0/rec.h5&node=/units")
        unit = next(c for c in body["children"] if c["name"] == first)
        assert unit["attrs"]["viewer_test"] == "42"
        code, body = _get(base + "recording?file=0/rec.h5")  # the mosaic is read again for the new version
        assert code == 200 and body["n_units"] == 6
    finally:
        server.stop()


def test_a_file_that_is_not_a_recording_is_reported(served, tmp_path):
    from hdmea.view import ViewerServer

    folder = tmp_path / "other"
    folder.mkdir()
    (folder / "notes.h5").write_bytes(b"not an HDF5 file at all" * 10)
    server = ViewerServer([folder]).start()
    try:
        code, body = _get(f"{server.url}api/files")
        assert code == 200 and [f["id"] for f in body["files"]] == ["0/notes.h5"] and body["first"] is None
        code, body = _get(f"{server.url}api/tree?file=0/notes.h5&node=/")
        assert code == 422 and "notes.h5" in body["error"]
    finally:
        server.stop()


def _start_cli(*args: str) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    proc = subprocess.Popen([sys.executable, "-m", "hdmea", "view", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    line = proc.stdout.readline()
    return proc, line


@pytest.mark.slow
def test_cli_prints_its_loopback_address_and_warns_elsewhere(served):
    proc, line = _start_cli(str(served["rec"]))
    try:
        assert line.startswith(f"hdmea view: serving {served['folder']} at http://127.0.0.1:"), line
        url = line.split(" at ", 1)[1].split()[0]
        port = urlsplit(url).port
        assert port and port > 0
        with urllib.request.urlopen(url, timeout=20) as response:
            assert b"<title>hdmea view</title>" in response.read()
        code, body = _get(url + "api/files")
        assert body["first"] == "0/rec.h5"
    finally:
        proc.terminate()
        proc.communicate(timeout=20)
    proc, line = _start_cli(str(served["rec"]), "--host", "0.0.0.0")
    try:
        assert " at http://0.0.0.0:" in line
    finally:
        proc.terminate()
        _out, err = proc.communicate(timeout=20)
    assert "not on this machine's loopback address" in err

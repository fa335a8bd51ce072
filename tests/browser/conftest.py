"""Fixtures of the viewer's tests: served files, a running viewer and a headless Chromium.

The browser is the distribution's Chromium driven by Selenium through the
distribution's chromedriver (``apt-get install chromium chromium-driver``; ``.ci/run``
installs them).  Where either is missing the browser tests are skipped with that
reason, which pytest's summary shows (``-ra``).  Screenshots go to
``$HDMEA_VIEW_SHOTS`` when set, else to a temporary folder of the session.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("bokeh", reason="the viewer needs bokeh: pip install 'h5stream[view]'")
pytest.importorskip("tornado", reason="the viewer needs tornado: pip install 'h5stream[view]'")

#: The large dataset's declared shape: 5 * 2**30 int16 values, 10 GiB, of which BIG_WRITTEN chunks exist.
BIG_SHAPE = (5 * 2**30,)
BIG_CHUNK = 2**20
BIG_WRITTEN = 4
#: A 2-D one: 1.3 million rows of 4225 electrodes, int16 (11 GB), its first BIG_ROWS_WRITTEN rows written.
BIG2_SHAPE = (1_300_000, 4225)
BIG2_CHUNK = (128, 4225)
BIG_ROWS_WRITTEN = 2048


def _browser_paths() -> tuple[str | None, str | None]:
    binary = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome", "chrome")
                   if shutil.which(n)), None)
    return binary, shutil.which("chromedriver")


@pytest.fixture(scope="package")
def served(tmp_path_factory) -> dict:
    """A served folder with the demo's processed recording and a copy holding two 10 GB datasets,
    and, outside it, a secret file that must never be served.

    The viewer's tests only read these: one set for the package, removed when its last test ends
    (tests/conftest.py), and the demo's 300 MB of inputs removed once its output is copied."""
    import h5py

    from hdmea.demo import run_demo

    work = tmp_path_factory.mktemp("view")
    result = run_demo(work / "demo", n_units=6, seed=3)
    folder = work / "served"
    folder.mkdir()
    rec = folder / "rec.h5"
    shutil.copy(result.output, rec)
    big = folder / "big.h5"
    shutil.copy(result.output, big)
    shutil.rmtree(work / "demo")  # the recording the demo made and processed: no test reads it
    rng = np.random.default_rng(0)
    with h5py.File(big, "r+") as f:
        ds = f.create_dataset("raw/trace", shape=BIG_SHAPE, dtype="int16", chunks=(BIG_CHUNK,),
                              compression="gzip", compression_opts=1)
        t = np.arange(BIG_WRITTEN * BIG_CHUNK)
        written = (1500 * np.sin(2 * np.pi * t / 250_000) + rng.normal(0, 150, t.size)).astype(np.int16)
        ds[: written.size] = written
        ds2 = f.create_dataset("raw/frames", shape=BIG2_SHAPE, dtype="int16", chunks=BIG2_CHUNK,
                               compression="gzip", compression_opts=1)
        ds2[:BIG_ROWS_WRITTEN] = rng.integers(-500, 500, size=(BIG_ROWS_WRITTEN, BIG2_SHAPE[1]), dtype=np.int16)
    secret = work / "secret"
    secret.mkdir()
    (secret / "secret.h5").write_bytes(rec.read_bytes())
    # the units as the file names them (the lab's names: the sorter's unit numbers, not 0..n-1), those with
    # spikes first
    with h5py.File(rec, "r") as f:
        units = sorted(f["units"], key=lambda u: (f[f"units/{u}/spike_times"].shape[0] == 0, u))
    return {"folder": folder, "rec": rec, "big": big, "secret": secret / "secret.h5", "work": work,
            "big_values": written, "units": units}


@pytest.fixture(scope="package")
def viewer(served):
    from hdmea.view import ViewerServer

    server = ViewerServer([served["rec"]], host="127.0.0.1", port=0).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def shots(tmp_path_factory) -> Path:
    folder = os.environ.get("HDMEA_VIEW_SHOTS")
    path = Path(folder) if folder else tmp_path_factory.mktemp("viewer_shots")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def _chromium():
    """Headless Chromium through Selenium, or a skip naming what is missing (one per test process)."""
    webdriver = pytest.importorskip("selenium.webdriver",
                                    reason="selenium is not installed: pip install '.[test]'")
    binary, driver = _browser_paths()
    if binary is None or driver is None:
        pytest.skip("no Chromium or chromedriver on PATH: the browser tests need them "
                    "(Debian/Ubuntu: apt-get install chromium chromium-driver; .ci/run installs them)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1500,1000", "--force-device-scale-factor=1", "--disable-extensions",
                "--no-first-run", "--disable-background-networking"):
        options.add_argument(arg)
    chrome = webdriver.Chrome(service=Service(executable_path=driver), options=options)
    chrome.set_page_load_timeout(30)
    yield chrome
    chrome.quit()


@pytest.fixture
def browser(_chromium):
    """The process's Chromium with its console log emptied: a test sees only what its own pages logged.

    The browser is shared by the tests of one process, and its console log keeps entries until they
    are read, so without this a test that checks the log would see the errors another test provoked
    on purpose (the viewer's refused paths, say) whenever the two ran in the same process.
    """
    _chromium.get_log("browser")
    return _chromium

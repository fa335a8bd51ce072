"""The documentation site as a newcomer meets it, in headless Chromium.

The site is built the way the README says (``sphinx-build -W -b html docs ...``, which also runs
every executed example), then opened at its index; the test follows the index's link to the
install page, then the section's link to a getting-started guide, and checks on each page that the
navigation shows where the reader is: the header marks the section, the left column lists the
section's pages with the current one marked, the breadcrumbs name section and page.  Every code
block of the quick start fits its column (no line cut off or scrolled out of sight).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    pytest.importorskip("sphinx", reason="the site needs the docs extra: pip install 'h5stream[docs]'")
    pytest.importorskip("pydata_sphinx_theme", reason="the site needs the docs extra: pip install 'h5stream[docs]'")
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run([sys.executable, "-m", "sphinx", "-W", "-q", "-b", "html", str(ROOT / "docs"), str(out)],
                          capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    return out


def _where(browser) -> dict:
    """What the page's navigation marks: header section, left-column page, breadcrumbs, and the left list."""
    from selenium.webdriver.common.by import By

    def texts(selector):
        return [e.text.strip() for e in browser.find_elements(By.CSS_SELECTOR, selector) if e.text.strip()]

    return {
        "section": texts(".bd-navbar-elements .nav-item.current"),
        "page": texts(".bd-docs-nav li.current > a.current"),
        "crumbs": texts(".bd-breadcrumbs .breadcrumb-item"),
        "pages": texts(".bd-docs-nav li.toctree-l1 > a"),
        "title": browser.title,
    }


def _follow(browser, text: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    old = browser.current_url
    links = [a for a in browser.find_elements(By.PARTIAL_LINK_TEXT, text) if a.is_displayed()]
    assert links, f"no visible link {text!r} on {old}"
    links[0].click()
    WebDriverWait(browser, 10).until(expected_conditions.url_changes(old))


def test_index_to_install_to_a_getting_started_guide(browser, site):
    browser.get((site / "index.html").as_uri())
    start = _where(browser)
    assert start["section"] == [] and start["title"].startswith("h5stream")
    assert [s for s in ("Getting started", "Guides", "Command line", "Reference")
            if s not in browser.find_element("css selector", ".bd-navbar-elements").text] == []

    _follow(browser, "Install")
    install = _where(browser)
    assert browser.current_url.endswith("getting-started/install.html")
    assert install["section"] == ["Getting started"]
    assert install["page"] == ["Install"]
    assert install["pages"] == ["Install", "Quick start", "First steps with hdmea", "First steps with h5scp"]
    assert install["crumbs"] == ["Getting started", "Install"]

    _follow(browser, "First steps with hdmea")
    guide = _where(browser)
    assert browser.current_url.endswith("getting-started/hdmea.html")
    assert guide["section"] == ["Getting started"] and guide["page"] == ["First steps with hdmea"]
    assert guide["crumbs"] == ["Getting started", "First steps with hdmea"]
    assert guide["title"].startswith("First steps with hdmea")

    # the getting-started pages come before the guides and the reference in the header
    header = browser.find_element("css selector", ".bd-navbar-elements").text.split("\n")
    assert header.index("Getting started") < header.index("Guides") < header.index("Reference")
    # and no page of the walk logged an error in the browser's console (the theme's scripts included)
    assert [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []


def test_code_blocks_fit_their_column(browser, site):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get((site / "getting-started" / "quickstart.html").as_uri())
    # the page's blocks, once the page shows them (a busy machine can return before the body is laid out)
    WebDriverWait(browser, 20).until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "div.highlight pre")) >= 2,
                                     "the quick start page shows fewer than two code blocks")
    widths = browser.execute_script(
        "return Array.from(document.querySelectorAll('div.highlight pre')).map("
        "p => [p.scrollWidth, p.clientWidth, p.textContent.split('\\n').reduce((a, l) => Math.max(a, l.length), 0)])")
    assert len(widths) >= 2
    assert max(longest for _, _, longest in widths) > 120  # the demo's long lines are there ...
    assert [(s, c) for s, c, _ in widths if s > c + 1] == []  # ... and wrap instead of overflowing

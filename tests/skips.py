"""The end of a pytest run lists every skipped test on its own line, with the reason.

pytest's ``-rs`` groups skips by reason and location (``SKIPPED [12] tests/browser/conftest.py:95:
...``), which hides which tests did not run; a newcomer reading the end of the run should
see each one and what would make it run (a system package, an extra, root).  Registered
by ``tests/conftest.py``; the pytest configuration reports failures and errors (``-rfE``)
and leaves the skips to this list.
"""

from __future__ import annotations


def skip_reason(report) -> str:
    """The reason of a skipped test's report, without pytest's ``Skipped:`` prefix."""
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    return reason.removeprefix("Skipped: ").strip()


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    skipped = terminalreporter.stats.get("skipped", [])
    if not skipped:
        return
    terminalreporter.section(f"skipped: {len(skipped)}, one line each (test: why)", sep="-")
    for report in skipped:
        terminalreporter.line(f"{report.nodeid}: {skip_reason(report)}")

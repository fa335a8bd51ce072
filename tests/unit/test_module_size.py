"""No module of ours grows past 600 lines: one responsibility per module, split along its seams when it grows.

Counts every ``.py`` file under ``src/`` (the engine and both faces) and ``benchmarks/`` (the suite, its
harness and the studies) line by line, as ``wc -l`` does, and names each module past the bound with its size.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"
BENCHMARKS = ROOT / "benchmarks"
MAX_LINES = 600


def _line_counts() -> dict[str, int]:
    """``src/``'s modules by their path under src/, the benchmarks' by their path from the root."""
    counts = {str(path.relative_to(SRC)): path.read_bytes().count(b"\n") for path in sorted(SRC.rglob("*.py"))}
    counts.update({str(path.relative_to(ROOT)): path.read_bytes().count(b"\n")
                   for path in sorted(BENCHMARKS.rglob("*.py"))})
    return counts


def test_the_count_sees_the_tree():
    counts = _line_counts()
    # every package of ours is counted (a moved src/ would make the bound below pass on nothing)
    for package in ("h5stream", "hdmea", "h5scp"):
        assert any(name.startswith(package + "/") for name in counts), f"no module of {package} under {SRC}"
    for folder in ("suite", "harness", "studies"):
        assert any(name.startswith(f"benchmarks/{folder}/") for name in counts), f"no module under benchmarks/{folder}"
    assert len(counts) > 100


def test_no_module_is_over_600_lines():
    over = {name: n for name, n in _line_counts().items() if n > MAX_LINES}
    listing = ", ".join(f"{name} ({n})" for name, n in sorted(over.items(), key=lambda item: -item[1]))
    assert not over, (f"modules over {MAX_LINES} lines: {listing}; split each along its seams into modules "
                      f"named for what they do, keeping the public import paths")

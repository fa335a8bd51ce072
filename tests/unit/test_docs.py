"""The documentation against the code: the module map, the names the pages cite, the examples, the build.

* ``docs/architecture.md`` lists every module of ``src/`` under "Module map", and nothing else there.
* Every dotted name of ours that a page or README.md quotes (```` `h5stream.files.open_validated` ````)
  exists: a module, or a name in one.
* Every ```` ```python ```` block of README.md and of the pages runs, a page's blocks in order in one
  namespace, in a fresh folder (a fragment that is not meant to run is written as a
  ```` ```{code-block} python ```` directive instead).
* ``sphinx-build -W`` builds the site with warnings as errors.
"""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
SRC = ROOT / "src"
PACKAGES = ("h5stream", "hdmea", "h5scp")


def _pages() -> list[Path]:
    return sorted(p for p in DOCS.rglob("*.md") if "_build" not in p.parts) + [ROOT / "README.md"]


def _modules_in_tree() -> set[str]:
    names = set()
    for path in SRC.rglob("*.py"):
        parts = path.relative_to(SRC).with_suffix("").parts
        if parts[0] not in PACKAGES and len(parts) > 1:  # a top-level module (py-modules) counts
            continue
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names.add(".".join(parts))
    return names


def _module_map() -> list[str]:
    text = (DOCS / "architecture.md").read_text(encoding="utf-8")
    match = re.search(r"^## Module map\n(.*?)(?=^## |\Z)", text, flags=re.S | re.M)
    assert match, "docs/architecture.md has no '## Module map' section"
    return re.findall(r"^- `([\w.]+)`", match.group(1), flags=re.M)


def test_module_map_names_every_module_once():
    listed = _module_map()
    tree = _modules_in_tree()
    assert len(tree) > 100, f"found only {len(tree)} modules under {SRC}"
    duplicates = sorted({name for name in listed if listed.count(name) > 1})
    missing = sorted(tree - set(listed))
    unknown = sorted(set(listed) - tree)
    assert not duplicates, f"docs/architecture.md lists these modules more than once: {duplicates}"
    assert not missing, f"docs/architecture.md's module map lacks these modules of src/: {missing}"
    assert not unknown, f"docs/architecture.md's module map names modules that do not exist: {unknown}"


def _resolves(dotted: str, modules: set[str]) -> bool:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        prefix = ".".join(parts[:cut])
        if prefix in modules:
            if cut == len(parts):  # a module: it exists (``__main__`` modules must not be imported)
                return True
            value = importlib.import_module(prefix)
            for attribute in parts[cut:]:
                if not hasattr(value, attribute):
                    return False
                value = getattr(value, attribute)
            return True
    return False


def test_every_quoted_name_of_ours_exists():
    modules = _modules_in_tree()
    pattern = re.compile(r"`((?:%s)(?:\.\w+)+)`" % "|".join(PACKAGES))
    wrong = []
    for page in _pages():
        if page.name == "benchmarks-history.md":  # the measurements of their time name the code as it was then
            continue
        for dotted in sorted(set(pattern.findall(page.read_text(encoding="utf-8")))):
            if not _resolves(dotted, modules):
                wrong.append(f"{page.relative_to(ROOT)}: `{dotted}`")
    assert not wrong, "these names quoted in the documentation do not exist:\n" + "\n".join(wrong)


def _python_blocks(page: Path) -> list[tuple[int, str]]:
    blocks, inside, start, lines = [], False, 0, []
    for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
        if not inside and line.strip() == "```python":
            inside, start, lines = True, number, []
        elif inside and line.strip() == "```":
            blocks.append((start, "\n".join(lines) + "\n"))
            inside = False
        elif inside:
            lines.append(line)
    return blocks


_EXAMPLE_PAGES = [page for page in _pages() if _python_blocks(page)]


def test_examples_exist():
    names = {page.relative_to(ROOT).as_posix() for page in _EXAMPLE_PAGES}
    assert {"README.md", "docs/guide/scptensor.md", "docs/guide/hdmea.md", "docs/guide/engine.md"} <= names


@pytest.mark.slow
@pytest.mark.parametrize("page", _EXAMPLE_PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_examples_run(page, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__docs_example__"}
    for line, code in _python_blocks(page):
        where = f"{page.relative_to(ROOT)}:{line}"
        try:
            exec(compile(code, where, "exec"), namespace)  # noqa: S102  (our own documentation)
        except Exception as exc:
            raise AssertionError(f"the example at {where} failed: {type(exc).__name__}: {exc}") from exc
    # every example that prints, printed something
    if any("print(" in code for _, code in _python_blocks(page)):
        assert capsys.readouterr().out.strip(), f"the examples of {page.relative_to(ROOT)} printed nothing"


@pytest.mark.slow
def test_sphinx_build_has_no_warnings(tmp_path):
    pytest.importorskip("sphinx", reason='the documentation needs the docs extra: pip install "h5stream[docs]"')
    done = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", "-d",
         str(tmp_path / "doctrees"), str(DOCS), str(tmp_path / "html")],
        capture_output=True, text=True, cwd=ROOT, timeout=580, check=False,
    )
    assert done.returncode == 0, f"sphinx-build -W failed:\n{done.stdout[-4000:]}\n{done.stderr[-8000:]}"
    assert (tmp_path / "html" / "index.html").is_file()
    assert (tmp_path / "html" / "api.html").is_file()

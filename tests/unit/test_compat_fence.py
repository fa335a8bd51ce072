"""The original pipeline's API stays behind its fence, ``hdmea._compat``.

Read from the source text: every import path of the original comes from the one table
(:data:`hdmea._compat_table.ORIGINAL_API`); the thin modules at its paths are what the table generates; and
no module of this library outside the fence, no example and no page of the docs imports through one of the
original's paths a name that lives elsewhere (a generated path at all; a shared path, such as
``hdmea.io.cmcr``, only for the names it hands on or that live in the fence).
"""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

from hdmea._compat.surface import GENERATED_PATHS, module_file, render, stale_files
from hdmea._compat_table import ORIGINAL_API, SHARED_PATHS, home_of, names_at

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"
FENCE = SRC / "hdmea" / "_compat"
GENERATED_FILES = {module_file(path, SRC) for path in GENERATED_PATHS}


def _own_names(path: str) -> set[str]:
    """The names the native module at the shared path ``path`` defines or imports itself, or lists in its
    ``HOMES`` table of where each lives (not those the table hands on through it)."""
    file = SRC.joinpath(*path.split("."), "__init__.py")
    file = file if file.is_file() else SRC.joinpath(*path.split(".")).with_suffix(".py")
    names = set()
    for node in ast.parse(file.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).partition(".")[0] for alias in node.names)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
            if [ast.unparse(t) for t in targets] == ["HOMES"]:  # names imported from their homes on first use
                names.update(importlib.import_module(path).HOMES)  # built from tables (the steps': their rows)
    return names


OWN_NAMES = {path: _own_names(path) for path in SHARED_PATHS}


def former_imports(tree: ast.AST, package: str = "") -> list[str]:
    """``path`` or ``path.name`` for every import in ``tree`` that goes through one of the original's paths
    to an original name of that path (``package``: the module's package, for relative imports): any name of
    a generated path; at a shared path, a name the native module there does not hold itself, or one that
    lives in the fence."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if alias.name in GENERATED_PATHS]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                if base in GENERATED_PATHS or f"{base}.{alias.name}" in GENERATED_PATHS:
                    found.append(f"{base}.{alias.name}")
                elif base in ORIGINAL_API and alias.name in names_at(base) and (
                        alias.name not in OWN_NAMES[base] or home_of(base, alias.name)[0].startswith("hdmea._compat")):
                    found.append(f"{base}.{alias.name}")
    return found


def _package(path: Path) -> str:
    """The package of a module of src/ (the folder, for a module and for a package's ``__init__``)."""
    return ".".join(path.relative_to(SRC).parts[:-1])


def _code_blocks(markdown: str) -> list[str]:
    return re.findall(r"```(?:python|py|pycon)?\n(.*?)```", markdown, flags=re.S)


def test_the_table_is_plain_data_and_every_path_is_generated_or_shared():
    source = (SRC / "hdmea" / "_compat_table.py").read_text()
    tree = ast.parse(source)
    literal = next(node.value for node in tree.body if isinstance(node, ast.AnnAssign)
                   and ast.unparse(node.target) == "ORIGINAL_API")
    assert ast.literal_eval(literal) == ORIGINAL_API  # readable without running anything
    assert not [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
                and "hdmea" in ast.unparse(n)], "the table imports nothing of hdmea"
    assert set(SHARED_PATHS) <= set(ORIGINAL_API)
    assert set(GENERATED_PATHS) | set(SHARED_PATHS) == set(ORIGINAL_API)
    # every entry is a name or "attribute as name", and no name is listed twice at one path (the count of
    # the names themselves is tests/compat/test_hdmea_api_names.py's, against the guide's figure)
    written = [entry for groups in ORIGINAL_API.values() for names in groups.values() for entry in names]
    assert all(re.fullmatch(r"\w+( as \w+)?", entry) for entry in written)
    assert sum(len(names_at(path)) for path in ORIGINAL_API) == len(written)


def test_every_home_is_a_module_outside_the_original_paths_or_the_path_itself():
    for path in ORIGINAL_API:
        for name in names_at(path):
            module, attribute = home_of(path, name)
            assert module == path or module not in GENERATED_PATHS, f"{path}.{name} lives at another former path"
            assert hasattr(importlib.import_module(module), attribute), f"{path}.{name}: {module} has no {attribute}"


def test_the_generated_modules_are_what_the_table_gives():
    assert stale_files(SRC) == [], "run python -m hdmea._compat.surface"
    for path in GENERATED_PATHS:
        tree = ast.parse(render(path))
        # only imports and __all__, or the table's hand-on: no code of its own at an original path
        for node in tree.body[1:]:
            assert (isinstance(node, ast.ImportFrom) or ast.unparse(node).startswith("__all__ =")
                    or ast.unparse(node) in ("import importlib",
                                             "importlib.import_module('hdmea._compat_table').hand_on(globals())",
                                             # a default set at the path reaches where it lives
                                             "importlib.import_module('hdmea._compat_table')"
                                             ".settings_reach_their_home(__name__)")), (
                path, ast.unparse(node))


def test_the_check_finds_a_former_import():
    planted = ast.parse(
        "from hdmea.io.section_time import add_section_time\n"        # a generated path
        "import hdmea.utils.hashing\n"
        "from hdmea.io.cmcr import load_cmcr_data, CmcrFile\n"        # a shared path: only the handed-on name
        "from hdmea.features import FeatureRegistry, compute_sta\n"
        "from hdmea.pipeline import run_pipeline, load_recording\n"   # native names at a shared path
        "from hdmea.pipeline import run_flow\n"                       # one that lives in the fence
        "from hdmea.steps.section_time import add_section_time\n")    # the home
    assert former_imports(planted) == ["hdmea.io.section_time.add_section_time", "hdmea.utils.hashing",
                                       "hdmea.io.cmcr.load_cmcr_data", "hdmea.features.compute_sta", "hdmea.pipeline.run_flow"]
    assert former_imports(ast.parse("from .section_time import add_section_time"), "hdmea.io") == [
        "hdmea.io.section_time.add_section_time"]


# The benchmarks are left out: their lab-shaped rows time the original's API as the lab's scripts call it.
@pytest.mark.parametrize("where", ["src", "examples"])
def test_native_code_and_examples_import_no_former_path(where):
    offenders = []
    for path in sorted((ROOT / where).rglob("*.py")):
        if path.is_relative_to(FENCE) or path in GENERATED_FILES or not path.is_relative_to(ROOT / where):
            continue
        package = _package(path) if where == "src" else ""
        offenders += [f"{path.relative_to(ROOT)}: {name}" for name in former_imports(ast.parse(path.read_text()), package)]
    assert not offenders, "\n".join(offenders)


def test_the_docs_import_no_former_path():
    offenders = []
    for page in sorted([*(ROOT / "docs").rglob("*.md"), ROOT / "README.md"]):
        if page.name == "from-hdmea-processing.md":  # the guide to the original's API names its paths
            continue
        for block in _code_blocks(page.read_text()):
            try:
                tree = ast.parse(block)
            except SyntaxError:
                continue
            offenders += [f"{page.relative_to(ROOT)}: {name}" for name in former_imports(tree)]
    assert not offenders, "\n".join(offenders)

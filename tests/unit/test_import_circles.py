"""No import circle among h5stream, hdmea and the ``hdmea`` command's start, dynamic imports included.

The graph is :func:`tests.unit.test_import_graph.import_graph` (every ``import`` statement of ``src/``,
read with ast) plus the imports a module makes by name, ``importlib.import_module("a.literal")``, which no
``import`` statement shows: the start of the command line once imported the command line that way while
the command line imported the start's words back.  The start, ``hdmea.__main__`` (the console script's
and ``python -m hdmea``'s), sits on top: it imports the command line, and no module imports it.  h5stream, the engine, imports nothing of the packages built on it.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.unit.test_import_graph import SRC, _resolve, circles, import_graph, modules

#: The packages this test holds (h5scp's graph is held by tests/unit/test_import_graph.py).
HELD = ("h5stream", "hdmea")
START = "hdmea.__main__"


def _held(name: str) -> bool:
    return any(name == top or name.startswith(top + ".") for top in HELD)


def imports_by_name(path: Path, known: dict[str, Path]) -> set[str]:
    """The modules of src/ that ``path`` imports with ``importlib.import_module("...")`` (a literal name)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if (isinstance(node, ast.Call) and ast.unparse(node.func) in ("importlib.import_module", "import_module")
                and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            resolved = _resolve(node.args[0].value, known)
            if resolved is not None:
                found.add(resolved)
    return found


def held_graph() -> dict[str, set[str]]:
    known = modules()
    graph = import_graph()
    for name, path in known.items():
        graph[name] |= imports_by_name(path, known) - {name}
    return {name: {t for t in targets if _held(t)} for name, targets in graph.items() if _held(name)}


def test_imports_by_name_are_seen(tmp_path):
    known = {"pkg.a": tmp_path / "a.py", "pkg.b": tmp_path / "b.py"}
    (tmp_path / "a.py").write_text("import importlib\n\ndef f():\n    return importlib.import_module('pkg.b.inner')\n")
    assert imports_by_name(tmp_path / "a.py", known) == {"pkg.b"}
    # the start of the command line imports the command line (statically now; the test sees either way)
    assert "hdmea.cli" in held_graph()[START]


def test_no_circle_among_h5stream_hdmea_and_the_start():
    graph = held_graph()
    assert circles(graph) == [], circles(graph)


def test_a_planted_circle_through_an_import_by_name_is_found():
    graph = held_graph()
    graph["hdmea.cli_stops"] = graph["hdmea.cli_stops"] | {START}  # the words importing the start back
    assert any(START in c and "hdmea.cli_stops" in c for c in circles(graph))


def test_nothing_imports_the_start():
    graph = held_graph()
    assert sorted(name for name, targets in graph.items() if START in targets) == []


def test_the_engine_imports_nothing_built_on_it():
    graph = import_graph()
    up = sorted(f"{name} -> {t}" for name, targets in graph.items() if name.split(".")[0] == "h5stream"
                for t in targets if t.split(".")[0] in ("hdmea", "h5scp"))
    assert up == []
    assert (SRC / "h5stream").is_dir() and len([n for n in graph if n.startswith("h5stream.")]) > 20

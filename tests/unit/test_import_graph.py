"""The import graph of src/, computed with ast (imports inside functions included).

Two properties are held: few import circles (modules that import each other, directly or through
others), and no module of ``hdmea`` importing one of a layer above its own.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"

#: At most this many circles in the whole tree.  Those still open (``circles(import_graph())``):
#: hdmea.io's vendor readers with the original pipeline's reader functions they hand on, the feature
#: registry with its built-in extractors, and scptensor's container with its file formats (the
#: container's save and load reach the formats, which build containers).
MAX_CIRCLES = 3

#: hdmea's layers, lowest first: a module may import its own layer and those below.  A module is
#: placed by the longest prefix of its name listed here.
HDMEA_LAYERS = [
    {"hdmea.errors", "hdmea._extras", "hdmea.utils", "hdmea.progress", "hdmea.stimulus", "hdmea.config_reader"},
    {"hdmea.io", "hdmea.preprocess"},
    # the synthetic recordings plant their truth with the features' stimulus geometry
    {"hdmea.features", "hdmea.analysis", "hdmea.config", "hdmea.steps.table", "hdmea.synthetic"},
    {"hdmea.steps", "hdmea.pipeline", "hdmea.report", "hdmea.view", "hdmea.interop"},
    {"hdmea.cli", "hdmea.cli_interop", "hdmea.demo", "hdmea.__main__", "hdmea"},
]
#: Runner modules: the configuration and the step table never import them.
RUNNERS = ("hdmea.steps.runner", "hdmea.pipeline.runner", "hdmea.pipeline.steps")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(SRC.rglob("*.py"))}


def _resolve(target: str, known: dict[str, Path]) -> str | None:
    while target and target not in known:
        target = target.rpartition(".")[0]
    return target or None


def _package_of(name: str, path: Path) -> str:
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def _absolute(node: ast.ImportFrom, package: str) -> str:
    base = node.module or ""
    if node.level:
        anchor = package.split(".")
        anchor = anchor[:len(anchor) - node.level + 1]
        base = ".".join(anchor + ([base] if base else []))
    return base


def _reexports(known: dict[str, Path]) -> dict[str, dict[str, str]]:
    """Package -> {name: the module its __init__ takes the name from} (top-level imports of the __init__)."""
    out: dict[str, dict[str, str]] = {}
    for name, path in known.items():
        if path.name != "__init__.py":
            continue
        names: dict[str, str] = {}
        for node in ast.parse(path.read_text(), filename=str(path)).body:
            if isinstance(node, ast.ImportFrom):
                base = _absolute(node, name)
                for alias in node.names:
                    source = f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                    names[alias.asname or alias.name] = source
        out[name] = names
    return out


def import_graph() -> dict[str, set[str]]:
    """Module -> the modules of src/ it imports, anywhere in its body (imports inside functions included).

    ``from package import name`` points at the module that defines ``name`` when the package's
    ``__init__`` only hands it on (the package itself is not what the importer depends on).
    """
    known = modules()
    reexports = _reexports(known)
    graph: dict[str, set[str]] = {name: set() for name in known}
    for name, path in known.items():
        package = _package_of(name, path)
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _absolute(node, package)
                for alias in node.names:
                    if f"{base}.{alias.name}" in known:
                        targets.append(f"{base}.{alias.name}")
                    else:
                        seen = set()
                        module = base
                        while module in reexports and alias.name in reexports[module] and module not in seen:
                            seen.add(module)
                            module = reexports[module][alias.name]
                        targets.append(module)
            for target in targets:
                resolved = _resolve(target, known)
                if resolved is not None and resolved != name:
                    graph[name].add(resolved)
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    counter = 0
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, edges = work[-1]
            advanced = False
            for nxt in edges:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                    advanced = True
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def _layer(name: str) -> int | None:
    best, level = "", None
    for number, names in enumerate(HDMEA_LAYERS):
        for prefix in names:
            if (name == prefix or name.startswith(prefix + ".")) and len(prefix) > len(best):
                best, level = prefix, number
    return level


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    out = []
    for name, targets in graph.items():
        if not name.startswith("hdmea.") or _layer(name) is None:
            continue
        for target in targets:
            here, there = _layer(name), _layer(target)
            if target.startswith("hdmea.") and there is not None and there > here:
                out.append(f"{name} -> {target}")
            elif name.startswith("hdmea.io.") and target.startswith("hdmea.pipeline"):
                out.append(f"{name} -> {target}")
            elif (name == "hdmea.config" or name.startswith("hdmea.steps.table")) and target in RUNNERS:
                out.append(f"{name} -> {target}")
    return sorted(out)


def test_the_graph_sees_imports_inside_functions():
    graph = import_graph()
    # hdmea.report.data imports the receptive-field measures inside sta_spatial_map
    assert "hdmea.features.extractors" in graph["hdmea.report.data"]
    # a name handed on by a package's __init__ points at the module that defines it
    assert "h5stream.files.validated" in graph["hdmea.io.recording"]
    assert "hdmea.io.hdf5_store" in graph["hdmea.io.recording"]


def test_circles_find_a_planted_loop():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert circles(graph) == [["a", "b", "c"]]


def test_the_step_table_is_a_leaf_and_imports_no_runner():
    graph = import_graph()
    assert {t for t in graph["hdmea.steps.table"] if t.startswith("hdmea.")} == set()
    for module in ("hdmea.config", "hdmea.steps.table"):
        assert not graph[module] & set(RUNNERS), graph[module] & set(RUNNERS)


def test_at_most_three_import_circles():
    found = circles(import_graph())
    assert len(found) <= MAX_CIRCLES, f"{len(found)} import circles: {found}"


#: Upward imports still in the tree (step modules that live in io/ and features/ and import the
#: pipeline's step target and configuration); a new one fails the test below.
KNOWN_UPWARD = {
    "hdmea.features.dsgc_direction -> hdmea.pipeline.target",
    "hdmea.features.dsgc_direction -> hdmea.steps.section_time",
    "hdmea.features.eimage_sta.compute -> hdmea.steps.eimage",
    "hdmea.io.lab_readers -> hdmea.pipeline.target",
}
#: The original pipeline's paths of the steps: each module is its step's module under another name
#: (sys.modules), so it imports the step wherever the path sits.
STEP_ALIASES = {
    "hdmea.io.section_time": "hdmea.steps.section_time",
    "hdmea.io.spike_sectioning": "hdmea.steps.spike_sectioning",
    "hdmea.features.sta": "hdmea.steps.sta",
    "hdmea.features.extract": "hdmea.steps.features",
    "hdmea.pipeline.runner": "hdmea.steps.load",
    "hdmea.pipeline.eimage": "hdmea.steps.eimage",
}


def test_no_hdmea_module_imports_a_layer_above_its_own():
    aliases = {f"{old} -> {new}" for old, new in STEP_ALIASES.items()}
    assert sorted(set(upward_imports(import_graph())) - KNOWN_UPWARD - aliases) == []


def test_each_step_has_its_module_and_the_original_paths_are_the_same_modules():
    import importlib

    from hdmea.steps.table import STEPS

    assert {step.function.partition(":")[0] for step in STEPS} == {
        f"hdmea.steps.{name}" for name in ("load", "section_time", "spike_sectioning", "sta", "eimage", "features")}
    for old, new in STEP_ALIASES.items():
        assert importlib.import_module(old) is importlib.import_module(new)


def test_upward_imports_are_found():
    graph = {"hdmea.io.x": {"hdmea.pipeline.target"}, "hdmea.config": {"hdmea.steps.runner"},
             "hdmea.features.y": {"hdmea.io.z"}, "hdmea.io.z": set(), "hdmea.pipeline.target": set(),
             "hdmea.steps.runner": set()}
    assert upward_imports(graph) == ["hdmea.config -> hdmea.steps.runner", "hdmea.io.x -> hdmea.pipeline.target"]

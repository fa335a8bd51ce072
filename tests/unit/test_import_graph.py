"""The import graph of src/, computed with ast (imports inside functions included).

Two properties are held: few import circles (modules that import each other, directly or through
others), and no module of ``hdmea`` importing one of a layer above its own.

The original pipeline defined some of its steps in packages and modules that sit below the steps here
(``hdmea.io.section_spike_times``, ``hdmea.io.cmcr.add_sys_meta_info``, ...).  Those paths hand the steps on
in one of two forms, and no other upward import is allowed:

* an alias: the module's whole body makes it the step's module under the old name (``sys.modules``), so no
  code of the lower layer exists at that path;
* a hand-on table: a module-level ``{name: "module"}`` dict (literal or comprehension) that the module's
  ``__getattr__`` resolves on first use.  The graph counts each entry as an import of that module (an
  importer of the name depends on the module that defines it); across layers only names the module lists in
  ``__all__`` may be handed on, and the module's own code never reaches them.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"

#: At most this many circles in the whole tree.  Those still open (``circles(import_graph())``):
#: hdmea.io's vendor readers with the original pipeline's functions they hand on (the readers of
#: ``lab_readers`` and the steps of ``steps.source_info``, which read through the vendor readers), the
#: feature registry with its built-in extractors, and h5scp's container with its file formats (the
#: container's save and load reach the formats, which build containers).
MAX_CIRCLES = 3

#: hdmea's layers, lowest first: a module may import its own layer and those below.  A module is
#: placed by the longest prefix of its name listed here.
HDMEA_LAYERS = [
    {"hdmea.errors", "hdmea._extras", "hdmea.utils", "hdmea.progress", "hdmea.stimulus", "hdmea.stimulus_files",
     "hdmea.config_reader"},
    {"hdmea.io", "hdmea.preprocess"},
    # the synthetic recordings plant their truth with the features' stimulus geometry
    {"hdmea.features", "hdmea.analysis", "hdmea.synthetic"},
    {"hdmea.session"},
    {"hdmea.steps"},
    {"hdmea.config"},
    {"hdmea.pipeline", "hdmea.report", "hdmea.view", "hdmea.interop"},
    {"hdmea.cli", "hdmea.cli_interop", "hdmea.demo", "hdmea.__main__", "hdmea"},
]
#: Runner modules: the configuration and the step table never import them.
RUNNERS = ("hdmea.pipeline.run",)


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


def _table_entries(value: ast.expr) -> dict[str, str] | None:
    """{name: module} of a dict of text to text: ``{"name": "module", **{...}}`` or
    ``{name: "module" for name in ("a", ...)}``; None for anything else."""
    if isinstance(value, ast.Dict) and value.keys:
        out: dict[str, str] = {}
        for key, item in zip(value.keys, value.values):
            if key is None:  # **{...} spread into the literal
                inner = _table_entries(item)
                if inner is None:
                    return None
                out.update(inner)
            elif (isinstance(key, ast.Constant) and isinstance(key.value, str) and isinstance(item, ast.Constant)
                  and isinstance(item.value, str)):
                out[key.value] = item.value
            else:
                return None
        return out
    if (isinstance(value, ast.DictComp) and isinstance(value.value, ast.Constant) and isinstance(value.value.value, str)
            and len(value.generators) == 1 and isinstance(value.generators[0].iter, (ast.Tuple, ast.List))
            and all(isinstance(e, ast.Constant) and isinstance(e.value, str) for e in value.generators[0].iter.elts)):
        return {e.value: value.value.value for e in value.generators[0].iter.elts}
    return None


def hand_on_tables(known: dict[str, Path] | None = None) -> dict[str, dict[str, str]]:
    """Module -> {name: module of src/ it hands the name on from}: its module-level tables whose every value
    names a module of src/ (the form :func:`__getattr__` resolves lazily)."""
    known = modules() if known is None else known
    out: dict[str, dict[str, str]] = {}
    for name, path in known.items():
        for node in ast.parse(path.read_text(), filename=str(path)).body:
            if not isinstance(node, (ast.Assign, ast.AnnAssign)) or node.value is None:
                continue
            entries = _table_entries(node.value)
            if entries and all(target in known for target in entries.values()):
                out.setdefault(name, {}).update(entries)
    return out


def _reexports(known: dict[str, Path], tables: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    """Module -> {name: the module it takes the name from}: top-level imports of a package's __init__, and
    every module's hand-on tables."""
    out: dict[str, dict[str, str]] = {name: dict(entries) for name, entries in tables.items()}
    for name, path in known.items():
        if path.name != "__init__.py":
            continue
        names: dict[str, str] = out.setdefault(name, {})
        for node in ast.parse(path.read_text(), filename=str(path)).body:
            if isinstance(node, ast.ImportFrom):
                base = _absolute(node, name)
                for alias in node.names:
                    source = f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                    names[alias.asname or alias.name] = source
    return out


def import_graph(*, hand_ons: bool = True) -> dict[str, set[str]]:
    """Module -> the modules of src/ it imports, anywhere in its body (imports inside functions included),
    and (``hand_ons``) the modules its hand-on tables name.

    ``from package import name`` points at the module that defines ``name`` when the package's
    ``__init__`` (or a module's hand-on table) only hands it on: the package is not what the importer
    depends on.
    """
    known = modules()
    tables = hand_on_tables(known)
    reexports = _reexports(known, tables)
    graph: dict[str, set[str]] = {name: set() for name in known}
    if hand_ons:
        for name, entries in tables.items():
            graph[name].update(target for target in entries.values() if target != name)
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


def test_the_step_table_imports_its_steps_and_no_runner():
    from hdmea.steps.table import STEPS

    graph = import_graph()
    assert {step.module for step in STEPS} <= graph["hdmea.steps.table"]
    for module in ("hdmea.config", "hdmea.steps.table"):
        assert not graph[module] & set(RUNNERS), graph[module] & set(RUNNERS)


def test_at_most_three_import_circles():
    found = circles(import_graph())
    assert len(found) <= MAX_CIRCLES, f"{len(found)} import circles: {found}"


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


def alias_target(path: Path) -> str | None:
    """The module a module is an alias of, when its whole body is ``import sys``, one ``from package import
    module as name`` and ``sys.modules[__name__] = name`` (a docstring allowed); else None."""
    body = ast.parse(path.read_text(), filename=str(path)).body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]
    if len(body) != 3:
        return None
    imp_sys, imp_mod, assign = body
    if not (isinstance(imp_sys, ast.Import) and [a.name for a in imp_sys.names] == ["sys"]):
        return None
    if not (isinstance(imp_mod, ast.ImportFrom) and imp_mod.level == 0 and len(imp_mod.names) == 1):
        return None
    local = imp_mod.names[0].asname or imp_mod.names[0].name
    if not (isinstance(assign, ast.Assign) and len(assign.targets) == 1 and isinstance(assign.value, ast.Name)
            and assign.value.id == local and ast.unparse(assign.targets[0]) == "sys.modules[__name__]"):
        return None
    return f"{imp_mod.module}.{imp_mod.names[0].name}"


def upward_violations() -> list[str]:
    """Upward imports of hdmea's code: every one, except an alias module's import of its target (hand-on
    table entries are not imports of the module's code and are checked by the test of the tables)."""
    known = modules()
    allowed = {f"{name} -> {target}" for name, path in known.items() if (target := alias_target(path))}
    return sorted(set(upward_imports(import_graph(hand_ons=False))) - allowed)


def test_no_hdmea_module_imports_a_layer_above_its_own():
    assert upward_violations() == []


def test_the_aliases_are_found_by_their_form_and_are_the_step_modules():
    import importlib

    known = modules()
    found = {name: target for name, path in known.items() if (target := alias_target(path))}
    assert found == STEP_ALIASES
    for old, new in found.items():
        assert importlib.import_module(old) is importlib.import_module(new)


def test_an_alias_with_code_beside_it_is_not_an_alias(tmp_path):
    alias = '"""doc"""\n\nimport sys\n\nfrom hdmea.steps import load as _m\n\nsys.modules[__name__] = _m\n'
    (tmp_path / "a.py").write_text(alias)
    (tmp_path / "b.py").write_text(alias + "\nX = _m.load_recording\n")
    (tmp_path / "c.py").write_text(alias.replace("sys.modules[__name__]", "sys.modules['other']"))
    assert alias_target(tmp_path / "a.py") == "hdmea.steps.load"
    assert alias_target(tmp_path / "b.py") is None
    assert alias_target(tmp_path / "c.py") is None


def test_hand_ons_across_layers_are_public_names_of_a_table_read_by_getattr():
    """A lower module hands an upper layer's names on only through a table its ``__getattr__`` resolves, and
    only names it lists in ``__all__``; its own code (the graph without tables) never imports them."""
    import importlib

    known = modules()
    direct = import_graph(hand_ons=False)
    crossing = []
    for name, entries in hand_on_tables(known).items():
        if not name.startswith("hdmea.") or _layer(name) is None:
            continue
        for handed, target in entries.items():
            if _layer(target) is None or _layer(target) <= _layer(name):
                continue
            crossing.append((name, handed))
            assert target not in direct[name], f"{name} imports {target} besides handing {handed} on"
            module = importlib.import_module(name)
            assert handed in getattr(module, "__all__", ()), f"{name} hands {handed} on without listing it in __all__"
            assert getattr(module, handed) is getattr(importlib.import_module(target), handed)
            tree = ast.parse(known[name].read_text())
            getattr_defs = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "__getattr__"]
            assert getattr_defs and "import_module" in ast.unparse(getattr_defs[0]), name
    # the original's steps at its lower paths are among them
    assert {("hdmea.io", "section_spike_times"), ("hdmea.io.cmcr", "add_sys_meta_info"),
            ("hdmea.io.cmtr", "add_cmtr_unit_info"), ("hdmea.features.dsgc_direction", "section_by_direction"),
            ("hdmea.features.eimage_sta.compute", "compute_eimage_sta")} <= set(crossing)


def test_a_hand_on_table_is_an_edge_of_the_graph():
    graph = import_graph()
    assert "hdmea.steps.source_info" in graph["hdmea.io.cmcr"]
    assert "hdmea.steps.source_info" not in import_graph(hand_ons=False)["hdmea.io.cmcr"]
    assert _table_entries(ast.parse('{n: "m" for n in ("a", "b")}', mode="eval").body) == {"a": "m", "b": "m"}
    assert _table_entries(ast.parse('{"a": "m", "b": x}', mode="eval").body) is None
    assert _table_entries(ast.parse('{**{n: "m" for n in ("a",)}, "b": "k"}', mode="eval").body) == {"a": "m", "b": "k"}


def test_each_step_has_its_module():
    from hdmea.steps.table import STEPS

    assert {step.module for step in STEPS} == {
        f"hdmea.steps.{name}" for name in ("load", "section_time", "spike_sectioning", "sta", "eimage", "features")}


def test_upward_imports_are_found():
    graph = {"hdmea.io.x": {"hdmea.session.target"}, "hdmea.steps.y": {"hdmea.pipeline.run"},
             "hdmea.features.y": {"hdmea.io.z"}, "hdmea.io.z": set(), "hdmea.session.target": set(),
             "hdmea.pipeline.run": set()}
    assert upward_imports(graph) == ["hdmea.io.x -> hdmea.session.target", "hdmea.steps.y -> hdmea.pipeline.run"]

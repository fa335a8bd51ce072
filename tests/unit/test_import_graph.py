"""The import graph of src/, computed with ast (imports inside functions included).

Two properties are held: no import circle (modules that import each other, directly or through others),
and no module of ``hdmea``, ``h5scp`` or ``h5stream`` importing one of a layer above its own.

The original pipeline defined some of its steps in packages and modules that sit below the steps here
(``hdmea.io.section_time``, ``hdmea.io.cmcr.add_sys_meta_info``, ...).  Its paths are served from one table,
``hdmea._compat_table``: the thin modules generated from it may import any layer (they hold no code, and
tests/unit/test_compat_fence.py holds them to the table); the native modules at its paths below the steps
(``hdmea.io``, ``hdmea.io.cmcr``, ``hdmea.features``, ...) import nothing above them and get the original's
names from the table on first use.

h5scp is fenced the same way: ScpTensor's January API (``scptensor.core``, ``scptensor.core.io``, ...) is
served from one table, ``h5scp._january_table``; the data model (``h5scp.core``), which is also the January
path ``scptensor.core``, imports neither the formats nor the January helpers above them, and gets the
helpers' names from the table on first use.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"

#: At most this many circles in the whole tree.
MAX_CIRCLES = 0

#: hdmea's layers, lowest first: a module may import its own layer and those below.  A module is
#: placed by the longest prefix of its name listed here.
HDMEA_LAYERS = [
    {"hdmea.errors", "hdmea._extras", "hdmea._compat_table", "hdmea.utils", "hdmea.progress", "hdmea.stimulus",
     "hdmea.stimulus_files", "hdmea.config_reader"},
    {"hdmea.io", "hdmea.preprocess"},
    # the synthetic recordings plant their truth with the features' stimulus geometry
    {"hdmea.features", "hdmea.analysis", "hdmea.synthetic"},
    {"hdmea.session"},
    {"hdmea.steps"},
    {"hdmea.config", "hdmea.config_steps", "hdmea.config_values"},
    # the original pipeline's API, fenced off: it uses the library, only the top layers use it
    {"hdmea._compat"},
    {"hdmea.pipeline", "hdmea.report", "hdmea.view", "hdmea.interop"},
    {"hdmea.cli", "hdmea.cli_interop", "hdmea.demo", "hdmea.__main__", "hdmea"},
]
#: h5scp's layers, lowest first, placed as hdmea's are.  The container's save and load reach the formats
#: through the functions the package above both gives the model (``h5scp.core.container.connect_files``).
H5SCP_LAYERS = [
    {"h5scp._version", "h5scp._january_table", "h5scp.core.exceptions"},
    # the data model
    {"h5scp.core"},
    # the file formats
    {"h5scp.io"},
    # ScpTensor's January API beyond the model: interchange files, sparse and mask-code helpers
    {"h5scp.january"},
    {"h5scp", "h5scp.__main__", "h5scp.scptensor_io", "h5scp.testing"},
]
#: h5stream's layers, lowest first, placed as hdmea's are.  The digests sit below the HDF5 primitives
#: (whose writers digest what they write), which sit below the checksum manifest that writes and reads
#: its attributes through them; the files' atomic save seals that manifest, and the tree reads through
#: the files' validated open.
H5STREAM_LAYERS = [
    {"h5stream.errors", "h5stream.valuekinds", "h5stream.names", "h5stream.jsonvalues", "h5stream.lazy_names",
     "h5stream.cli_parser", "h5stream._ext"},
    # the C libraries and compiled kernels, loaded in one place
    {"h5stream.native"},
    # what the system offers and how this process uses it
    {"h5stream.capabilities", "h5stream.cores", "h5stream.memory", "h5stream.pagecache", "h5stream.interrupts",
     "h5stream.stops", "h5stream.lock_windows", "h5stream.process_exit", "h5stream.quiet_start",
     "h5stream.compression"},
    {"h5stream.digests"},
    # below h5py's high-level API
    {"h5stream.lowlevel", "h5stream.batch_attrs"},
    {"h5stream.checksums"},
    {"h5stream.files"},
    {"h5stream.tree", "h5stream.staging", "h5stream.walk", "h5stream.tables", "h5stream.writer"},
    {"h5stream.kernels"},
    {"h5stream.elements"},
    {"h5stream"},
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
    """{name: module} of a dict of names to text: ``{"name": "module", **{...}}`` or
    ``{name: "module" for name in ("a", ...)}``; None for anything else (a table keyed by dotted paths, such
    as ``h5scp._january_table.SERVED_WHOLE``, maps paths to modules, not names to their homes)."""
    if isinstance(value, ast.Dict) and value.keys:
        out: dict[str, str] = {}
        for key, item in zip(value.keys, value.values):
            if key is None:  # **{...} spread into the literal
                inner = _table_entries(item)
                if inner is None:
                    return None
                out.update(inner)
            elif (isinstance(key, ast.Constant) and isinstance(key.value, str) and key.value.isidentifier()
                  and isinstance(item, ast.Constant) and isinstance(item.value, str)):
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


def _layer(name: str, layers: list[set[str]] = HDMEA_LAYERS) -> int | None:
    best, level = "", None
    for number, names in enumerate(layers):
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


def layer_violations(graph: dict[str, set[str]], package: str, layers: list[set[str]]) -> list[str]:
    """Every import of a module of ``package`` from one of ``package`` in a layer above its own."""
    def inside(name: str) -> bool:
        return name == package or name.startswith(package + ".")

    out = []
    for name, targets in graph.items():
        if not inside(name):
            continue
        here = _layer(name, layers)
        for target in targets:
            there = _layer(target, layers) if inside(target) else None
            if there is not None and there > here:
                out.append(f"{name} -> {target}")
    return sorted(out)


def h5scp_upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """Every import of an h5scp module from one of a layer above its own (:data:`H5SCP_LAYERS`)."""
    return layer_violations(graph, "h5scp", H5SCP_LAYERS)


def h5stream_upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """Every import of an h5stream module from one of a layer above its own (:data:`H5STREAM_LAYERS`)."""
    return layer_violations(graph, "h5stream", H5STREAM_LAYERS)


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


def test_the_step_table_imports_no_step_and_no_runner():
    # it names each step's module (a row imports its function on first use): reading it loads no step
    from hdmea.steps.table import STEPS

    graph = import_graph()
    assert not {step.module for step in STEPS} & graph["hdmea.steps.table"], graph["hdmea.steps.table"]
    for module in ("hdmea.config", "hdmea.steps.table"):
        assert not graph[module] & set(RUNNERS), graph[module] & set(RUNNERS)


def test_no_import_circle():
    found = circles(import_graph())
    assert len(found) <= MAX_CIRCLES, f"{len(found)} import circles: {found}"
    assert not [c for c in found if any(m.startswith(("hdmea", "h5scp")) for m in c)], found


def test_every_h5scp_module_has_a_layer():
    # the top layer's "h5scp" takes any module not placed lower, so this checks the lower layers' names exist
    known = modules()
    for names in H5SCP_LAYERS:
        for prefix in names:
            assert prefix in known, f"{prefix} is in H5SCP_LAYERS but not a module of src/"


def test_no_h5scp_module_imports_a_layer_above_its_own():
    assert h5scp_upward_imports(import_graph()) == []


def test_every_h5stream_module_has_a_layer():
    known = modules()
    for names in H5STREAM_LAYERS:
        for prefix in names:
            assert prefix in known, f"{prefix} is in H5STREAM_LAYERS but not a module of src/"
    # the top layer's "h5stream" is the package's own __init__: every other module is placed lower
    unplaced = [name for name in known if name.startswith("h5stream.") and _layer(name, H5STREAM_LAYERS) == len(
        H5STREAM_LAYERS) - 1]
    assert unplaced == [], f"place these modules in H5STREAM_LAYERS: {unplaced}"


def test_no_h5stream_module_imports_a_layer_above_its_own():
    assert h5stream_upward_imports(import_graph()) == []


def test_h5stream_upward_imports_are_found():
    graph = {"h5stream.native.libhdf5": {"h5stream.capabilities"}, "h5stream.capabilities": {"h5stream.native.libc"},
             "h5stream.checksums": {"h5stream.tree.nodes", "h5stream.lowlevel"}, "h5stream.tree.nodes": set(),
             "h5stream.native.libc": set(), "h5stream.lowlevel": set()}
    assert h5stream_upward_imports(graph) == ["h5stream.checksums -> h5stream.tree.nodes",
                                              "h5stream.native.libhdf5 -> h5stream.capabilities"]


def test_the_model_imports_no_format_and_no_january_helper():
    graph = import_graph()
    model = {name for name in graph if name == "h5scp.core" or name.startswith("h5scp.core.")}
    reached = set().union(*(graph[name] for name in model))
    assert not {m for m in reached if m.startswith(("h5scp.io", "h5scp.january"))}


def test_h5scp_upward_imports_are_found():
    graph = {"h5scp.core.structures": {"h5scp.io.formats"}, "h5scp.io.formats": {"h5scp.core.structures"},
             "h5scp.io.exporters": {"h5scp"}, "h5scp.january.utils": {"h5scp.io"}, "h5scp.core.container": {"h5scp._version"}}
    assert h5scp_upward_imports(graph) == ["h5scp.core.structures -> h5scp.io.formats", "h5scp.io.exporters -> h5scp"]


def upward_violations() -> list[str]:
    """Upward imports of hdmea's code: every one, except those of the thin modules at the original pipeline's
    paths, which hold no code and are generated from its table (tests/unit/test_compat_fence.py checks them)."""
    from hdmea._compat.surface import GENERATED_PATHS

    return sorted(v for v in upward_imports(import_graph()) if v.partition(" -> ")[0] not in GENERATED_PATHS)


def test_no_hdmea_module_imports_a_layer_above_its_own():
    assert upward_violations() == []


def test_each_step_of_the_table_has_its_own_module_in_the_steps_layer():
    from hdmea.steps.table import STEPS

    steps = [step.module for step in STEPS]  # read from the table: a new step needs no edit here
    assert len(steps) >= 6 and len(set(steps)) == len(steps), f"steps sharing a module: {steps}"
    known = modules()
    for module in steps:
        assert module in known and module.startswith("hdmea.steps.") and module != "hdmea.steps.table", module
        assert _layer(module) == _layer("hdmea.steps"), module


def test_upward_imports_are_found():
    graph = {"hdmea.io.x": {"hdmea.session.target"}, "hdmea.steps.y": {"hdmea.pipeline.run"},
             "hdmea.features.y": {"hdmea.io.z"}, "hdmea.io.z": set(), "hdmea.session.target": set(),
             "hdmea.pipeline.run": set()}
    assert upward_imports(graph) == ["hdmea.io.x -> hdmea.session.target", "hdmea.steps.y -> hdmea.pipeline.run"]

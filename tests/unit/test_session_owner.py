"""The session's staged tree has one owner, :mod:`hdmea.session.tree`, read from the source text.

The private attributes of a :class:`~hdmea.session.session.PipelineSession` (``self._x`` it sets, ``_x`` methods
it defines) are read in ``session.py`` only, and those of its tree's owner
(:class:`~hdmea.session.tree.SessionTree`) in ``tree.py`` only: every other module (the session's mixins, the
live views, the steps' target, the loader, ...) goes through ``session.tree``'s public methods.  Whether the
staged values are synced with the file is decided in ``tree.py`` alone: it is the only module that holds the
followed values (:mod:`hdmea.session._followed`).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
SESSION_DIR = SRC / "hdmea" / "session"
SESSION_FILE = SESSION_DIR / "session.py"
OWNER_FILE = SESSION_DIR / "tree.py"

#: names a module gives a session or the session's tree (a receiver such as ``session._x`` or ``self._session._x``)
_SESSION_NAMES = {"session", "sess", "s", "resumed"}
_TREE_NAMES = {"tree", "staged_tree"}


def _class(path: Path, name: str) -> ast.ClassDef:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ClassDef) and node.name == name:
            return node
    raise AssertionError(f"{path}: no class {name}")


def _private_names(cls: ast.ClassDef) -> set[str]:
    """The private names of ``cls``'s instances: ``_x`` methods and the ``self._x`` it assigns."""
    names = {n.name for n in cls.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    for node in ast.walk(cls):
        if (isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store)
                and isinstance(node.value, ast.Name) and node.value.id == "self"):
            names.add(node.attr)
    return {n for n in names if n.startswith("_") and not n.startswith("__")}


def _session_bases() -> set[str]:
    """The names of the classes the session mixes in (their ``self`` is the session)."""
    return {b.id for b in _class(SESSION_FILE, "PipelineSession").bases if isinstance(b, ast.Name)}


def _mixin_private_names() -> set[str]:
    """The private names of the classes the session mixes in (found in hdmea/session/): the session's too."""
    names = set()
    for path in SESSION_DIR.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and node.name in _session_bases():
                names |= _private_names(node)
    return names


SESSION_PRIVATE = _private_names(_class(SESSION_FILE, "PipelineSession")) | _mixin_private_names()
OWNER_PRIVATE = _private_names(_class(OWNER_FILE, "SessionTree"))


def _receiver(node: ast.expr, self_is: str | None) -> str | None:
    """"session", "tree" or None: what ``node`` (the ``x`` of ``x._name``) refers to."""
    if isinstance(node, ast.Name):
        if node.id == "self" and self_is is not None:
            return self_is
        if node.id in _SESSION_NAMES:
            return "session"
        if node.id in _TREE_NAMES:
            return "tree"
    if isinstance(node, ast.Attribute):
        if node.attr in {"session", "_session"}:
            return "session"
        if node.attr in {"tree", "_tree"}:
            return "tree"
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "SessionTree":
        return "tree"
    return None


def private_reads(source: str, *, module: str) -> list[str]:
    """Every read of a private attribute of the session or of its tree's owner in ``source`` that the module
    ``module`` ("session", "owner" or "other") may not make: ``x._name`` and ``getattr(x, "_name")``."""
    found: list[str] = []
    bases = _session_bases()

    def visit(node: ast.AST, self_is: str | None) -> None:
        if isinstance(node, ast.ClassDef):
            self_is = ("session" if node.name in bases | {"PipelineSession"} and module != "owner"
                       else "tree" if node.name == "SessionTree" else None)
        attr = receiver = None
        if isinstance(node, ast.Attribute):
            attr, receiver = node.attr, node.value
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id in {"getattr", "setattr", "hasattr", "delattr"} and len(node.args) >= 2
              and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str)):
            attr, receiver = node.args[1].value, node.args[0]
        if attr is not None:
            kind = _receiver(receiver, self_is)
            allowed = (module == "session" and kind == "session") or (module == "owner" and kind == "tree")
            private = SESSION_PRIVATE if kind == "session" else OWNER_PRIVATE if kind == "tree" else set()
            if attr in private and not allowed:
                found.append(f"line {node.lineno}: {ast.unparse(node)}")
        for child in ast.iter_child_nodes(node):
            visit(child, self_is)

    visit(ast.parse(source), None)
    return found


def _modules() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py") if "_ext" not in p.parts)


def _kind(path: Path) -> str:
    return "session" if path == SESSION_FILE else "owner" if path == OWNER_FILE else "other"


def test_the_session_and_its_tree_have_private_state_to_guard():
    # the guarded names are read from the classes themselves; these are the state the owner keeps
    assert {"_root", "_staging", "_followed", "_sources", "_synced", "_broken"} <= OWNER_PRIVATE
    assert "_tree" in SESSION_PRIVATE
    assert _session_bases()  # the mixins whose ``self`` is the session


def test_only_the_owner_reads_the_private_state_of_the_session_and_its_tree():
    reads = {}
    for path in _modules():
        found = private_reads(path.read_text(), module=_kind(path))
        if found:
            reads[str(path.relative_to(SRC))] = found
    assert reads == {}, ("these read the private state of a session or of its tree; call a public method of "
                         f"session.tree (hdmea/session/tree.py) instead: {reads}")


@pytest.mark.parametrize("text, module", [
    ("def f(session):\n    return session._tree\n", "other"),
    ("class V:\n    def g(self):\n        return self._session._tree\n", "other"),
    ("def f(session):\n    return session.tree._root\n", "other"),
    ("def f(session):\n    return getattr(session.tree, '_followed')\n", "other"),
    ("class PipelineSession:\n    def f(self):\n        return self._tree._root\n", "session"),
    ("class LabSessionViews:\n    def f(self):\n        return self._steps\n", "other"),
])
def test_the_check_finds_a_planted_read(text, module):
    assert private_reads(text, module=module)


@pytest.mark.parametrize("text, module", [
    ("class PipelineSession:\n    def f(self):\n        return self._tree.root\n", "session"),
    ("def f(session):\n    return session.tree.node(['units'])\n", "other"),
    ("class SessionTree:\n    def f(self):\n        return self._root\n", "owner"),
    ("class Other:\n    def f(self):\n        return self._root\n", "other"),  # another class's own state
])
def test_the_check_lets_public_calls_and_own_state_through(text, module):
    assert private_reads(text, module=module) == []


def test_only_the_owner_holds_the_followed_values():
    """The values the caller assigned, and so whether the staged tree is synced, are held by tree.py alone."""
    importers = []
    for path in _modules():
        if path.name == "_followed.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.endswith("session._followed"):
                importers.append(str(path.relative_to(SRC)))
            elif isinstance(node, ast.Import) and any(a.name.endswith("session._followed") for a in node.names):
                importers.append(str(path.relative_to(SRC)))
    assert importers == ["hdmea/session/tree.py"]


def test_the_session_sets_no_sync_state_of_its_own():
    """``save_state`` is read from the owner; nothing in session.py assigns it."""
    tree = ast.parse(SESSION_FILE.read_text())
    assigned = [ast.unparse(t) for node in ast.walk(tree) if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign))
                for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
                if isinstance(t, ast.Attribute) and t.attr in {"save_state", "_synced"}]
    assert assigned == []

"""Every read of a recording file's paths in the lab's analysis code, found by parsing it: facts, as JSON.

Not part of the test suite: it needs the original's tree (jiang-lab-retina/hdmea_processing), for example
every ``.py`` file of commit fe13de2 written out with ``git --git-dir=<mirror> show fe13de2:<path>`` into
``/tmp/orig-full``.  None of the lab's code is kept; only where each read is and what it reads.

    .venv/bin/python tests/manual/scan_lab_reads.py --checkout /tmp/orig-full --commit <full hash>

writes ``tests/data/lab_layout/lab_reads.json`` (with ``session_calls``: every ``.add_feature(...)`` call,
whose dict layout is a kept difference).  Scanned: every ``.py`` file outside ``src/`` (the
pipeline itself), ``tests/``, ``specs/`` and any path naming ``history``.  A read is an HDF5 access in the
lab's idioms on a path under the recording file's top-level groups (``units``, ``metadata``, ``stimulus``,
``pipeline``, ``source_files``) or the root's attributes:

- ``f[path]`` or a chain ``f["units"][uid]["features"]`` (``subscript``), followed by ``[()]``, ``[0]``,
  ``[:]`` or nothing, optionally wrapped in ``float``/``int``/``bool``/``str``;
- ``path in f`` / ``path not in group`` (``in``);
- ``obj.attrs[key]`` / ``obj.attrs.get(key)`` (``attrs``).

Paths are resolved within a function: string constants, f-strings (a formatted field becomes
``{name}``; a name looping over literal texts ``{=a|b}``), names bound to such text, and names bound to a
group read earlier (``unit = f["units"][u]``, ``for u, g in f["units"].items()``).  A field is a placeholder
for one path segment.  A subscript whose path cannot be resolved under those groups (a path passed in as a
parameter, a computed string) cannot be told from any other subscript and is not listed.  No text of the
lab's code is kept: a read is its file, line, idiom and the path it names.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOP = ("units", "metadata", "stimulus", "pipeline", "source_files")
CONVERSIONS = ("float", "int", "bool", "str")
SKIP_PARTS = ("src", "tests", "specs")


def _text(node, env, depth=0):
    """The text of a string expression, fields as ``{name}``; None when not resolvable."""
    if depth > 8:
        return None
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        out = []
        for part in node.values:
            if isinstance(part, ast.Constant):
                out.append(str(part.value))
            else:
                out.append(_field(part.value, env, depth))
        return "".join(out)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _text(node.left, env, depth + 1), _text(node.right, env, depth + 1)
        return None if left is None or right is None else left + right
    if isinstance(node, ast.Name):
        bound = env.lookup(node.id, node.lineno)
        if bound is not None and bound[0] == "text":
            return _text(bound[1], env, depth + 1)
    return None


def _field(node, env, depth):
    """A formatted field: the text of a name bound to text, ``{=a|b}`` for a loop over literal texts, else
    ``{source}``."""
    if isinstance(node, ast.Name):
        bound = env.lookup(node.id, node.lineno)
        if bound is not None and bound[0] == "text":
            text = _text(bound[1], env, depth + 1)
            if text is not None:
                return text
        if bound is not None and bound[0] == "choices":
            return "{=" + "|".join(bound[1]) + "}"
    return "{" + ast.unparse(node) + "}"


def _key(node, env):
    """A subscript key as a path piece: text, or ``{name}`` for a name bound to no text."""
    text = _text(node, env)
    if text is not None:
        return text
    if isinstance(node, (ast.Name, ast.Attribute, ast.Subscript, ast.Call)):
        return "{" + ast.unparse(node) + "}"
    return None


class Scope:
    """Names bound in one function (or module): name -> [(line, kind, node)], kind 'text' or 'group'."""

    def __init__(self, body_owner):
        self.bound: dict[str, list] = {}
        for node in ast.walk(body_owner):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)) and node is not body_owner:
                continue
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                self._bind(node.targets[0].id, node.lineno, node.value)
            elif isinstance(node, ast.withitem) and isinstance(node.optional_vars, ast.Name):
                self._bind(node.optional_vars.id, node.context_expr.lineno, node.context_expr)
            elif isinstance(node, (ast.For, ast.comprehension)):
                self._bind_loop(node.target, node.iter, getattr(node, "lineno", node.iter.lineno))

    def _bind(self, name, line, value):
        kind = "text" if isinstance(value, (ast.Constant, ast.JoinedStr, ast.BinOp)) else "group"
        self.bound.setdefault(name, []).append((line, kind, value))

    def _bind_loop(self, target, iterable, line):
        # for u in f["units"]  /  for u, g in f["units"].items()  /  for g in f["units"].values()
        call = iterable.func.attr if isinstance(iterable, ast.Call) and isinstance(iterable.func, ast.Attribute) \
            else None
        base = iterable.func.value if call else iterable
        if isinstance(target, ast.Name) and isinstance(iterable, (ast.List, ast.Tuple)) and iterable.elts and all(
                isinstance(e, ast.Constant) and isinstance(e.value, str) for e in iterable.elts):
            self.bound.setdefault(target.id, []).append((line, "choices", [e.value for e in iterable.elts]))
        elif isinstance(target, ast.Name) and call in (None, "keys"):
            self.bound.setdefault(target.id, []).append((line, "member", base))
        elif isinstance(target, ast.Name) and call == "values":
            self.bound.setdefault(target.id, []).append((line, "child", base))
        elif isinstance(target, ast.Tuple) and call == "items" and len(target.elts) == 2:
            k, v = target.elts
            if isinstance(k, ast.Name):
                self.bound.setdefault(k.id, []).append((line, "member", base))
            if isinstance(v, ast.Name):
                self.bound.setdefault(v.id, []).append((line, "child", base))

    outer: "Scope | None" = None  # the module's scope, for a function's module-level constants

    def lookup(self, name, line):
        found = [b for b in self.bound.get(name, []) if b[0] <= line]
        if found:
            return found[-1][1], found[-1][2]
        if self.outer is not None and self.outer is not self:
            bound = self.outer.bound.get(name, [])
            return (bound[-1][1], bound[-1][2]) if bound else None
        return None


def _path(node, env, depth=0):
    """The file path a subscript chain (or a name bound to one) reads: 'units/{uid}/spike_times';
    '' for the file itself; None when unresolvable."""
    if depth > 12:
        return None
    if isinstance(node, ast.Subscript):
        base = _path(node.value, env, depth + 1)
        piece = _key(node.slice, env)
        if piece is None:
            return None
        if base is None:
            # an unknown base: the file itself when the key names a top-level group
            if piece.strip("/").split("/")[0] in TOP:
                base = ""
            else:
                return None
        return "/".join(p for p in (base, piece.strip("/")) if p)
    if isinstance(node, ast.Name):
        bound = env.lookup(node.id, node.lineno)
        if bound is None:
            return None
        kind, value = bound
        if kind == "group":
            if isinstance(value, ast.Call) and ast.unparse(value.func).endswith("File"):
                return ""
            return _path(value, env, depth + 1)
        if kind == "child":
            base = _path(value, env, depth + 1)
            return None if base is None else f"{base}/{{*}}".lstrip("/")
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get" \
            and node.args:
        base = _path(node.func.value, env, depth + 1)
        piece = _key(node.args[0], env)
        if base is not None and piece is not None:
            return "/".join(p for p in (base, piece.strip("/")) if p)
    return None


def _idiom(node, parents):
    """How a subscript's value is used: '[()]', '[0]', '[:]' or '' and the conversion wrapping it."""
    parent = parents.get(node)
    access = ""
    if isinstance(parent, ast.Subscript) and parent.value is node:
        s = parent.slice
        if isinstance(s, ast.Tuple) and not s.elts:
            access = "[()]"
        elif isinstance(s, ast.Constant) and s.value == 0:
            access = "[0]"
        elif isinstance(s, ast.Slice) and s.lower is None and s.upper is None:
            access = "[:]"
        if access:
            node, parent = parent, parents.get(parent)
    conversion = ""
    if isinstance(parent, ast.Call) and isinstance(parent.func, ast.Name) and parent.func.id in CONVERSIONS \
            and parent.args and parent.args[0] is node:
        conversion = parent.func.id
    return access, conversion


def _top(path):
    return path is not None and (path.split("/")[0] in TOP or path.startswith("@"))


def scan_file(path: Path, rel: str) -> list[dict]:
    try:
        tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"))
    except SyntaxError:
        return []
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    owners = [tree] + [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    scopes = {owner: Scope(owner) for owner in owners}
    for scope in scopes.values():
        scope.outer = scopes[tree]

    def scope_of(node):
        while node in parents:
            node = parents[node]
            if node in scopes:
                return scopes[node]
        return scopes[tree]

    reads = []

    def add(node, idiom, path, **extra):
        reads.append({"file": rel, "line": node.lineno, "idiom": idiom, "path": path, **extra})

    for node in ast.walk(tree):
        env = scope_of(node)
        if isinstance(node, ast.Subscript) and not (isinstance(node.value, ast.Attribute)
                                                    and node.value.attr == "attrs"):
            parent = parents.get(node)
            if isinstance(parent, ast.Subscript) and parent.value is node and _path(parent, env) is not None:
                continue  # the outer subscript of the chain is the read
            if isinstance(node.ctx, (ast.Store, ast.Del)):
                continue
            path = _path(node, env)
            if _top(path):
                access, conversion = _idiom(node, parents)
                add(node, "subscript", path, access=access, conversion=conversion)
        elif isinstance(node, ast.Compare) and len(node.ops) == 1 and isinstance(node.ops[0], (ast.In, ast.NotIn)):
            key = _text(node.left, env)
            base = _path(node.comparators[0], env)
            if key is not None and base is not None:
                path = "/".join(p for p in (base, key.strip("/")) if p)
                if _top(path):
                    add(node, "in", path)
        elif isinstance(node, ast.Subscript) or (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                                                 and node.func.attr == "get" and node.args):
            holder = node.value if isinstance(node, ast.Subscript) else node.func.value
            if not (isinstance(holder, ast.Attribute) and holder.attr == "attrs"):
                continue
            if isinstance(node, ast.Subscript) and isinstance(node.ctx, (ast.Store, ast.Del)):
                continue
            key = _key(node.slice if isinstance(node, ast.Subscript) else node.args[0], env)
            base = _path(holder.value, env)
            if key is not None and base is not None and (base == "" or _top(base)):
                path = f"{base}@{key}"
                if _top(path):
                    add(node, "attrs", path, access="get" if isinstance(node, ast.Call) else "[]")
    return reads


#: Session calls whose stored layout differs from the original's when given a dict (kept; see the guide).
SESSION_CALLS = ("add_feature",)


def session_calls(checkout: Path) -> list[dict]:
    """Every call ``<x>.add_feature(...)`` in the scanned files: file and line."""
    calls = []
    for path, rel in _scanned(checkout):
        try:
            tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"))
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in SESSION_CALLS:
                calls.append({"file": rel, "line": node.lineno, "call": node.func.attr})
    return calls


def _scanned(checkout: Path):
    for path in sorted(checkout.rglob("*.py")):
        rel = path.relative_to(checkout).as_posix()
        if rel.split("/")[0] in SKIP_PARTS or "history" in rel.lower():
            continue
        yield path, rel


def scan(checkout: Path) -> list[dict]:
    reads = []
    for path, rel in _scanned(checkout):
        reads.extend(scan_file(path, rel))
    return reads


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkout", type=Path, required=True)
    parser.add_argument("--commit", required=True)
    parser.add_argument("--out", type=Path, default=ROOT / "tests" / "data" / "lab_layout" / "lab_reads.json")
    args = parser.parse_args()
    reads = scan(args.checkout)
    files = sorted({r["file"] for r in reads})
    out = {"repository": "jiang-lab-retina/hdmea_processing", "commit": args.commit,
           "scanned": "every .py file outside src/, tests/, specs/ and paths naming history",
           "files": len(files), "session_calls": session_calls(args.checkout), "reads": reads}
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(f"{len(reads)} reads in {len(files)} files -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The thin modules at the original pipeline's paths, generated from :data:`hdmea._compat_table.ORIGINAL_API`.

Every path of the table that no module of this library shares (:data:`~hdmea._compat_table.SHARED_PATHS`)
is a package whose ``__init__.py`` only imports the path's names from where they live; nothing else is
written there.  Paths inside the layers below the steps (:data:`LAZY_PREFIXES`: the readers and the
features) cannot import what they hand on, which lives above them: their modules get the names from the
table on first use (:func:`hdmea._compat_table.hand_on`), as the native modules at the original's paths
there do.  ``python -m hdmea._compat.surface`` writes them; ``--check`` lists those that differ from
the table (``tests/unit/test_compat_fence.py`` runs the same check).
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections import defaultdict
from pathlib import Path

from hdmea._compat_table import ORIGINAL_API, SHARED_PATHS, home_of, names_at

__all__ = ["GENERATED_PATHS", "LAZY_PREFIXES", "render", "module_file", "stale_files", "main"]

SRC = Path(__file__).resolve().parents[2]

#: The original's paths whose module is generated here.
GENERATED_PATHS: tuple[str, ...] = tuple(sorted(set(ORIGINAL_API) - set(SHARED_PATHS)))

#: The original's paths below the steps: their names are handed on on first use.
LAZY_PREFIXES = ("hdmea.io.", "hdmea.features.")

_WIDTH = 116


def module_file(path: str, src: Path = SRC) -> Path:
    """The file of the generated module of ``path``: a package's ``__init__.py``."""
    return src.joinpath(*path.split("."), "__init__.py")


def _wrapped(head: str, items: list[str], tail: str) -> list[str]:
    """``head`` + the items + ``tail`` on one line, or the items wrapped between them."""
    text = ", ".join(items)
    if len(head) + len(text) + len(tail) <= _WIDTH:
        return [head + text + tail]
    return [head] + ["    " + line for line in textwrap.wrap(text, _WIDTH - 4, break_long_words=False,
                                                               break_on_hyphens=False)] + [tail]


def render(path: str) -> str:
    """The text of the generated module of the original's ``path``."""
    names = names_at(path)
    by_home: dict[str, list[str]] = defaultdict(list)
    renamed: list[tuple[str, str, str]] = []
    for name in names:
        module, attribute = home_of(path, name)
        if attribute == name:
            by_home[module].append(name)
        else:
            renamed.append((module, attribute, name))
    out = [f'"""The original pipeline\'s ``{path}``: its names, handed on from where they live.',
           "",
           "Generated from :data:`hdmea._compat_table.ORIGINAL_API` by ``python -m hdmea._compat.surface``; do not",
           'edit."""']
    if path.startswith(LAZY_PREFIXES):
        return "\n".join([*out[:-1], "edit.  The names live in the layers above this one: they are imported on first use.",
                          '"""', "", "import importlib", "",
                          'importlib.import_module("hdmea._compat_table").hand_on(globals())']) + "\n"
    if names:
        out.append("")
    for module in sorted(by_home):
        line = f"from {module} import " + ", ".join(sorted(by_home[module]))
        out += [line] if len(line) <= _WIDTH else _wrapped(f"from {module} import (", sorted(by_home[module]), ")")
    for module, attribute, name in sorted(renamed):
        out.append(f"from {module} import {attribute} as {name}")
    if names:
        out.append("")
        out += _wrapped("__all__ = [", [f'"{name}"' for name in names], "]")
        # a default set at this path reaches the module where it lives (and the functions reading it there)
        out += ["", 'importlib.import_module("hdmea._compat_table").settings_reach_their_home(__name__)']
        out[out.index('edit."""') + 1:out.index('edit."""') + 1] = ["", "import importlib"]
    return "\n".join(out) + "\n"


def stale_files(src: Path = SRC) -> list[Path]:
    """The generated modules whose file is missing or differs from :func:`render`."""
    return [module_file(path, src) for path in GENERATED_PATHS
            if not module_file(path, src).is_file() or module_file(path, src).read_text() != render(path)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="list the files that differ; write nothing")
    args = parser.parse_args(argv)
    stale = stale_files()
    if args.check:
        for path in stale:
            print(path)
        return 1 if stale else 0
    for path in GENERATED_PATHS:
        target = module_file(path)
        if target in stale:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(render(path))
            print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Sphinx extension: the documentation's examples run when the site is built, so a stale one fails the build.

Two kinds of blocks are checked, each marked by a class on a ``{code-block}``:

``:class: executed`` (a ``console`` block)
    Lines starting with ``$ `` are commands; the lines up to the next command are what it
    prints (stdout and stderr together).  The commands of a page run in order, in one
    scratch folder per page, with ``hdmea`` and ``python`` taken from the Python that builds
    the site.  ``...`` in a line stands for any text, a line of only ``...`` for any number of
    lines, and a command that exits non-zero ends its output with ``[exit status N]``.
``:class: checked-config`` (a ``toml`` block)
    A pipeline configuration: it is written to the page's scratch folder (under its caption's
    name, ``:caption: pipeline.toml``, for the commands after it) and loaded by
    :func:`hdmea.config.load_config`, the reader ``hdmea run --config`` uses.

A command whose output differs, or a configuration the reader refuses, is reported as a
warning naming the page, the command and both texts; ``sphinx-build -W`` turns it into an error.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from docutils import nodes
from sphinx.util import logging

logger = logging.getLogger(__name__)

#: Seconds one command may take (the demo takes a few seconds on a busy laptop).
COMMAND_TIMEOUT = 600


def expected_pattern(expected: str) -> re.Pattern:
    """A regular expression for ``expected``: ``...`` in a line is any text, a ``...`` line any lines."""
    parts = []
    for line in expected.splitlines():
        if line.strip() == "...":
            parts.append(r"(?:[^\n]*\n)*?")
        else:
            parts.append(".*?".join(re.escape(piece) for piece in line.split("...")) + r"[ \t]*\n")
    return re.compile("".join(parts), re.DOTALL)


def output_matches(expected: str, found: str) -> bool:
    found = "\n".join(line.rstrip() for line in found.splitlines()) + "\n" if found.strip() else ""
    expected = "\n".join(line.rstrip() for line in expected.strip("\n").splitlines())
    if not expected:
        return found == ""
    return expected_pattern(expected).fullmatch(found) is not None


def parse_session(text: str) -> list[tuple[str, str]]:
    """``[(command, expected output), ...]`` of a console block."""
    steps: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        if line.startswith("$ "):
            steps.append((line[2:].strip(), []))
        elif steps:
            steps[-1][1].append(line)
    return [(command, "\n".join(lines)) for command, lines in steps]


def _command_line(command: str) -> str:
    """``command`` with ``hdmea`` and ``python`` as the Python building the site runs them."""
    python = sys.executable
    command = re.sub(r"^hdmea\b", f"{python} -m hdmea", command)
    return re.sub(r"^python\b", python, command)


class Scratch:
    """One scratch folder per page, under one root made when the first page asks for its folder and removed
    when the build ends (``remove``)."""

    def __init__(self) -> None:
        self.root: Path | None = None
        self.pages: dict[str, Path] = {}

    def folder(self, docname: str) -> Path:
        if self.root is None:
            self.root = Path(tempfile.mkdtemp(prefix="h5stream-docs-"))
        if docname not in self.pages:
            folder = self.root / docname.replace("/", "__")
            folder.mkdir(parents=True)
            self.pages[docname] = folder
        return self.pages[docname]


def _environment() -> dict[str, str]:
    env = {**os.environ, "COLUMNS": "100", "PYTHONUNBUFFERED": "1"}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.setdefault("PYTHONPATH", os.pathsep.join(p for p in sys.path if p))
    return env


def run_session(text: str, folder: Path) -> list[str]:
    """Run a console block's commands in ``folder``; the problems found (empty when every output matches)."""
    problems = []
    for command, expected in parse_session(text):
        try:
            done = subprocess.run(["bash", "-c", _command_line(command)], cwd=folder, env=_environment(),
                                  capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False)
        except subprocess.TimeoutExpired:
            problems.append(f"`{command}` did not finish within {COMMAND_TIMEOUT} s")
            continue
        found = done.stdout + done.stderr
        if done.returncode != 0:
            found = (found.rstrip("\n") + "\n" if found.strip() else "") + f"[exit status {done.returncode}]\n"
        if not output_matches(expected, found):
            problems.append(f"`{command}` printed something else than the page shows.\n--- the page shows:\n"
                            f"{expected}\n--- the command printed:\n{found}")
    return problems


def _caption(block) -> str | None:
    """The caption of a ``{code-block}`` (``:caption: pipeline.toml``), or None."""
    wrapper = block.parent
    if isinstance(wrapper, nodes.container) and wrapper.children and isinstance(wrapper[0], nodes.caption):
        return wrapper[0].astext().strip()
    return None


def check_config(text: str, folder: Path, name: str | None = None) -> list[str]:
    """Load a configuration example as ``hdmea run --config`` does; written under its caption's name,
    so that the page's commands after it can use it."""
    from hdmea.config import load_config

    path = folder / (name if name and re.fullmatch(r"[\w.-]+\.toml", name) else "example.toml")
    path.write_text(text)
    try:
        load_config(path)
    except Exception as exc:  # noqa: BLE001 - every refusal is the finding
        return [f"the configuration example is refused by hdmea.config.load_config: {exc}"]
    return []


#: The scratch folders of each running build (kept out of the environment, which Sphinx pickles).
_SCRATCH: dict[int, Scratch] = {}


def check_examples(app, doctree) -> None:
    docname = app.env.docname
    scratch = _SCRATCH.get(id(app))
    if scratch is None:  # one per build (not one per page read: each would leave a folder behind)
        scratch = _SCRATCH[id(app)] = Scratch()
    pages = _example_pages(app.env)
    pages.discard(docname)
    for block in doctree.findall(nodes.literal_block):
        classes = set(block.get("classes", []))
        if classes & {"executed", "checked-config"}:
            pages.add(docname)
        if "executed" in classes:
            problems = run_session(block.astext(), scratch.folder(docname))
        elif "checked-config" in classes:
            problems = check_config(block.astext(), scratch.folder(docname), _caption(block))
        else:
            continue
        for problem in problems:
            logger.warning(f"stale example: {problem}", location=block)


def _example_pages(env) -> set[str]:
    """The pages holding examples (kept in the environment between builds)."""
    if not hasattr(env, "h5stream_example_pages"):
        env.h5stream_example_pages = set()
    return env.h5stream_example_pages


def pages_to_run_again(app, env, added, changed, removed) -> list[str]:
    """Every page with examples is read again on every build: the code they run may have changed."""
    return sorted(_example_pages(env) - set(removed))


def remove_scratch(app, exception) -> None:
    scratch = _SCRATCH.pop(id(app), None)
    if scratch is not None and scratch.root is not None:
        shutil.rmtree(scratch.root, ignore_errors=True)


def setup(app):
    app.connect("doctree-read", check_examples)
    app.connect("env-get-outdated", pages_to_run_again)
    app.connect("build-finished", remove_scratch)
    return {"version": "1", "parallel_read_safe": False, "parallel_write_safe": True}

"""The documentation's checked examples without a site build: every configuration example loads through
``hdmea.config.load_config``, and the output matcher of ``docs/_ext/executed_examples.py`` accepts
what it should and nothing else (the site build runs the commands themselves)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
BLOCK = re.compile(r"^```\{code-block\} (\w+)\n((?::\w+:[^\n]*\n)*)\n?(.*?)^```$", re.M | re.S)


@pytest.fixture(scope="module")
def extension():
    spec = importlib.util.spec_from_file_location("executed_examples", DOCS / "_ext" / "executed_examples.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _blocks(marker: str) -> list[tuple[Path, str]]:
    found = []
    for page in sorted(p for p in DOCS.rglob("*.md") if "_build" not in p.parts):
        for match in BLOCK.finditer(page.read_text()):
            if f":class: {marker}" in match.group(2):
                found.append((page, match.group(3)))
    return found


def test_every_configuration_example_loads(extension, tmp_path):
    configs = _blocks("checked-config")
    assert {p.relative_to(DOCS).as_posix() for p, _ in configs} >= {"cli.md", "getting-started/hdmea.md"}
    from hdmea.config import load_config

    for page, text in configs:
        assert extension.check_config(text, tmp_path, "pipeline.toml") == [], page
        config = load_config(tmp_path / "pipeline.toml")
        assert config.steps.enabled("compute_eimage_sta"), page  # the examples switch it on in its table
        assert config.steps.kwargs("compute_sta")["n_lags"] == 20


def test_a_configuration_the_reader_refuses_is_reported(extension, tmp_path):
    problems = extension.check_config("[steps.compute_eimage_sta]\nwindow = [-10, 40]\n", tmp_path)
    assert len(problems) == 1 and "parameters given but the step is off" in problems[0]


@pytest.mark.parametrize("expected, found, matches", [
    ("done in ... s", "done in 0.91 s\n", True),
    ("done in ... s", "done in 0.91 s\nextra line\n", False),
    ("a\n...\nz", "a\nb\nc\nz\n", True),
    ("a\n...\nz", "a\nz\n", True),
    ("a\n...\nz", "a\nb\n", False),
    ("units: 8", "units: 7\n", False),
    ("", "", True),
    ("", "something\n", False),
    ("x (1.5)", "x (1.5)   \n", True),  # trailing blanks do not count
])
def test_the_output_matcher(extension, expected, found, matches):
    assert extension.output_matches(expected, found) is matches


def test_a_session_reports_a_stale_output_and_the_exit_status(extension, tmp_path):
    good = "$ echo hello\nhello\n$ sh -c 'echo no >&2; exit 3'\nno\n[exit status 3]\n"
    assert extension.run_session(good, tmp_path) == []
    stale = "$ echo hello\nhello world\n"
    problems = extension.run_session(stale, tmp_path)
    assert len(problems) == 1 and "hello world" in problems[0] and "`echo hello`" in problems[0]


def test_a_build_leaves_no_scratch_folder(extension, tmp_path, monkeypatch):
    """Pages read one after another share the build's one scratch root, and the build's end removes it: nothing
    named ``h5stream-docs-*`` is left in the temporary folder, with or without an example among the pages."""
    import types

    from docutils import nodes
    from docutils.utils import new_document

    monkeypatch.setattr(extension.tempfile, "tempdir", str(tmp_path))
    app = types.SimpleNamespace(env=types.SimpleNamespace(docname=""))
    for docname in ("index", "guide/hdmea", "cli"):
        app.env.docname = docname
        doctree = new_document(docname)
        if docname == "cli":  # a page with an example: its folder is made under the root
            doctree += nodes.literal_block("$ true\n", "$ true\n", classes=["executed"])
        extension.check_examples(app, doctree)
    made = sorted(p.name for p in tmp_path.iterdir())
    assert len(made) == 1 and made[0].startswith("h5stream-docs-"), made
    assert [p.name for p in (tmp_path / made[0]).iterdir()] == ["cli"]
    extension.remove_scratch(app, None)
    assert list(tmp_path.iterdir()) == []

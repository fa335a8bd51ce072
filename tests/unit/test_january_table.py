"""ScpTensor's January API in one table (``h5scp._january_table``), and the opt-in served from it.

The table names every January path, its names and where each lives in h5scp; the opt-in distribution's
finder (optin/scptensor-january) reads it for every ``scptensor.<path>`` and names no module of h5scp
itself, so h5scp's modules can move with one edit of the table.
"""

from __future__ import annotations

import ast
import importlib
import re
import sys
import types
from pathlib import Path

import pytest

from h5scp import _january_table as table

ROOT = Path(__file__).resolve().parents[2]
OPTIN = ROOT / "optin" / "scptensor-january" / "src" / "scptensor_january.py"
TABLE_FILE = ROOT / "src" / "h5scp" / "_january_table.py"


def _alias_serves() -> bool:
    import scptensor

    return scptensor.__name__ == "h5scp"


needs_alias = pytest.mark.skipif(importlib.util.find_spec("scptensor") is None or not _alias_serves(),
                                 reason="another scptensor is installed: the January alias stands aside")


def test_the_table_imports_nothing_of_h5scp():
    tree = ast.parse(TABLE_FILE.read_text())
    imports = [ast.unparse(n) for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert imports and not [i for i in imports if "h5scp" in i], imports


def test_every_name_lives_where_the_table_says():
    for path in table.JANUARY_API:
        for name in table.names_at(path):
            home = table.home_of(path, name)
            assert home == "h5scp" or home.startswith("h5scp."), (path, name, home)
            assert hasattr(importlib.import_module(home), name), f"{path}.{name}: {home} has no {name}"


def test_the_paths_served_whole_hold_or_hand_on_their_names():
    assert set(table.SERVED_WHOLE) <= set(table.JANUARY_API)
    for path, module_name in table.SERVED_WHOLE.items():
        module = importlib.import_module(module_name)
        for name in table.names_at(path):
            assert getattr(module, name) is getattr(importlib.import_module(table.home_of(path, name)), name), (
                path, name)


def test_the_model_hands_on_the_january_helpers_without_importing_them():
    # in a fresh interpreter: importing the model imports no January helper and no format
    import subprocess

    code = ("import sys, h5scp.core as c; before = sorted(m for m in sys.modules if m.startswith(('h5scp.january', "
            "'h5scp.io'))); f = c.load_csv; print(before, f.__module__, 'load_csv' in c.__all__)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["[]", "h5scp.january.csv_npz", "True"]


def test_the_optin_names_no_module_of_h5scp_but_the_table():
    texts = [n.value for n in ast.walk(ast.parse(OPTIN.read_text()))
             if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    module_names = [t for t in texts if re.fullmatch(r"h5scp(\.\w+)*", t)]
    assert module_names == ["h5scp", "h5scp._january_table"]


@needs_alias
def test_every_january_path_imports_as_the_table_says():
    for path in table.JANUARY_API:
        module = importlib.import_module(path)
        if path in table.SERVED_WHOLE:
            assert module is importlib.import_module(table.SERVED_WHOLE[path]), path
        for name in table.names_at(path):
            assert getattr(module, name) is getattr(importlib.import_module(table.home_of(path, name)), name), (
                path, name)
    assert importlib.import_module("scptensor.core").reader.__name__ == "reader"  # the function, not the module


@needs_alias
def test_a_path_the_table_moves_is_served_from_its_new_home(monkeypatch):
    # a January path given a new home in the table alone: the finder serves it from there
    path = "scptensor.core.moved_for_this_test"
    monkeypatch.setitem(table.JANUARY_API, path, {"h5scp.january.csv_npz": ("save_csv",),
                                                  "h5scp.january.jit_ops": ("count_mask_codes",)})
    monkeypatch.setitem(table._HOMES, path, {"save_csv": "h5scp.january.csv_npz",
                                             "count_mask_codes": "h5scp.january.jit_ops"})
    monkeypatch.delitem(sys.modules, path, raising=False)
    try:
        module = importlib.import_module(path)
        from h5scp.january.csv_npz import save_csv
        from h5scp.january.jit_ops import count_mask_codes

        assert module.save_csv is save_csv and module.count_mask_codes is count_mask_codes
        assert sorted(module.__all__) == ["count_mask_codes", "save_csv"]
        with pytest.raises(AttributeError, match="has no attribute 'load_csv'"):
            module.load_csv  # noqa: B018
    finally:
        sys.modules.pop(path, None)
        core = sys.modules["h5scp.core"]
        if "moved_for_this_test" in core.__dict__:
            del core.__dict__["moved_for_this_test"]


@needs_alias
def test_a_path_the_january_api_had_not_is_refused_not_copied():
    import h5scp.io.formats

    with pytest.raises(ModuleNotFoundError, match="scptensor.io.formats.*January API.*scptensor.core.io"):
        importlib.import_module("scptensor.io.formats")
    assert "scptensor.io.formats" not in sys.modules
    assert isinstance(h5scp.io.formats, types.ModuleType)

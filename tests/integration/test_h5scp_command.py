"""The ``h5scp`` command: a console script beside ``hdmea``, ``--help``, one-line usage errors (exit 2), and a
missing optional package named in one line, whether started as ``h5scp`` or ``python -m h5scp``."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from h5scp import Assay, ScpContainer, ScpMatrix
from h5scp.__main__ import main
from h5scp.io import save

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]


def test_the_console_script_is_declared_and_resolves():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["h5scp"] == "h5scp.__main__:main" and scripts["hdmea"] == "hdmea.__main__:main"
    module, _, name = scripts["h5scp"].partition(":")
    assert getattr(importlib.import_module(module), name) is main


def test_help_lists_the_commands_and_exits_0(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert all(command in out for command in ("inspect", "verify", "convert"))


@pytest.mark.parametrize("argv", [["frobnicate"], [], ["convert", "only-one.h5"], ["inspect", "--nope", "x.h5"]])
def test_usage_errors_are_one_line_and_exit_2(capsys, argv):
    with pytest.raises(SystemExit) as done:
        main(argv)
    assert done.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--help" in err, err


@pytest.mark.parametrize("started_as,prog", [("/usr/local/bin/h5scp", "h5scp"), ("-m", "python -m h5scp")])
def test_a_missing_extra_is_one_line_naming_the_install(tmp_path, monkeypatch, capsys, started_as, prog):
    source = tmp_path / "c.h5"
    obs = pl.DataFrame({"_index": ["s1", "s2"]})
    save(ScpContainer(obs, {"p": Assay(pl.DataFrame({"_index": ["P1"]}), {"raw": ScpMatrix(np.ones((2, 1)))})}),
         source)
    monkeypatch.setattr(sys, "argv", [started_as])
    monkeypatch.setitem(sys.modules, "zarr", None)  # the zarr extra not installed: its import fails
    capsys.readouterr()  # what the save above logged (a handler an earlier command left) is not the command's
    assert main(["convert", str(source), str(tmp_path / "c.zarr")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith(f"{prog} convert: ") and "pip install" in err and "zarr" in err
    assert not (tmp_path / "c.zarr").exists()

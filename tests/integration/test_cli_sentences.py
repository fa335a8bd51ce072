"""Given the wrong kind of input, each command line answers with one sentence saying what to do, exit 2.

The inputs are what a person reaches for by mistake: an HDF5 file another program wrote (made here with
plain h5py), a raw MCS file (.cmcr, .cmtr) where a processed recording is expected, a folder.  Both command
lines, ``hdmea`` and ``python -m h5scp``, name their flags as flags, count in words ("1 layer"), and read what
they write.
"""

from __future__ import annotations

import subprocess
import sys

import h5py
import numpy as np
import pytest

from h5scp.__main__ import main as h5scp_main
from h5scp.testing import example_container
from hdmea.cli import main as hdmea_main
from hdmea.synthetic import generate_recording


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sentences")
    foreign = folder / "other_lab.h5"
    with h5py.File(foreign, "w") as f:  # a file another program wrote: no marks of ours
        f["traces"] = np.arange(12.0).reshape(3, 4)
        f.attrs["instrument"] = "scope"
    made = generate_recording(folder / "raw", "rec", n_units=2, seed=1)
    return folder, foreign, made


def _said(capsys, main, argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err.strip()


def _one_sentence(err: str, prefix: str) -> None:
    assert err.startswith(prefix), err
    assert "\n" not in err and "Traceback" not in err and "Error" not in err, err


@pytest.mark.parametrize("argv", [["inspect"], ["report", "--out", "REPORT"], ["export-nwb", "OUT.nwb"], ["view"]],
                         ids=["inspect", "report", "export-nwb", "view"])
def test_a_foreign_file_a_raw_file_and_a_folder_are_named_with_what_to_do(inputs, argv, capsys, tmp_path):
    folder, foreign, made = inputs
    command = argv[0]
    rest = [a.replace("REPORT", str(tmp_path / "r")).replace("OUT.nwb", str(tmp_path / "o.nwb")) for a in argv[1:]]

    def call(path):
        args = [command, path, *rest] if command != "report" else [command, path, *rest]
        if command == "view":
            args = ["view", path]
        return _said(capsys, hdmea_main, args)

    if command != "view":  # the viewer serves a file it cannot show with the reason on its page
        code, out, err = call(foreign)
        assert code == 2 and out == "", err
        _one_sentence(err, f"hdmea {command}: {foreign} is an HDF5 file that hdmea did not write")
        assert "hdmea demo --out DIR" in err

    code, out, err = call(made.cmcr_path)
    assert code == 2 and out == "", err
    _one_sentence(err, f"hdmea {command}: {made.cmcr_path} is a raw MCS file (.cmcr), not a processed recording")
    assert f"`hdmea run {made.cmcr_path} {made.cmtr_path} --out rec.h5`" in err

    if command != "view":  # folders are what the viewer serves
        code, out, err = call(made.cmcr_path.parent)
        assert code == 2 and out == "", err
        _one_sentence(err, f"hdmea {command}: {made.cmcr_path.parent} is a folder; hdmea {command} reads one "
                           "recording file (.h5)")


def test_verify_says_a_file_it_did_not_write_is_not_its_own(inputs, capsys):
    folder, foreign, made = inputs
    code, out, err = _said(capsys, hdmea_main, ["verify", foreign])
    assert code == 2 and out == "" and "OK" not in err
    _one_sentence(err, f"hdmea verify: {foreign} is an HDF5 file that hdmea did not write: it carries no checksums")
    # an MCS file has none either, and is read whole: it is said so, not "OK, 0 datasets checked"
    code, out, err = _said(capsys, hdmea_main, ["verify", made.cmcr_path])
    assert code == 0 and err == "", err
    assert out.startswith(f"{made.cmcr_path}: readable: all ") and "carries no checksums" in out
    assert "0 datasets" not in out

    code, out, err = _said(capsys, h5scp_main, ["verify", foreign])
    assert code == 2 and out == ""
    _one_sentence(err, f"python -m h5scp verify: {foreign} is an HDF5 file but not a container")


def test_h5scp_names_its_flags_counts_in_words_and_inspects_what_it_writes(tmp_path, capsys):
    container = example_container(n_samples=5, n_proteins=3, peptides_per_protein=2, seed=2)
    source = tmp_path / "c.h5"
    container.save(source)
    # a container with one layer in an assay: "1 layer"
    single = tmp_path / "single.h5ad"
    assert _said(capsys, h5scp_main, ["convert", source, single, "--assay", "proteins", "--layer", "raw"])[0] == 0
    store = tmp_path / "c.zarr"
    code, out, err = _said(capsys, h5scp_main, ["convert", source, store])
    assert code == 2 and "--assay" in err and "assay=" not in err, err
    _one_sentence(err, "python -m h5scp convert: ")
    assert _said(capsys, h5scp_main, ["convert", source, store, "--assay", "proteins"])[0] == 0
    code, out, err = _said(capsys, h5scp_main, ["inspect", store])
    assert code == 0, err
    assert out.startswith(f"{store}  (AnnData zarr, ") and "proteins: 3 features" in out
    assert "1 layers" not in out
    # onto an existing output: the flag by its name, exit 2 (nothing was started)
    code, out, err = _said(capsys, h5scp_main, ["convert", source, single, "--assay", "proteins"])
    assert code == 2 and "pass --overwrite" in err and "overwrite=True" not in err, err
    _one_sentence(err, f"python -m h5scp convert: {single}")
    code, out, err = _said(capsys, h5scp_main, ["inspect", single])
    assert code == 0 and ", 1 layer;" in out or ", 2 layers;" in out, out


def test_h5scp_help_is_plain_text():
    for argv in ([], ["inspect"], ["verify"], ["convert"]):
        done = subprocess.run([sys.executable, "-m", "h5scp", *argv, "--help"], capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr
        assert "``" not in done.stdout and ":func:" not in done.stdout, done.stdout


@pytest.mark.parametrize("argv,words", [
    (["report", "x.h5"], ["hdmea report: the following arguments are required: --out", "`hdmea report --help`"]),
    (["bogus"], ["hdmea: argument COMMAND: invalid choice: 'bogus'", "`hdmea --help`"]),
    ([], ["hdmea: the following arguments are required: COMMAND"]),
    (["run", "a.cmtr", "b.cmcr", "--out", "x.h5"], ["hdmea run: hdmea run takes the raw recording (.cmcr) first",
                                                     "swap them: b.cmcr first, then a.cmtr"]),
])
def test_a_bad_command_line_is_one_line_with_what_to_do(argv, words):
    for module in ("hdmea",):
        done = subprocess.run([sys.executable, "-m", module, *argv], capture_output=True, text=True, timeout=120)
        assert done.returncode == 2 and done.stdout == "", done.stderr
        assert done.stderr.count("\n") == 1 and "usage:" not in done.stderr, done.stderr
        for word in words:
            assert word in done.stderr, done.stderr
    done = subprocess.run([sys.executable, "-m", "h5scp", "convert", "only_one.h5"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("python -m h5scp convert: the following arguments are required: output")


def test_the_start_of_the_command_line_knows_every_command():
    """The console script's start names the stopped command before the parser exists: the same list."""
    from hdmea.cli_stops import COMMANDS, command_of, stopped_line
    from hdmea.cli import build_parser

    parser = build_parser()
    (commands,) = [a.choices for a in parser._subparsers._group_actions]
    assert set(COMMANDS) == set(commands)
    assert command_of(["--log-level", "DEBUG", "run", "a.cmcr"]) == "run"
    assert stopped_line("run") == "hdmea run: stopped; run the same command again to resume"
    assert stopped_line("inspect") == "hdmea inspect: stopped" and stopped_line(None) == "hdmea: stopped"

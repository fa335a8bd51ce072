"""A newcomer's mistakes, one row each: the message says what was expected, what was found and what to do.

Every row feeds one mistake to the ``hdmea`` command line (in this process, through
``hdmea.cli.main``) or to the Python API, and asserts the exit status (2: a usage
error, nothing started) and the parts of the message: the path, the expectation,
what was found, the next step, and no exception class name.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from hdmea.cli import EXIT_USAGE, main
from hdmea.config import tomllib  # the standard library's, or tomli before Python 3.11

#: An exception class name as Python prints it (``FormatError:``, ``RecordingNotFoundError``).
CLASS_NAME = re.compile(r"\b[A-Z][A-Za-z]*(Error|Exception|Warning)\b")


def _text_file(folder: Path) -> Path:
    path = folder / "notes.txt"
    path.write_text("a lab notebook page, not a recording\n")
    return path


def _swapped(tiny: Path, folder: Path) -> list[str]:
    return ["run", str(tiny / "tiny.cmtr"), str(tiny / "tiny.cmcr"), "--out", str(folder / "o.h5")]


def _step_parameters_with_the_step_off(tiny: Path, folder: Path) -> list[str]:
    config = folder / "eimage.toml"
    config.write_text((tiny / "tiny.toml").read_text() + "\n[steps.compute_eimage_sta]\nwindow = [-10, 40]\n")
    return ["run", str(tiny / "tiny.cmcr"), str(tiny / "tiny.cmtr"), "--config", str(config),
            "--out", str(folder / "o.h5")]


def _lone_cmcr(tiny: Path, folder: Path) -> list[str]:
    lone = folder / "recordings"
    lone.mkdir()
    shutil.copy(tiny / "tiny.cmcr", lone / "rec1.cmcr")
    return ["batch", str(lone), "--out", str(folder / "out"), "--workers", "1"]


#: (id, command line of the mistake, parts every message must have)
MISTAKES = [
    ("inspect a missing file", lambda t, d: ["inspect", str(d / "nope.h5")],
     ["nope.h5: no such file", "expected a recording file (.h5)", "found nothing at this path", "Check the path",
      "hdmea demo --out DIR"]),
    ("inspect a text file", lambda t, d: ["inspect", str(_text_file(d))],
     ["notes.txt is not a recording", "expected a recording file (.h5)", "HDF5 signature",
      f"found no signature in {len('a lab notebook page, not a recording') + 1} bytes", "Give the path of a recording"]),
    ("report of a text file", lambda t, d: ["report", str(_text_file(d)), "--out", str(d / "report")],
     ["notes.txt is not a recording", "expected a recording file", "found no signature", "Give the path"]),
    ("report of a missing file", lambda t, d: ["report", str(d / "nope.h5"), "--out", str(d / "report")],
     ["nope.h5: no such file", "expected", "found nothing", "Check the path"]),
    ("view a text file", lambda t, d: ["view", str(_text_file(d))],
     ["notes.txt is not a recording", "expected", "found no signature", "Give the path"]),
    ("view a missing file", lambda t, d: ["view", str(d / "nope.h5")],
     ["nope.h5: no such file", "expected", "found nothing", "Check the path"]),
    ("verify a text file", lambda t, d: ["verify", str(_text_file(d))],
     ["notes.txt is not an HDF5 file", "expected a recording file (.h5) or an MCS file", "found no signature",
      "Give the path"]),
    ("run with the .cmtr first", _swapped,
     ["takes the raw recording (.cmcr) first and its spike sorting (.cmtr) second", "tiny.cmtr first",
      "(swapped)", "swap them:"]),
    ("run a missing .cmcr", lambda t, d: ["run", str(d / "nope.cmcr"), str(t / "tiny.cmtr"), "--out", str(d / "o.h5")],
     ["nope.cmcr", "the .cmcr file does not exist", "check the path"]),
    ("run into a text output", lambda t, d: ["run", str(t / "tiny.cmcr"), str(t / "tiny.cmtr"), "--out",
                                            str(d / "o.txt")],
     ["the output must be an .h5 file", "found", "o.txt", "--out results/rec.h5"]),
    ("run with a missing configuration", lambda t, d: ["run", str(t / "tiny.cmcr"), str(t / "tiny.cmtr"), "--config",
                                                      str(d / "nope.toml"), "--out", str(d / "o.h5")],
     ["nope.toml", "configuration file does not exist", "check the path"]),
    ("step parameters with the step off", _step_parameters_with_the_step_off,
     ["steps.compute_eimage_sta", "parameters given but the step is off",
      "add `enabled = true` to the [steps.compute_eimage_sta] table", "or remove the table"]),
    ("a batch whose only recording lacks its .cmtr", _lone_cmcr,
     ["nothing was started", "rec1", "rec1.cmtr", "the .cmtr file does not exist",
      "a .cmcr and its .cmtr with the same name", "run the same command again"]),
    ("demo without units", lambda t, d: ["demo", "--units", "0", "--out", str(d / "demo")],
     ["the demo needs at least one unit", "found 0"]),
]


@pytest.mark.parametrize("make_args, parts", [m[1:] for m in MISTAKES], ids=[m[0] for m in MISTAKES])
def test_a_mistake_on_the_command_line(tiny, tmp_path, capsys, monkeypatch, make_args, parts):
    from hdmea.view.server import ViewerServer

    def never_serve(self):
        raise AssertionError("the viewer started serving a file it should have refused")

    monkeypatch.setattr(ViewerServer, "serve_forever", never_serve)
    monkeypatch.chdir(tmp_path)
    args = make_args(tiny, tmp_path)
    try:
        code = main(args)
    except SystemExit as stop:  # argparse's own usage errors
        code = stop.code
    err = capsys.readouterr().err
    assert code == EXIT_USAGE, err
    message = " ".join(err.split())  # argparse wraps its usage line
    for part in parts:
        assert part in message, f"{part!r} missing from: {err}"
    assert not CLASS_NAME.search(message), err
    assert "Traceback" not in err
    assert not (tmp_path / "o.h5").exists()


def test_the_advice_for_step_parameters_is_valid_toml(tiny, tmp_path, capsys):
    """Following the message's advice gives a configuration that loads and runs the step."""
    from hdmea.config import load_config

    main(_step_parameters_with_the_step_off(tiny, tmp_path))
    advice = re.search(r"add `(.+?)` to the \[steps\.compute_eimage_sta\] table", capsys.readouterr().err).group(1)
    config = tmp_path / "eimage.toml"
    text = config.read_text().replace("[steps.compute_eimage_sta]\n", f"[steps.compute_eimage_sta]\n{advice}\n")
    config.write_text(text)
    tomllib.loads(text)
    loaded = load_config(config)
    assert loaded.steps.enabled("compute_eimage_sta")
    assert tuple(loaded.steps.kwargs("compute_eimage_sta")["window"]) == (-10, 40)


def test_load_recording_with_the_pair_swapped_names_the_order(tiny):
    from hdmea.errors import ConfigError
    from hdmea.pipeline import create_session, load_recording

    cmcr, cmtr = tiny / "tiny.cmcr", tiny / "tiny.cmtr"
    with pytest.raises(ConfigError) as info:
        load_recording(cmtr, cmcr, session=create_session("tiny"))
    text = str(info.value)
    assert "load_recording takes the raw recording (.cmcr) first and its spike sorting (.cmtr) second" in text
    assert f"found {cmtr} first and {cmcr} second (swapped)" in text
    assert f"swap them: {cmcr} first, then {cmtr}" in text

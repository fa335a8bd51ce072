"""Wrong configurations on the command line: one sentence naming the file and the key, exit 2, no traceback.

Every case is a configuration a person could write (a word where a number goes, a number out of range, a
pair given as one value, a key or table given twice); ``hdmea run`` and ``hdmea batch`` must refuse it before
anything runs, with the key path, what was found and what is expected.
"""

from __future__ import annotations

import inspect
import subprocess
import sys
import textwrap

import pytest

from hdmea.cli import main
from hdmea.config_values import STEP_VALUES
from hdmea.steps.table import RESERVED_STEP_ARGUMENTS, STEPS

# (case id, TOML text, key path the message must name, words it must contain)
CASES = [
    # types
    ("word-for-int", '[steps.compute_sta]\nn_lags = "twenty"\n', "steps.compute_sta.n_lags", ['"twenty"', ">= 1"]),
    ("float-for-int", "[steps.compute_sta]\nn_lags = 2.5\n", "steps.compute_sta.n_lags", ["2.5", "whole number"]),
    ("bool-for-int", "[steps.compute_sta]\nn_lags = true\n", "steps.compute_sta.n_lags", ["true", "whole number"]),
    ("scalar-window", "[steps.compute_eimage_sta]\nenabled = true\nwindow = 5\n", "steps.compute_eimage_sta.window",
     ["found 5", "[first, end]"]),
    ("scalar-margin", "[steps.section_spike_times]\npad_margin = 0.5\n", "steps.section_spike_times.pad_margin",
     ["0.5", "[before_s, after_s]"]),
    ("word-margin", '[steps.section_spike_times]\npad_margin = "half"\n', "steps.section_spike_times.pad_margin",
     ['"half"', "pair"]),
    ("word-in-margin", '[steps.section_spike_times]\npad_margin = [0.5, "half"]\n',
     "steps.section_spike_times.pad_margin", ["not two numbers"]),
    ("string-for-flag", '[steps.compute_sta]\nforce = "yes"\n', "steps.compute_sta.force", ["true or false"]),
    ("string-for-list", '[steps.section_spike_times]\nmovie_names = "step_up"\n',
     "steps.section_spike_times.movie_names", ["list"]),
    ("unknown-choice", '[steps.compute_sta]\nmethod = "fast"\n', "steps.compute_sta.method", ['"sparse"', '"fast"']),
    ("word-for-hz", '[steps.compute_eimage_sta]\nenabled = true\nhighpass_hz = "100 Hz"\n',
     "steps.compute_eimage_sta.highpass_hz", ["Hz"]),
    ("batch-workers-word", '[batch]\nworkers = "2"\n', "batch.workers", ["integer"]),
    ("output-flag-word", '[output]\ncheckpoint = "yes"\n', "output.checkpoint", ["true or false"]),
    # ranges
    ("zero-lags", "[steps.compute_sta]\nn_lags = 0\n", "steps.compute_sta.n_lags", ["found 0", ">= 1"]),
    ("negative-lags", "[steps.compute_sta]\nn_lags = -3\n", "steps.compute_sta.n_lags", ["-3"]),
    ("negative-margin", "[steps.section_spike_times]\npad_margin = [-0.1, 0.0]\n",
     "steps.section_spike_times.pad_margin", ["-0.1", ">= 0"]),
    ("reversed-window", "[steps.compute_eimage_sta]\nenabled = true\nwindow = [40, -10]\n",
     "steps.compute_eimage_sta.window", ["[40, -10]", "end > first", "not in order"]),
    ("empty-window", "[steps.compute_eimage_sta]\nenabled = true\nwindow = [0, 0]\n",
     "steps.compute_eimage_sta.window", ["end > first"]),
    ("zero-filter-order", "[steps.compute_eimage_sta]\nenabled = true\nfilter_order = 0\n",
     "steps.compute_eimage_sta.filter_order", [">= 1"]),
    ("zero-highpass", "[steps.compute_eimage_sta]\nenabled = true\nhighpass_hz = 0\n",
     "steps.compute_eimage_sta.highpass_hz", ["> 0"]),
    ("bad-size", '[steps.compute_eimage_sta]\nenabled = true\nmemory_budget = "lots"\n',
     "steps.compute_eimage_sta.memory_budget", ["512 MiB"]),
    ("zero-threads", "[steps.compute_sta]\nn_threads = 0\n", "steps.compute_sta.n_threads", ["threads"]),
    ("negative-retries", "[batch]\nretries = -1\n", "batch.retries", [">= 0"]),
    ("negative-margin-frames", '[stimulus]\nplaylist = ["a"]\npre_margin_frames = -1\n[stimulus.movie_lengths]\n'
     "a = 10\n", "stimulus.pre_margin_frames", [">= 0"]),
    # shapes
    ("triple-window", "[steps.compute_eimage_sta]\nenabled = true\nwindow = [1, 2, 3]\n",
     "steps.compute_eimage_sta.window", ["[1, 2, 3]", "pair"]),
    ("single-margin", "[steps.section_spike_times]\npad_margin = [0.5]\n", "steps.section_spike_times.pad_margin",
     ["[0.5]"]),
    ("reversed-cover-range", "[steps.compute_sta]\ncover_range = [0, -60]\n", "steps.compute_sta.cover_range",
     ["end > first"]),
    ("table-for-number", "[steps.compute_sta.n_lags]\nx = 1\n", "steps.compute_sta.n_lags", ["a table"]),
    # duplicates
    ("switch-and-table", "[steps]\ncompute_sta = true\n\n[steps.compute_sta]\nn_lags = 20\n", "steps.compute_sta",
     ["line 2", "line 4", "enabled = true"]),
    ("key-twice", "[steps.compute_sta]\nn_lags = 3\nn_lags = 4\n", "steps.compute_sta.n_lags",
     ["twice", "lines 2 and 3"]),
    ("table-twice", "[steps.compute_sta]\nn_lags = 3\n[output]\ncheckpoint = true\n[steps.compute_sta]\nforce = true\n",
     "[steps.compute_sta]", ["twice", "lines 1 and 5"]),
    ("dotted-key-and-table", "[steps]\ncompute_sta.n_lags = 3\n[steps.compute_sta]\nn_lags = 4\n",
     "steps.compute_sta", ["twice"]),
    # names
    ("misspelt-key", "[steps.compute_sta]\nn_lag = 3\n", "steps.compute_sta.n_lag", ["n_lags"]),
    ("misspelt-step", "[steps.compute_stta]\nn_lags = 3\n", "steps.compute_stta", ["compute_sta"]),
]


def _argv(command: str, config, tmp_path, tiny) -> list[str]:
    """The command on a recording that is fine (``tiny``): the configuration's mistake is the only problem."""
    if command == "run":
        return ["run", str(tiny / "tiny.cmcr"), str(tiny / "tiny.cmtr"), "--config", str(config),
                "--out", str(tmp_path / "out" / "rec.h5")]
    return ["batch", str(tiny), "--config", str(config), "--out", str(tmp_path / "out")]


@pytest.mark.parametrize("command", ["run", "batch"])
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_a_wrong_configuration_is_one_sentence_naming_the_key(case, command, tmp_path, capsys, tiny):
    _name, text, key, words = case
    config = tmp_path / "pipeline.toml"
    config.write_text(text)
    code = main(_argv(command, config, tmp_path, tiny))
    captured = capsys.readouterr()
    message = captured.err.strip()
    assert code == 2, message
    assert captured.out == ""
    assert "\n" not in message and "Traceback" not in message, message
    assert message.startswith(f"hdmea {command}: configuration error: {config}: "), message
    assert key in message, message
    for word in words:
        assert word in message, (word, message)
    assert "Error" not in message  # no class names
    assert not (tmp_path / "out").exists()  # nothing was started


def test_the_command_line_refuses_a_wrong_configuration_without_a_traceback(tmp_path, tiny, child_env):
    """The same through the console entry point in a process of its own (what a person types)."""
    config = tmp_path / "pipeline.toml"
    config.write_text(textwrap.dedent("""\
        [steps.compute_eimage_sta]
        enabled = true
        window = [40, -10]
    """))
    for command in ("run", "batch"):
        done = subprocess.run([sys.executable, "-m", "hdmea", *_argv(command, config, tmp_path, tiny)],
                              capture_output=True, text=True, timeout=120, env=child_env)
        assert done.returncode == 2, done.stderr
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
        assert "steps.compute_eimage_sta.window" in done.stderr and "[40, -10]" in done.stderr


def test_a_good_value_of_every_kind_is_accepted(tmp_path):
    from hdmea.config import load_config

    config = tmp_path / "pipeline.toml"
    config.write_text(textwrap.dedent("""\
        [steps.compute_sta]
        n_lags = 20
        cover_range = [-60, 0]
        method = "sparse"
        [steps.section_spike_times]
        pad_margin = [0.5, 1]
        movie_names = ["step_up"]
        [steps.compute_eimage_sta]
        enabled = true
        window = [-10, 40]
        memory_budget = "256 MiB"
        highpass_hz = 300
    """))
    steps = load_config(config).steps
    assert steps.kwargs("compute_sta") == {"n_lags": 20, "cover_range": [-60, 0], "method": "sparse"}
    assert steps.kwargs("section_spike_times")["pad_margin"] == [0.5, 1]
    assert steps.kwargs("compute_eimage_sta")["window"] == [-10, 40]


def test_every_configurable_step_argument_has_a_value_check():
    """A step's new keyword argument cannot reach a run unchecked: the table names each one."""
    for step in STEPS:
        parameters = inspect.signature(step.function).parameters
        configurable = {name for name, p in parameters.items()
                        if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)} - RESERVED_STEP_ARGUMENTS
        configurable -= {"sensor_axis_order"}  # hdmea.config_steps.PARAMETER_CHECKS
        # positional inputs the pipeline passes (playlist_name, movie_names, features, stimulus, ...) may be
        # configured as keywords too, so they are in the table as well
        assert configurable <= set(STEP_VALUES[step.name]), (step.name, configurable - set(STEP_VALUES[step.name]))
        stale = set(STEP_VALUES[step.name]) - set(parameters)
        assert not stale, (step.name, stale)

"""Every mistake of a configuration in one run: each on its own line with its key and line, exit 2, nothing started.

The configuration below is written by hand with ten different mistakes (a negative margin, a movie of no
length, a trial repeated zero times, a switch that is not true or false, a misspelt step, a margin that is
not a pair, zero threads, a misspelt key, zero workers, an unknown frame layout); the planted list
``MISTAKES`` names each one's key and line, independently of the reader.
"""

from __future__ import annotations

import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hdmea.cli import EXIT_USAGE, main
from hdmea.config import load_config
from hdmea.errors import ConfigError, ConfigErrors

CONFIG = """\
[stimulus]
playlist = ["step_up", "dense_noise"]
pre_margin_frames = -5

[stimulus.movie_lengths]
step_up = 1860
dense_noise = 0

[stimulus.trials.step_up]
start_frame = 240
trial_length_frame = 600
repeat = 0

[steps]
compute_sta = "yes"
eimgae = true

[steps.section_spike_times]
pad_margin = 0.5
n_threads = 0

[output]
overwrit = true

[batch]
workers = 0

[recording]
sensor_axis_order = "diagonal"
"""

#: (line, key, a part of what the line must say: what was found or what is allowed)
MISTAKES = [
    (3, "stimulus.pre_margin_frames", "must be >= 0 (found -5)"),
    (7, "stimulus.movie_lengths.dense_noise", "must be a positive number of frames (found 0)"),
    (12, "stimulus.trials.step_up.repeat", "must be >= 1 (found 0)"),
    (15, "steps.compute_sta", 'must be true or false (found "yes")'),
    (16, "steps.eimgae", "did you mean 'compute_eimage_sta'?"),
    (19, "steps.section_spike_times.pad_margin", "found 0.5, not a pair"),
    (20, "steps.section_spike_times.n_threads", "must be a whole number of threads >= 1 (found 0)"),
    (23, "output.overwrit", "did you mean 'overwrite'?"),
    (26, "batch.workers", "must be >= 1 (found 0)"),
    (29, "recording.sensor_axis_order", "'diagonal' is not a known stored frame layout"),
]


def test_the_planted_lines_are_where_the_keys_are():
    lines = CONFIG.splitlines()
    for number, key, _ in MISTAKES:
        assert lines[number - 1].split("=")[0].strip() == key.rsplit(".", 1)[1], (number, key)


@pytest.fixture
def config(tmp_path) -> Path:
    path = tmp_path / "pipeline.toml"
    path.write_text(CONFIG)
    return path


def test_load_config_raises_every_mistake_with_its_line(config):
    with pytest.raises(ConfigErrors) as caught:
        load_config(config)
    error = caught.value
    assert isinstance(error, ConfigError)
    assert [p.key for p in error.problems] == [key for _, key, _ in MISTAKES]
    assert error.lines == [number for number, _, _ in MISTAKES]
    rows = str(error).splitlines()
    assert rows[0].startswith(f"{config}: {len(MISTAKES)} mistakes in the configuration")
    for row, (number, key, said) in zip(rows[1:], MISTAKES, strict=True):
        assert row.startswith(f"  {config}:{number}: {key}: ")
        assert said in row


def test_one_mistake_reads_as_it_does_alone(config):
    config.write_text("[batch]\nretries = 1\nworkers = 0\n")
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    assert str(caught.value) == f"{config}: batch.workers: must be >= 1 (found 0)"
    assert caught.value.found == "0" and caught.value.key == "batch.workers"
    assert caught.value.lines == [3]


def test_the_mistakes_cross_process_boundaries(config):
    with pytest.raises(ConfigErrors) as caught:
        load_config(config)
    again = pickle.loads(pickle.dumps(caught.value))
    assert str(again) == str(caught.value)
    assert [p.key for p in again.problems] == [p.key for p in caught.value.problems]


def _assert_all_reported(err: str, config: Path, extra: list[str]) -> None:
    rows = err.splitlines()
    assert rows[0].endswith(f"nothing was started: {len(MISTAKES) + len(extra)} problems found before the first step"
                            if extra else f"{len(MISTAKES)} mistakes in the configuration, one per line; fix them "
                            "all, then run the same command again:")
    for number, key, said in MISTAKES:
        row = next(r for r in rows if f"{config}:{number}: {key}: " in r)
        assert said in row
    for part in extra:
        assert any(part in r for r in rows), part
    assert "Error" not in err and "Traceback" not in err


def test_hdmea_run_reports_the_configuration_and_the_inputs_at_once(config, tmp_path, capsys):
    out = tmp_path / "results" / "rec.h5"
    code = main(["run", str(tmp_path / "rec.cmcr"), str(tmp_path / "rec.cmtr"), "--config", str(config),
                 "--out", str(out)])
    assert code == EXIT_USAGE
    _assert_all_reported(capsys.readouterr().err, config,
                         [f"{tmp_path / 'rec.cmcr'}: the .cmcr file does not exist",
                          f"{tmp_path / 'rec.cmtr'}: the .cmtr file does not exist"])
    assert not (tmp_path / "results").exists()


def test_hdmea_batch_reports_every_mistake_in_one_run(config, tiny, tmp_path, child_env):
    """A real ``hdmea batch`` process: the recordings are fine, the configuration has ten mistakes."""
    recordings = tmp_path / "recordings"
    recordings.mkdir()
    for suffix in (".cmcr", ".cmtr"):
        shutil.copy(tiny / f"tiny{suffix}", recordings / f"tiny{suffix}")
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "hdmea", "batch", str(recordings), "--config", str(config),
                           "--out", str(out)], capture_output=True, text=True, env=child_env, timeout=300)
    assert done.returncode == EXIT_USAGE, done.stderr
    _assert_all_reported(done.stderr, config, [])
    assert not out.exists()


def test_hdmea_run_one_names_the_missing_folder_beside_the_mistakes(config, tmp_path, capsys):
    code = main(["run-one", str(tmp_path / "nowhere"), "--index", "0", "--config", str(config),
                 "--out", str(tmp_path / "out")])
    assert code == EXIT_USAGE
    _assert_all_reported(capsys.readouterr().err, config, [f"{tmp_path / 'nowhere'}: "])

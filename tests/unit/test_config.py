"""The TOML configuration: a good file parses to the values written; every bad key is named."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

from hdmea.config import PipelineConfig, load_config, parse_config
from hdmea.stimulus import StimulusConfig, TrialConfig
from hdmea.errors import ConfigError

GOOD = """
[stimulus]
playlist = ["step_up", "dense_noise", "step_up"]
pre_margin_frames = 30

[stimulus.movie_lengths]
step_up = 1800
dense_noise = 900

[stimulus.trials.step_up]
start_frame = 0
trial_length_frame = 600
repeat = 3

[stimulus.noise_movies.dense_noise]
path = "noise.npy"
frames_per_image = 4

[steps]
compute_eimage_sta = false

[output]
checkpoint = false
memory_limit_gb = 1.5

[batch]
workers = 2
retries = 1

[batch.slurm]
cores = 2
memory = "4GB"
jobs = 3
"""


def _write(tmp_path: Path, text: str, noise: bool = True) -> Path:
    if noise:
        np.save(tmp_path / "noise.npy", np.zeros((4, 3, 3), np.uint8))
    path = tmp_path / "pipeline.toml"
    path.write_text(textwrap.dedent(text))
    return path


def test_good_config_round_trips_values(tmp_path):
    cfg = load_config(_write(tmp_path, GOOD))
    stim = cfg.stimulus.resolve("any", tmp_path)
    assert stim.playlist == ["step_up", "dense_noise", "step_up"]
    assert stim.movie_lengths == {"step_up": 1800, "dense_noise": 900}
    assert stim.trial_configs["step_up"] == TrialConfig(0, 600, 3)
    assert (stim.pre_margin_frames, stim.post_margin_frames) == (30, 120)
    noise = stim.noise_movies["dense_noise"]
    assert noise.path == str((tmp_path / "noise.npy").resolve())
    assert (noise.frames_per_image, noise.shape, noise.n_images) == (4, (3, 3), 4)
    assert cfg.steps.enabled("compute_sta") and not cfg.steps.enabled("compute_eimage_sta")
    assert cfg.output.checkpoint is False and cfg.output.memory_limit_gb == 1.5
    assert cfg.batch.workers == 2 and cfg.batch.retries == 1
    assert cfg.batch.slurm.cluster_kwargs() == {"cores": 2, "processes": 2, "memory": "4GB",
                                                "walltime": "02:00:00"}
    assert cfg.batch.slurm.jobs == 3
    assert cfg.source == str(tmp_path / "pipeline.toml")


def test_digest_tracks_results_not_batch_options(tmp_path):
    base = load_config(_write(tmp_path, GOOD))
    more_workers = load_config(_write(tmp_path, GOOD.replace("workers = 2", "workers = 7")))
    other_trials = load_config(_write(tmp_path, GOOD.replace("repeat = 3", "repeat = 2")))
    assert base.digest() == more_workers.digest()
    assert base.digest() != other_trials.digest()
    assert PipelineConfig().digest() == PipelineConfig().digest()


@pytest.mark.parametrize(
    ("change", "key", "reason"),
    [
        (("repeat = 3", "repeat = 0"), "stimulus.trials.step_up.repeat", "must be >= 1"),
        (("repeat = 3", "repeat = 4"), "stimulus.trials.step_up", "past the end of the movie"),
        (("repeat = 3", 'repeat = "3"'), "stimulus.trials.step_up.repeat", "must be an integer"),
        (("trial_length_frame = 600", "trial_length_frame = 600\nrepeats = 2"),
         "stimulus.trials.step_up.repeats", "unknown key"),
        (("trial_length_frame = 600", "trial_lenght_frame = 600"),
         "stimulus.trials.step_up.trial_length_frame", "is required"),
        (("dense_noise = 900", "dense_noise = -1"), "stimulus.movie_lengths.dense_noise", "positive"),
        (("step_up = 1800\n", ""), "stimulus.movie_lengths.step_up", "every movie of the playlist"),
        (('path = "noise.npy"', 'path = "missing.npy"'), "stimulus.noise_movies.dense_noise.path",
         "does not exist"),
        (("[stimulus.noise_movies.dense_noise]", "[stimulus.noise_movies.chirp]"),
         "stimulus.noise_movies.chirp", "not in the playlist"),
        (("frames_per_image = 4", "frames_per_image = 400"),
         "stimulus.noise_movies.dense_noise", "outlast the movie"),
        (("pre_margin_frames = 30", "pre_margin_frames = 30\nfile = 'x.json'"),
         "stimulus.playlist", "cannot be combined with stimulus.file"),
        (("compute_eimage_sta = false", "compute_eimage_sta = 1"), "steps.compute_eimage_sta", "true or false"),
        (("compute_eimage_sta = false", "compute_eimage_sta = false\n[steps.compute_stta]\nx = 1"),
         "steps.compute_stta", "unknown pipeline step"),
        (("compute_eimage_sta = false", "compute_eimage_sta = false\n[steps.compute_sta]\nsession = 1"),
         "steps.compute_sta.session", "set by the pipeline"),
        (("compute_eimage_sta = false", "compute_eimage_sta = false\n[steps.compute_sta]\nn_lagz = 3"),
         "steps.compute_sta.n_lagz", "unknown key"),
        (("compute_eimage_sta = false", "compute_eimage_sta = false\nload_recording = false"),
         "steps.load_recording", "cannot be switched"),
        (("compute_eimage_sta = false", "[steps.compute_eimage_sta]\nwindow = [-5, 20]"),
         "steps.compute_eimage_sta", "the step is off"),
        (("workers = 2", "workers = 0"), "batch.workers", "must be >= 1"),
        (("retries = 1", "retries = -1"), "batch.retries", "must be >= 0"),
        (('memory = "4GB"', 'memory = "4GB"\nnodes = 2'), "batch.slurm.nodes", "unknown key"),
        (("[output]", "[outptu]"), "outptu", "unknown key"),
        (("memory_limit_gb = 1.5", "memory_limit_gb = nan"), "output.memory_limit_gb", "finite"),
        (("checkpoint = false", "checkpoint_min_seconds = -1"), "output.checkpoint_min_seconds", "must be >= 0"),
    ],
)
def test_bad_config_names_key_and_reason(tmp_path, change, key, reason):
    old, new = change
    assert old in GOOD
    path = _write(tmp_path, GOOD.replace(old, new))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    text = str(info.value)
    assert key in text and reason in text
    assert str(path) in text


def test_unknown_key_suggests_the_close_one(tmp_path):
    path = _write(tmp_path, GOOD.replace("[output]\ncheckpoint", "[output]\ncheckpont"))
    with pytest.raises(ConfigError, match="did you mean 'checkpoint'"):
        load_config(path)


def test_not_toml_and_missing_file(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("[stimulus\nplaylist = [")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")


def test_scheduler_and_slurm_are_exclusive():
    with pytest.raises(ConfigError, match="batch.scheduler"):
        parse_config({"batch": {"scheduler": "tcp://x:8786", "slurm": {}}})


def test_empty_config_is_valid():
    cfg = parse_config({})
    assert cfg == PipelineConfig(source=None)
    assert cfg.stimulus.resolve("x", ".") is None


def test_stimulus_file_per_recording(tmp_path):
    stim = StimulusConfig(playlist=["a"], movie_lengths={"a": 100},
                          trial_configs={"a": {"start_frame": 0, "trial_length_frame": 50, "repeat": 2}})
    stim.save_json(tmp_path / "rec7.stimulus.json")
    cfg = parse_config({"stimulus": {"file": "{dir}/{name}.stimulus.json"}}, base_dir=tmp_path)
    assert cfg.stimulus.resolve("rec7", tmp_path).to_dict() == stim.to_dict()
    with pytest.raises(ConfigError, match="rec8.stimulus.json"):
        cfg.stimulus.resolve("rec8", tmp_path)
    shared = parse_config({"stimulus": {"file": "rec7.stimulus.json"}}, base_dir=tmp_path)
    assert shared.stimulus.inline.to_dict() == stim.to_dict()
    with pytest.raises(ConfigError, match="stimulus.file.*does not exist"):
        parse_config({"stimulus": {"file": "none.json"}}, base_dir=tmp_path)
    with pytest.raises(ConfigError, match="placeholder"):
        parse_config({"stimulus": {"file": "{recording}.json"}}, base_dir=tmp_path)


def test_slurm_cluster_job_script_from_options():
    pytest.importorskip("dask_jobqueue")
    from hdmea.pipeline.batch import slurm_cluster

    cfg = parse_config({"batch": {"slurm": {"queue": "normal", "account": "lab", "cores": 2, "memory": "4GB",
                                            "walltime": "01:00:00", "job_extra_directives": ["--requeue"]}}})
    cluster = slurm_cluster(cfg.batch.slurm)
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    for line in ("#SBATCH -p normal", "#SBATCH -A lab", "#SBATCH --cpus-per-task=2", "#SBATCH --mem=4G",
                 "#SBATCH -t 01:00:00", "#SBATCH --requeue"):
        assert line in script
    assert "--nthreads 1" in script and "--nworkers 2" in script


def test_sensor_axis_order_is_checked_when_the_file_is_read(tmp_path):
    bad = GOOD.replace("compute_eimage_sta = false", "[steps.compute_eimage_sta]\nenabled = true\nsensor_axis_order = \"xy\"")
    with pytest.raises(ConfigError, match=r"steps\.compute_eimage_sta\.sensor_axis_order") as info:
        load_config(_write(tmp_path, bad))
    assert "'xy'" in str(info.value) and "col_row" in str(info.value)
    good = bad.replace('"xy"', '"row_col"')
    cfg = load_config(_write(tmp_path, good))
    assert cfg.steps.kwargs("compute_eimage_sta")["sensor_axis_order"] == "row_col"


def _misspellings(key: str) -> list[str]:
    """Keys one slip away from ``key``: a letter dropped, two neighbours swapped."""
    dropped = [key[:i] + key[i + 1:] for i in range(len(key))]
    swapped = [key[:i] + key[i + 1] + key[i] + key[i + 2:] for i in range(len(key) - 1) if key[i] != key[i + 1]]
    return [k for k in dropped + swapped if k and k != key]


def test_every_step_hint_names_a_key_that_is_accepted():
    import re
    import warnings

    from hdmea.steps.table import STEPS, find_step

    accepted = {s.name for s in STEPS} | {a for s in STEPS for a in s.aliases}
    checked = 0
    for key in sorted(accepted):
        for wrong in _misspellings(key):
            if find_step(wrong) is not None:
                continue
            with pytest.raises(ConfigError) as info:
                parse_config({"steps": {wrong: {}}}, check_step_signatures=False)
            hint = re.search(r"did you mean '([^']+)'\?", str(info.value))
            if hint is None:
                continue
            suggested = hint.group(1)
            # The suggestion is the current name (not a former one) and is accepted as it stands.
            assert suggested in {s.name for s in STEPS}, (wrong, suggested)
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # no DeprecatedStepNameWarning either
                parse_config({"steps": {suggested: {"enabled": True}} if find_step(suggested)[0].switch
                              else {suggested: {}}}, check_step_signatures=False)
            checked += 1
    assert checked > 50
    # the misspelling from the issue, and one of a former name
    for wrong, meant in (("eimgae", "compute_eimage_sta"), ("featurs", "extract_features"), ("stta", "compute_sta")):
        with pytest.raises(ConfigError, match=f"did you mean '{meant}'"):
            parse_config({"steps": {wrong: True}})


def test_misspelt_stimulus_key_suggests_an_inline_key():
    with pytest.raises(ConfigError, match="stimulus.playlst: unknown key. did you mean 'playlist'"):
        parse_config({"stimulus": {"playlst": ["a"]}})

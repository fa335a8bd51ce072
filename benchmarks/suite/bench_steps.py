"""Every pipeline step as the lab calls it, ours against the original hdmea_processing's same call, same run.

The lab's session-mode pipeline (``create_session``, then each step with ``session=``, as
``Projects/pipeline_test/pipeline_session_batch.py`` calls them) runs on one lab-sized synthetic recording
in fresh processes: ours in this interpreter, the original (jiang-lab-retina/hdmea_processing, its tree,
``src/`` within, at the path in ``H5STREAM_ORIGINAL``) in its own interpreter (``H5STREAM_ORIGINAL_PYTHON``: numpy < 2,
McsPyDataTools, ...).  One driver script, the same text for both:
it imports whichever ``hdmea`` comes first on its path and times each call, session in, session out:

* ``load_recording``: the ``.cmcr``/``.cmtr`` pair into a fresh session (timed alone, then dropped);
* ``load_recording_with_eimage_sta``: the same with the electrical images of every unit (the original
  computes electrical images in a session only this way; 120 s of raw data at most, 10,000 spikes);
* ``add_section_time``, ``section_spike_times`` (the stimulus files of ``config_dir``, the original's
  format, give the trials), ``compute_sta`` (cover range (-60, 0), one process), ``extract_features``
  (the step movie's ON/OFF extractor);
* ``save`` (the whole session to a file, fsync included as each side does it), ``checkpoint`` and
  ``resume`` (``PipelineSession.load`` of the checkpoint and its save to a new file);
* the sectioning's share of the save: the session is saved just before and just after
  ``section_spike_times`` (after an untimed first save, which loads the writer; the files are removed at
  once), and ``sectioning's save`` is the second less the first;
  ``section_spike_times with its save`` adds the step.

The recording (``hdmea.synthetic``, the lab's movie names): ``full``: 120 units, the step movie of 200
trials of one second and the dense-noise movie (201 trials per unit), 1 s of raw data of the full chip;
``small``: 8 units and 20 trials.  Sides alternate, ``ROUNDS`` rounds each, every round a fresh process
on the same inputs; a row gives the fastest round of each side (min / median) and both sides' CPU
seconds.  Goals: each step 5x the original's, ``section_spike_times`` 9x; the ``whole pipeline`` row
(the recording with its electrical images, the section times, the sectioning, the STA, the features and
the save, summed in each round) 20x.

The growth rows double units and trials (``small`` -> twice as many of both) and give, for each of our
steps, time(2x) / time(1x) against the 4x that doubling both would cost a step linear in units x trials
(goal: at most that; a step linear in units alone: 2x).  They have rounds of their own, ours alone:
``GROWTH_ROUNDS`` fresh processes at each size, the two sizes alternated (base, double, double, base,
...) so that the machine's state at the time (its other processes, the memory the kernel must reclaim
for fresh pages) weighs on both alike; each size's fastest round is taken, and the row's details give
both sizes' CPU seconds beside them (the fastest round's CPU time of each size: a ratio of wall times far
above the ratio of CPU times is time spent waiting, not work that grew).

Without the original (its tree or interpreter absent, as in CI) its rows are skipped with that reason,
and our rows run alone (no ratio, no goal).  ``python -m benchmarks --size full --only steps`` or
``python -m benchmarks.suite.bench_steps full``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from benchmarks.harness import Row, Timing, scratch_dir, timed_row

ORIGINAL_VARIABLE = "H5STREAM_ORIGINAL"
ORIGINAL_PYTHON_VARIABLE = "H5STREAM_ORIGINAL_PYTHON"
#: units, step trials, rounds per side
SIZES = {"small": (8, 20, 1), "full": (120, 200, 2)}
#: fresh processes of ours at each size for the growth rows (the base size and its double, alternated):
#: the sectioning at the double size takes about 24,000 fresh pages, whose supply by the kernel cost from
#: 3 to 180 ms of system CPU in identical rounds on a virtual machine (the step's own work: about 60 ms)
GROWTH_ROUNDS = 5
STEP_MOVIE = "step_up_5s_5i_3x"
NOISE_MOVIE = "perfect_dense_noise_15x15_15hz_r42_3min"
DATASET = "2024.08.08-10.40.20-Rec"
PLAYLIST = "play_benchmark_steps"
STEPS = ("load_recording", "load_recording_with_eimage_sta", "add_section_time", "section_spike_times",
         "sectioning's save", "section_spike_times with its save", "compute_sta", "extract_features", "save",
         "checkpoint", "resume")
#: the whole pipeline as the lab runs it: the recording with its electrical images, then each step, then the save
#: (its row is the sum of these calls in each round)
PIPELINE = ("load_recording_with_eimage_sta", "add_section_time", "section_spike_times", "compute_sta",
            "extract_features", "save")
WHOLE = "whole pipeline"
GOALS = {"section_spike_times": 9.0, WHOLE: 20.0}
GOAL = 5.0

DRIVER = textwrap.dedent('''
    import json, os, sys, time
    from pathlib import Path
    cmcr, cmtr, playlist, lengths, stimuli, config_dir, out = sys.argv[1:8]
    import hdmea
    import hdmea.features.sta, hdmea.io.section_time
    hdmea.features.sta.DEFAULT_STIMULI_DIR = Path(stimuli)
    hdmea.io.section_time.DEFAULT_PLAYLIST_PATH = playlist
    hdmea.io.section_time.DEFAULT_MOVIE_LENGTH_PATH = lengths
    from hdmea.pipeline import PipelineSession, create_session, load_recording, load_recording_with_eimage_sta
    from hdmea.pipeline import extract_features
    from hdmea.io import add_section_time, section_spike_times
    from hdmea.features import compute_sta
    out = Path(out)
    times, cpu = {}, {}

    def timed(name, call):
        c0, t0 = time.process_time(), time.perf_counter()
        value = call()
        times[name], cpu[name] = time.perf_counter() - t0, time.process_time() - c0
        return value

    eimage = dict(duration_s=120.0, spike_limit=10000, window_range=(-10, 40))
    timed("load_recording", lambda: load_recording(cmcr_path=cmcr, cmtr_path=cmtr,
                                                   session=create_session(dataset_id="@DATASET@")))
    s = timed("load_recording_with_eimage_sta", lambda: load_recording_with_eimage_sta(
        cmcr_path=cmcr, cmtr_path=cmtr, session=create_session(dataset_id="@DATASET@"), **eimage))
    s = timed("add_section_time", lambda: add_section_time(playlist_name="@PLAYLIST@", session=s))
    s.save(output_path=out / "warm.h5")  # untimed: a process's first save loads and warms its writer
    timed("save_before_sectioning", lambda: s.save(output_path=out / "before.h5"))
    s = timed("section_spike_times", lambda: section_spike_times(pad_margin=(0.0, 0.0), session=s,
                                                                 config_dir=config_dir))
    timed("save_after_sectioning", lambda: s.save(output_path=out / "after.h5"))
    for name in ("warm.h5", "before.h5", "after.h5"):
        os.unlink(out / name)
    s = timed("compute_sta", lambda: compute_sta(cover_range=(-60, 0), use_multiprocessing=False, session=s))
    s = timed("extract_features", lambda: extract_features(features=["@STEP@"], session=s))
    timed("save", lambda: s.save(output_path=out / "saved.h5", overwrite=True))
    timed("checkpoint", lambda: s.checkpoint(out / "work.checkpoint.h5"))
    timed("resume", lambda: PipelineSession.load(out / "work.checkpoint.h5").save(output_path=out / "resumed.h5"))
    unit = sorted(s.units)[0]
    trials = s.units[unit]["spike_times_sectioned"]["@STEP@"]["trials_spike_times"]
    print(json.dumps({"times": times, "cpu": cpu, "hdmea": hdmea.__file__, "units": len(s.units),
                      "trials": len(trials), "warnings": [str(w) for w in s.warnings][:5]}))
''').replace("@DATASET@", DATASET).replace("@PLAYLIST@", PLAYLIST).replace("@STEP@", STEP_MOVIE)


def original_paths() -> tuple[Path | None, Path | None, str]:
    """(the original's tree, its interpreter, why not) from the options' variables or the defaults."""
    if not os.environ.get(ORIGINAL_VARIABLE) or not os.environ.get(ORIGINAL_PYTHON_VARIABLE):
        return None, None, f"{ORIGINAL_VARIABLE} and {ORIGINAL_PYTHON_VARIABLE} not set"
    tree, python = Path(os.environ[ORIGINAL_VARIABLE]), Path(os.environ[ORIGINAL_PYTHON_VARIABLE])
    if not (tree / "src" / "hdmea" / "io" / "spike_sectioning.py").is_file():
        return None, None, f"no tree of the original at {tree} (set {ORIGINAL_VARIABLE})"
    if not python.is_file():
        return None, None, f"no interpreter for the original at {python} (set {ORIGINAL_PYTHON_VARIABLE})"
    return tree, python, ""


def make_inputs(work: Path, n_units: int, n_trials: int) -> dict:
    """The recording, its playlist and movie-length files, the noise movie and the stimulus files."""
    import numpy as np

    from hdmea.stimulus import TrialConfig
    from hdmea.synthetic import SyntheticConfig, generate_recording

    trial = TrialConfig(start_frame=240, trial_length_frame=60, repeat=n_trials)
    rec = generate_recording(work / "rec", DATASET, config=SyntheticConfig.with_lab_stimuli(
        playlist=(STEP_MOVIE, NOISE_MOVIE), step_trial=trial, pre_margin_frames=180, post_margin_frames=181,
        raw_seconds=1.0, noise_bank_frames=2048, n_units=n_units, n_silent_units=1), seed=5)
    cmtr = rec.cmtr_path.with_name(DATASET + "-.cmtr")  # the vendor's name for the sorting file
    rec.cmtr_path.rename(cmtr)
    movies = ", ".join(f"'{m}.mov'" for m in rec.stimulus.playlist)
    (work / "playlist.csv").write_text(f'playlist_name,movie_names\n{PLAYLIST},"[{movies}]"\n')
    (work / "movie_length.csv").write_text("movie_name,movie_length\n" + "".join(
        f"{k},{v}\n" for k, v in rec.stimulus.movie_lengths.items()))
    stimuli = work / "Stimulations"
    stimuli.mkdir(exist_ok=True)
    np.save(stimuli / f"{NOISE_MOVIE}.npy", np.repeat(np.load(rec.noise_movie_path), rec.config.noise_frames_per_image,
                                                      axis=0))
    config = work / "stimuli"
    config.mkdir(exist_ok=True)
    kwargs = {STEP_MOVIE: {"start_frame": trial.start_frame, "trial_length_frame": trial.trial_length_frame,
                           "repeat": trial.repeat},
              NOISE_MOVIE: {"start_frame": 0, "trial_length_frame": rec.stimulus.movie_lengths[NOISE_MOVIE],
                            "repeat": 1}}
    for movie, section in kwargs.items():
        (config / f"{movie}.json").write_text(json.dumps({"name": movie, "section_kwargs": section}))
    return {"args": [str(rec.cmcr_path), str(cmtr), str(work / "playlist.csv"), str(work / "movie_length.csv"),
                     str(stimuli), str(config)], "work": work}


def run_side(python: str, source: str, inputs: dict, name: str) -> dict:
    """One fresh process of one side over the inputs: its times by step."""
    out = inputs["work"] / f"out-{name}"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    driver = inputs["work"] / "driver.py"
    driver.write_text(DRIVER)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(PYTHONPATH=source, MPLBACKEND="Agg")
    done = subprocess.run([python, str(driver), *inputs["args"], str(out)], cwd=out, env=env, capture_output=True,
                          text=True, timeout=3600)
    shutil.rmtree(out, ignore_errors=True)
    if done.returncode != 0:
        raise RuntimeError(f"the {name} side failed ({python}):\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _ours_source() -> str:
    """Where this process imports ``hdmea`` from: the checkout's ``src`` or, installed without ``-e``, site-packages."""
    import hdmea

    here = str(Path(hdmea.__file__).resolve().parents[1])
    return os.pathsep.join([here, *(p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p)])


def measure(size: str, work: Path, *, original: bool = True) -> tuple[dict[str, list[dict]], str]:
    """Rounds of both sides, alternated: ``{"ours": [...], "original": [...]}`` and why the original is absent."""
    n_units, n_trials, rounds = SIZES[size]
    inputs = make_inputs(work, n_units, n_trials)
    tree, python, why = original_paths() if original else (None, None, "not asked for")
    sides = {"ours": (sys.executable, _ours_source())}
    if tree is not None:
        sides["original"] = (str(python), str(tree / "src"))
    found: dict[str, list[dict]] = {name: [] for name in sides}
    for r in range(rounds):
        order = list(sides) if r % 2 == 0 else list(sides)[::-1]
        for name in order:
            found[name].append(run_side(*sides[name], inputs, name))
    return found, why


def measure_growth(size: str, work: Path, rounds: int = GROWTH_ROUNDS) -> tuple[list[dict], list[dict]]:
    """Ours at the base size and at twice its units and trials, ``rounds`` fresh processes each, the two
    sizes alternated: (the base's rounds, the double's)."""
    n_units, n_trials, _ = SIZES[size]
    inputs = []
    for name, scale in (("base", 1), ("double", 2)):
        (work / name).mkdir()
        inputs.append(make_inputs(work / name, scale * n_units, scale * n_trials))
    ours = (sys.executable, _ours_source())
    found: tuple[list[dict], list[dict]] = ([], [])
    for r in range(rounds):
        for which in ((0, 1) if r % 2 == 0 else (1, 0)):
            found[which].append(run_side(*ours, inputs[which], "ours"))
    return found


#: the sectioning with its share of the save: the step, and the save after it less the save before it
SECTIONING_SAVED = "section_spike_times with its save"


def _seconds(result: dict, step: str, kind: str = "times") -> float:
    found = result[kind]
    if step == WHOLE:
        return sum(found[name] for name in PIPELINE)
    if step == SECTIONING_SAVED:
        return found["section_spike_times"] + found["save_after_sectioning"] - found["save_before_sectioning"]
    if step == "sectioning's save":
        return found["save_after_sectioning"] - found["save_before_sectioning"]
    return found[step]


def _timing(results: list[dict], step: str) -> Timing:
    return Timing([_seconds(r, step) for r in results])


def step_rows(found: dict[str, list[dict]], why: str, size: str) -> list[Row]:
    ours = found["ours"]
    first = ours[0]
    shape = f"{first['units']} units x {first['trials']} trials of the step movie"
    rows = []
    for step in (*STEPS, WHOLE):
        mine = _timing(ours, step)
        cpu = min(_seconds(r, step, "cpu") for r in ours)
        if "original" in found:
            theirs = _timing(found["original"], step)
            peer_cpu = min(_seconds(r, step, "cpu") for r in found["original"])
            rows.append(timed_row(f"step {step} ({shape})", "the original's same call", theirs, mine,
                                  GOALS.get(step, GOAL), f"CPU s: ours {cpu:.3f}, original {peer_cpu:.3f}"))
        else:
            rows.append(Row(f"step {step} ({shape})", f"the original: skipped ({why})", float("nan"), mine.min,
                            "s", float("nan"), None, details=f"ours {mine}; CPU s {cpu:.3f}"))
    return rows


def growth_rows(small: list[dict], double: list[dict]) -> list[Row]:
    """Ours at twice the units and trials against ours at the base (each size's rounds): each step's ratio of
    the fastest rounds against 4x."""
    rows = []
    a, b = small[0], double[0]
    for step in (*(s for s in STEPS if s != "sectioning's save"), WHOLE):  # (the share: a difference of two saves)
        base, grown = _timing(small, step), _timing(double, step)
        cpu = [min(_seconds(r, step, "cpu") for r in results) for results in (small, double)]
        rows.append(Row(f"growth {step}: {a['units']} -> {b['units']} units, {a['trials']} -> {b['trials']} trials",
                        "4x (linear in units x trials)", 4.0, grown.min / base.min, "x", grown.min / base.min / 4.0,
                        1.0, lower_is_better=True, goal_sizes=("small", "full"),
                        details=f"ours {base.min:.3f} s -> {grown.min:.3f} s (median {base.median:.3f} s -> "
                                f"{grown.median:.3f} s over {len(small)} and {len(double)} rounds, alternated); "
                                f"CPU s {cpu[0]:.3f} -> {cpu[1]:.3f}"
                                + (f" ({cpu[1] / cpu[0]:.2f}x)" if cpu[0] > 0 else "")))
    return rows


def run(size: str = "small") -> list[Row]:
    with scratch_dir("h5stream-steps-") as d:
        work = Path(d)
        (work / "base").mkdir()
        found, why = measure(size, work / "base")
        rows = step_rows(found, why, size)
        shutil.rmtree(work / "base")
        # growth: the base size and its double in units and trials (ours alone; the original's rows are above)
        (work / "growth").mkdir()
        rows += growth_rows(*measure_growth(size, work / "growth"))
    return rows


@pytest.mark.campaign  # fresh processes of both pipelines: about a minute
def test_bench_steps_small():
    rows = run("small")
    steps = len(STEPS) + 1  # and the whole pipeline
    assert len(rows) == 2 * steps - 1
    calls = [r for r in rows[:steps] if "save" not in r.benchmark.split("(")[0] or r.benchmark.startswith("step save")]
    assert len(calls) == steps - 2 and all(r.ours > 0 for r in calls)  # the shares are differences
    # the whole pipeline's row is the sum of its calls, which each have their row
    by_step = {r.benchmark.split(" (")[0][len("step "):]: r for r in rows[:steps]}
    if original_paths()[0] is None:
        assert by_step[WHOLE].ours >= max(by_step[name].ours for name in PIPELINE)
    # the driver saw the recording it was given: 8 units, 20 trials of the step movie
    assert all("(8 units x 20 trials of the step movie)" in r.benchmark for r in rows[:steps])
    if original_paths()[0] is None:
        assert all("skipped" in r.peer and r.goal is None for r in rows[:steps])


if __name__ == "__main__":  # python -m benchmarks.suite.bench_steps [small|full]
    from benchmarks.harness import main

    main(run)

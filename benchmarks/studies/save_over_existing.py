"""A session's save and checkpoint at the lab's size over an earlier file of theirs against a new path, and
where their time goes (one or more source trees, alternated).

``python -m benchmarks.studies.save_over_existing [--trees SRC ...] [--rounds N] [--size full|small]`` from
the repository root.  The recording of :mod:`benchmarks.suite.bench_steps` (``full``: 120 units x 200 trials of
the step movie, a file of about 480 MB) is made once; then each round runs, for each tree in turn (the order
alternated round by round), a fresh process with that tree's ``src`` first on its path, which builds the
session as the step rows' driver does (the recording with its electrical images, the section times, the
sectioning, the STA, the features), saves it once untimed (the first save loads the writer), then times:

* ``save new``: ``save`` to a path where nothing is; ``save over``: ``save(overwrite=True)`` to that path again;
* ``checkpoint new`` and ``checkpoint over``: the same with ``checkpoint``;
* ``check ours``: the check before a replace (``refuse_unsafe_target``) of the saved file alone; ``check
  foreign``: the same of a byte copy of it (a file another tool wrote: no mark, walked in full).

Each step's wall and CPU seconds, and the seconds spent in ``os.fsync`` within it.  Prints a line per round
and tree, then per tree and step the minimum and median of the wall seconds (CPU and fsync at the round
of the minimum), and the load average before and after.  ``--trees`` defaults to this checkout's ``src``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from benchmarks.suite.bench_steps import DATASET, PLAYLIST, SIZES, STEP_MOVIE, make_inputs

STEPS = ("save new", "save over", "checkpoint new", "checkpoint over", "check ours", "check foreign")

DRIVER = textwrap.dedent('''
    import json, os, shutil, sys, time
    from pathlib import Path
    fsynced = [0.0]
    _fsync = os.fsync
    def fsync(fd):
        t = time.perf_counter()
        try:
            _fsync(fd)
        finally:
            fsynced[0] += time.perf_counter() - t
    os.fsync = fsync
    cmcr, cmtr, playlist, lengths, stimuli, config_dir, out = sys.argv[1:8]
    import hdmea
    import hdmea.features.sta, hdmea.io.section_time
    hdmea.features.sta.DEFAULT_STIMULI_DIR = Path(stimuli)
    hdmea.io.section_time.DEFAULT_PLAYLIST_PATH = playlist
    hdmea.io.section_time.DEFAULT_MOVIE_LENGTH_PATH = lengths
    from hdmea.pipeline import create_session, load_recording_with_eimage_sta, extract_features
    from hdmea.io import add_section_time, section_spike_times
    from hdmea.features import compute_sta
    from h5stream.files import refuse_unsafe_target
    out = Path(out)
    s = load_recording_with_eimage_sta(cmcr_path=cmcr, cmtr_path=cmtr, session=create_session(dataset_id="@DATASET@"),
                                       duration_s=120.0, spike_limit=10000, window_range=(-10, 40))
    s = add_section_time(playlist_name="@PLAYLIST@", session=s)
    s = section_spike_times(pad_margin=(0.0, 0.0), session=s, config_dir=config_dir)
    s = compute_sta(cover_range=(-60, 0), use_multiprocessing=False, session=s)
    s = extract_features(features=["@STEP@"], session=s)
    s.save(output_path=out / "warm.h5")
    os.unlink(out / "warm.h5")
    found = {}

    def timed(name, call):
        fsynced[0] = 0.0
        c0, t0 = time.process_time(), time.perf_counter()
        call()
        found[name] = {"wall": time.perf_counter() - t0, "cpu": time.process_time() - c0, "fsync": fsynced[0]}

    saved, checkpoint, foreign = out / "saved.h5", out / "work.checkpoint.h5", out / "foreign.h5"
    timed("save new", lambda: s.save(output_path=saved))
    timed("save over", lambda: s.save(output_path=saved, overwrite=True))
    timed("checkpoint new", lambda: s.checkpoint(checkpoint))
    timed("checkpoint over", lambda: s.checkpoint(checkpoint))
    s.close()
    shutil.copyfile(saved, foreign)
    timed("check ours", lambda: refuse_unsafe_target(saved))
    timed("check foreign", lambda: refuse_unsafe_target(foreign))
    print(json.dumps({"steps": found, "bytes": os.path.getsize(saved), "hdmea": hdmea.__file__}))
''').replace("@DATASET@", DATASET).replace("@PLAYLIST@", PLAYLIST).replace("@STEP@", STEP_MOVIE)


def run_tree(src: str, inputs: dict, work: Path) -> dict:
    out = work / "out"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    driver = work / "driver.py"
    driver.write_text(DRIVER)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(PYTHONPATH=src, MPLBACKEND="Agg")
    try:
        done = subprocess.run([sys.executable, str(driver), *inputs["args"], str(out)], cwd=out, env=env,
                              capture_output=True, text=True, timeout=3600)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    if done.returncode != 0:
        raise RuntimeError(f"the run of {src} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trees", nargs="+", default=[str(Path(__file__).resolve().parents[2] / "src")])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size", choices=("small", "full"), default="full")
    args = parser.parse_args(argv)
    n_units, n_trials, _ = SIZES[args.size]
    print(f"load before: {os.getloadavg()}", flush=True)
    work = Path(tempfile.mkdtemp(prefix="h5stream-save-over-"))
    try:
        inputs = make_inputs(work / "in", n_units, n_trials)
        found: dict[str, list[dict]] = {tree: [] for tree in args.trees}
        for r in range(args.rounds):
            for tree in (args.trees if r % 2 == 0 else args.trees[::-1]):
                result = run_tree(tree, inputs, work)
                found[tree].append(result["steps"])
                print(f"round {r} {tree} ({result['bytes'] / 1e6:.0f} MB): " + ", ".join(
                    f"{name} {v['wall']:.3f}/{v['cpu']:.3f}/{v['fsync']:.3f}" for name, v in result["steps"].items())
                    + "  (wall/CPU/fsync s)", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"load after: {os.getloadavg()}")
    for tree, rounds in found.items():
        print(tree)
        for step in STEPS:
            walls = [r[step]["wall"] for r in rounds]
            best = rounds[walls.index(min(walls))][step]
            print(f"  {step:16s} min {min(walls):.3f} s, median {statistics.median(walls):.3f} s "
                  f"(at the min: CPU {best['cpu']:.3f} s, fsync {best['fsync']:.3f} s)")


if __name__ == "__main__":
    main()

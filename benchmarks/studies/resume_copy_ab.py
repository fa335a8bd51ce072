"""The resume step of the step rows (``PipelineSession.load`` of a checkpoint and its save to a new file) with the
save as a copy of the checkpoint (:mod:`hdmea.session._copy_save`) against the object-by-object save, in
fresh processes, alternated.

``python -m benchmarks.studies.resume_copy_ab [--units N] [--trials N] [--rounds R]`` from the repository
root: the step rows' recording (:func:`benchmarks.suite.bench_steps.make_inputs`, 120 units and 200 trials
of the step movie by default) goes through the pipeline the step rows time (electrical images, section
times, sectioning, STA, features) and is checkpointed once; then each round runs, in a fresh process per
side, ``PipelineSession.load(checkpoint).save(output_path=new file)`` (the object-by-object side with the
copy switched off in that process) and prints the load and save seconds (wall and CPU) of both sides; then
each side's min / median of the whole step and object-by-object / copy.
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

from benchmarks.suite.bench_steps import DATASET, PLAYLIST, STEP_MOVIE, make_inputs

SIDE = textwrap.dedent('''
    import json, sys, time
    from pathlib import Path
    checkpoint, out, side = sys.argv[1:4]
    from hdmea.pipeline import PipelineSession
    if side == "object-by-object":
        from hdmea.session.tree import SessionTree
        SessionTree.unchanged_since_load = lambda self: None
    c0, t0 = time.process_time(), time.perf_counter()
    s = PipelineSession.load(checkpoint)
    c1, t1 = time.process_time(), time.perf_counter()
    s.save(output_path=Path(out))
    c2, t2 = time.process_time(), time.perf_counter()
    print(json.dumps({"load": t1 - t0, "save": t2 - t1, "load_cpu": c1 - c0, "save_cpu": c2 - c1}))
''')


def build_checkpoint(work: Path, units: int, trials: int) -> Path:
    """The step rows' session at this size, checkpointed (as their driver builds it)."""
    inputs = make_inputs(work, units, trials)
    cmcr, cmtr, playlist, lengths, stimuli, config_dir = inputs["args"]
    import hdmea.features.sta
    import hdmea.io.section_time
    from hdmea.features import compute_sta
    from hdmea.io import add_section_time, section_spike_times
    from hdmea.pipeline import create_session, extract_features, load_recording_with_eimage_sta

    hdmea.features.sta.DEFAULT_STIMULI_DIR = Path(stimuli)
    hdmea.io.section_time.DEFAULT_PLAYLIST_PATH = playlist
    hdmea.io.section_time.DEFAULT_MOVIE_LENGTH_PATH = lengths
    s = load_recording_with_eimage_sta(cmcr_path=cmcr, cmtr_path=cmtr, session=create_session(dataset_id=DATASET),
                                       duration_s=120.0, spike_limit=10000, window_range=(-10, 40))
    s = add_section_time(playlist_name=PLAYLIST, session=s)
    s = section_spike_times(pad_margin=(0.0, 0.0), session=s, config_dir=config_dir)
    s = compute_sta(cover_range=(-60, 0), use_multiprocessing=False, session=s)
    s = extract_features(features=[STEP_MOVIE], session=s)
    checkpoint = work / "work.checkpoint.h5"
    s.checkpoint(checkpoint)
    s.close()
    return checkpoint


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=120)
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="h5stream-resume-ab-"))
    try:
        checkpoint = build_checkpoint(work, args.units, args.trials)
        script = work / "side.py"
        script.write_text(SIDE)
        sides = ("object-by-object", "copy")
        found: dict[str, list[dict]] = {side: [] for side in sides}
        for r in range(args.rounds):
            for side in (sides if r % 2 == 0 else sides[::-1]):
                out = work / "resumed.h5"
                done = subprocess.run([sys.executable, str(script), str(checkpoint), str(out), side],
                                      capture_output=True, text=True, env=dict(os.environ), check=True)
                out.unlink()
                row = json.loads(done.stdout.strip().splitlines()[-1])
                found[side].append(row)
                print(f"round {r} {side:17s} load {row['load']:.3f} s (CPU {row['load_cpu']:.3f})  "
                      f"save {row['save']:.3f} s (CPU {row['save_cpu']:.3f})  "
                      f"step {row['load'] + row['save']:.3f} s", flush=True)
        steps = {side: [row["load"] + row["save"] for row in rows] for side, rows in found.items()}
        saves = {side: [row["save"] for row in rows] for side, rows in found.items()}
        for side in sides:
            print(f"{side:17s} step min {min(steps[side]):.3f} median {statistics.median(steps[side]):.3f} s; "
                  f"save min {min(saves[side]):.3f} median {statistics.median(saves[side]):.3f} s")
        print(f"object-by-object / copy: step {min(steps[sides[0]]) / min(steps[sides[1]]):.2f} (min), "
              f"{statistics.median(steps[sides[0]]) / statistics.median(steps[sides[1]]):.2f} (median); "
              f"save {min(saves[sides[0]]) / min(saves[sides[1]]):.2f} (min), "
              f"{statistics.median(saves[sides[0]]) / statistics.median(saves[sides[1]]):.2f} (median)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

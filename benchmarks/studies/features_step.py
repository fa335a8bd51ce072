"""``extract_features`` of the step movie as the lab calls it (session in, session out), ours against the original.

The inputs of ``benchmarks/suite/bench_steps.py`` at full size (120 units, 200 trials of the step movie and
the dense-noise movie; ``--units`` / ``--trials`` another size, e.g. 240 / 400 for the growth row's doubling), and its driver cut to the calls this step needs: ``load_recording``,
``add_section_time`` and ``section_spike_times`` untimed, then ``extract_features(features=["step_up_5s_5i_3x"],
session=s)`` timed (wall and CPU seconds).  Sides alternate, each round a fresh process of each; the original
(jiang-lab-retina/hdmea_processing) runs in its own interpreter from ``H5STREAM_ORIGINAL`` /
``H5STREAM_ORIGINAL_PYTHON``, as in ``bench_steps``.  The last line is JSON: each side's min and median wall and
CPU seconds and the original's over ours.  The suite's ``steps`` row times the same call after the
whole pipeline before it; this study runs only what the step needs (minutes instead of many).

    H5STREAM_ORIGINAL=... H5STREAM_ORIGINAL_PYTHON=... python -m benchmarks.studies.features_step [--rounds N] [--units U --trials T]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

from benchmarks.suite import bench_steps as steps

STEP = "extract_features"


def driver() -> str:
    """``bench_steps``'s driver, the calls before the features cut to those the step needs."""
    text = steps.DRIVER
    start, end = text.index("eimage = dict("), text.index("unit = sorted(s.units)[0]")
    calls = ('s = load_recording(cmcr_path=cmcr, cmtr_path=cmtr, '
             f'session=create_session(dataset_id="{steps.DATASET}"))\n'
             f's = add_section_time(playlist_name="{steps.PLAYLIST}", session=s)\n'
             's = section_spike_times(pad_margin=(0.0, 0.0), session=s, config_dir=config_dir)\n'
             f's = timed("{STEP}", lambda: extract_features(features=["{steps.STEP_MOVIE}"], session=s))\n')
    return text[:start] + calls + text[end:]


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--units", type=int, default=steps.SIZES["full"][0], help="units of the recording")
    parser.add_argument("--trials", type=int, default=steps.SIZES["full"][1], help="trials of the step movie")
    args = parser.parse_args(argv)
    tree, python, why = steps.original_paths()
    if tree is None:
        raise SystemExit(f"the original is needed: {why}")
    n_units, n_trials = args.units, args.trials
    steps.DRIVER = driver()
    found: dict[str, list[tuple[float, float]]] = {"ours": [], "original": []}
    sides = {"ours": (sys.executable, steps._ours_source()), "original": (str(python), str(tree / "src"))}
    with tempfile.TemporaryDirectory(prefix="h5stream-features-step-") as work:
        inputs = steps.make_inputs(Path(work), n_units, n_trials)
        for r in range(args.rounds):
            for name in (list(sides) if r % 2 == 0 else list(sides)[::-1]):
                result = steps.run_side(*sides[name], inputs, name)
                assert (result["units"], result["trials"]) == (n_units, n_trials), result
                found[name].append((result["times"][STEP], result["cpu"][STEP]))
                print(f"{name}: {found[name][-1][0]:.4f} s wall, {found[name][-1][1]:.4f} s CPU", flush=True)
    summary = {}
    for name, runs in found.items():
        wall, cpu = [w for w, _ in runs], [c for _, c in runs]
        summary[name] = {"wall_min": min(wall), "wall_median": statistics.median(wall), "cpu_min": min(cpu),
                         "cpu_median": statistics.median(cpu)}
    summary["original / ours"] = {key: summary["original"][key] / summary["ours"][key] for key in summary["ours"]}
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()

"""Trial counts and section times of the original and of hdmea on a synthetic recording of the movies' real length.

Not part of the test suite (it needs the original's checkout and interpreter, as
``make_lab_layout_manifests.py``).  The synthetic movies of ``SyntheticConfig.with_lab_stimuli`` are shorter
than the trials the lab's ``config/stimuli/<movie>.json`` describe, so on them the original drops the trials
past a movie's end and hdmea keeps one per occurrence.  Here every movie is at least as long as its JSON
trials (``tests.lab_layout.real_length``), both run the unified pipeline's steps (the original's
``run_single_from_cmcr`` over each ``hdmea``), and per movie the sections (``stimulus/section_time/<movie>``)
and each unit's trials (``spike_times_sectioned/<movie>/trials_start_end``, spikes per trial) are printed side
by side, exactly.

    .venv/bin/python tests/manual/compare_lab_trials.py --checkout /tmp/orig --python /tmp/orig-venv/bin/python \
        --commit <full hash> --facts tests/data/lab_layout/real_length_trials_u6.json

``--facts`` keeps the original's side (sections, each unit's trial bounds and spikes per trial) for
``tests/compat/test_lab_real_length_trials.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.manual.make_lab_layout_manifests import (  # noqa: E402
    DATASET, ROOT, UNIFIED_DRIVER, make_inputs, run_driver, stimulus_configs)
from tests.lab_layout import real_length  # noqa: E402



def _trials(path: str) -> dict:
    import h5py
    import numpy as np

    out = {}
    with h5py.File(path, "r") as f:
        for movie, ds in f["stimulus/section_time"].items():
            out[movie] = {"sections": np.asarray(ds[()]).tolist(), "units": {}}
        for unit, g in f["units"].items():
            for movie, m in g.get("spike_times_sectioned", {}).items():
                if "trials_start_end" in m and movie in out:
                    out[movie]["units"][unit] = np.asarray(m["trials_start_end"][()]).tolist()
                    trials = m["trials_spike_times"]
                    out[movie].setdefault("spikes", {})[unit] = [int(trials[k].shape[0]) for k in
                                                                 sorted(trials, key=int)]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkout", type=Path, required=True)
    parser.add_argument("--python", required=True, help="interpreter with the original's dependencies")
    parser.add_argument("--keep", type=Path)
    parser.add_argument("--units", type=int, default=6)
    parser.add_argument("--commit", help="the checkout's commit (recorded with --facts)")
    parser.add_argument("--facts", type=Path, help="write the original's sections and trials here (JSON)")
    args = parser.parse_args()
    base = args.keep or Path(tempfile.mkdtemp(prefix="lab-trials-"))
    results = {}
    for side, python, source in (("original", args.python, str(args.checkout / "src")),
                                 ("hdmea", sys.executable, os.pathsep.join([str(ROOT / "src"), str(args.checkout)]))):
        work = base / side
        work.mkdir(parents=True, exist_ok=True)
        rec, cmtr, stimuli, movies = make_inputs(work, args.units, real_length())
        stimulus_configs(args.checkout, movies)
        (work / "session").mkdir(exist_ok=True)
        done = run_driver(python, source, UNIFIED_DRIVER,
                          [str(args.checkout), str(rec.cmcr_path), str(cmtr), DATASET, str(work / "playlist.csv"),
                           str(work / "movie_length.csv"), str(stimuli), str(work / "labels"),
                           str(work / "session" / f"{DATASET}.h5")], work / "session")
        results[side] = _trials(done["path"])
        results[side + "_lengths"] = dict(rec.stimulus.movie_lengths)
    print("movie lengths (frames):", json.dumps(results["hdmea_lengths"]))
    for movie in sorted(set(results["original"]) | set(results["hdmea"])):
        o, h = results["original"].get(movie), results["hdmea"].get(movie)
        print(f"== {movie}")
        print(f"  sections original {o and o['sections']}\n  sections hdmea    {h and h['sections']}")
        if o and h:
            diff = [[hv - ov for hv, ov in zip(hr, orow)] for hr, orow in zip(h["sections"], o["sections"])]
            print(f"  hdmea - original (samples): {diff}")
            for unit in sorted(set(o["units"]) | set(h["units"]))[:2]:
                ot, ht = o["units"].get(unit, []), h["units"].get(unit, [])
                print(f"  {unit}: trials original {len(ot)}, hdmea {len(ht)}; start-end difference "
                      f"{[[a - b for a, b in zip(x, y)] for x, y in zip(ht, ot)]}")
            units = set(o["units"]) | set(h["units"])
            counts = {(len(o["units"].get(u, [])), len(h["units"].get(u, []))) for u in units}
            print(f"  (trials original, hdmea) over all units: {sorted(counts)}")
            shifts = {b - a for u in o["units"] for ro, rh in zip(o["units"][u], h["units"].get(u, []))
                      for a, b in zip(ro, rh)}
            same = sum(o["spikes"][u] == h["spikes"].get(u) for u in o["spikes"])
            print(f"  trial bounds hdmea - original over all units: {sorted(shifts)}; spikes per trial equal for "
                  f"{same} of {len(o['spikes'])} units")
    if args.facts:
        facts = {"repository": "jiang-lab-retina/hdmea_processing", "commit": args.commit,
                 "recording": f"make_lab_layout_manifests.make_inputs(units={args.units}) with "
                              "tests.lab_layout.real_length()",
                 "movie_lengths": results["original_lengths"], "original": results["original"]}
        args.facts.write_text(json.dumps(facts, indent=1, sort_keys=True) + "\n")
    (base / "trials.json").write_text(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

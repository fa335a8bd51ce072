"""The original pipeline's file layout, measured: run hdmea_processing on synthetic lab-style recordings, keep the layout.

Not part of the test suite: it needs a checkout of the original (jiang-lab-retina/hdmea_processing) and
an interpreter with its dependencies (h5py, numpy, scipy, pandas, pyarrow, scikit-image, pydantic,
McsPyDataTools, matplotlib).  None of the original's code is kept here; only the facts it produces.

    # the original's tree at the commit to measure, outside this repository
    git --git-dir=<mirror> archive fe13de2 src config Projects/unified_pipeline Projects/sta_quantification \
        Projects/rf_sta_measure | tar -x -C /tmp/orig          (its *.pkl files are not needed)
    python -m venv /tmp/orig-venv && /tmp/orig-venv/bin/pip install h5py numpy scipy pandas pyarrow \
        scikit-image pydantic McsPyDataTools matplotlib tqdm
    .venv/bin/python tests/manual/make_lab_layout_manifests.py --checkout /tmp/orig \
        --python /tmp/orig-venv/bin/python --commit <full hash>

writes ``tests/data/lab_layout/*.json``: one manifest per file and call path (the unified pipeline's
``run_single_from_cmcr.run_pipeline`` in session mode; the store functions in immediate mode), for
recordings of a few unit counts (UnitIDs gapped and past the row count), and ``original_defaults.json``:
every module-level ``DEFAULT_*`` of the original's ``src/hdmea``, read from its source.

    .venv/bin/python tests/manual/make_lab_layout_manifests.py --checkout /tmp/orig --measure-ours

runs the same calls (the original's step wrappers of ``Projects/unified_pipeline`` over our ``hdmea``) and
prints how our files stand against the committed manifests (tests/lab_layout.py compares), their
``completed_steps`` against the original's, the lab's reads (``lab_reads.json``) done on them, which
one-value datasets and attributes hold another value than the original's (each manifest keeps them under
``values``, by path), and which of the arrays the plots draw (``arrays``: firing rates, electrical images,
STAs; shape, dtype and NaN content, by path) differ.

The recordings have a unit that never fires (``n_silent_units=1``: ``unit_006`` of the u6 recording).  Besides
the files the pipeline writes, the u6 run keeps what each way of resuming saves: ``script_values`` (a list and
a number a script sets under a unit, then ``save``), that file resumed with ``load_session_from_hdf5``
(``resumed_from_hdf5``, whose manifest also keeps the steps the loaded session reports, ``loaded_steps``) and
with ``PipelineSession.load`` (``resumed_saved``); ``resumed`` is a checkpoint resumed.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.lab_layout import (  # noqa: E402
    MANIFEST_DIR, array_facts, compare_layouts, file_layout, perform_lab_reads, scalar_values, value_differences)

#: The lab's reads of a recording file (tests/manual/scan_lab_reads.py), done on our files by --measure-ours.
LAB_READS = json.loads((MANIFEST_DIR / "lab_reads.json").read_text())["reads"] \
    if (MANIFEST_DIR / "lab_reads.json").exists() else []

DATASET = "2024.08.08-10.40.20-Rec"
PLAYLIST = "play_optimization_set6_ipRGC_manual"
#: unit counts of the recordings measured (UnitIDs drawn sparse from 1..3n+1, so past n and gapped)
UNIT_COUNTS = (6, 40)
#: Parts of the layout the original writes that we do not provide (a trained network is needed).
AP_TRACKING = ("units/<unit>/features/ap_tracking",)

UNIFIED_DRIVER = textwrap.dedent('''
    import json, sys
    from pathlib import Path
    checkout, cmcr, cmtr, dataset, playlist, lengths, stimuli, labels, output = sys.argv[1:10]
    import hdmea                       # the one first on sys.path: the original's or ours
    sys.path.insert(0, checkout)       # the lab's Projects package
    import hdmea.features.sta, hdmea.io.section_time
    hdmea.features.sta.DEFAULT_STIMULI_DIR = Path(stimuli)
    hdmea.io.section_time.DEFAULT_PLAYLIST_PATH = playlist
    hdmea.io.section_time.DEFAULT_MOVIE_LENGTH_PATH = lengths
    from Projects.unified_pipeline import run_single_from_cmcr as run
    import Projects.unified_pipeline.steps.cell_type as cell_type
    cell_type.MANUAL_LABEL_FOLDER = Path(labels)
    path = run.run_pipeline(cmcr_path=Path(cmcr), cmtr_path=Path(cmtr), dataset_id=dataset,
                            output_dir=Path(output).parent)
    print(json.dumps({"path": str(path), "hdmea": hdmea.__file__}))
''')

IMMEDIATE_DRIVER = textwrap.dedent('''
    import json, sys
    from pathlib import Path
    cmcr, cmtr, dataset, playlist, lengths, stimuli, out_dir = sys.argv[1:8]
    import hdmea
    from hdmea.pipeline import load_recording_with_eimage_sta
    from hdmea.io.section_time import add_section_time
    from hdmea.io.spike_sectioning import section_spike_times
    from hdmea.features.sta import compute_sta
    result = load_recording_with_eimage_sta(cmcr_path=cmcr, cmtr_path=cmtr, dataset_id=dataset,
                                            output_dir=out_dir, duration_s=120.0, spike_limit=10000,
                                            window_range=(-10, 40))
    h5 = Path(result.hdf5_path)
    add_section_time(h5, PLAYLIST, playlist_file_path=playlist, movie_length_file_path=lengths)
    section_spike_times(h5, pad_margin=(0.0, 0.0))
    compute_sta(h5, cover_range=(-60, 0), stimuli_dir=Path(stimuli), use_multiprocessing=False)
    print(json.dumps({"path": str(h5), "hdmea": hdmea.__file__}))
''').replace("PLAYLIST", repr(PLAYLIST))


#: The other call paths that write a recording file in the original (``mode`` argument of the driver):
#: ``batch``: Projects/unified_pipeline/batch_all_steps.process_single_recording (the lab's batch of the
#: unified pipeline's steps); ``session_steps``: the step functions with ``session=`` and one ``save`` (as
#: Projects/pipeline_test/pipeline_session_batch.py calls them); ``checkpoint``: the same steps, then
#: ``session.checkpoint(path)``; ``resumed``: a checkpoint loaded with ``PipelineSession.load`` and saved;
#: ``resumes``: the same steps, a script's values under a unit and a save (``script_values``), then that file
#: resumed with ``load_session_from_hdf5`` (``resumed_from_hdf5``) and with ``PipelineSession.load``
#: (``resumed_saved``), each saved.
OTHER_DRIVER = textwrap.dedent('''
    import json, sys
    from pathlib import Path
    mode, checkout, cmcr, cmtr, dataset, playlist, lengths, stimuli, labels, out_dir = sys.argv[1:11]
    import hdmea
    sys.path.insert(0, checkout)
    import hdmea.features.sta, hdmea.io.section_time
    hdmea.features.sta.DEFAULT_STIMULI_DIR = Path(stimuli)
    hdmea.io.section_time.DEFAULT_PLAYLIST_PATH = playlist
    hdmea.io.section_time.DEFAULT_MOVIE_LENGTH_PATH = lengths
    out = Path(out_dir)
    if mode == "batch":
        import Projects.unified_pipeline.steps.cell_type as cell_type
        cell_type.MANUAL_LABEL_FOLDER = Path(labels)
        from Projects.unified_pipeline import batch_all_steps
        ok, message = batch_all_steps.process_single_recording(cmcr, cmtr, out, overwrite=True)
        assert ok, message
        path = out / f"{dataset}.h5"
    else:
        from hdmea.pipeline import PipelineSession, create_session, load_recording_with_eimage_sta
        from hdmea.io import add_section_time, section_spike_times
        from hdmea.features import compute_sta
        session = create_session(dataset_id=dataset)
        session = load_recording_with_eimage_sta(cmcr_path=cmcr, cmtr_path=cmtr, duration_s=120.0,
                                                 spike_limit=10000, window_range=(-10, 40), session=session)
        session = add_section_time(playlist_name="@PLAYLIST_NAME@", session=session)
        session = section_spike_times(pad_margin=(0.0, 0.0), session=session)
        session = compute_sta(cover_range=(-60, 0), session=session)
        if mode == "session_steps":
            path = session.save(output_path=out / f"{dataset}.h5")
        elif mode == "resumes":
            # what a lab member's script adds under a unit (a list, a number), then the file resumed both ways
            first = sorted(session.units)[0]
            session.units[first]["lab_list"] = [1, 2]
            session.units[first]["lab_number"] = 3
            saved = session.save(output_path=out / "assigned" / f"{dataset}.h5")
            from hdmea.pipeline import load_session_from_hdf5
            loaded = load_session_from_hdf5(saved)
            steps = sorted(s.decode() if isinstance(s, bytes) else str(s) for s in loaded.completed_steps)
            loader = loaded.save(output_path=out / "loader" / f"{dataset}.h5")
            again = PipelineSession.load(saved).save(output_path=out / "load" / f"{dataset}.h5")
            print(json.dumps({"paths": {"script_values": str(saved), "resumed_from_hdf5": str(loader),
                                        "resumed_saved": str(again)},
                              "loaded_steps": steps, "hdmea": hdmea.__file__}))
            raise SystemExit(0)
        else:
            path = session.checkpoint(out / f"{dataset}.checkpoint.h5")
            if mode == "resumed":
                path = PipelineSession.load(path).save(output_path=out / f"{dataset}.h5")
    print(json.dumps({"path": str(path), "hdmea": hdmea.__file__}))
''').replace("@PLAYLIST_NAME@", PLAYLIST)
#: the completed_steps a session loaded with load_session_from_hdf5 reports, by unit count (mode "resumes")
LOADED_STEPS: dict[int, list[str]] = {}
OTHER_MODES = ("batch", "session_steps", "checkpoint", "resumed", "resumes")
OTHER_CALLS = {
    "batch": "Projects/unified_pipeline/batch_all_steps.process_single_recording (session mode, one save)",
    "session_steps": "create_session, load_recording_with_eimage_sta, add_section_time, section_spike_times, "
                     "compute_sta with session=, then session.save (session mode)",
    "checkpoint": "the session_steps calls, then session.checkpoint(path)",
    "resumed": "the checkpoint file loaded with PipelineSession.load, then save",
    "script_values": "the session_steps calls, then a script's values under the first unit (lab_list = [1, 2], "
                     "lab_number = 3), then session.save",
    "resumed_from_hdf5": "the script_values file loaded with load_session_from_hdf5 (as Projects/unified_pipeline/"
                      "run_single_from_hdf5 resumes), then save",
    "resumed_saved": "the script_values file loaded with PipelineSession.load, then save",
}


def make_inputs(work: Path, n_units: int, overrides: dict | None = None):
    """A lab-style synthetic recording with the lab's CSV files, noise movie and manual-label folders
    (``overrides``: further :class:`SyntheticConfig` fields, e.g. the movies' lengths)."""
    import numpy as np

    from hdmea.synthetic import SyntheticConfig, generate_recording

    rec = generate_recording(work / "O" / "20240808", DATASET, config=SyntheticConfig.with_lab_stimuli(
        pre_margin_frames=180, post_margin_frames=181, raw_seconds=1.0, noise_bank_frames=2048,
        n_units=n_units, n_silent_units=1, **(overrides or {})), seed=5)
    cmtr = rec.cmtr_path.with_name(DATASET + "-.cmtr")      # the vendor's name for the sorting file
    rec.cmtr_path.rename(cmtr)
    movies = ", ".join(f"'{m}.mov'" for m in rec.stimulus.playlist)
    (work / "playlist.csv").write_text(f'playlist_name,movie_names\n{PLAYLIST},"[{movies}]"\n')
    (work / "movie_length.csv").write_text("movie_name,movie_length\n" + "".join(
        f"{k},{v}\n" for k, v in rec.stimulus.movie_lengths.items()))
    stimuli = work / "Stimulations"
    stimuli.mkdir(exist_ok=True)
    images = np.load(rec.noise_movie_path)
    np.save(stimuli / f"{rec.config.noise_movie}.npy", np.repeat(images, rec.config.noise_frames_per_image, axis=0))
    kinds = ["RGC", "AC", "Other", "Unknown"]
    for i, unit in enumerate(sorted(rec.truth().units.values(), key=lambda u: u.mcs_unit_id)):
        folder = work / "labels" / DATASET / kinds[i % len(kinds)]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{DATASET}_unit{unit.mcs_unit_id}.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    movie_names = sorted(set(rec.stimulus.playlist) | {"iprgc_test"})
    return rec, cmtr, stimuli, movie_names


def run_driver(python: str, source_path: str, script: str, args: list[str], cwd: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PYTHONPATH"] = source_path
    env["MPLBACKEND"] = "Agg"
    driver = cwd / "driver.py"
    driver.write_text(script)
    done = subprocess.run([python, str(driver), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=3600)
    if done.returncode != 0:
        raise SystemExit(f"the driver failed ({python}):\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def stimulus_configs(checkout: Path, movies: list[str]) -> list[str]:
    """Give each movie its ``config/stimuli/<movie>.json`` in the checkout: the original's sectioning reads it.

    At fe13de2 no file is named ``step_up_5s_5i_3x.json``; ``step_up_5s_5i_b0_3x.json`` carries that
    ``name`` (so does ``baseline_127.json``): the file named most like the movie is copied under the
    movie's name beside it.  Returns what was copied.
    """
    folder = checkout / "config" / "stimuli"
    files = sorted(folder.glob("*.json"))
    added = []
    for movie in movies:
        target = folder / f"{movie}.json"
        named = sorted((p for p in files if p != target and json.loads(p.read_text()).get("name") == movie),
                       key=lambda p: -len(os.path.commonprefix([p.stem, movie])))
        if named and (not target.exists() or target.read_text() == named[0].read_text()):
            if not target.exists():
                target.write_text(named[0].read_text())
            added.append(f"{named[0].name} as {target.name}")
    return added


def run_calls(python: str, checkout: Path, source_path: str, n_units: int, work: Path) -> dict[str, tuple]:
    """Both call paths on one fresh recording; ``{name: (file, movie names)}``."""
    work.mkdir(parents=True, exist_ok=True)
    rec, cmtr, stimuli, movies = make_inputs(work, n_units)
    added = stimulus_configs(checkout, movies)
    (work / "session").mkdir(exist_ok=True)
    unified = run_driver(python, source_path, UNIFIED_DRIVER,
                         [str(checkout), str(rec.cmcr_path), str(cmtr), DATASET, str(work / "playlist.csv"),
                          str(work / "movie_length.csv"), str(stimuli), str(work / "labels"),
                          str(work / "session" / f"{DATASET}.h5")], work / "session")
    (work / "immediate").mkdir(exist_ok=True)
    immediate = run_driver(python, source_path, IMMEDIATE_DRIVER,
                           [str(rec.cmcr_path), str(cmtr), DATASET, str(work / "playlist.csv"),
                            str(work / "movie_length.csv"), str(stimuli), str(work / "immediate")],
                           work / "immediate")
    found = {f"unified_session_u{n_units}": (unified["path"], movies, added),
             f"immediate_store_u{n_units}": (immediate["path"], movies, added)}
    for mode in OTHER_MODES:
        (work / mode).mkdir(exist_ok=True)
        done = run_driver(python, source_path, OTHER_DRIVER,
                          [mode, str(checkout), str(rec.cmcr_path), str(cmtr), DATASET, str(work / "playlist.csv"),
                           str(work / "movie_length.csv"), str(stimuli), str(work / "labels"), str(work / mode)],
                          work / mode)
        for name, path in done.get("paths", {mode: done.get("path")}).items():
            found[f"{name}_u{n_units}"] = (path, movies, added)
        if "loaded_steps" in done:  # what the resumed session reports before it saves
            LOADED_STEPS[n_units] = done["loaded_steps"]
    return found


def completed_steps(path) -> list[str] | None:
    """The file's ``pipeline/session_info/completed_steps``, sorted (the original keeps a set); None if absent."""
    import h5py

    with h5py.File(path, "r") as f:
        steps = f.get("pipeline/session_info/completed_steps")
        if steps is None:
            return None
        return sorted(s.decode() if isinstance(s, bytes) else str(s) for s in steps[()])


def original_defaults(checkout: Path) -> list[dict]:
    """Every module-level ``DEFAULT_*`` assignment of the original's ``src/hdmea``: module, name, value."""
    found = []
    src = checkout / "src"
    for path in sorted((src / "hdmea").rglob("*.py")):
        module = ".".join(path.relative_to(src).with_suffix("").parts)
        module = module.removesuffix(".__init__")
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.Assign):
                targets, value = node.targets, node.value
            elif isinstance(node, ast.AnnAssign) and node.value is not None:
                targets, value = [node.target], node.value
            else:
                continue
            for target in targets:
                if not (isinstance(target, ast.Name) and target.id.startswith("DEFAULT_")):
                    continue
                entry = {"module": module, "name": target.id, "source": ast.unparse(value)}
                try:
                    literal = ast.literal_eval(value)
                    entry["value"] = list(literal) if isinstance(literal, tuple) else literal
                    entry["type"] = type(literal).__name__
                except ValueError:
                    is_path = isinstance(value, ast.Call) and ast.unparse(value.func) == "Path"
                    entry["type"] = "Path" if is_path else (
                        "Path expression" if "Path(" in ast.unparse(value) else "expression")
                    if is_path and len(value.args) == 1 and isinstance(value.args[0], ast.Constant):
                        entry["value"] = value.args[0].value  # the text of the path
                found.append(entry)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkout", type=Path, required=True, help="the original's tree (src/, Projects/)")
    parser.add_argument("--python", default=sys.executable, help="interpreter with the original's dependencies")
    parser.add_argument("--commit", help="the commit the checkout is (recorded in every manifest)")
    parser.add_argument("--out", type=Path, default=MANIFEST_DIR, help="the manifests' folder (written, or read)")
    parser.add_argument("--measure-ours", action="store_true",
                        help="run the same calls over our hdmea and compare with the committed manifests")
    parser.add_argument("--units", type=int, nargs="*", default=list(UNIT_COUNTS))
    parser.add_argument("--keep", type=Path, help="keep the recordings and files here")
    parser.add_argument("--defaults-only", action="store_true", help="write original_defaults.json only")
    args = parser.parse_args()
    base = args.keep or Path(tempfile.mkdtemp(prefix="lab-layout-"))
    if args.measure_ours:
        source = os.pathsep.join([str(ROOT / "src"), str(args.checkout)])
        for n in args.units:
            for name, (path, movies, _) in run_calls(sys.executable, args.checkout, source, n, base / f"ours{n}").items():
                manifest = json.loads((args.out / f"{name}.json").read_text())
                ignore = AP_TRACKING if name.startswith(("unified", "batch")) else ()
                result = compare_layouts(manifest["paths"], file_layout(path, movies), ignore)
                steps = completed_steps(path)
                same = "the same" if steps == manifest.get("completed_steps") else f"ours {steps}, original " \
                    f"{manifest.get('completed_steps')}"
                reads = perform_lab_reads(path, manifest["paths"], LAB_READS, movies)
                print(f"== {name}: {path}\n{result.details()}\ncompleted_steps: {same}\nthe lab's reads "
                      f"(lab_reads.json): {len(reads['done'])} done as on the original's file, "
                      f"{len(reads['failed'])} failed, {len(reads['absent'])} absent")
                print("\n".join(reads["failed"] + reads["absent"]))
                if "values" in manifest:
                    mine = scalar_values(path)
                    diff = value_differences(manifest["values"], mine, movies)
                    shared = sum(1 for p in manifest["values"] if p in mine)
                    print(f"one-value datasets and attributes: {shared - sum(map(len, diff.values()))} of "
                          f"{shared} shared paths hold the original's value; the others, by folded path:")
                    for folded, rows in sorted(diff.items()):
                        print(f"  {folded}: {len(rows)}, e.g. original {rows[0][1]!r}, ours {rows[0][2]!r}")
                if "arrays" in manifest:
                    mine = array_facts(path)
                    other = {p: (fact, mine.get(p)) for p, fact in manifest["arrays"].items() if mine.get(p) != fact}
                    print(f"arrays (shape, dtype, NaN): {len(manifest['arrays']) - len(other)} of "
                          f"{len(manifest['arrays'])} as the original's; the others:")
                    for p, (theirs, ours) in sorted(other.items()):
                        print(f"  {p}: original {theirs}, ours {ours}")
                print()
        return 0
    if not args.commit:
        parser.error("--commit is required when making manifests")
    args.out.mkdir(parents=True, exist_ok=True)
    source = str(args.checkout / "src")
    for n in [] if args.defaults_only else args.units:
        for name, (path, movies, added) in run_calls(args.python, args.checkout, source, n, base / f"orig{n}").items():
            kind = name.rsplit("_u", 1)[0]
            call_path = ("Projects/unified_pipeline/run_single_from_cmcr.run_pipeline (session mode)"
                         if kind == "unified_session" else
                         "load_recording_with_eimage_sta, add_section_time, section_spike_times, compute_sta"
                         " on hdf5_path (immediate mode)" if kind == "immediate_store" else OTHER_CALLS[kind])
            manifest = {"repository": "jiang-lab-retina/hdmea_processing", "commit": args.commit,
                        "calls": call_path, "units": n, "movies": movies, "stimulus_configs_added": added,
                        "recording": "hdmea.synthetic SyntheticConfig.with_lab_stimuli(pre_margin_frames=180, "
                                     f"post_margin_frames=181, raw_seconds=1.0, n_units={n}), seed 5",
                        "completed_steps": completed_steps(path), "paths": file_layout(path, movies),
                        "values": scalar_values(path), "arrays": array_facts(path)}
            if kind == "resumed_from_hdf5":
                manifest["loaded_steps"] = LOADED_STEPS[n]
            text = json.dumps(manifest, indent=1, sort_keys=True) + "\n"
            # the run's folder on the measuring machine is no fact of the layout: it is written as <run>
            text = text.replace(str(base / f"orig{n}"), "<run>")
            (args.out / f"{name}.json").write_text(text)
            print(name, len(manifest["paths"]), "paths")
    defaults = {"repository": "jiang-lab-retina/hdmea_processing", "commit": args.commit,
                "defaults": original_defaults(args.checkout)}
    (args.out / "original_defaults.json").write_text(json.dumps(defaults, indent=1) + "\n")
    print("defaults", len(defaults["defaults"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

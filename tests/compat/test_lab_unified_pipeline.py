"""The lab's unified pipeline, in its order and call style, on a recording laid out like a lab recording.

``LAB_PIPELINE`` makes the calls the lab's main pipeline makes (a session; loading with electrical images;
section times from the playlist CSV; spike sectioning; the STA from the default stimuli folder; then the lab's
own steps writing into ``session.units[...]`` and ``session.stimulus[...]``, ``completed_steps.add``,
``set_source_files`` and ``save(output_path=...)``), written here for this test.  The recording is synthetic
(:mod:`hdmea.synthetic`) with the lab's movie names, its playlist and movie-length CSV files and the noise
movie as ``<movie>.npy`` in the folder ``DEFAULT_STIMULI_DIR`` names.  The file is read back with plain h5py
and every value written is checked to sit under the unit the lab meant: the unit whose spike train, footprint
and receptive field are the planted ones of that UnitID.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest

PAD = 180
DATASET = "2024.08.08-10.40.20-Rec"
PLAYLIST = "play_optimization_set6_ipRGC_manual"

LAB_PIPELINE = textwrap.dedent('''
    import json, re, sys
    from pathlib import Path

    import numpy as np

    CMCR, CMTR, PLAYLIST_CSV, LENGTH_CSV, STIMULI, LABELS, OUTPUT = sys.argv[1:8]

    import hdmea.features.sta
    import hdmea.io.section_time
    # the lab's shared folders, as the lab's machines name them
    hdmea.features.sta.DEFAULT_STIMULI_DIR = Path(STIMULI)
    hdmea.io.section_time.DEFAULT_PLAYLIST_PATH = PLAYLIST_CSV
    hdmea.io.section_time.DEFAULT_MOVIE_LENGTH_PATH = LENGTH_CSV

    from hdmea.pipeline import PipelineSession, create_session, load_recording_with_eimage_sta, add_section_time
    from hdmea.io import section_spike_times
    from hdmea.features import compute_sta

    # step 1
    session = create_session(dataset_id="%(dataset)s")
    session = load_recording_with_eimage_sta(cmcr_path=str(CMCR), cmtr_path=str(CMTR), duration_s=120.0,
                                             spike_limit=10000, window_range=(-10, 40), session=session)
    session.mark_step_complete("load_recording_with_eimage_sta")
    # step 2
    if "add_section_time" not in session.completed_steps:
        session = add_section_time(playlist_name="%(playlist)s", session=session)
        session.mark_step_complete("add_section_time")
    # step 3
    session = section_spike_times(pad_margin=(0.0, 0.0), session=session)
    session.mark_step_complete("section_spike_times")
    # step 3b: the analog section step reads the session's live dicts and writes its result into them
    light = np.asarray(session.stimulus["light_reference"]["raw_ch1"])
    rate = float(session.metadata["acquisition_rate"])
    if "section_time" not in session.stimulus:
        session.stimulus["section_time"] = {}
    analog = np.array([[1000, 1000 + int(2 * rate)], [5000, 5000 + int(2 * rate)]], dtype=np.int64)
    session.stimulus["section_time"]["iprgc_test"] = analog
    session.stimulus["light_template"] = {"iprgc_test": light[1000:1000 + int(2 * rate)].astype(np.float32)}
    session.completed_steps.add("add_section_time_analog")
    # step 4
    session = compute_sta(cover_range=(-60, 0), session=session)
    session.mark_step_complete("compute_sta")
    # step 6: soma geometry from each unit's electrical image, written into the unit's feature
    written = {}
    for unit_id in session.units.keys():
        features = session.units[unit_id]["features"]
        if "eimage_sta" not in features:
            continue
        image = np.asarray(features["eimage_sta"]["data"])
        frame = image[10:14].mean(axis=0)
        row, col = np.unravel_index(np.argmin(frame), frame.shape)
        features["eimage_sta"]["geometry"] = {"center_row": float(row + 1), "center_col": float(col + 1),
                                               "area": int((frame < 0.5 * frame.min()).sum())}
        written[unit_id] = [float(row + 1), float(col + 1)]
    session.completed_steps.add("extract_soma_geometry")
    # step 9: manual cell-type labels, files named <recording>_unit<N>.png in a folder per type
    labels = {}
    for folder in Path(LABELS, session.dataset_id).iterdir():
        for png in folder.rglob("*.png"):
            match = re.search(r"_unit(\\d+)\\.png$", png.name)
            if match:
                labels[int(match.group(1))] = folder.name.lower()
    for unit_id in session.units.keys():
        match = re.search(r"unit_(\\d+)", unit_id)
        cell_type = labels.get(int(match.group(1)), "no_label") if match else "no_label"
        if "auto_label" not in session.units[unit_id]:
            session.units[unit_id]["auto_label"] = {}
        session.units[unit_id]["auto_label"]["axon_type"] = cell_type
    session.mark_step_complete("add_cell_type_labels")
    session.completed_steps.add("add_gsheet_metadata:skipped")
    session.completed_steps.discard("add_gsheet_metadata:skipped")
    session.set_source_files(cmcr_path=CMCR, cmtr_path=CMTR)
    path = session.save(output_path=Path(OUTPUT), overwrite=True)
    print(json.dumps({"path": str(path), "units": session.unit_count, "geometry": written,
                      "steps": sorted(session.completed_steps), "saved_at": session.saved_at}))
''' % {"dataset": DATASET, "playlist": PLAYLIST})


@pytest.fixture(scope="module")
def lab_run(tmp_path_factory):
    """Generate the lab-style recording and run the lab-style pipeline on it once (a fresh interpreter)."""
    import os

    from hdmea.synthetic import SyntheticConfig, generate_recording

    out = tmp_path_factory.mktemp("lab_unified")
    rec = generate_recording(out / "O" / "20240808", DATASET, config=SyntheticConfig.with_lab_stimuli(
        pre_margin_frames=PAD, post_margin_frames=PAD + 1, raw_seconds=1.0, noise_bank_frames=2048), seed=5)
    # the vendor names the sorting file <recording>-.cmtr
    cmtr = rec.cmtr_path.with_name(DATASET + "-.cmtr")
    rec.cmtr_path.rename(cmtr)
    movies = ", ".join(f"'{m}.mov'" for m in rec.stimulus.playlist)
    (out / "playlist.csv").write_text(f'playlist_name,movie_names\n{PLAYLIST},"[{movies}]"\n'
                                      f'play_other,"[\'baseline_127.mov\']"\n')
    (out / "movie_length.csv").write_text("movie_name,movie_length\n" + "".join(
        f"{k},{v}\n" for k, v in rec.stimulus.movie_lengths.items()))
    stimuli = out / "Stimulations"
    stimuli.mkdir()
    images = np.load(rec.noise_movie_path)
    np.save(stimuli / f"{rec.config.noise_movie}.npy", np.repeat(images, rec.config.noise_frames_per_image, axis=0))
    truth = rec.truth()
    # manual labels keyed by the lab's unit numbers (the .cmtr UnitIDs), one type per unit
    kinds = ["RGC", "AC", "Other", "Unknown"]
    expected_labels = {}
    for i, (name, unit) in enumerate(sorted(truth.units.items())):
        kind = kinds[i % len(kinds)]
        folder = out / "labels" / DATASET / kind / ("sub" if i % 2 else "")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{DATASET}_unit{unit.mcs_unit_id}.png").write_bytes(b"\x89PNG\r\n\x1a\n")
        expected_labels[unit.mcs_unit_id] = kind.lower()
    script = out / "run_unified.py"
    script.write_text(LAB_PIPELINE)
    work = out / "work"
    work.mkdir()
    output = out / "test_output" / f"{DATASET}.h5"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    done = subprocess.run([sys.executable, str(script), str(rec.cmcr_path), str(cmtr), str(out / "playlist.csv"),
                           str(out / "movie_length.csv"), str(stimuli), str(out / "labels"), str(output)],
                          cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-6000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    return rec, truth, output, report, expected_labels


@pytest.mark.slow
def test_every_value_lands_under_the_unit_the_lab_meant(lab_run):
    rec, truth, output, report, _ = lab_run
    assert report["path"] == str(output) and output.exists()
    assert report["units"] == len(truth.units)
    with h5py.File(output, "r") as f:
        # units named by their .cmtr UnitID, with the original's attributes
        assert sorted(f["units"]) == sorted(f"unit_{u.mcs_unit_id:03d}" for u in truth.units.values())
        assert sorted(f["units"]) == sorted(truth.units)
        for name, unit in truth.units.items():
            g = f[f"units/{name}"]
            assert g.attrs["unit_num"] == unit.mcs_unit_id
            assert g.attrs["original_name"] == f"Unit_{unit.mcs_unit_id}"
            assert g.attrs["global_id"] == unit.sensor_id
            assert (g.attrs["row"], g.attrs["col"]) == (unit.row, unit.col)
            np.testing.assert_array_equal(g["spike_times"][()], unit.spike_times)
        # the geometry the script wrote for a unit is that unit's: the planted footprint's centre
        checked = 0
        for name, (row, col) in report["geometry"].items():
            geometry = f[f"units/{name}/features/eimage_sta/geometry"]
            assert [float(geometry["center_row"][()]), float(geometry["center_col"][()])] == [row, col]
            unit = truth.units[name]
            if unit.kind != "silent" and len(unit.spike_times) >= 20:
                assert abs(row - unit.row) <= 1 and abs(col - unit.col) <= 1, (name, row, col, unit.row, unit.col)
                checked += 1
        assert checked >= 3
        # the receptive field where the original's session mode puts it, and it is the unit's own
        movie = rec.config.noise_movie
        fields = 0
        for name, unit in truth.units.items():
            sta = f[f"units/{name}/features/sta_{movie}/data"][()]
            assert sta.shape == (60, 15, 15)
            if unit.kind == "silent":
                continue
            energy = (sta - sta.mean(axis=0)).std(axis=0)
            peak = np.unravel_index(np.argmax(energy), energy.shape)
            planted = np.unravel_index(np.argmax(unit.spatial_rf), unit.spatial_rf.shape)
            assert abs(peak[0] - planted[0]) <= 1 and abs(peak[1] - planted[1]) <= 1, (name, peak, planted)
            fields += 1
        assert fields >= 3
        # the session's other writes
        np.testing.assert_array_equal(f["stimulus/section_time/iprgc_test"][()],
                                      [[1000, 41000], [5000, 45000]])
        assert f["stimulus/light_template/iprgc_test"].shape == (40000,)
        for movie_name, sections in truth.section_times.items():
            assert f[f"stimulus/section_time/{movie_name}"].shape == sections.shape
        steps = [s.decode() if isinstance(s, bytes) else s for s in f["pipeline/session_info/completed_steps"][()]]
        assert set(steps) == set(report["steps"]) and "add_gsheet_metadata:skipped" not in steps
        assert {"load_recording_with_eimage_sta", "add_section_time", "section_spike_times", "compute_sta",
                "extract_soma_geometry", "add_cell_type_labels", "add_section_time_analog"} <= set(steps)
        files = list(json.loads(f.attrs["source_files"]).values())[:2]
        assert files[0].endswith(f"{DATASET}.cmcr") and files[1].endswith(f"{DATASET}-.cmtr")
        assert f["pipeline/session_info"].attrs["saved_at"] == report["saved_at"]


@pytest.mark.slow
def test_manual_labels_attach_to_the_right_spike_trains(lab_run):
    _, truth, output, _, expected_labels = lab_run
    by_unit_id = {u.mcs_unit_id: u for u in truth.units.values()}
    with h5py.File(output, "r") as f:
        for name in f["units"]:
            g = f[f"units/{name}"]
            label = g["auto_label/axon_type"][()]
            label = label.decode() if isinstance(label, bytes) else str(label)
            number = int(g.attrs["unit_num"])
            assert label == expected_labels[number]
            # the labelled unit's spikes are the planted spikes of the unit the label file names
            np.testing.assert_array_equal(g["spike_times"][()], by_unit_id[number].spike_times)
    labelled = {int(k) for k in expected_labels}
    assert labelled == set(by_unit_id)


# Written by the lab's own step code, not by the library: the lab's geometry steps (this test's script writes
# three of the soma geometry's values), the RF fits and the DSGC/AP-tracking steps.
_LAB_OWN = ("units/<unit>/features/eimage_sta/geometry/", "units/<unit>/features/sta_<movie>/sta_geometry",
            "metadata/rf_sta_geometry")
_THIS_SCRIPT_WRITES = {f"units/<unit>/features/eimage_sta/geometry/{k}" for k in ("center_row", "center_col", "area")}


@pytest.mark.slow
def test_the_file_matches_the_original_unified_pipelines_manifest(lab_run):
    """Path for path, kind for kind, rank for rank, what the library writes of the original's session file."""
    from tests.lab_layout import compare_layouts, file_layout, load_manifest

    rec, _, output, _, _ = lab_run
    manifest = load_manifest("unified_session_u6.json")
    wanted = {p: v for p, v in manifest["paths"].items()
              if not p.startswith(_LAB_OWN) or p in _THIS_SCRIPT_WRITES}
    result = compare_layouts(wanted, file_layout(output, list(rec.stimulus.playlist) + ["iprgc_test"]))
    assert len(result.matching) == result.total and result.total > 150, result.details()
    # the library's values have the original's dtype kinds too (section times int64, ...); the script's own differ
    assert not [d for d in result.other_dtype if d[0] not in _THIS_SCRIPT_WRITES], result.details()
    # read as the lab reads it
    with h5py.File(output, "r") as f:
        for u in f["units"]:
            assert int(f[f"units/{u}/unit_meta/row"][0]) == f[f"units/{u}"].attrs["row"]
            assert int(f[f"units/{u}/unit_meta/column"][0]) == f[f"units/{u}"].attrs["col"]
            for movie in f[f"units/{u}/spike_times_sectioned"]:
                g = f[f"units/{u}/spike_times_sectioned/{movie}"]
                n = int(g["_attrs/n_trials"][()])
                trials = [f[f"units/{u}/spike_times_sectioned/{movie}/trials_spike_times/{i}"][()] for i in range(n)]
                assert g["trials_start_end"].shape == (n, 2)
                np.testing.assert_array_equal(g["full_spike_times"][()], np.unique(np.concatenate(trials)))
                spikes = f[f"units/{u}/spike_times"][()].astype(np.int64)
                for (start, end), got in zip(g["trials_start_end"][()], trials):  # pad margin (0, 0)
                    np.testing.assert_array_equal(got, spikes[(spikes >= start) & (spikes < end)])
        assert float(f["metadata/cmcr_meta/recording_duration_s"][()]) > 0
        assert f["stimulus/frame_times/default"].shape == f["stimulus/frame_time/default"].shape

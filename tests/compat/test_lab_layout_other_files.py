"""The other files the original writes, measured (tests/data/lab_layout/): ours against each, path for path.

- ``session_steps_u6.json``: the step functions with ``session=`` and one ``save`` (as the lab's
  ``Projects/pipeline_test/pipeline_session_batch.py`` calls them);
- ``checkpoint_u6.json``: the same session written with ``session.checkpoint(path)``;
- ``resumed_u6.json``: that checkpoint loaded with ``PipelineSession.load`` and saved;
- ``script_values_u6.json``: the same steps, a list and a number a script sets under a unit, one ``save``;
  ``resumed_from_hdf5_u6.json`` and ``resumed_saved_u6.json``: that file resumed with
  ``load_session_from_hdf5`` (as the unified pipeline's ``run_single_from_hdf5``) and with
  ``PipelineSession.load``, each saved;
- ``batch_u6.json``: the lab's batch of the unified pipeline (``batch_all_steps.process_single_recording``),
  the same file as ``unified_session_u6.json`` (compared in test_lab_unified_pipeline.py);
- ``hdmea run`` and ``hdmea batch`` (no call of the original: its pipeline is the step table) write a
  session's file: compared with ``session_steps_u6.json``, every path both hold is of the same kind and
  rank; the command does not run the vendor-table steps, nor the STA without a stimulus description.

Every path of the original's file is in ours with the same kind and rank; the dtype kinds match too, but
where the original's own resumes turn a stored bool into text and a unit's list attribute into a dataset,
ours keeps the bool and the attribute (tests/compat/test_lab_kept_differences.py).  The recording is the
manifests' own (seed 5, 1 s of raw data, a unit that never fires), so the arrays the lab's plots draw
(``arrays``: firing rates, electrical images, STAs) are compared value for value: shape and NaN content
as the original's, the electrical images float32 where the original's are float64.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import pytest

from hdmea.cli import main
from tests.lab_layout import (LAB_DATASET, LAB_PLAYLIST, array_facts, compare_layouts, file_layout, lab_recording,
                               load_manifest)

MOVIES_EXTRA = ["iprgc_test"]
#: The parts of the step functions' session file that ``hdmea run`` does not write (no such steps in its table).
NOT_RUN_BY_THE_COMMAND = ("units/<unit>/unit_meta", "metadata/cmcr_meta", "metadata/cmtr_meta",
                          "units/<unit>/features/sta_<movie>", "metadata/section_time_playlist",
                          "metadata/section_time_repeats", "stimulus/light_template")


#: The files whose arrays the tests compare value for value (test_the_arrays_the_lab_plots_are_the_originals).
ARRAY_KINDS = ("session_steps", "resumed_from_hdf5")


def _facts(path, kind, rec) -> dict:
    """What the tests read of a written session file: its folded layout, its completed steps and, for
    :data:`ARRAY_KINDS`, its arrays' facts."""
    with h5py.File(path, "r") as f:
        steps = sorted(s.decode() for s in f["pipeline/session_info/completed_steps"][()])
    return {"layout": file_layout(path, list(rec.stimulus.playlist) + MOVIES_EXTRA), "steps": steps,
            "arrays": array_facts(path) if kind in ARRAY_KINDS else None}


@pytest.fixture(scope="module")
def lab_session_files(tmp_path_factory):
    """The recording, what the tests read of each session file (:func:`_facts`), the lab's tables and the
    steps the resumed session reports.  Each file (87 MB, with its electrical images) is read as soon as
    the files made from it are written, and removed: the module holds the recording, not six files."""
    import hdmea.io.section_time
    from hdmea.features import compute_sta
    from hdmea.io import add_section_time, section_spike_times
    from hdmea.pipeline import (PipelineSession, create_session, load_recording_with_eimage_sta,
                                load_session_from_hdf5)

    out = tmp_path_factory.mktemp("lab_session_files")
    rec, playlist, lengths, stimuli = lab_recording(out, raw_seconds=1.0)
    facts = {}

    def read_and_remove(kind, path):
        facts[kind] = _facts(path, kind, rec)
        Path(path).unlink()

    # the lab's machines name their tables at the module's defaults
    before = (hdmea.io.section_time.DEFAULT_PLAYLIST_PATH, hdmea.io.section_time.DEFAULT_MOVIE_LENGTH_PATH)
    hdmea.io.section_time.DEFAULT_PLAYLIST_PATH = str(playlist)
    hdmea.io.section_time.DEFAULT_MOVIE_LENGTH_PATH = str(lengths)
    try:
        session = create_session(dataset_id=LAB_DATASET)
        session = load_recording_with_eimage_sta(cmcr_path=rec.cmcr_path, cmtr_path=rec.cmtr_path, duration_s=120.0,
                                                 spike_limit=10000, window_range=(-10, 40), session=session)
        session = add_section_time(playlist_name=LAB_PLAYLIST, session=session)
        session = section_spike_times(pad_margin=(0.0, 0.0), session=session)
        session = compute_sta(cover_range=(-60, 0), stimuli_dir=stimuli, session=session)
        checkpoint = session.checkpoint(out / "ckpt" / f"{LAB_DATASET}.checkpoint.h5")
        saved = session.save(output_path=out / "saved" / f"{LAB_DATASET}.h5")
        first = sorted(session.units)[0]  # what a lab member's script adds under a unit
        session.units[first]["lab_list"] = [1, 2]
        session.units[first]["lab_number"] = 3
        assigned = session.save(output_path=out / "assigned" / f"{LAB_DATASET}.h5")
    finally:
        hdmea.io.section_time.DEFAULT_PLAYLIST_PATH, hdmea.io.section_time.DEFAULT_MOVIE_LENGTH_PATH = before
    del session
    read_and_remove("session_steps", saved)
    read_and_remove("resumed", PipelineSession.load(checkpoint).save(output_path=out / "resumed" / f"{LAB_DATASET}.h5"))
    read_and_remove("checkpoint", checkpoint)
    loaded = load_session_from_hdf5(assigned)
    loaded_steps = sorted(loaded.completed_steps)
    read_and_remove("resumed_from_hdf5", loaded.save(output_path=out / "loader" / f"{LAB_DATASET}.h5"))
    del loaded
    read_and_remove("resumed_saved",
                    PipelineSession.load(assigned).save(output_path=out / "load" / f"{LAB_DATASET}.h5"))
    read_and_remove("script_values", assigned)
    return rec, facts, (playlist, lengths, stimuli), loaded_steps


def _compare(manifest_name, layout):
    manifest = load_manifest(manifest_name)
    return manifest, compare_layouts(manifest["paths"], layout)


RESUMED = ("resumed", "resumed_from_hdf5", "resumed_saved")


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["session_steps", "checkpoint", *RESUMED, "script_values"])
def test_each_session_file_matches_the_originals(lab_session_files, kind):
    _, facts, _, loaded_steps = lab_session_files
    manifest, result = _compare(f"{kind}_u6.json", facts[kind]["layout"])
    kept = {"units/<unit>/lab_list"} if kind in ("resumed_from_hdf5", "resumed_saved") else set()
    # the original's resumes move a unit's list attribute into a dataset; ours keeps the attribute
    assert set(result.missing) == kept and not result.other_kind and not result.other_rank, result.details()
    assert len(result.matching) == result.total - len(kept) > 150, result.details()
    if kept:
        assert "units/<unit>@lab_list" in result.added
    if kind in RESUMED:  # the original's resumes store the bool skip_highpass as text; ours keeps the bool
        assert [d[0] for d in result.other_dtype] == ["units/<unit>/features/eimage_sta/metadata/skip_highpass"]
    else:
        assert not result.other_dtype, result.details()
    assert facts[kind]["steps"] == manifest["completed_steps"]  # exactly the original's names
    if kind == "resumed_from_hdf5":
        assert loaded_steps == manifest["loaded_steps"]  # what the resumed session reports, before its save


@pytest.mark.slow
@pytest.mark.parametrize("kind", ARRAY_KINDS)
def test_the_arrays_the_lab_plots_are_the_originals(lab_session_files, kind):
    """Firing rates as long as the original's (each unit's last spike + 1 s), all-NaN images and STA for the
    unit that never fires and only for it; electrical images float32 (the original's float64)."""
    _, facts, _, _ = lab_session_files
    theirs, ours = load_manifest(f"{kind}_u6.json")["arrays"], facts[kind]["arrays"]
    assert set(ours) == set(theirs)
    for path, fact in theirs.items():
        mine = dict(ours[path], dtype="f8") if path.endswith("/eimage_sta/data") else ours[path]
        assert mine == fact, (path, fact, ours[path])
    assert {p.split("/")[1] for p, f in theirs.items() if f["nan"] == "all"} == {"unit_006"}
    assert {f["dtype"] for p, f in ours.items() if p.endswith("/eimage_sta/data")} == {"f4"}


def test_the_batch_manifest_is_the_unified_pipelines_file():
    """The lab's batch writes the unified pipeline's file (so test_lab_unified_pipeline covers it)."""
    batch, unified = load_manifest("batch_u6.json"), load_manifest("unified_session_u6.json")
    assert batch["paths"] == unified["paths"] and batch["completed_steps"] == unified["completed_steps"]
    assert batch["calls"].startswith("Projects/unified_pipeline/batch_all_steps")


@pytest.mark.slow
def test_hdmea_run_and_batch_write_the_original_session_files_layout(lab_session_files, tmp_path, capsys):
    rec, _, (playlist, lengths, stimuli), _ = lab_session_files
    config = tmp_path / "lab.toml"
    config.write_text(f'[stimulus]\nplaylist_file = "{playlist}"\nmovie_length_file = "{lengths}"\n'
                      f'playlist_name = "{LAB_PLAYLIST}"\n\n'
                      '[steps]\nextract_features = false\n\n[steps.compute_eimage_sta]\nenabled = true\n\n'
                      f'[steps.compute_sta]\nstimuli_dir = "{stimuli}"\ncover_range = [-60, 0]\n')
    run = tmp_path / "run" / "rec.h5"
    assert main(["run", str(rec.cmcr_path), str(rec.cmtr_path), "--config", str(config), "--out", str(run)]) == 0
    assert main(["batch", str(rec.cmcr_path.parent), "--config", str(config), "--out", str(tmp_path / "batch"),
                 "--workers", "1", "--no-verify-inputs"]) == 0
    capsys.readouterr()
    batch = tmp_path / "batch" / f"{rec.cmcr_path.stem}.h5"
    for path in (run, batch):
        _, result = _compare("session_steps_u6.json",
                             file_layout(path, list(rec.stimulus.playlist) + MOVIES_EXTRA))
        # what both files hold is laid out alike: no path of another kind or rank
        assert not result.other_kind and not result.other_rank, result.details()
        # what ours lacks is the output of the steps the command does not run: the vendor tables
        # (add_cmtr_unit_info, add_sys_meta_info), the STA without a stimulus description of the noise
        # movie, and the playlist records of the Python add_section_time call
        assert {p for p in result.missing if not p.startswith(NOT_RUN_BY_THE_COMMAND)} == set(), result.details()
        assert len(result.matching) == 66 and result.total == 165, result.summary()
    with h5py.File(run, "r") as f:
        assert json.loads(f.attrs["source_files"])["cmcr_path"] == str(rec.cmcr_path)

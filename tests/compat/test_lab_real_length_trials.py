"""Trials and sections on a synthetic recording of the movies' real length, against the original's, measured.

On the short synthetic movies the lab's JSON trials (``config/stimuli/<movie>.json``) do not fit, and the
original and hdmea part there (the original cuts trials at the movie's end, hdmea keeps one per
occurrence).  On a recording whose every movie is at least as long as its JSON trials
(``tests.lab_layout.real_length``: about 10 minutes, a 267 MB .cmcr), the original's sections and trials were
measured (``tests/manual/compare_lab_trials.py``, facts in ``tests/data/lab_layout/real_length_trials_u6.json``):
hdmea's are the same in number, every section and trial bound one sample later (the corrected frame times:
the original took the last sample before each sync pulse), and every trial holds the same spikes.
"""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from tests.lab_layout import LAB_DATASET, LAB_PLAYLIST, MANIFEST_DIR, lab_recording, real_length

FACTS = json.loads((MANIFEST_DIR / "real_length_trials_u6.json").read_text())


@pytest.mark.slow
def test_trials_and_sections_are_the_originals_one_sample_later(tmp_path):
    from hdmea.io.section_time import add_section_time
    from hdmea.io.spike_sectioning import section_spike_times
    from hdmea.pipeline import load_recording

    rec, playlist, lengths, _ = lab_recording(tmp_path, raw_seconds=1.0, **real_length())
    assert dict(rec.stimulus.movie_lengths) == FACTS["movie_lengths"]  # the measured recording
    h5 = load_recording(rec.cmcr_path, rec.cmtr_path, LAB_DATASET, output_dir=tmp_path / "out").hdf5_path
    add_section_time(h5, LAB_PLAYLIST, playlist_file_path=playlist, movie_length_file_path=lengths)
    section_spike_times(h5, pad_margin=(0.0, 0.0))
    original = FACTS["original"]
    with h5py.File(h5, "r") as f:
        assert sorted(f["stimulus/section_time"]) == sorted(original)
        for movie, facts in original.items():
            sections = f[f"stimulus/section_time/{movie}"][()].astype(np.int64)
            np.testing.assert_array_equal(sections, np.asarray(facts["sections"]) + 1, err_msg=movie)
            sectioned = [u for u in f["units"] if movie in f[f"units/{u}/spike_times_sectioned"]]
            assert sorted(facts["units"]) == sorted(sectioned)
            for unit, bounds in facts["units"].items():
                g = f[f"units/{unit}/spike_times_sectioned/{movie}"]
                np.testing.assert_array_equal(g["trials_start_end"][()].astype(np.int64), np.asarray(bounds) + 1,
                                              err_msg=f"{unit} {movie}")
                trials = g["trials_spike_times"]
                assert [trials[k].shape[0] for k in sorted(trials, key=int)] == facts["spikes"][unit], (unit, movie)
        # the JSON trials all fit: 3 trials of each 3x movie, 1 of the others, in every unit
        counts = {movie: {len(b) for b in facts["units"].values()} for movie, facts in original.items()}
        assert counts == {m: ({3} if m.endswith("_3x") else {1}) for m in original}

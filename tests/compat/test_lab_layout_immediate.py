"""The store functions' file (immediate mode) against the original's, measured: tests/data/lab_layout/immediate_store_u6.json.

The calls are the original's immediate-mode calls on a recording file (``load_recording_with_eimage_sta``,
``add_section_time``, ``section_spike_times``, ``compute_sta`` with ``hdf5_path``), on a lab-style synthetic
recording; the file is read with plain h5py.  The differences that remain are listed here, each with its
reason (docs/guide/from-hdmea-processing.md keeps the same list).
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from tests.lab_layout import LAB_DATASET as DATASET, LAB_PLAYLIST as PLAYLIST
from tests.lab_layout import compare_layouts, file_layout, lab_recording, load_manifest

#: The original's immediate-mode paths we do not write, and why: none (161 of 161).
REMAINING: dict[str, str] = {}


@pytest.fixture(scope="module")
def immediate_file(tmp_path_factory):
    from hdmea.features.sta import compute_sta
    from hdmea.io.section_time import add_section_time
    from hdmea.io.spike_sectioning import section_spike_times
    from hdmea.pipeline import load_recording_with_eimage_sta

    out = tmp_path_factory.mktemp("lab_immediate")
    rec, playlist, lengths, stimuli = lab_recording(out, raw_seconds=1.0)  # the manifest's recording
    result = load_recording_with_eimage_sta(cmcr_path=rec.cmcr_path, cmtr_path=rec.cmtr_path, dataset_id=DATASET,
                                            output_dir=out / "artifacts", duration_s=120.0, spike_limit=10000,
                                            window_range=(-10, 40))
    h5 = result.hdf5_path
    add_section_time(h5, PLAYLIST, playlist_file_path=playlist, movie_length_file_path=lengths)
    section_spike_times(h5, pad_margin=(0.0, 0.0))
    compute_sta(h5, cover_range=(-60, 0), stimuli_dir=stimuli, use_multiprocessing=False)
    return rec, h5


@pytest.mark.slow
def test_the_store_functions_file_matches_the_originals_immediate_mode(immediate_file):
    rec, h5 = immediate_file
    manifest = load_manifest("immediate_store_u6.json")
    result = compare_layouts(manifest["paths"], file_layout(h5, list(rec.stimulus.playlist) + ["iprgc_test"]))
    found = {p: "missing" for p in result.missing}
    found.update({p: "kind" for p, _, _ in result.other_kind})
    found.update({p: "rank" for p, _, _ in result.other_rank})
    assert found == REMAINING, result.details()
    assert len(result.matching) == result.total - len(REMAINING)


@pytest.mark.slow
def test_the_lab_reads_the_immediate_file_as_it_reads_the_originals(immediate_file):
    """The original's immediate mode stores scalars as 1-element arrays: the lab reads them with [0]."""
    _, h5 = immediate_file
    with h5py.File(h5, "r") as f:
        rate = float(f["metadata/acquisition_rate"][0])
        assert rate == 20000.0 and float(f["metadata/sample_interval"][0]) == pytest.approx(1 / rate)
        assert int(f["metadata/cmcr_meta/LB.RecordingDuration"][0]) == int(
            round(float(f["metadata/cmcr_meta/recording_duration_s"][0]) * 1e6))
        assert f["pipeline"].attrs["stage1_completed"]
        for u in f["units"]:
            unit = f[f"units/{u}"]
            assert unit["spike_times"].attrs["unit"] == "sample_index"
            assert int(unit["unit_meta/unitid"][0]) == unit.attrs["unit_num"]
            assert unit["unit_meta"].attrs["attr_id.type"] == "SpikeSorterUnit"
            if "firing_rate_10hz" in unit:  # a unit without spikes has none, as in the original
                rates = unit["firing_rate_10hz"][()]
                assert rates.sum() / 10 == len(unit["spike_times"])  # every spike in one 100 ms bin
            for movie in unit["spike_times_sectioned"]:
                g = unit[f"spike_times_sectioned/{movie}"]
                n = int(g.attrs["n_trials"])
                assert len(g["trials_spike_times"]) == n == g["trials_start_end"].shape[0]
                assert list(g.attrs["pad_margin"]) == [0.0, 0.0]
        light = f["stimulus/light_reference"]
        raw = light["raw_ch1"][()]
        block = int(rate / 10)
        np.testing.assert_allclose(light["10hz_ch1"][()], raw[:len(raw) // block * block].reshape(-1, block)
                                   .astype(np.float64).mean(axis=1), rtol=1e-6)
        assert light["1khz_ch2"].shape == (len(light["raw_ch2"]) // int(rate / 1000),)

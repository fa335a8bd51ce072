"""A lab script in the original pipeline's style runs unchanged on a synthetic recording.

``LAB_SCRIPT`` is the original README's two examples (load then extract; a named flow) and its custom
extractor, followed by the lab's usual sectioning and receptive-field steps, with only the file paths
filled in.  It runs in a fresh interpreter in an empty folder, as a lab runs its scripts; the test then
reads what it wrote with plain h5py and checks it against the generator's planted truth.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest

PAD = 180

LAB_SCRIPT = textwrap.dedent('''
    import sys
    CMCR, CMTR, PLAYLIST, MOVIE_LENGTH, STIMULI = sys.argv[1:6]

    # --- the original README: Stage 1 and Stage 2
    from hdmea.pipeline import load_recording, extract_features

    # Stage 1: Load recording to Zarr
    result = load_recording(
        cmcr_path=CMCR,
        cmtr_path=CMTR,
        dataset_id="JIANG009_2024-01-15"
    )

    # Stage 2: Extract features
    extract_features(
        zarr_path=result.zarr_path,
        features=["baseline_127", "step_up_5s_5i_3x"]
    )

    # --- the original README: a custom extractor
    from hdmea.features import FeatureRegistry, FeatureExtractor

    @FeatureRegistry.register("my_feature")
    class MyExtractor(FeatureExtractor):
        version = "1.0.0"
        required_inputs = ["spike_times"]
        output_schema = {"value": {"dtype": "float64"}}

        def extract(self, unit_data, stimulus_data, config=None):
            spikes = unit_data["spike_times"][:]
            return {"value": len(spikes)}

    extract_features(hdf5_path=result.hdf5_path, features=["my_feature"])

    # --- the lab's sectioning and receptive fields, the original's calls
    from hdmea.io.section_time import add_section_time
    from hdmea.io.spike_sectioning import section_spike_times
    from hdmea.features.sta import compute_sta

    ok = add_section_time(result.hdf5_path, "set_t", playlist_file_path=PLAYLIST,
                          movie_length_file_path=MOVIE_LENGTH, repeats=1)
    assert ok is True
    sections = section_spike_times(result.hdf5_path, pad_margin=(0.0, 0.0), force=False)
    print("sectioned", sections.units_processed, sorted(sections.movies_processed))
    sta = compute_sta(result.hdf5_path, cover_range=(-30, 0), use_multiprocessing=True, stimuli_dir=STIMULI)
    print("sta", sta.movie_name, sta.units_processed, sta.units_failed)

    # --- the original README: a complete flow
    from hdmea.pipeline.flows import run_flow

    result = run_flow(
        flow_name="set6a_full",
        cmtr_path=CMTR,
        dataset_id="JIANG009"
    )
    print("flow", result.hdf5_path, result.load_result.num_units, result.extraction_result is not None)
''')


@pytest.fixture(scope="module")
def lab_files(tmp_path_factory):
    from hdmea.synthetic import SyntheticConfig, generate_recording

    out = tmp_path_factory.mktemp("lab_script")
    rec = generate_recording(out / "data", "recording", config=SyntheticConfig.tiny(
        pre_margin_frames=PAD, post_margin_frames=PAD + 1), seed=21)
    movies = ", ".join(f"'{m}.mov'" for m in rec.stimulus.playlist)
    (out / "playlist.csv").write_text(f'playlist_name,movie_names\nset_t,"[{movies}]"\n')
    (out / "movie_length.csv").write_text("movie_name,movie_length\n" + "".join(
        f"{k},{v}\n" for k, v in rec.stimulus.movie_lengths.items()))
    (out / "stimuli").mkdir()
    images = np.load(rec.noise_movie_path)
    np.save(out / "stimuli" / f"{rec.config.noise_movie}.npy",
            np.repeat(images, rec.config.noise_frames_per_image, axis=0))
    return rec, out


def test_lab_script_runs_unchanged(lab_files, tmp_path, child_env):
    rec, out = lab_files
    script = tmp_path / "lab_script.py"
    script.write_text(LAB_SCRIPT)
    work = tmp_path / "work"
    work.mkdir()
    done = subprocess.run(
        [sys.executable, str(script), str(rec.cmcr_path), str(rec.cmtr_path), str(out / "playlist.csv"),
         str(out / "movie_length.csv"), str(out / "stimuli")],
        cwd=work, env=child_env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    truth = rec.truth()
    n_units = rec.config.n_units
    lines = dict(line.split(" ", 1) for line in done.stdout.splitlines())
    assert lines["sta"].split() == [rec.config.noise_movie, str(n_units), "0"]
    assert lines["sectioned"].startswith(str(n_units))
    # files where the original puts them: ./artifacts/<dataset_id>.h5
    first = work / "artifacts" / "JIANG009_2024-01-15.h5"
    assert lines["flow"].split()[0] == "artifacts/JIANG009.h5" and (work / "artifacts" / "JIANG009.h5").exists()
    with h5py.File(first, "r") as f:
        units = sorted(f["units"])
        assert len(units) == n_units
        # the custom extractor's value: the spike count, against the planted spikes
        planted = sorted(len(u.spike_times) for u in truth.units.values())  # IncludePeak spikes only
        counts = sorted(int(f[f"units/{u}/features/my_feature"].attrs["value"]) for u in units)
        assert counts == planted
        # the original's frame times: the planted pulses (corrected by one sample)
        np.testing.assert_array_equal(f["metadata/frame_timestamps"][()], truth.frame_times)
        assert f[f"units/{units[0]}/features/sta_{rec.config.noise_movie}/data"].shape[0] == 30

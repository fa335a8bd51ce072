"""A real Dask LocalCluster batch of synthetic recordings through the whole pipeline.

Six recordings on two single-threaded worker processes: one has a truncated
``.cmcr`` (a data error: it fails once, with its reason), one SIGKILLs its worker
right after its first checkpoint (an infrastructure error: retried, and the retry
resumes from the checkpoint).  The other four finish, and a rerun skips every
finished recording.
"""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest

from tests.integration import _batch_jobs as jobs

pytest.importorskip("distributed")

from hdmea.config import parse_config  # noqa: E402
from hdmea.pipeline.batch import Recording, checkpoint_path_for, done_marker_path, run_batch  # noqa: E402
from hdmea.synthetic import generate_recording, load_truth  # noqa: E402

NAMES = [f"rec{i}" for i in range(6)]
CORRUPT, KILLED = "rec2", "rec4"


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    """One synthetic recording copied under six names (generating six would dominate the run)."""
    src = tmp_path_factory.mktemp("synthetic")
    made = generate_recording(src, "base", n_units=4, seed=3)
    inputs = tmp_path_factory.mktemp("inputs")
    recs = []
    for name in NAMES:
        cmcr, cmtr = inputs / f"{name}.cmcr", inputs / f"{name}.cmtr"
        shutil.copyfile(made.cmcr_path, cmcr)
        shutil.copyfile(made.cmtr_path, cmtr)
        shutil.copyfile(made.stimulus_path, inputs / f"{name}.stimulus.json")
        recs.append(Recording.from_paths(cmcr, cmtr))
    return recs, made


@pytest.mark.slow
def test_dask_batch_survives_corrupt_input_and_killed_worker(recordings, tmp_path):
    import cloudpickle

    cloudpickle.register_pickle_by_value(jobs)  # workers need not import the test helpers
    recs, made = recordings
    corrupt = next(r for r in recs if r.name == CORRUPT)
    data = corrupt.cmcr.read_bytes()
    corrupt.cmcr.write_bytes(data[: len(data) // 3])  # truncated: HDF5 refuses it
    killed = next(r for r in recs if r.name == KILLED)
    jobs.kill_once_marker(killed.cmcr).touch()
    config = parse_config({"stimulus": {"file": "{dir}/{name}.stimulus.json"},
                           "steps": {"extract_features": False},
                           "output": {"checkpoint_min_seconds": 0.0}}, base_dir=tmp_path)
    out = tmp_path / "out"

    summary = run_batch(recs, config, out, workers=2, retries=2, scheduler="local",
                        job=jobs.pipeline_job_killed_after_first_checkpoint, show_progress=False)

    assert "LocalCluster" in summary.executor
    assert [r.name for r in summary.results] == NAMES
    bad = summary[CORRUPT]
    assert bad.status == "failed" and bad.kind == "data" and bad.attempts == 1, summary.table()
    assert "cannot open the HDF5 file" in bad.error and str(corrupt.cmcr) in bad.error, bad.error
    assert not (out / f"{CORRUPT}.h5").exists()
    retried = summary[KILLED]
    context = summary.table() + "\n" + "\n".join(f"{r.name}: {r.errors}" for r in summary.results)
    assert retried.status == "done" and retried.attempts == 2, context
    assert "[infrastructure] the worker died" in retried.errors[0], context
    assert "KilledWorker" not in retried.errors[0] and retried.error_types[0] == "KilledWorker", context
    steps = {s["name"]: s["status"] for s in retried.detail["steps"]}
    assert steps["load_recording"] == "resumed" and steps["compute_sta"] == "ran"
    assert retried.detail["resumed_from"] == str(checkpoint_path_for(out / f"{KILLED}.h5"))
    assert {r.name for r in summary.done} == set(NAMES) - {CORRUPT}, context
    # Two workers on this machine: each caps its libraries at its share of the cores,
    # set by the nanny before numba loaded (also in the worker restarted after the kill).
    import os

    share = max(1, len(os.sched_getaffinity(0)) // 2)
    for r in summary.done:
        assert r.detail["threads_per_job"] == share
        assert r.detail["profiling"] is False  # the workers of the batch's own cluster do not profile
        # nor run with the nanny's malloc trim threshold (it disables glibc's adaptive mmap threshold)
        assert r.detail["malloc_trim"] is None
        # and wake their event loop seldom (Dask's defaults: every 20, 500 and 100 ms)
        assert r.detail["timers"]["tick"] == 1.0 and r.detail["timers"]["monitor"] == 5.0, r.detail["timers"]
        assert r.detail["timers"].get("memory_monitor", 1.0) == 1.0, r.detail["timers"]
        assert r.detail["threads"] == {**{name: str(share) for name in jobs.THREAD_VARIABLES},
                                       "numba_pool": share}, r.detail["threads"]

    truth = load_truth(made.truth_path)
    for name in set(NAMES) - {CORRUPT}:
        path = out / f"{name}.h5"
        assert done_marker_path(path).exists() and not checkpoint_path_for(path).exists()
        with h5py.File(path, "r") as f:
            steps_done = [s.decode() if isinstance(s, bytes) else s
                          for s in f["pipeline/session_info/completed_steps"][()]]
            assert steps_done == ["load_recording", "add_section_time", "section_spike_times", "compute_sta"]
            for uid, unit in truth.units.items():
                np.testing.assert_array_equal(f["units"][uid]["spike_times"][()],
                                              np.asarray(unit.spike_times, dtype=np.uint64))
                assert f"sta_{truth.noise_movie}" in f["units"][uid]["features"]

    stamps = {n: (out / f"{n}.h5").stat().st_mtime_ns for n in NAMES if n != CORRUPT}
    again = run_batch(recs, config, out, workers=2, retries=2,
                      job=jobs.pipeline_job_killed_after_first_checkpoint, show_progress=False)
    assert {r.name for r in again.skipped} == set(NAMES) - {CORRUPT}
    assert again[CORRUPT].status == "failed" and again[CORRUPT].attempts == 1
    assert stamps == {n: (out / f"{n}.h5").stat().st_mtime_ns for n in stamps}

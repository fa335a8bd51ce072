"""Checkpoint, SIGKILL, resume in a new process, finish: the file equals an uninterrupted run's."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py

ROOT = Path(__file__).resolve().parents[2]
from tests.filecompare import assert_files_equal  # noqa: E402

# Four pipeline steps written against the step target, driven by a mode-agnostic script.
PIPELINE = textwrap.dedent("""
    import os, sys, time
    import numpy as np
    from hdmea.pipeline import PipelineSession, create_session
    from hdmea.session.target import open_target

    def step_load(s):
        rng = np.random.default_rng(11)
        units = {}
        for i in range(12):
            n = int(rng.integers(0, 400))
            units[f"unit_{i:03d}"] = {"spike_times": np.sort(rng.integers(0, 2_400_000, n)).astype(np.uint64),
                                      "waveform": rng.normal(size=50).astype(np.float32),
                                      "row": i // 4, "col": i % 4, "global_id": i}
        with open_target(None, s, step="load_recording") as t:
            t.add_units(units)
            t.add_metadata({"sampling_rate": 20000.0, "acquisition": {"gain": 1000, 7: "seven"},
                            "labels": ["a", "b"]})
            t.add_stimulus(light_reference={"raw": np.sin(np.arange(500) / 9.0)},
                           frame_times={"default": np.arange(0, 2_400_000, 333)})
            t.mark_step_complete()

    def step_sections(s):
        with open_target(None, s, step="add_section_time") as t:
            t.add_stimulus(section_times={"step_up": [[0, 600_000], [1_200_000, 1_800_000]],
                                          "noise": [[600_000, 1_200_000]]})
            t.mark_step_complete()

    def step_section_spikes(s):
        with open_target(None, s, step="section_spike_times") as t:
            t.require_steps("load_recording", "add_section_time")
            for movie in t.keys("stimulus/section_time"):
                bounds = t.get(f"stimulus/section_time/{movie}").astype(np.int64)
                for uid in t.unit_ids():
                    spikes = t.get(f"units/{uid}/spike_times").astype(np.int64)
                    lo = np.searchsorted(spikes, bounds[:, 0])
                    hi = np.searchsorted(spikes, bounds[:, 1])
                    values = np.concatenate([spikes[a:b] for a, b in zip(lo, hi)]).astype(np.uint64)
                    offsets = np.concatenate([[0], np.cumsum(hi - lo)]).astype(np.int64)
                    t.put(f"units/{uid}/spike_times_sectioned/{movie}",
                          {"spike_times": values, "trial_offsets": offsets,
                           "trial_bounds": bounds.astype(np.uint64), "pad_margin": (0.0, 0.0)})
            t.mark_step_complete()

    def step_features(s):
        with open_target(None, s, step="extract_features") as t:
            t.require_steps("section_spike_times")
            for uid in t.unit_ids():
                counts = np.diff(t.get(f"units/{uid}/spike_times_sectioned/step_up/trial_offsets"))
                t.add_feature(uid, "step_up_count", {"per_trial": counts, "mean": float(counts.mean()),
                                                      "params": {"window": (0, 1), 3: "three"}},
                              {"version": "1.0", "params_hash": "abc", "extracted_at": time.time()})
                if counts.sum() == 0:
                    t.add_warning(f"{uid}: no spikes in step_up")
            t.mark_step_complete()

    STEPS = [step_load, step_sections, step_section_spikes, step_features]
""")


def _run(tmp_path: Path, body: str, *, wait: bool = True):
    script = tmp_path / "pipeline_script.py"
    script.write_text(PIPELINE + textwrap.dedent(body))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    cmd = [sys.executable, str(script)]
    if wait:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
        assert done.returncode == 0, done.stderr
        return done
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def test_checkpoint_kill_resume_equals_uninterrupted(tmp_path):
    reference = tmp_path / "reference.h5"
    final = tmp_path / "final.h5"
    checkpoint = tmp_path / "after_sections.h5"

    _run(tmp_path, f"""
        s = create_session("rec_042", hdf5_path={str(reference)!r})
        for step in STEPS:
            step(s)
        s.save()
    """)

    # Run two steps, checkpoint, start the third and die by SIGKILL in the middle of it.
    proc = _run(tmp_path, f"""
        s = create_session("rec_042", hdf5_path={str(final)!r}, memory_limit=20_000)
        STEPS[0](s); STEPS[1](s)
        s.checkpoint({str(checkpoint)!r}, checkpoint_name="after_sections")
        print("CHECKPOINTED", flush=True)
        STEPS[2](s)
        print("STEP3_DONE", flush=True)
        time.sleep(600)
    """, wait=False)
    line = proc.stdout.readline()
    assert line.strip() == "CHECKPOINTED", proc.stderr.read()
    assert proc.stdout.readline().strip() == "STEP3_DONE"
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)  # reaps the process and closes its pipes
    assert proc.returncode == -signal.SIGKILL
    assert not final.exists()  # the killed session never saved
    for leftover in tmp_path.glob("final.h5.*"):  # its spill file and claim, as a killed process leaves them
        leftover.unlink()

    _run(tmp_path, f"""
        s = PipelineSession.load({str(checkpoint)!r})
        assert s.completed_steps == ["load_recording", "add_section_time"], s.completed_steps
        assert s.checkpoint_name == "after_sections"
        done = set(s.completed_steps)
        for step in STEPS:
            name = {{"step_load": "load_recording", "step_sections": "add_section_time",
                     "step_section_spikes": "section_spike_times",
                     "step_features": "extract_features"}}[step.__name__]
            if name not in done:
                step(s)
        s.save()
        print(s.hdf5_path)
    """)
    assert_files_equal(reference, final)
    with h5py.File(final, "r") as f:
        steps = [v.decode() if isinstance(v, bytes) else v for v in f["pipeline/session_info/completed_steps"][()]]
    assert steps == ["load_recording", "add_section_time", "section_spike_times", "extract_features"]


def test_immediate_mode_equals_deferred_run(tmp_path):
    deferred = tmp_path / "deferred.h5"
    immediate = tmp_path / "immediate.h5"
    _run(tmp_path, f"""
        s = create_session("rec_042", hdf5_path={str(deferred)!r})
        for step in STEPS:
            step(s)
        s.save()
        with open_target({str(immediate)!r}, None, step="create", create=True, dataset_id="rec_042"):
            pass
        import hdmea.session.target as target_module
        real = target_module.open_target
        def immediate_target(path, session, **kw):
            return real({str(immediate)!r}, None, **kw)
        globals()["open_target"] = immediate_target
        for step in STEPS:
            step(None)
    """)
    assert_files_equal(deferred, immediate)

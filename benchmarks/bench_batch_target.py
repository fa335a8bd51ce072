"""The batch target: 10 synthetic recordings through the whole pipeline, deferred against immediate.

Every recording runs load + electrical images, section times, spike sectioning,
STA and feature extraction.  Immediate mode commits the recording file after
each step (copy-on-write, fsync, rename: crash-safe between steps); deferred
mode stages everything in a :class:`~hdmea.pipeline.PipelineSession` and saves
once.  Both modes run in the same process on the same generated inputs, rounds
alternate the order, and the ratio is immediate seconds over deferred seconds
(deferred at least 20% faster: ratio >= 1.25).

``python -m benchmarks.bench_batch_target [small|full]`` prints the ratio.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks._harness import Row, interleave, scratch_dir, timed_row

N_RECORDINGS = 10
SIZES = {
    # tiny recordings: the steps' own work is small, so per-step file commits dominate
    "small": dict(config="tiny", overrides=dict(raw_seconds=0.2), rounds=1),
    # lab-sized recordings: 3 min noise, full step trials, 135 units (the lab's median),
    # 1 s of raw data each; one round (about 10 minutes on 2 cores)
    "full": dict(config="moderate", overrides=dict(n_units=135, n_silent_units=5), rounds=1),
}


def _config(size: str):
    from hdmea.synthetic import SyntheticConfig

    p = SIZES[size]
    return getattr(SyntheticConfig, p["config"])(**p["overrides"])


def run_immediate(rec, out: Path) -> Path:
    from hdmea.pipeline import (add_section_time, compute_sta, extract_features, load_recording_with_eimage_sta,
                                section_spike_times)

    h5 = out / f"{rec.cmcr_path.stem}.h5"
    load_recording_with_eimage_sta(rec.cmcr_path, rec.cmtr_path, output_path=h5)
    add_section_time(h5, rec.stimulus_path)
    section_spike_times(h5)
    compute_sta(h5)
    extract_features(h5)
    return h5


def run_deferred(rec, out: Path) -> Path:
    from hdmea.pipeline import (add_section_time, compute_sta, create_session, extract_features,
                                load_recording_with_eimage_sta, section_spike_times)

    h5 = out / f"{rec.cmcr_path.stem}.h5"
    session = create_session(rec.cmcr_path.stem, hdf5_path=h5)
    load_recording_with_eimage_sta(rec.cmcr_path, rec.cmtr_path, session=session)
    add_section_time(None, rec.stimulus_path, session=session)
    section_spike_times(session=session)
    compute_sta(session=session)
    extract_features(session=session)
    session.save(h5)
    return h5


def generate(size: str, where: Path, n: int = N_RECORDINGS):
    from hdmea.synthetic import generate_recording

    cfg = _config(size)
    return [generate_recording(where, f"rec{i:02d}", config=cfg, seed=i) for i in range(n)]


def run(size: str = "small") -> list[Row]:
    p = SIZES[size]
    with scratch_dir() as tmp:
        tmp = Path(tmp)
        recordings = generate(size, tmp / "inputs")
        # compile the kernels and warm the imports outside the timed runs
        warm = tmp / "warm"
        warm.mkdir()
        run_deferred(recordings[0], warm)
        outputs = {}
        made = {"immediate": 0, "deferred": 0}

        def side(mode: str):
            fn = run_immediate if mode == "immediate" else run_deferred

            def go() -> None:
                out = tmp / f"{mode}{made[mode]}"
                made[mode] += 1
                out.mkdir()
                outputs[mode] = [fn(rec, out) for rec in recordings]
            return go

        t = interleave({"immediate": side("immediate"), "deferred": side("deferred")}, p["rounds"])
        times = {mode: t[mode].rounds for mode in t}
        imm, dfr = t["immediate"].min, t["deferred"].min
        from tests.filecompare import compare_files

        differences = sum(len(compare_files(a, b)) for a, b in zip(outputs["immediate"], outputs["deferred"]))
    return [timed_row(
        f"batch of {N_RECORDINGS} {SIZES[size]['config']} recordings, whole pipeline",
        "immediate (commit after every step)", t["immediate"], t["deferred"], 1.25,
        f"deferred {100 * (1 - dfr / imm):.0f}% faster; immediate s: {times['immediate']}; deferred s: "
        f"{times['deferred']}; files equal: {differences == 0}",
    )]


def test_batch_target_small_runs_and_both_modes_write_equal_files(tmp_path):
    from tests.filecompare import assert_files_equal

    recordings = generate("small", tmp_path / "inputs", n=2)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for rec in recordings:
        assert_files_equal(run_immediate(rec, tmp_path / "a"), run_deferred(rec, tmp_path / "b"))


if __name__ == "__main__":  # python -m benchmarks.bench_batch_target [small|full]
    from benchmarks._harness import main

    main(run)

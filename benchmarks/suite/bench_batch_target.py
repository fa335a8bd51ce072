"""The batch target: recordings through the whole pipeline, deferred session against immediate saves.

Every recording runs load + electrical images, section times, spike sectioning,
STA and feature extraction.  Immediate mode commits the recording file after
each step (copy-on-write, fsync, rename: crash-safe between steps); deferred
mode stages everything in a :class:`~hdmea.pipeline.PipelineSession` and saves
once.  Both modes run in the same process on the same inputs, in interleaved
rounds (the order alternates), and the ratio is immediate seconds over deferred
seconds (deferred at least 20% faster: ratio >= 1.25, judged on the minima; the
medians are in the details).  The outputs of the two modes must be equal.

Sizes:

* ``small`` (CI): 10 tiny recordings, seconds in all.
* ``full``: 10 recordings of a lab's real shape: 310 units (300 firing), a
  30-minute recording (a 15-minute dense-noise movie between two 7.5-minute
  step movies) and electrical images over 2 minutes of raw data on the full
  65 x 65 chip (a 20 GB ``.cmcr``).  Ten such raw files do not fit on a
  benchmark machine's disk, so the recordings share one generated recording
  through hard links (each recording has its own names and its own output);
  the inputs' pages are evicted before every recording, so each reads its raw
  data from the disk as a distinct file would.  A recording's outputs of the
  previous round are deleted before the next round of its mode (untimed).

``--inputs DIR`` (or ``H5STREAM_BATCH_TARGET_INPUTS``) reuses the full recording
``benchmarks.suite.bench_lab_shape`` generated in ``DIR`` (the same generator call and
seed; its stamp ``lab.json`` must name the size ``full`` at scale 1) instead of
generating one (about 4 minutes and 27 GB): the recordings are hard links to its
files, and nothing is written into ``DIR``.

The recording count and round count can be scaled down for a trial:
``python -m benchmarks.suite.bench_batch_target full --recordings 2 --rounds 1`` (or
``H5STREAM_BATCH_TARGET_RECORDINGS=2`` under ``python -m benchmarks``).  The
details give, per step and mode, the mean wall and CPU seconds per recording and
the bytes read and written (``/proc/self/io``), so a lost ratio can be traced to
a step, its I/O or its memory.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.harness import (
    Row,
    busy_core,
    drop_page_cache,
    interleave,
    require_free_space,
    scratch_dir,
    timed_row,
)

N_RECORDINGS = 10
#: deferred is at least this many times faster than immediate
GOAL = 1.25
#: environment variable that scales the recording count (a trial of the full size)
RECORDINGS_VARIABLE = "H5STREAM_BATCH_TARGET_RECORDINGS"
#: environment variable naming a folder whose generated recording a shared size reuses (see ``--inputs``)
INPUTS_VARIABLE = "H5STREAM_BATCH_TARGET_INPUTS"

SIZES = {
    # tiny recordings: the steps' own work is small, so per-step file commits dominate
    "small": dict(config="tiny", overrides=dict(raw_seconds=0.2), rounds=1, shared=False, output_bytes=64 << 20),
    # a lab's recording: 310 units (10 silent), 30 min (15-min dense noise at 15 Hz, 2 step
    # movies of 44 trials), 2 min of raw data of the full chip; 2 rounds (each side's round
    # lasts well over a minute)
    "full": dict(config="moderate", overrides=dict(n_units=310, n_silent_units=10, noise_images=13_500,
                                                   step_repeats=44, raw_seconds=120.0),
                 rounds=2, shared=True, output_bytes=5 << 28),
}

STEPS = ("load + electrical images", "section times", "section spikes", "STA", "features", "save")


def _config(size: str):
    from hdmea.stimulus import TrialConfig
    from hdmea.synthetic import SyntheticConfig

    p = SIZES[size]
    overrides = dict(p["overrides"])
    repeats = overrides.pop("step_repeats", None)
    cfg = getattr(SyntheticConfig, p["config"])(**overrides)
    if repeats is not None:
        cfg = dataclasses.replace(cfg, step_trial=dataclasses.replace(cfg.step_trial, repeat=repeats))
        assert isinstance(cfg.step_trial, TrialConfig)
    return cfg


@dataclasses.dataclass
class StepCost:
    """What one step cost, summed over the recordings of a round."""

    wall: float = 0.0
    cpu: float = 0.0
    read_bytes: int = 0
    write_bytes: int = 0
    syscw: int = 0

    def add(self, other: "StepCost") -> None:
        self.wall += other.wall
        self.cpu += other.cpu
        self.read_bytes += other.read_bytes
        self.write_bytes += other.write_bytes
        self.syscw += other.syscw


def _io() -> dict[str, int]:
    """This process's I/O counters (``/proc/self/io``; empty where there is none)."""
    try:
        with open("/proc/self/io", encoding="ascii") as fh:
            return {k: int(v) for k, v in (line.split(": ") for line in fh)}
    except OSError:
        return {}


class StepClock:
    """Times each step of a recording: wall, CPU of the process (all threads), disk bytes."""

    def __init__(self) -> None:
        self.steps: dict[str, StepCost] = {}

    def run(self, name: str, fn: Callable[[], object]) -> object:
        io0, t0, c0 = _io(), time.perf_counter(), time.process_time()
        result = fn()
        c1, t1, io1 = time.process_time(), time.perf_counter(), _io()
        cost = StepCost(t1 - t0, c1 - c0, io1.get("read_bytes", 0) - io0.get("read_bytes", 0),
                        io1.get("write_bytes", 0) - io0.get("write_bytes", 0),
                        io1.get("syscw", 0) - io0.get("syscw", 0))
        self.steps.setdefault(name, StepCost()).add(cost)
        return result


def run_immediate(rec, out: Path, clock: StepClock | None = None) -> Path:
    from hdmea.pipeline import (add_section_time, compute_sta, extract_features, load_recording_with_eimage_sta,
                                section_spike_times)

    clock = clock or StepClock()
    h5 = out / f"{rec.cmcr_path.stem}.h5"
    clock.run(STEPS[0], lambda: load_recording_with_eimage_sta(rec.cmcr_path, rec.cmtr_path, output_path=h5))
    clock.run(STEPS[1], lambda: add_section_time(h5, rec.stimulus_path))
    clock.run(STEPS[2], lambda: section_spike_times(h5))
    clock.run(STEPS[3], lambda: compute_sta(h5))
    clock.run(STEPS[4], lambda: extract_features(h5))
    return h5


def run_deferred(rec, out: Path, clock: StepClock | None = None) -> Path:
    from hdmea.pipeline import (add_section_time, compute_sta, create_session, extract_features,
                                load_recording_with_eimage_sta, section_spike_times)

    clock = clock or StepClock()
    h5 = out / f"{rec.cmcr_path.stem}.h5"
    session = create_session(rec.cmcr_path.stem, hdf5_path=h5)
    clock.run(STEPS[0], lambda: load_recording_with_eimage_sta(rec.cmcr_path, rec.cmtr_path, session=session))
    clock.run(STEPS[1], lambda: add_section_time(None, rec.stimulus_path, session=session))
    clock.run(STEPS[2], lambda: section_spike_times(session=session))
    clock.run(STEPS[3], lambda: compute_sta(session=session))
    clock.run(STEPS[4], lambda: extract_features(session=session))
    clock.run(STEPS[5], lambda: session.save(h5))
    return h5


@dataclasses.dataclass(frozen=True)
class Inputs:
    """One recording's input files, named for it (``cmcr_path``, ``cmtr_path``, ``stimulus_path``)."""

    cmcr_path: Path
    cmtr_path: Path
    stimulus_path: Path


def generate(size: str, where: Path, n: int = N_RECORDINGS, base: Inputs | None = None) -> list:
    """The recordings of a size: distinct ones (small), or one shared by hard links (full); ``base``: a
    recording of the size generated before (see :func:`reused_base`), linked instead of generating one."""
    from hdmea.synthetic import generate_recording

    cfg = _config(size)
    if not SIZES[size]["shared"]:
        if base is not None:
            raise ValueError(f"size {size!r} generates a distinct recording per name; it cannot reuse {base.cmcr_path}")
        return [generate_recording(where, f"rec{i:02d}", config=cfg, seed=i) for i in range(n)]
    if base is None:
        base = generate_recording(where / "base", "base", config=cfg, seed=0)
    where.mkdir(parents=True, exist_ok=True)
    recordings = []
    for i in range(n):
        name = f"rec{i:02d}"
        paths = Inputs(where / f"{name}.cmcr", where / f"{name}.cmtr", where / f"{name}.stimulus.json")
        _link(base.cmcr_path, paths.cmcr_path)
        _link(base.cmtr_path, paths.cmtr_path)
        shutil.copyfile(base.stimulus_path, paths.stimulus_path)
        recordings.append(paths)
    return recordings


def _link(source: Path, name: Path) -> None:
    """``name`` for the file ``source``: a hard link, or a symbolic one across file systems."""
    try:
        os.link(source, name)
    except OSError:
        os.symlink(Path(source).resolve(), name)


#: the stamp and the name of the recording benchmarks.suite.bench_lab_shape generates (see its ``inputs``)
REUSED_NAME = "lab"
REUSED_STAMP = f"{REUSED_NAME}.json"


def stamp_text(size: str, scale: float = 1.0) -> dict:
    """What the stamp of a generated recording of ``size`` at ``scale`` says (its generator call: seed 0)."""
    return {"size": size, "scale": scale, "seed": 0}


def reused_base(size: str, folder: Path) -> Inputs:
    """The recording of ``size`` that ``benchmarks.suite.bench_lab_shape`` generated in ``folder`` (the same
    call as :func:`generate`'s base: this size's config, seed 0), checked by its stamp; read only."""
    folder = Path(folder)
    stamp = folder / REUSED_STAMP
    base = Inputs(folder / f"{REUSED_NAME}.cmcr", folder / f"{REUSED_NAME}.cmtr",
                  folder / f"{REUSED_NAME}.stimulus.json")
    if not SIZES[size]["shared"]:
        raise ValueError(f"--inputs {folder}: size {size!r} generates a distinct recording per name, so it "
                         f"reuses none (only a shared size does)")
    missing = [p.name for p in (stamp, base.cmcr_path, base.cmtr_path, base.stimulus_path) if not p.exists()]
    if missing:
        raise FileNotFoundError(f"--inputs {folder}: expected a recording generated by benchmarks.suite.bench_lab_shape "
                                f"({REUSED_STAMP} and {REUSED_NAME}.cmcr/.cmtr/.stimulus.json), found no "
                                + ", ".join(missing))
    wanted = stamp_text(size)
    found = json.loads(stamp.read_text())
    if found != wanted:
        raise ValueError(f"--inputs {folder}: expected {stamp.name} to say {wanted} (this size's recording), "
                         f"found {found}")
    return base


#: raw sensor data of the full chip: 65 x 65 sensors of 2 bytes per sample
CHIP_SENSORS = 65 * 65


def space_needed(size: str, n: int, reused: bool = False) -> int:
    """Bytes a run needs on the scratch disk at its peak, with a margin: the shared raw file (the full
    chip over ``raw_seconds``; none when ``reused``), its sorter file (at most 40% of it here), and both
    modes' outputs of every recording (at most the size's ``output_bytes`` each), plus a tenth."""
    cfg = _config(size)
    raw = int(cfg.sampling_rate * cfg.raw_seconds) * CHIP_SENSORS * 2
    copies = 0 if reused else 1 if SIZES[size]["shared"] else n
    return int((copies * raw * 1.4 + n * 2 * SIZES[size]["output_bytes"]) * 1.1)


def check_free_space(size: str, n: int, where: Path, reused: bool = False) -> None:
    """Refuse a run the scratch disk cannot hold, in a second rather than after an hour of work."""
    require_free_space(where, space_needed(size, n, reused), f"batch target at size {size!r} with {n} recordings",
                       "pass --recordings N")


def _recordings_count(recordings: int | None) -> int:
    if recordings is not None:
        return recordings
    text = os.environ.get(RECORDINGS_VARIABLE)
    if not text:
        return N_RECORDINGS
    try:
        n = int(text)
    except ValueError:
        raise ValueError(f"{RECORDINGS_VARIABLE} must be a whole number of recordings, found {text!r}") from None
    if n < 1:
        raise ValueError(f"{RECORDINGS_VARIABLE} must be at least 1, found {n}")
    return n


def _breakdown(clocks: dict[str, list[StepClock]], n: int) -> str:
    """Mean per recording of each step, both modes: wall / CPU seconds, MB read / written, write calls."""
    parts = []
    for step in STEPS:
        sides = []
        for mode in [m for m in ("immediate", "deferred") if m in clocks]:
            costs = [c.steps[step] for c in clocks[mode] if step in c.steps]
            if not costs:
                continue
            k = len(costs) * n
            sides.append(f"{mode[:3]} {sum(c.wall for c in costs) / k:.2f}/{sum(c.cpu for c in costs) / k:.2f} s "
                         f"r{sum(c.read_bytes for c in costs) / k / 1e6:.0f} w{sum(c.write_bytes for c in costs) / k / 1e6:.0f} MB "
                         f"{sum(c.syscw for c in costs) / k:.0f} writes")
        parts.append(f"{step}: " + ", ".join(sides))
    return "per recording, wall/CPU, MB read/written: " + "; ".join(parts)


def run(size: str = "small", *, recordings: int | None = None, rounds: int | None = None,
        busy: bool = False, inputs_dir: str | os.PathLike | None = None) -> list[Row]:
    """The row of ``size``; ``recordings``/``rounds`` scale a trial down, ``busy`` keeps one core busy,
    ``inputs_dir`` reuses a recording generated there (see :func:`reused_base`)."""
    p = SIZES[size]
    n = _recordings_count(recordings)
    inputs_dir = inputs_dir or os.environ.get(INPUTS_VARIABLE) or None
    base = reused_base(size, Path(inputs_dir)) if inputs_dir else None
    with scratch_dir() as tmp:
        tmp = Path(tmp)
        check_free_space(size, n, tmp, reused=base is not None)
        t0 = time.perf_counter()
        made_inputs = generate(size, tmp / "inputs", n, base)
        generated = time.perf_counter() - t0
        # compile the kernels and warm the imports outside the timed runs (a small recording)
        warm = tmp / "warm"
        warm.mkdir()
        run_deferred(generate("small", tmp / "warm-inputs", 1)[0], warm)
        outputs: dict[str, list[Path]] = {}
        clocks: dict[str, list[StepClock]] = {"immediate": [], "deferred": []}
        made = {"immediate": 0, "deferred": 0}
        cold = p["shared"]

        def fresh(mode: str) -> Callable[[], None]:
            def setup() -> None:
                old = tmp / f"{mode}{made[mode] - 1}"
                if old.exists():  # the previous round's outputs: only the last round's are compared
                    shutil.rmtree(old)
            return setup

        def side(mode: str) -> Callable[[], float]:
            fn = run_immediate if mode == "immediate" else run_deferred

            def go() -> float:
                out = tmp / f"{mode}{made[mode]}"
                made[mode] += 1
                out.mkdir()
                clock = StepClock()
                seconds = 0.0
                done = []
                for rec in made_inputs:
                    if cold:  # the shared inputs are read from the disk, as distinct files would be
                        drop_page_cache(rec.cmcr_path)
                        drop_page_cache(rec.cmtr_path)
                    t = time.perf_counter()
                    done.append(fn(rec, out, clock))
                    seconds += time.perf_counter() - t
                outputs[mode] = done
                clocks[mode].append(clock)
                # a long run's figures are kept on stderr as they come, whatever happens later
                print(f"[batch target] {mode} round {made[mode]}: {seconds:.2f} s; "
                      + _breakdown({mode: [clock]}, len(made_inputs)), file=sys.stderr, flush=True)
                return seconds
            return go

        sides = {"immediate": side("immediate"), "deferred": side("deferred")}
        setups = {mode: fresh(mode) for mode in sides}
        rounds = p["rounds"] if rounds is None else rounds
        if busy:
            with busy_core():
                t = interleave(sides, rounds, setup=setups, self_timed=True)
        else:
            t = interleave(sides, rounds, setup=setups, self_timed=True)
        try:
            from tests.filecompare import compare_files

            differences = sum(len(compare_files(a, b)) for a, b in zip(outputs["immediate"], outputs["deferred"]))
            equal = f"files equal: {differences == 0}" + (f" ({differences} differences)" if differences else "")
        except Exception as exc:  # noqa: BLE001 - the timings stand; the comparison's failure is reported
            equal = f"files equal: not known (the comparison failed: {type(exc).__name__}: {exc})"
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        output_mb = sum(f.stat().st_size for f in outputs["deferred"]) / n / 1e6
    imm, dfr = t["immediate"], t["deferred"]
    label = "lab-shaped (310 units, 30 min, 2 min full-chip raw)" if size == "full" else SIZES[size]["config"]
    return [timed_row(
        f"batch of {n} {label} recordings, whole pipeline" + (", one core busy" if busy else ""),
        "immediate (commit after every step)", imm, dfr, GOAL,
        f"deferred {100 * (1 - dfr.min / imm.min):.0f}% faster by minima, "
        f"{100 * (1 - dfr.median / imm.median):.0f}% by medians; immediate s: {[round(x, 2) for x in imm.rounds]}; "
        f"deferred s: {[round(x, 2) for x in dfr.rounds]}; {equal}"
        + f"; {_breakdown(clocks, n)}; output {output_mb:.0f} MB per recording; peak resident "
        f"{peak:.0f} MB; "
        + (f"inputs reused ({base.cmcr_path.parent})" if base is not None else f"inputs generated in {generated:.0f} s")
        + ("; inputs shared by hard links, their pages evicted before each recording" if cold else ""),
    )]


def test_batch_target_small_runs_and_both_modes_write_equal_files(tmp_path):
    from tests.filecompare import assert_files_equal

    recordings = generate("small", tmp_path / "inputs", n=2)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for rec in recordings:
        clock = StepClock()
        assert_files_equal(run_immediate(rec, tmp_path / "a"), run_deferred(rec, tmp_path / "b", clock))
        assert list(clock.steps) == list(STEPS)
        assert all(c.wall > 0 and c.cpu >= 0 for c in clock.steps.values())


def test_a_run_the_disk_cannot_hold_is_refused_before_any_work(tmp_path, monkeypatch):
    import collections

    import pytest

    usage = collections.namedtuple("usage", "total used free")
    needed = space_needed("full", 10)
    # the full size: one 20 GB raw file shared by hard links, outputs of both modes for 10 recordings
    assert 40 * 2**30 < needed < 64 * 2**30
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(needed * 2, 0, needed - 1))
    with pytest.raises(OSError, match=r"needs about .* GiB in .*found .* GiB free"):
        check_free_space("full", 10, tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(needed * 2, 0, needed))
    check_free_space("full", 10, tmp_path)


def test_full_size_shape_and_shared_inputs(tmp_path, monkeypatch):
    """The full size is a lab's recording; shared inputs are hard links under each recording's names."""
    cfg = _config("full")
    units = cfg.n_units - cfg.n_silent_units
    length_s = (cfg.lead_in_s + cfg.tail_s + (2 * cfg.step_movie_length + cfg.noise_movie_length
                                              + 3 * (cfg.pre_margin_frames + cfg.post_margin_frames))
                / cfg.display_rate)
    assert units >= 300 and 29.5 * 60 <= length_s <= 30.5 * 60
    assert cfg.noise_movie_length / cfg.display_rate == 15 * 60 and cfg.raw_seconds == 120
    assert cfg.sensor_regions is None  # the full 65 x 65 chip
    # a scaled-down trial of the shared layout: one generated recording under two names
    monkeypatch.setitem(SIZES, "trial", dict(SIZES["small"], shared=True))
    made = generate("trial", tmp_path / "inputs", n=2)
    assert [r.cmcr_path.name for r in made] == ["rec00.cmcr", "rec01.cmcr"]
    assert os.path.samefile(made[0].cmcr_path, made[1].cmcr_path)
    assert os.path.samefile(made[0].cmtr_path, made[1].cmtr_path)
    monkeypatch.setenv(RECORDINGS_VARIABLE, "3")
    assert _recordings_count(None) == 3 and _recordings_count(2) == 2
    monkeypatch.setenv(RECORDINGS_VARIABLE, "0")
    import pytest

    with pytest.raises(ValueError, match=RECORDINGS_VARIABLE):
        _recordings_count(None)


def test_a_reused_recording_is_linked_and_a_folder_without_its_stamp_refused(tmp_path, monkeypatch):
    import pytest

    monkeypatch.setitem(SIZES, "trial", dict(SIZES["small"], shared=True))
    folder = tmp_path / "made"
    folder.mkdir()
    for ext in ("cmcr", "cmtr", "stimulus.json"):
        (folder / f"{REUSED_NAME}.{ext}").write_bytes(ext.encode())
    with pytest.raises(FileNotFoundError, match=r"lab\.json"):
        reused_base("trial", folder)
    (folder / REUSED_STAMP).write_text(json.dumps({"size": "trial", "scale": 0.5, "seed": 0}))
    with pytest.raises(ValueError, match=r"expected lab\.json to say .*found .*0\.5"):
        reused_base("trial", folder)
    (folder / REUSED_STAMP).write_text(json.dumps({"size": "trial", "scale": 1.0, "seed": 0}))
    base = reused_base("trial", folder)
    made = generate("trial", tmp_path / "inputs", n=2, base=base)
    assert [r.cmcr_path.name for r in made] == ["rec00.cmcr", "rec01.cmcr"]
    assert all(os.path.samefile(r.cmtr_path, base.cmtr_path) for r in made)
    assert made[1].stimulus_path.read_bytes() == b"stimulus.json"
    assert sorted(p.name for p in folder.iterdir()) == ["lab.cmcr", "lab.cmtr", "lab.json", "lab.stimulus.json"]
    with pytest.raises(ValueError, match="distinct recording"):
        reused_base("small", folder)
    # the disk needs no room for the raw file it reuses
    assert space_needed("full", 3, reused=True) < space_needed("full", 3) - 20 * 2**30


def main(argv: list[str] | None = None) -> None:
    """``python -m benchmarks.suite.bench_batch_target [small|full] [--recordings N] [--rounds N] [--busy-core]
    [--inputs DIR]``."""
    from benchmarks.harness import main as table_main

    parser = argparse.ArgumentParser(prog="python -m benchmarks.suite.bench_batch_target")
    parser.add_argument("size", nargs="?", default="small", choices=list(SIZES))
    parser.add_argument("--recordings", type=int, help=f"recordings per round (default {N_RECORDINGS})")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default: the size's)")
    parser.add_argument("--busy-core", action="store_true", help="keep one core busy with a spinning process")
    parser.add_argument("--inputs", help="reuse the full recording benchmarks.suite.bench_lab_shape generated in this "
                                         "folder (read only) instead of generating one")
    args = parser.parse_args(argv)
    table_main(lambda size: run(size, recordings=args.recordings, rounds=args.rounds, busy=args.busy_core,
                                inputs_dir=args.inputs), args.size)


if __name__ == "__main__":
    main()

"""A lab-shaped recording's first two steps against an uncached read of their inputs.

``load_recording`` and then ``compute_eimage_sta`` of one recording, in a
deferred session and with the parameters the batch target runs them with
(``hdmea.pipeline.load_recording_with_eimage_sta``: 120 s of raw data, at most
10 000 spikes per unit, window (-10, 40), 100 Hz high-pass of order 2), against
the disk's limit: ``dd iflag=direct`` reading the ``.cmcr`` and then the
``.cmtr`` sequentially (``O_DIRECT``: no page-cache copy).  The two steps read
nothing but these two files, so the ratio (ours / read, lower is better) says
how far from the disk they are.  Both sides run in interleaved rounds with the
two files' pages dropped first (``posix_fadvise DONTNEED``); ours runs in a
fresh subprocess (after an untimed warm-up on a small recording that loads the
compiled kernels), which also gives its peak resident memory.

Sizes (the inputs come from the batch target's generator,
``benchmarks.suite.bench_batch_target``):

* ``full``: the lab's shape, 310 units (300 firing), 30 minutes, 2 minutes of
  raw data of the full 65 x 65 chip: a 20.6 GB ``.cmcr`` and a 6.1 GB ``.cmtr``;
* ``small``: the batch target's small recording (seconds; the suite runs it).

``--scale F`` (or ``H5STREAM_LAB_SHAPE_SCALE``) scales the raw seconds and the
unit count of a size for a trial.  ``--inputs DIR`` (or
``H5STREAM_LAB_SHAPE_INPUTS``) keeps the generated recording in ``DIR`` and
reuses it on the next run (a stamp ``lab.json`` names the size and scale it was
made for): the full inputs take about ten minutes to write.

Beside the peer, each round also reads both files with ``O_DIRECT`` and 16 requests of 4 MiB in
flight (:func:`parallel_read_seconds`): ``dd`` keeps one request in flight, and on a disk that serves
parallel requests faster (this machine's: 2.2-3.1 GB/s against dd's 1.0-1.4 GB/s at the same hour),
that read says how near the disk's own limit ours is.  It is a reference in the details, not the peer.

Rows: the ratio on a quiet machine (goal 1.10) and with one core kept busy by
another process (:class:`benchmarks.harness.busy_core`, goal 1.30), both
measured in the same run; the peak resident memory of ours (goal under 2 GB).
The details give each step's wall and CPU seconds, the bytes read from the disk
(``/proc/self/io``) and where the time went, counted inside the code by wrapping
its parts (:class:`~benchmarks.suite._lab_shape_parts.Counters`): opening the files, the ``Peaks`` reads and the
unit summaries of the load, the light reference, the frame times and order, and
the electrical images' reads; the electrical images' kernel reports its own split
(``h5stream.kernels.eimage.PROFILE``: seconds waiting for reads, in the kernel, and
its threads' CPU seconds filtering and accumulating).  A part's seconds are the wall time inside
its calls, summed over the threads that make them: parts that overlap in
different threads can sum past the step's wall time.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from benchmarks.harness import (
    Row,
    Timing,
    busy_core,
    drop_page_cache,
    interleave,
    is_noisy,
    require_free_space,
    scratch_dir,
)
from benchmarks.suite._lab_shape_parts import Counters, split_text
from benchmarks.suite.bench_batch_target import REUSED_NAME, REUSED_STAMP, stamp_text

#: ours / uncached read of the inputs, quiet and with one core busy (lower is better)
GOAL = 1.10
BUSY_GOAL = 1.30
#: peak resident memory of ours (MB)
MEMORY_GOAL_MB = 2048.0
SCALE_VARIABLE = "H5STREAM_LAB_SHAPE_SCALE"
INPUTS_VARIABLE = "H5STREAM_LAB_SHAPE_INPUTS"
NAME = REUSED_NAME  # the batch target reuses this recording (its --inputs)
#: rounds per variant (the runner's policy may ask for more)
ROUNDS = {"small": 1, "full": 3}
#: dd's block size for the peer's read
DD_BLOCK = "64M"
REPO = Path(__file__).resolve().parents[2]


def config(size: str, scale: float = 1.0):
    """The synthetic recording of a size (the batch target's), its raw seconds and units scaled."""
    from benchmarks.suite.bench_batch_target import _config

    cfg = _config(size)
    if scale != 1.0:
        units = max(2, round(cfg.n_units * scale))
        silent = min(cfg.n_silent_units, units - 1)
        cfg = dataclasses.replace(cfg, raw_seconds=cfg.raw_seconds * scale, n_units=units, n_silent_units=silent)
    return cfg


def _scale(scale: float | None) -> float:
    if scale is None:
        text = os.environ.get(SCALE_VARIABLE)
        if not text:
            return 1.0
        try:
            scale = float(text)
        except ValueError:
            raise ValueError(f"{SCALE_VARIABLE} must be a number, found {text!r}") from None
    if not 0 < scale <= 1:
        raise ValueError(f"the scale must lie in (0, 1], found {scale}")
    return float(scale)


@dataclasses.dataclass(frozen=True)
class Inputs:
    cmcr: Path
    cmtr: Path

    @property
    def nbytes(self) -> int:
        return self.cmcr.stat().st_size + self.cmtr.stat().st_size


def space_needed(size: str, scale: float = 1.0) -> int:
    """Bytes the inputs take with a margin: the raw data of the full chip, and the sorter file
    (at most 40% of it), plus a tenth."""
    from benchmarks.suite.bench_batch_target import CHIP_SENSORS

    cfg = config(size, scale)
    return int(cfg.sampling_rate * cfg.raw_seconds * CHIP_SENSORS * 2 * 1.4 * 1.1)


def inputs(size: str, where: Path, scale: float = 1.0) -> tuple[Inputs, float | None]:
    """The recording of ``size`` in ``where``: reused when its stamp names the same size and scale,
    else generated (seconds it took; None when reused)."""
    from hdmea.synthetic import generate_recording

    stamp = where / REUSED_STAMP
    made = Inputs(where / f"{NAME}.cmcr", where / f"{NAME}.cmtr")
    wanted = stamp_text(size, scale)
    if stamp.exists() and made.cmcr.exists() and made.cmtr.exists():
        if json.loads(stamp.read_text()) == wanted:
            return made, None
    where.mkdir(parents=True, exist_ok=True)
    stamp.unlink(missing_ok=True)
    for old in where.glob(f"{NAME}.*"):  # a stale recording first: the disk may not hold two
        old.unlink()
    require_free_space(where, space_needed(size, scale), f"lab-shape inputs at size {size!r}",
                       "pass --scale F (F < 1)")
    t0 = time.perf_counter()
    generate_recording(where, NAME, config=config(size, scale), seed=0)
    seconds = time.perf_counter() - t0
    stamp.write_text(json.dumps(wanted))
    return made, seconds


# -- ours: the two steps in a fresh process ---------------------------------------------------

def _io() -> dict[str, int]:
    try:
        with open("/proc/self/io", encoding="ascii") as fh:
            return {k: int(v) for k, v in (line.split(": ") for line in fh)}
    except OSError:
        return {}


def _peak_rss_mb() -> float:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def two_steps(cmcr: Path, cmtr: Path, session_dir: Path, counters: Counters | None = None) -> dict:
    """``load_recording`` and ``compute_eimage_sta`` of one recording as the batch target runs them
    (``load_recording_with_eimage_sta`` in a deferred session); each step's wall and CPU seconds and
    bytes read."""
    from hdmea.pipeline import create_session, load_recording_with_eimage_sta

    counters = counters or Counters()
    try:  # the electrical images' own split: read waits, and the kernel's filtering and accumulation
        from h5stream.kernels.eimage import PROFILE as profile
    except ImportError:
        profile = None
    if profile is not None:
        profile.reset()
    session = create_session(cmcr.stem, hdf5_path=session_dir / f"{cmcr.stem}.h5")
    steps: dict[str, dict] = {}
    marks = {}

    def mark(name):
        marks[name] = (time.perf_counter(), time.process_time(), _io())

    with counters.installed():
        import hdmea.steps.eimage as eimage_step
        import hdmea.steps.load as load_step

        counted_load, counted_eimage = load_step.load_recording, eimage_step.compute_eimage_sta
        # the steps are wrapped where they live and where the batch target's function looks them up (its
        # own module binds them at import)
        homes = [load_step, eimage_step, sys.modules[load_recording_with_eimage_sta.__module__]]

        def load(*args, **kwargs):
            mark("load0")
            try:
                return counted_load(*args, **kwargs)
            finally:
                mark("load1")

        def eimage(*args, **kwargs):
            mark("eimage0")
            try:
                return counted_eimage(*args, **kwargs)
            finally:
                mark("eimage1")

        wrapped = [(home, name, wrapper) for home in homes
                   for name, original, wrapper in (("load_recording", counted_load, load),
                                                   ("compute_eimage_sta", counted_eimage, eimage))
                   if home.__dict__.get(name) is original]
        for home, name, wrapper in wrapped:
            setattr(home, name, wrapper)
        try:
            mark("start")
            load_recording_with_eimage_sta(cmcr, cmtr, session=session)
            mark("end")
        finally:
            for home, name, _ in wrapped:
                setattr(home, name, counted_load if name == "load_recording" else counted_eimage)
    unseen = [step for step, name in (("load_recording", "load0"), ("compute_eimage_sta", "eimage0"))
              if name not in marks]
    if unseen:
        raise RuntimeError(f"load_recording_with_eimage_sta ({load_recording_with_eimage_sta.__module__}) ran "
                           f"without calling the wrapped step(s) {', '.join(unseen)}: the step is reached through a name "
                           f"this benchmark does not wrap; wrap it there")
    for step, (a, b) in {"load": ("load0", "load1"), "eimage": ("eimage0", "eimage1"),
                         "both": ("start", "end")}.items():
        (t0, c0, io0), (t1, c1, io1) = marks[a], marks[b]
        steps[step] = {"wall": t1 - t0, "cpu": c1 - c0,
                       "read_bytes": io1.get("read_bytes", 0) - io0.get("read_bytes", 0)}
    units = session.unit_ids() if hasattr(session, "unit_ids") else []
    return {"steps": steps, "parts": counters.parts, "missing": counters.missing, "units": len(units),
            "kernel": profile.snapshot() if profile is not None else None}


def _child() -> None:
    """The subprocess of one round of ours: warm up on the small recording, drop the inputs' pages,
    run the two steps, print the report as JSON."""
    import logging
    import tempfile
    import warnings

    logging.disable(logging.WARNING)
    warnings.simplefilter("ignore")
    args = json.loads(os.environ["LAB_SHAPE_ARGS"])
    with tempfile.TemporaryDirectory(dir=args["scratch"]) as tmp:
        two_steps(Path(args["warm_cmcr"]), Path(args["warm_cmtr"]), Path(tmp))
    cmcr, cmtr = Path(args["cmcr"]), Path(args["cmtr"])
    drop_page_cache(cmcr)
    drop_page_cache(cmtr)
    with tempfile.TemporaryDirectory(dir=args["scratch"]) as tmp:
        report = two_steps(cmcr, cmtr, Path(tmp))
    report["peak_rss_mb"] = _peak_rss_mb()
    print("__LAB_SHAPE__" + json.dumps(report), flush=True)


def run_ours(made: Inputs, warm: Inputs, scratch: Path) -> dict:
    """One round of ours in a fresh subprocess (its report: see :func:`two_steps`)."""
    args = {"cmcr": str(made.cmcr), "cmtr": str(made.cmtr), "warm_cmcr": str(warm.cmcr),
            "warm_cmtr": str(warm.cmtr), "scratch": str(scratch)}
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    done = subprocess.run([sys.executable, "-c", "from benchmarks.suite.bench_lab_shape import _child; _child()"],
                          env={**os.environ, "LAB_SHAPE_ARGS": json.dumps(args), "PYTHONPATH": path},
                          capture_output=True, text=True, check=False, timeout=3600)
    lines = [line for line in done.stdout.splitlines() if line.startswith("__LAB_SHAPE__")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"the lab-shape round failed (exit code {done.returncode}):\n{done.stderr[-4000:]}")
    return json.loads(lines[-1][len("__LAB_SHAPE__"):])


# -- the peer: the disk's sequential read of both files -----------------------------------------

def read_seconds(made: Inputs) -> tuple[float, float]:
    """(wall, CPU seconds of the readers) of ``dd iflag=direct`` reading the .cmcr then the .cmtr."""
    c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    for path in (made.cmcr, made.cmtr):
        subprocess.run(["dd", f"if={path}", "of=/dev/null", f"bs={DD_BLOCK}", "iflag=direct"],
                       check=True, capture_output=True)
    wall = time.perf_counter() - t0
    c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (c1.ru_utime + c1.ru_stime) - (c0.ru_utime + c0.ru_stime)


#: the disk's parallel read (a reference the details give beside the peer): requests in flight, bytes each
PARALLEL_DEPTH = 16
PARALLEL_PIECE = 4 * 2**20


def parallel_read_seconds(made: Inputs, depth: int = PARALLEL_DEPTH, piece: int = PARALLEL_PIECE) -> float:
    """Wall seconds of reading the .cmcr then the .cmtr with ``O_DIRECT``, ``depth`` requests of ``piece``
    bytes in flight (``dd`` keeps one in flight, which leaves a fast disk idle between requests); falls
    back to reads through the page cache where ``O_DIRECT`` is refused."""
    import concurrent.futures
    import mmap

    local = threading.local()
    buffers: list[mmap.mmap] = []  # one page-aligned buffer per reading thread, reused by its requests
    t0 = time.perf_counter()
    for path in (made.cmcr, made.cmtr):
        size = path.stat().st_size
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECT", 0))
        except OSError:
            fd = os.open(path, os.O_RDONLY)

        def read(offset: int) -> int:
            buffer = getattr(local, "buffer", None)
            if buffer is None:
                buffer = local.buffer = mmap.mmap(-1, piece)
                buffers.append(buffer)
            n = min(piece, size - offset)
            return os.preadv(fd, [memoryview(buffer)[: -(-n // 4096) * 4096]], offset)

        try:
            with concurrent.futures.ThreadPoolExecutor(depth) as pool:
                got = sum(pool.map(read, range(0, size, piece)))
        finally:
            os.close(fd)
        if got != size:
            raise RuntimeError(f"{path}: the parallel read got {got} bytes of {size}")
    wall = time.perf_counter() - t0
    for b in buffers:
        b.close()
    return wall


# -- the rows -------------------------------------------------------------------------------------

def _variant(made: Inputs, warm: Inputs, scratch: Path, rounds: int, busy: bool):
    reports: list[dict] = []
    peer_cpu: list[float] = []

    def ours() -> float:
        report = run_ours(made, warm, scratch)
        reports.append(report)
        return report["steps"]["both"]["wall"]

    def peer() -> float:
        wall, cpu = read_seconds(made)
        peer_cpu.append(cpu)
        return wall

    def drop() -> None:
        drop_page_cache(made.cmcr)
        drop_page_cache(made.cmtr)

    def parallel() -> float:
        return parallel_read_seconds(made)

    sides = {"read": peer, "ours": ours, "parallel": parallel}
    with busy_core() if busy else contextlib.nullcontext():
        t = interleave(sides, rounds, setup={"read": drop, "ours": drop, "parallel": drop}, self_timed=True)
    return t, reports, peer_cpu


def _parallel_text(made: Inputs, parallel: Timing | None, ours: Timing) -> str:
    """The disk's parallel read beside the peer's: its seconds, rate, and ours against it."""
    if parallel is None or not parallel.rounds:
        return ""
    return (f"the disk's parallel read ({PARALLEL_DEPTH} O_DIRECT requests of {PARALLEL_PIECE >> 20} MiB in "
            f"flight, a reference, not the peer) s {[round(x, 2) for x in parallel.rounds]} "
            f"({made.nbytes / parallel.min / 1e9:.2f} GB/s), ours / it {ours.min / parallel.min:.3f}; ")


def _ratio_row(label: str, made: Inputs, t: dict[str, Timing], reports: list[dict], peer_cpu: list[float],
               busy: bool, common: str) -> Row:
    peer, ours, parallel = t["read"], t["ours"], t.get("parallel")
    paired = statistics.median(o / p for o, p in zip(ours.rounds, peer.rounds))
    cpu = [r["steps"]["both"]["cpu"] for r in reports]
    read = [r["steps"]["both"]["read_bytes"] for r in reports]
    per_step = "; ".join(
        f"{step} wall s {[round(r['steps'][step]['wall'], 2) for r in reports]}, CPU s "
        f"{[round(r['steps'][step]['cpu'], 2) for r in reports]}" for step in ("load", "eimage"))
    details = (f"ours s {[round(x, 2) for x in ours.rounds]} (CPU s {[round(x, 2) for x in cpu]}, "
               f"{max(read) / 1e9:.2f} GB read from the disk); read s {[round(x, 2) for x in peer.rounds]} "
               f"(dd CPU s {[round(x, 2) for x in peer_cpu]}, {made.nbytes / 1e9:.2f} GB); median of the "
               f"rounds' own ratios {paired:.3f}; {_parallel_text(made, parallel, ours)}{per_step}; "
               f"{split_text(reports)}; {common}")
    return Row(
        benchmark=label + (", one core busy" if busy else ""),
        peer="uncached sequential read of both inputs (dd iflag=direct)",
        peer_value=peer.min, ours=ours.min, unit="s", ratio=ours.min / peer.min,
        goal=BUSY_GOAL if busy else GOAL, busy_goal=BUSY_GOAL, lower_is_better=True,
        peer_median=peer.median, ours_median=ours.median, rounds=min(len(peer.rounds), len(ours.rounds)),
        noisy=is_noisy(peer, ours), before=ours.before, after=ours.after, one_core_busy=busy, details=details,
    )


def run(size: str = "small", *, scale: float | None = None, inputs_dir: str | os.PathLike | None = None,
        rounds: int | None = None) -> list[Row]:
    """The rows of ``size``: the ratio quiet and with one core busy, and the peak memory."""
    scale = _scale(scale)
    inputs_dir = inputs_dir or os.environ.get(INPUTS_VARIABLE) or None
    rounds = ROUNDS[size] if rounds is None else rounds
    with scratch_dir() as tmp:
        tmp = Path(tmp)
        made, generated = inputs(size, Path(inputs_dir) if inputs_dir else tmp / "inputs", scale)
        # the warm-up recording (compiled kernels loaded before the timed part): the small one
        warm = made if size == "small" and scale == 1.0 else inputs("small", tmp / "warm", 1.0)[0]
        quiet, quiet_reports, quiet_cpu = _variant(made, warm, tmp, rounds, busy=False)
        busy, busy_reports, busy_cpu = _variant(made, warm, tmp, rounds, busy=True)
        cfg = config(size, scale)
        units = (quiet_reports or busy_reports)[0]["units"]
        common = (f"recording {cfg.n_units} units ({cfg.n_silent_units} silent), {cfg.raw_seconds:g} s raw of the "
                  f"{'full chip' if cfg.sensor_regions is None else 'chip regions'}; .cmcr "
                  f"{made.cmcr.stat().st_size / 1e9:.2f} GB, .cmtr {made.cmtr.stat().st_size / 1e9:.2f} GB; "
                  f"{units} units loaded; inputs "
                  + ("reused" if generated is None else f"generated in {generated:.0f} s")
                  + f" ({made.cmcr.parent})")
        label = (f"lab-shaped recording, load + electrical images / uncached read of the inputs"
                 if size == "full" and scale == 1.0 else
                 f"{size} recording (scale {scale:g}), load + electrical images / uncached read of the inputs")
        peaks = [r["peak_rss_mb"] for r in quiet_reports + busy_reports]
        return [
            _ratio_row(label, made, quiet, quiet_reports, quiet_cpu, False, common),
            _ratio_row(label, made, busy, busy_reports, busy_cpu, True, common),
            Row(
                benchmark=f"{label.split(',')[0]}, load + electrical images: peak resident memory",
                peer="limit", peer_value=MEMORY_GOAL_MB, ours=max(peaks), unit="MB",
                ratio=max(peaks) / MEMORY_GOAL_MB, goal=1.0, lower_is_better=True,
                details=f"peak resident MB of the fresh process per round {[round(p) for p in peaks]} "
                        f"(imports and the warm-up recording included)",
            ),
        ]


@pytest.mark.slow
def test_lab_shape_small_row_measures_both_variants_and_counts_the_parts(monkeypatch):
    """The small size runs both variants and its counters saw every part of both steps."""
    monkeypatch.delenv(INPUTS_VARIABLE, raising=False)
    monkeypatch.delenv(SCALE_VARIABLE, raising=False)
    quiet, busy, memory = run("small", rounds=1)
    assert quiet.lower_is_better and quiet.goal == GOAL and not quiet.one_core_busy
    assert busy.one_core_busy and busy.applied_goal == BUSY_GOAL
    assert quiet.ratio > 0 and busy.ratio > 0 and 0 < memory.ours < 4 * MEMORY_GOAL_MB
    for part in ("load: .cmtr units", "load: Peaks reads", "load: unit summaries", "load: light reference",
                 "load: frame times", "eimage: reads", "electrical-image kernel", "filtering", "accumulating"):
        assert f"{part} " in quiet.details, part
    assert "parts not found" not in quiet.details
    assert "the disk's parallel read" in quiet.details and "the disk's parallel read" in busy.details


def test_the_parallel_read_reads_every_byte_of_both_files(tmp_path):
    # sizes off the piece and the page, and smaller than one piece
    sizes = {"a.cmcr": 3 * PARALLEL_PIECE + 5000, "a.cmtr": 4097}
    for name, n in sizes.items():
        (tmp_path / name).write_bytes(os.urandom(n))
    made = Inputs(tmp_path / "a.cmcr", tmp_path / "a.cmtr")
    assert made.nbytes == sum(sizes.values())
    assert parallel_read_seconds(made, depth=3) > 0
    (tmp_path / "a.cmtr").write_bytes(b"")
    assert parallel_read_seconds(made, depth=2) > 0


def test_counters_time_every_call_and_restore_the_originals():
    import hdmea.io.cmtr as cmtr

    before = cmtr.CmtrFile.__dict__["read_units"]
    counters = Counters()
    with counters.installed():
        assert cmtr.CmtrFile.__dict__["read_units"] is not before
    assert cmtr.CmtrFile.__dict__["read_units"] is before
    slow = counters.timed("sleep", lambda s: time.sleep(s))
    slow(0.02)
    slow(0.01)
    assert counters.parts["sleep"]["calls"] == 2 and 0.03 <= counters.parts["sleep"]["seconds"] < 1.0


def test_reused_inputs_need_the_same_size_and_scale(tmp_path, monkeypatch):
    calls = []

    def fake_generate(where, name, *, config, seed):
        calls.append(config.raw_seconds)
        for ext in ("cmcr", "cmtr"):
            (Path(where) / f"{name}.{ext}").write_bytes(b"x")

    import hdmea.synthetic

    monkeypatch.setattr(hdmea.synthetic, "generate_recording", fake_generate)
    inputs("small", tmp_path, 1.0)
    assert inputs("small", tmp_path, 1.0)[1] is None and len(calls) == 1
    inputs("small", tmp_path, 0.5)
    assert calls == [config("small").raw_seconds, config("small").raw_seconds * 0.5]


def main(argv: list[str] | None = None) -> None:
    """``python -m benchmarks.suite.bench_lab_shape [small|full] [--scale F] [--inputs DIR] [--rounds N]``."""
    from benchmarks.harness import main as table_main

    parser = argparse.ArgumentParser(prog="python -m benchmarks.suite.bench_lab_shape")
    parser.add_argument("size", nargs="?", default="small", choices=list(ROUNDS))
    parser.add_argument("--scale", type=float, help="scale the raw seconds and the units (0 < F <= 1)")
    parser.add_argument("--inputs", help="keep the generated recording here and reuse it")
    parser.add_argument("--rounds", type=int, help="interleaved rounds per variant (default: the size's)")
    args = parser.parse_args(argv)
    table_main(lambda size: run(size, scale=args.scale, inputs_dir=args.inputs, rounds=args.rounds), args.size)


if __name__ == "__main__":
    main()

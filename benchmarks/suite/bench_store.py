"""Saving a recording: the store's writer against h5py written plainly and against pynwb.

1. A whole recording in the contract layout (units with spike trains and
   waveforms, 10 features per unit, stimulus, metadata, session info), ~3 million
   spikes over 20 minutes at 20 kHz, at 400 and at 4,000 units.  Ours: a
   :class:`PipelineSession` holding everything, timed over ``save()`` (partial
   file, fsync, rename).  Peer: a straightforward h5py writer of the same layout
   (one ``create_dataset`` per object, high-level attributes, default settings),
   fsynced.  Goal: 3x at 4,000 units.
2. The same spike trains as a pynwb Units table, both ways users write it: one
   ``add_unit`` per unit, and whole columns at once (flat spike times plus an
   index; no group per unit, so the floor for this layout).  Ours: a session of
   units holding only their spike trains.  Goals: 5x faster than per-unit, within
   2x of whole-column (ratio >= 0.5).
3. Memory-bounded save: sessions of 1, 2, 4 and 8 GB staged with a 512 MB
   budget, each in a fresh process (:mod:`benchmarks.suite._bounded_save`).
   ``run("huge")`` or ``H5STREAM_BENCH_HUGE=1`` adds a 50 GB session.

The recording and every writer of it, ours and the peers', are in :mod:`benchmarks.suite._store_writers`.
Every write is timed to durable bytes (fsync) on every side.

The cost of the end-to-end checksums is measured alongside (goal: under 5%):
the same save with checksums off (:func:`checksums_off`: no digests recorded,
no manifest written), and the load of the saved file (``PipelineSession.load``
and every unit's arrays) with and without ``verify``.  Both compare the
process's CPU time (the machine is shared: CPU time is steadier than wall time
under other load).  The save's cost is timed in on/off rounds of its own, as
many as the save row's: in the save row's rounds a plain-h5py save four times
as long, with its own page-cache churn, runs between the two sides (that
figure is still given in the save row).  A save shorter than
:data:`SHORT_ROUND_CPU` makes each round the mean of several saves per side
(as ``timeit`` repeats a short statement): one save of 0.3 s varies by more
than the cost it measures.  The cost rows' verdict is the median of each
round's own off/on ratio (:func:`~benchmarks.harness.paired_ratio`), over at
least :data:`COST_ROUNDS` rounds: both sides of a round run back to back, so a
change of the machine's load from one round to the next cancels in it.  The
load's rounds add up to at least :data:`LOAD_COST_CPU` CPU seconds per side
(17 rounds of the 400-unit load): a load of 3 s varies by as much as the cost it
measures.

That noise is still larger than the cost: two full runs gave the 400-unit
load +6.8% and +0.3%, its save -0.3% and +5.8%.  Where Valgrind is installed,
the 400-unit rows' verdict is therefore the number of instructions the save
and the load execute with and without checksums (:mod:`benchmarks.harness.instructions`:
callgrind counts only the saves and loads, not staging or imports; a count
moves by about 1% between rounds whatever the machine's load), and the CPU
figures are given beside it.  Counting runs the code about 60 times slower, so
the 4,000-unit rows keep their CPU verdict.
"""

from __future__ import annotations

import contextlib
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from benchmarks.harness import (
    Row,
    Timing,
    checksum_cost,
    checksums_off,
    is_noisy,
    paired_ratio,
    interleave,
    require_free_space,
    scratch_dir,
    timed_row,
)
from benchmarks.harness.instructions import InstructionCountError
from benchmarks.harness.instructions import available as instructions_available
from benchmarks.harness.instructions import cost as instruction_cost
from benchmarks.harness.instructions import spread as instruction_spread
from benchmarks.suite._bounded_save import BOUNDED, bounded_rows, bounded_sizes
from benchmarks.suite._store_writers import (
    FS,
    N_FEATURES,
    make_recording,
    stage_session,
    write_libhdf5_floor,
    write_nwb_columns,
    write_nwb_per_unit,
    write_plain_h5py,
)
from hdmea.pipeline import PipelineSession
SPIKES_TOTAL = {"small": 20_000, "full": 3_000_000}
UNIT_COUNTS = {"small": (20, 100), "full": (400, 4000)}
ROUNDS = {"small": 1, "full": 3}
#: on/off rounds of the checksums' cost (at least the size's rounds): a cost of a few percent
#: needs more pairs than a ratio of 3x
COST_ROUNDS = {"small": 1, "full": 9}
#: CPU seconds per side the load's on/off rounds add up to at least (more rounds for a short load)
LOAD_COST_CPU = {"small": 0.0, "full": 45.0}
MAX_LOAD_ROUNDS = 21
#: unit counts whose checksum cost is also counted in instructions under callgrind (when installed;
#: the verdict is then the count's): 10 minutes for the 400-unit recording, hours for 4,000 units
INSTRUCTION_UNITS = {"small": (), "full": (400,)}
#: counted rounds per side, save and load (a count varies by about 1% from round to round, the load's
#: by 0.2%; the load also runs once uncounted before its rounds)
INSTRUCTION_ROUNDS = (2, 1)


# --------------------------------------------------------------------------- measurements


def _remove(path: Path) -> None:
    if path.exists():
        path.unlink()


def _ours_side(rec: dict, path: Path, *, spikes_only: bool = False, checksums: bool = True,
               cpu: list[float] | None = None):
    """(save, setup) of our session: staging happens untimed before each round.

    ``cpu`` collects the CPU seconds of each save; ``checksums=False`` saves without them.
    """
    holder = {}

    def setup():
        _remove(path)
        holder["s"] = stage_session(rec, path, spikes_only=spikes_only)

    def save():
        start = time.process_time()
        with contextlib.nullcontext() if checksums else checksums_off():
            holder["s"].save()
        if cpu is not None:
            cpu.append(time.process_time() - start)

    return save, setup


def _load_side(path: Path, verify: bool, cpu: list[float]):
    """Load the saved recording and read every unit's arrays (checked against their digests with ``verify``)."""
    def load():
        start = time.process_time()
        session = PipelineSession.load(path, verify=verify)
        try:
            arrays = sum(len(unit) for unit in session.units.values())
        finally:
            session.close()
        cpu.append(time.process_time() - start)
        return arrays

    return load


def checksum_rows(n_units: int, path: Path, save_on: list[float], save_off: list[float], wall: dict[str, Timing],
                  rounds: int, repeat: int = 1, load_cpu: float = 0.0,
                  instructions: dict[str, list[int]] | None = None) -> list[Row]:
    """Rows of the checksums' cost: the save timed with (1), the load of its file timed here.

    The load takes at least ``rounds`` rounds, and more (up to :data:`MAX_LOAD_ROUNDS`) until each
    side has ``load_cpu`` CPU seconds in all, as an untimed first load says.  With
    ``instructions`` (:func:`checksum_instructions`) a row's verdict is its instruction count,
    and its CPU seconds are reported beside it.
    """
    load_on: list[float] = []
    load_off: list[float] = []
    if load_cpu > 0:
        first: list[float] = []
        _load_side(path, True, first)()  # untimed: also brings the file's pages in for both sides
        rounds = max(rounds, min(MAX_LOAD_ROUNDS, math.ceil(load_cpu / max(first[0], 1e-3))))
    load = interleave({"verify": _load_side(path, True, load_on), "no verify": _load_side(path, False, load_off)},
                      rounds)
    rows = []
    each = (f" (on/off rounds of their own{f', each the mean of {repeat} saves per side' if repeat > 1 else ''})")
    where = {"save": "in the save row's", "load": "in the same"}  # the rounds the wall figures come from
    for what, on, off, timings, peer in (
        ("save", save_on, save_off, (wall["ours"], wall["ours, no checksums"]), "same save, checksums off"),
        ("load", load_on, load_off, (load["verify"], load["no verify"]), "same load, verify=False"),
    ):
        cpu = (f"CPU {checksum_cost(on, off)}{each if what == 'save' else ''}; wall "
               f"{timings[0].min / timings[1].min - 1:+.1%} (min), "
               f"{timings[0].median / timings[1].median - 1:+.1%} (median) {where[what]} rounds")
        ir_on, ir_off = ((instructions.get(f"{what} on"), instructions.get(f"{what} off")) if instructions
                         else (None, None))
        if ir_on and ir_off:
            counted = (f"instructions {instruction_cost(ir_on, ir_off):+.2%} (fewest of {len(ir_on)} counted "
                       f"rounds per side under callgrind; a side's rounds differ by "
                       f"{instruction_spread(ir_on):.2%} and {instruction_spread(ir_off):.2%})")
            rows.append(Row(f"checksums on {what}, {n_units} units", peer, min(ir_off), min(ir_on),
                            "instructions", min(ir_off) / min(ir_on), 1 / 1.05,
                            peer_median=statistics.median(ir_off), ours_median=statistics.median(ir_on),
                            rounds=len(ir_on), noisy=False,
                            details=f"checksum cost on {what}: {counted}; {cpu}; ratio (the instruction counts' "
                                    f"off/on) >= {1 / 1.05:.3f} means under 5%",
                            before=timings[0].before, after=timings[0].after))
            continue
        rows.append(Row(f"checksums on {what}, {n_units} units", peer, min(off), min(on), "s CPU",
                        paired_ratio(off, on), 1 / 1.05, ratio_of="rounds", peer_median=statistics.median(off),
                        ours_median=statistics.median(on), rounds=len(on),
                        noisy=is_noisy(Timing(on), Timing(off)),
                        details=f"checksum cost on {what}: {cpu}; "
                                f"ratio (the median of the rounds' own off/on ratios) >= {1 / 1.05:.3f} "
                                f"means under 5%", before=timings[0].before,
                        after=timings[0].after))
    return rows


def _interleave_sides(sides: dict, rounds: int) -> dict[str, Timing]:
    """``sides``: name -> (call, setup); every side runs in the same interleaved rounds."""
    return interleave({k: v[0] for k, v in sides.items()}, rounds, setup={k: v[1] for k, v in sides.items()})


def _call_side(fn, path: Path):
    return fn, (lambda: _remove(path))


#: the checksums' save cost is timed over at least this many CPU seconds per round and side
SHORT_ROUND_CPU = 1.0
MAX_REPEAT = 8


def _repeated_cost_rounds(rec: dict, path: Path, bare_path: Path, rounds: int, repeat: int):
    """CPU seconds per save with and without checksums in interleaved rounds, each round the mean of
    ``repeat`` saves per side (each staged untimed before it)."""
    def side(target: Path, checksums: bool):
        cpu: list[float] = []
        save, setup = _ours_side(rec, target, checksums=checksums, cpu=cpu)

        def mean_cpu() -> float:
            del cpu[:]
            for _ in range(repeat):
                setup()
                save()
            return sum(cpu) / repeat

        return mean_cpu

    t = interleave({"on": side(path, True), "off": side(bare_path, False)}, rounds, self_timed=True)
    _remove(bare_path)
    return t["on"].rounds, t["off"].rounds


def counted_checksum_rounds(n_units: int, total_spikes: int, folder: str, save_rounds: int, load_rounds: int) -> None:
    """The checksums' save and load, on and off, as callgrind regions (run by :func:`checksum_instructions`).

    The same sides as the CPU rounds (:func:`_ours_side`, :func:`_load_side`), interleaved the
    same way; staging, imports and the first (warming) load run outside any region.
    """
    from benchmarks.harness.instructions import region

    def counted(label: str, call):
        def run():
            with region(label):
                return call()
        return run

    rec = make_recording(n_units, total_spikes)
    saved = Path(folder) / "on.h5"
    saves = {"on": _ours_side(rec, saved), "off": _ours_side(rec, Path(folder) / "off.h5", checksums=False)}
    _interleave_sides({f"save {k}": (counted(f"save {k}", save), setup) for k, (save, setup) in saves.items()},
                      save_rounds)
    _load_side(saved, True, [])()
    interleave({f"load {k}": counted(f"load {k}", _load_side(saved, verify, []))
                for k, verify in (("on", True), ("off", False))}, load_rounds)


def checksum_instructions(n_units: int, total_spikes: int, workdir: Path, save_rounds: int = 2,
                          load_rounds: int = 1) -> dict[str, list[int]]:
    """Instructions of the save with and without checksums, and of the load with and without ``verify``."""
    from benchmarks.harness.instructions import count

    with tempfile.TemporaryDirectory(prefix=f"instructions_{n_units}_", dir=workdir) as folder:
        return count(f"from benchmarks.suite.bench_store import counted_checksum_rounds\n"
                     f"counted_checksum_rounds({n_units}, {total_spikes}, {folder!r}, {save_rounds}, {load_rounds})")


def store_rows(size: str, workdir: Path) -> list[Row]:
    rows = []
    rounds = ROUNDS[size]
    for n_units in UNIT_COUNTS[size]:
        rec = make_recording(n_units, SPIKES_TOTAL[size])
        ours_path, plain_path = workdir / f"ours_{n_units}.h5", workdir / f"plain_{n_units}.h5"
        bare_path = workdir / f"ours_no_checksums_{n_units}.h5"
        save_on: list[float] = []
        save_off: list[float] = []
        t = _interleave_sides({"ours": _ours_side(rec, ours_path, cpu=save_on),
                               "plain": _call_side(lambda: write_plain_h5py(rec, plain_path), plain_path),
                               "ours, no checksums": _ours_side(rec, bare_path, checksums=False, cpu=save_off)},
                              rounds)
        ours, plain = t["ours"], t["plain"]
        note = (f"{n_units} units, {SPIKES_TOTAL[size]} spikes, {N_FEATURES} features/unit; checksum cost on save "
                f"in these rounds, a plain-h5py save between the two sides: CPU {checksum_cost(save_on, save_off)} "
                f"(the checksum rows' own rounds decide the cost)")
        rows.append(timed_row(f"save recording, {n_units} units", "h5py plain (create_dataset per object)",
                              plain, ours, 3.0 if n_units == max(UNIT_COUNTS[size]) else None, note))
        _remove(bare_path)
        # the cost figure in on/off rounds of their own; short saves: each round the mean of several
        repeat = max(1, min(MAX_REPEAT, math.ceil(SHORT_ROUND_CPU / min(save_off))))
        cost_rounds = max(len(save_off), COST_ROUNDS[size])
        save_on, save_off = _repeated_cost_rounds(rec, ours_path, bare_path, cost_rounds, repeat)
        counted = None
        if n_units in INSTRUCTION_UNITS[size] and instructions_available():
            try:
                counted = checksum_instructions(n_units, SPIKES_TOTAL[size], workdir, *INSTRUCTION_ROUNDS)
            except InstructionCountError as exc:  # the rows keep their CPU verdict, and say so
                print(f"  checksum instructions, {n_units} units, not counted: {exc}", file=sys.stderr)
        rows.extend(checksum_rows(n_units, ours_path, save_on, save_off, t, cost_rounds, repeat,
                                  LOAD_COST_CPU[size], counted))

        trains = [u["spike_times"] for u in rec["units"].values()]
        spikes_path = workdir / f"spikes_{n_units}.h5"
        columns_path = workdir / f"nwb_columns_{n_units}.nwb"
        per_unit_path = workdir / f"nwb_per_unit_{n_units}.nwb"
        floor_path = workdir / f"libhdf5_{n_units}.h5"
        by_unit = {uid: u["spike_times"] for uid, u in rec["units"].items()}
        # the per-unit pynwb peer is slow: it asks for one round (the runner's minimum still applies)
        t = _interleave_sides({
            "ours": _ours_side(rec, spikes_path, spikes_only=True),
            "columns": _call_side(lambda: write_nwb_columns(trains, columns_path), columns_path),
            "floor": _call_side(lambda: write_libhdf5_floor(by_unit, floor_path), floor_path),
        }, rounds)
        ours_spikes, columns, floor = t["ours"], t["columns"], t["floor"]
        t = _interleave_sides({
            "ours": _ours_side(rec, spikes_path, spikes_only=True),
            "per_unit": _call_side(lambda: write_nwb_per_unit(trains, per_unit_path), per_unit_path),
        }, 1)
        ours_once, per_unit = t["ours"], t["per_unit"]
        rows.append(timed_row(f"spike trains, {n_units} units", "pynwb add_unit per unit", per_unit,
                              ours_once, 5.0))
        rows.append(timed_row(f"spike trains, {n_units} units", "pynwb whole columns (floor)", columns,
                              ours_spikes, 0.5, "ratio >= 0.5 means within 2x"))
        rows.append(timed_row(f"spike trains, {n_units} units", "bare libhdf5 calls, same objects (layout floor)",
                              floor, ours_spikes, None,
                              f"the floor itself is {floor.min / columns.min:.1f}x pynwb's whole-column time: "
                              "one group, dataset and attribute per unit cost that much in libhdf5 alone"))
    return rows


def space_needed(size: str) -> int:
    """Bytes the run needs on the scratch disk at its peak, with a tenth more: the largest bounded
    session's spill file and its saved copy (each at most the session), plus 1 GB for the other rows."""
    return int((2 * max(bounded_sizes(size)) * 2**20 + 2**30) * 1.1)


def run(size: str = "small") -> list[Row]:
    """Rows of the three benchmarks at ``size`` ("small", "full" or "huge")."""
    with scratch_dir() as tmp:
        workdir = Path(tmp)
        require_free_space(workdir, space_needed(size), f"the store benchmark at size {size!r}")
        return store_rows("full" if size == "huge" else size, workdir) + bounded_rows(size, workdir)


# --------------------------------------------------------------------------- pytest


def _spike_trains_of(path: Path) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as f:
        return {uid: g["spike_times"][()] for uid, g in f["units"].items()}


def test_store_writers_agree(tmp_path):
    """Ours, plain h5py and both pynwb ways hold the same spike trains; the layouts match."""
    rec = make_recording(30, 20_000, seed=3)
    ours_path, plain_path = tmp_path / "ours.h5", tmp_path / "plain.h5"
    stage_session(rec, ours_path).save()
    write_plain_h5py(rec, plain_path)
    ours, plain = _spike_trains_of(ours_path), _spike_trains_of(plain_path)
    assert ours.keys() == plain.keys() == rec["units"].keys()
    for uid, unit in rec["units"].items():
        np.testing.assert_array_equal(ours[uid], unit["spike_times"])
        np.testing.assert_array_equal(plain[uid], unit["spike_times"])
    floor_path = tmp_path / "floor.h5"
    write_libhdf5_floor({uid: u["spike_times"] for uid, u in rec["units"].items()}, floor_path)
    floor = _spike_trains_of(floor_path)
    spikes_path = tmp_path / "spikes.h5"
    stage_session(rec, spikes_path, spikes_only=True).save()
    with h5py.File(spikes_path, "r") as a, h5py.File(floor_path, "r") as b:
        # The floor makes the same unit objects as a spikes-only session.
        for uid in rec["units"]:
            ga, gb = a[f"units/{uid}"], b[f"units/{uid}"]
            assert sorted(ga) == sorted(gb) == ["features", "spike_times"]
            assert dict(ga.attrs) == dict(gb.attrs) == {"spike_count": len(rec["units"][uid]["spike_times"])}
            np.testing.assert_array_equal(floor[uid], rec["units"][uid]["spike_times"])
    with h5py.File(ours_path, "r") as a, h5py.File(plain_path, "r") as b:
        for uid in ("unit_0000", "unit_0029"):
            assert sorted(a[f"units/{uid}/features"]) == sorted(b[f"units/{uid}/features"])
            fa, fb = a[f"units/{uid}/features/feature_03"], b[f"units/{uid}/features/feature_03"]
            np.testing.assert_array_equal(fa["response"][()], fb["response"][()])
            assert fa.attrs["peak"] == fb.attrs["peak"]
    trains = [u["spike_times"] for u in rec["units"].values()]
    from pynwb import NWBHDF5IO

    for writer in (write_nwb_per_unit, write_nwb_columns):
        path = tmp_path / f"{writer.__name__}.nwb"
        writer(trains, path)
        with NWBHDF5IO(str(path), "r") as io:
            units = io.read().units
            for i in (0, 17, 29):
                np.testing.assert_allclose(units["spike_times"][i], trains[i] / FS)


def test_bench_store_small():
    rows = run("small")
    assert len(rows) == 2 * 6 + 2 * len(BOUNDED["small"][0])
    for row in rows:
        assert row.ours > 0 and row.peer_value > 0 and np.isfinite(row.ratio)
    budget = BOUNDED["small"][1]
    assert all(r.ours <= budget + 300 for r in rows if r.unit == "MB")  # bounded, interpreter included


if __name__ == "__main__":  # python -m benchmarks.suite.bench_store [small|full]
    from benchmarks.harness import main

    main(run)


def test_a_run_the_disk_cannot_hold_is_refused_before_any_work(tmp_path, monkeypatch):
    import collections
    import shutil

    import pytest

    usage = collections.namedtuple("usage", "total used free")
    # full size: the 8 GB session spilled and saved; with the 50 GB session, twice that
    assert 16 * 2**30 < space_needed("full") < 20 * 2**30
    monkeypatch.setenv("H5STREAM_BENCH_HUGE", "1")
    assert 100 * 2**30 < space_needed("full") < 112 * 2**30
    monkeypatch.setenv("H5STREAM_BENCH_DIR", str(tmp_path))
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(2**50, 0, space_needed("full") - 1))
    called = []
    for rows in ("store_rows", "bounded_rows"):
        monkeypatch.setattr(sys.modules[__name__], rows, lambda *a, rows=rows: called.append(rows) or [])
    with pytest.raises(OSError, match=r"store benchmark at size 'full' needs about .* GiB in .*found .* GiB free"):
        run("full")
    assert called == []  # refused before the first row

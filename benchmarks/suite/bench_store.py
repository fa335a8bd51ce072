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
   budget, each in a fresh process: peak resident memory (should stay flat,
   goal budget + 300 MB) and throughput against the raw disk (``tofile`` +
   fsync of the same number of bytes).  ``run("huge")`` or ``H5STREAM_BENCH_HUGE=1``
   adds a 50 GB session.

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
round's own off/on ratio (:func:`~benchmarks._harness.paired_ratio`), over at
least :data:`COST_ROUNDS` rounds: both sides of a round run back to back, so a
change of the machine's load from one round to the next cancels in it.  The
load's rounds add up to at least :data:`LOAD_COST_CPU` CPU seconds per side
(17 rounds of the 400-unit load): a load of 3 s varies by as much as the cost it
measures.

That noise is still larger than the cost: two full runs gave the 400-unit
load +6.8% and +0.3%, its save -0.3% and +5.8%.  Where Valgrind is installed,
the 400-unit rows' verdict is therefore the number of instructions the save
and the load execute with and without checksums (:mod:`benchmarks._instructions`:
callgrind counts only the saves and loads, not staging or imports; a count
moves by about 1% between rounds whatever the machine's load), and the CPU
figures are given beside it.  Counting runs the code about 60 times slower, so
the 4,000-unit rows keep their CPU verdict.
"""

from __future__ import annotations

import contextlib
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from benchmarks._harness import (
    Row,
    Timing,
    checksum_cost,
    checksums_off,
    is_noisy,
    paired_ratio,
    fsync_file,
    interleave,
    peak_rss_mb,
    require_free_space,
    scratch_dir,
    timed_row,
)
from benchmarks._instructions import InstructionCountError
from benchmarks._instructions import available as instructions_available
from benchmarks._instructions import cost as instruction_cost
from benchmarks._instructions import spread as instruction_spread
from hdmea.pipeline import PipelineSession, create_session

FS = 20_000
DURATION_S = 20 * 60
N_FEATURES = 10
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
BOUNDED = {"small": ((32, 64), 8), "full": ((1024, 2048, 4096, 8192), 512)}  # (session MB, budget MB)
HUGE_MB = 50 * 1024
CHUNK_BYTES = 32 * 2**20  # one staged unit in the bounded benchmark


# --------------------------------------------------------------------------- data


def make_recording(n_units: int, total_spikes: int, seed: int = 0) -> dict:
    """Units, features, stimulus and metadata of a synthetic recording."""
    rng = np.random.default_rng(seed)
    rates = rng.lognormal(0.0, 1.0, n_units)
    counts = rng.multinomial(total_spikes, rates / rates.sum())
    samples = FS * DURATION_S
    units = {}
    for i, count in enumerate(counts):
        units[f"unit_{i:04d}"] = {
            "spike_times": np.sort(rng.integers(0, samples, count)).astype(np.uint64),
            "waveform": rng.normal(size=50).astype(np.float32),
            "row": int(i % 64), "col": int(i // 64), "global_id": i, "sensor_id": int(rng.integers(0, 4096)),
        }
    features = {}
    for uid in units:
        features[uid] = {
            f"feature_{j:02d}": {"response": rng.random(60), "peak": float(rng.random()), "latency": 0.05 * j}
            for j in range(N_FEATURES)
        }
    meta = {"version": "1.0", "params_hash": "0123456789abcdef", "extracted_at": "2026-01-01T00:00:00+00:00"}
    stimulus = {
        "light_reference": {"1khz": rng.random(DURATION_S * 1000).astype(np.float32)},
        "frame_times": {"default": np.arange(0, samples, FS // 60, dtype=np.uint64)},
        "section_times": {"step_up_5s_5i_3x": np.array([[0, 200_000], [400_000, 600_000]], dtype=np.uint64),
                          "dense_noise": np.array([[600_000, 4_200_000]], dtype=np.uint64)},
    }
    metadata = {"sampling_rate": float(FS), "n_channels": 4225, "operator": "lab",
                "sys_meta": {f"key_{k}": k * 1.5 for k in range(20)} | {"device": "MEA2100", "gain": 1000}}
    return {"units": units, "features": features, "feature_meta": meta, "stimulus": stimulus,
            "metadata": metadata}


# --------------------------------------------------------------------------- writers


def stage_session(rec: dict, path: Path, *, spikes_only: bool = False):
    """A session holding the recording (untimed setup of our save)."""
    s = create_session("bench", hdf5_path=path)
    if spikes_only:
        s.add_units({uid: {"spike_times": u["spike_times"]} for uid, u in rec["units"].items()})
        return s
    s.add_units(rec["units"])
    for uid, features in rec["features"].items():
        for name, data in features.items():
            s.add_feature(uid, name, data, rec["feature_meta"])
    st = rec["stimulus"]
    s.add_stimulus(st["light_reference"], st["frame_times"], st["section_times"])
    s.add_metadata(rec["metadata"])
    s.mark_step_complete("load_recording")
    s.mark_step_complete("extract_features")
    return s


def _plain_metadata(group: h5py.Group, mapping: dict) -> None:
    for key, value in mapping.items():
        if isinstance(value, dict):
            _plain_metadata(group.create_group(key), value)
        elif isinstance(value, str):
            group.create_dataset(key, data=[value], dtype=h5py.string_dtype())
        else:
            group.create_dataset(key, data=[value])


def write_plain_h5py(rec: dict, path: Path) -> None:
    """The same layout, written the straightforward way: one create_dataset per object, defaults."""
    with h5py.File(path, "w") as f:
        f.attrs["dataset_id"] = "bench"
        f.attrs["stage1_completed"] = True
        f.attrs["features_extracted"] = [f"feature_{j:02d}" for j in range(N_FEATURES)]
        units = f.create_group("units")
        for uid, u in rec["units"].items():
            g = units.create_group(uid)
            g.create_dataset("spike_times", data=u["spike_times"])
            g.create_dataset("waveform", data=u["waveform"])
            for key in ("row", "col", "global_id", "sensor_id"):
                g.attrs[key] = u[key]
            g.attrs["spike_count"] = len(u["spike_times"])
            features = g.create_group("features")
            for name, data in rec["features"][uid].items():
                fg = features.create_group(name)
                fg.create_dataset("response", data=data["response"])
                fg.attrs["peak"] = data["peak"]
                fg.attrs["latency"] = data["latency"]
                for key, value in rec["feature_meta"].items():
                    fg.attrs[key] = value
                fg.attrs["name"] = name
        stim = f.create_group("stimulus")
        st = rec["stimulus"]
        for group_name, key in (("light_reference", "light_reference"), ("frame_time", "frame_times"),
                                ("section_time", "section_times")):
            g = stim.create_group(group_name)
            for name, values in st[key].items():
                g.create_dataset(name, data=values)
        _plain_metadata(f.create_group("metadata"), rec["metadata"])
        info = f.create_group("pipeline/session_info")
        info.create_dataset("completed_steps", data=["load_recording", "extract_features"],
                            dtype=h5py.string_dtype())
        info.create_dataset("warnings", data=np.array([], dtype=object), dtype=h5py.string_dtype())
    fsync_file(path)


def _nwbfile():
    import datetime

    from pynwb import NWBFile

    return NWBFile(session_description="bench", identifier="bench",
                   session_start_time=datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc))


def write_nwb_per_unit(spike_trains: list[np.ndarray], path: Path) -> None:
    from pynwb import NWBHDF5IO

    nwb = _nwbfile()
    for spikes in spike_trains:
        nwb.add_unit(spike_times=spikes / FS)
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    fsync_file(path)


def write_nwb_columns(spike_trains: list[np.ndarray], path: Path) -> None:
    from hdmf.common import ElementIdentifiers, VectorData, VectorIndex
    from pynwb import NWBHDF5IO
    from pynwb.misc import Units

    flat = np.concatenate(spike_trains) / FS
    ends = np.cumsum([len(s) for s in spike_trains])
    times = VectorData(name="spike_times", description="spike times (s)", data=flat)
    index = VectorIndex(name="spike_times_index", data=ends, target=times)
    nwb = _nwbfile()
    nwb.units = Units(name="units", description="units", id=ElementIdentifiers(name="id", data=np.arange(len(ends))),
                      columns=[times, index])
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    fsync_file(path)


def write_libhdf5_floor(spike_trains: dict[str, np.ndarray], path: Path) -> None:
    """The units of the contract layout made by bare libhdf5 calls and nothing else.

    Per unit: its group, an empty ``features`` group, the ``spike_times``
    dataset (same layout and property lists as the store: compact up to
    16 KiB, contiguous above, no fill, no times) and a ``spike_count``
    attribute, through the same direct bindings, in the same file format, then
    fsync.  No staging, no checks, no encoding: what the HDF5 library alone
    costs for these objects, the floor of any writer of this layout.
    """
    from h5stream.tree.lowlevel import LIBVER, file_type, native_hdf5, plists

    native = native_hdf5()
    lists = plists()
    lcpl = lists.link
    scalar = h5py.h5s.create(h5py.h5s.SCALAR)
    count_type = file_type(np.dtype(np.int64))
    with h5py.File(path, "w", libver=LIBVER) as f:
        units = f.create_group("units")
        for uid, spikes in spike_trains.items():
            tid = file_type(spikes.dtype)
            gid = native.H5Gcreate2(units.id.id, uid.encode(), lcpl.id, 0, 0)
            native.H5Gclose(native.H5Gcreate2(gid, b"features", lcpl.id, 0, 0))
            space = h5py.h5s.create_simple(spikes.shape)
            dcpl = lists.dataset(spikes.nbytes)
            did = native.H5Dcreate2(gid, b"spike_times", tid.id, space.id, lcpl.id, dcpl.id, 0)
            if spikes.size:
                native.H5Dwrite(did, tid.id, 0, 0, 0, spikes.ctypes.data)
            native.H5Dclose(did)
            count = np.array(spikes.size, dtype=np.int64)
            aid = native.H5Acreate2(gid, b"spike_count", count_type.id, scalar.id, 0, 0)
            native.H5Awrite(aid, count_type.id, count.ctypes.data)
            native.H5Aclose(aid)
            native.H5Gclose(gid)
    fsync_file(path)


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
                        paired_ratio(off, on), 1 / 1.05, peer_median=statistics.median(off),
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
    from benchmarks._instructions import region

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
    from benchmarks._instructions import count

    with tempfile.TemporaryDirectory(prefix=f"instructions_{n_units}_", dir=workdir) as folder:
        return count(f"from benchmarks.bench_store import counted_checksum_rounds\n"
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


BOUNDED_CODE = """
import os, time
import numpy as np
from hdmea.pipeline import create_session

target = {target!r}
n_units = {n_units}
values_per_unit = {values_per_unit}
s = create_session("bounded", hdf5_path=target, memory_limit={budget})
base = np.arange(values_per_unit, dtype=np.uint64)
staging_s = 0.0
for i in range(n_units):
    spikes = base + np.uint64(i)  # fresh data per unit, made outside the timed calls
    t0 = time.perf_counter()
    s.add_units({{f"unit_{{i:05d}}": {{"spike_times": spikes, "row": i, "col": 0, "global_id": i}}}})
    staging_s += time.perf_counter() - t0
    del spikes
staged, spilled = s.staged_bytes, s.spilled_bytes
t0 = time.perf_counter()
s.save()
save_s = time.perf_counter() - t0
# VmHWM is this process's own high-water mark; ru_maxrss would also carry the launching
# process's peak across exec on Linux.
hwm_kb = [int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM")][0]
print(staging_s, save_s, staged, spilled, hwm_kb / 1024)
"""


def _raw_write_seconds(total: int, path: Path) -> float:
    """tofile + fsync of ``total`` bytes in 256 MB pieces: the disk's sequential write rate."""
    piece = np.arange(min(total, 256 * 2**20) // 8, dtype=np.uint64)
    start = time.perf_counter()
    with open(path, "wb") as fh:
        written = 0
        while written < total:
            piece.tofile(fh)
            written += piece.nbytes
        fh.flush()
        os.fsync(fh.fileno())
    return time.perf_counter() - start


def bounded_rows(size: str, workdir: Path) -> list[Row]:
    sizes_mb, budget_mb = bounded_sizes(size), BOUNDED["full" if size == "huge" else size][1]
    chunk = min(CHUNK_BYTES, sizes_mb[0] * 2**20 // 8)
    rows = []
    # the child imports what this run imports (the installed package, with its compiled kernels)
    import_path = os.pathsep.join(p for p in sys.path if p)
    for session_mb in sizes_mb:
        target = workdir / f"bounded_{session_mb}.h5"
        code = BOUNDED_CODE.format(target=str(target), n_units=session_mb * 2**20 // chunk,
                                   values_per_unit=chunk // 8, budget=budget_mb * 2**20)
        maxrss, out = peak_rss_mb(code, env={"PYTHONPATH": import_path})
        stage_s, save_s, staged, spilled, peak = out.split()
        peak = float(peak)
        total_s = float(stage_s) + float(save_s)
        with h5py.File(target, "r") as f:
            assert len(f["units"]) == session_mb * 2**20 // chunk
        _remove(target)
        raw_path = workdir / "raw.bin"
        raw_s = _raw_write_seconds(int(staged), raw_path)
        _remove(raw_path)
        ours_rate = int(staged) / total_s / 1e6
        raw_rate = int(staged) / raw_s / 1e6
        rows.append(Row(f"bounded save {session_mb} MB, budget {budget_mb} MB", "budget + 300 MB",
                        budget_mb + 300, peak, "MB", peak / (budget_mb + 300), 1.0, lower_is_better=True,
                        details=f"peak RSS (VmHWM) {peak:.0f} MB; ru_maxrss {maxrss:.0f} MB (includes the "
                                f"launching process's peak); spilled {int(spilled) / 2**20:.0f} MB"))
        rows.append(Row(f"bounded save {session_mb} MB throughput", "raw tofile + fsync", raw_rate, ours_rate,
                        "MB/s", ours_rate / raw_rate, None,
                        details=f"ours: add_units (spills past the budget) {float(stage_s):.2f} s + save "
                                f"{float(save_s):.2f} s, data generation excluded; raw {raw_s:.2f} s"))
    return rows


def bounded_sizes(size: str) -> tuple[int, ...]:
    """The sessions (MB) of the memory-bounded rows at ``size`` (the 50 GB one with "huge" or
    ``H5STREAM_BENCH_HUGE=1``)."""
    sizes_mb = BOUNDED["full" if size == "huge" else size][0]
    if size == "huge" or os.environ.get("H5STREAM_BENCH_HUGE") == "1":
        sizes_mb = (*sizes_mb, HUGE_MB)
    return sizes_mb


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


if __name__ == "__main__":  # python -m benchmarks.bench_store [small|full]
    from benchmarks._harness import main

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

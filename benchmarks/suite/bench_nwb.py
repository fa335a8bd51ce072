"""NWB export of a large recording against pynwb writing the same Units table from whole columns.

Recording: ``full`` 4,000 units and 20 M spikes (5,000 per unit, uint64 samples at
20 kHz), each unit with a 40-sample waveform, row/col/sensor id and two scalar
features; ``small`` 200 units and 1 M spikes.  Ours: :func:`hdmea.interop.nwb.export`
from the recording file to a new NWB file, durable on return (the atomic write
fsyncs); rows with gzip level 1 + shuffle (the default) and without compression.
Peer (the best case of pynwb alone): the flat spike times in seconds, the index and
the waveforms already in memory as whole numpy columns, one ``Units`` table built
from them, written uncompressed by ``NWBHDF5IO`` and fsynced.  Rounds interleave.
Goal: the export within 1.5 x the peer's time (ratio peer / ours >= 0.67).  The same peer
with the export's compression (spike times and waveforms through ``H5DataIO``, gzip 1 +
shuffle, 1 MiB chunks) is the like-for-like peer of the compressed export, with the same
goal.  Two more rows, without a goal, add to each peer its own reading of those columns
from the recording file with plain h5py (what the export has to read too), and one adds
to the uncompressed peer the least time found to read the units from our layout
(:func:`read_floor`): below the goal, the goal cannot be met from this layout.
The recording carries a complete checksum manifest (as a pipeline's output does) and the
export checks every value it reads against it (``verify=True``, the default).
Memory: the export's peak resident set in a fresh process (VmHWM), goal under 2 GB.
"""

from __future__ import annotations

import datetime as _dt
import os
import time
from pathlib import Path

import numpy as np

from benchmarks.harness import POLICY, Row, Timing, fsync_file, peak_rss_mb, scratch_dir, timed_row

SIZES_UNITS = {"small": (200, 1_000_000), "full": (4_000, 20_000_000)}
ROUNDS = {"small": 2, "full": 3}
FS = 20_000.0
TIME_GOAL = 1 / 1.5
MEMORY_LIMIT_MB = 2048.0


def make_recording(path: Path, n_units: int, n_spikes: int, seed: int = 0) -> None:
    """A recording file with ``n_units`` units sharing ``n_spikes`` spikes, written through the store."""
    from hdmea.io import hdf5_store as store

    rng = np.random.default_rng(seed)
    per_unit = n_spikes // n_units
    duration = int(FS * 1200)
    units = {}
    for k in range(n_units):
        spikes = np.sort(rng.integers(0, duration, per_unit, dtype=np.int64)).astype(np.uint64)
        sensor = int(rng.integers(1, 65 * 65 + 1))
        units[f"unit_{k:04d}"] = {
            "spike_times": spikes, "waveform": rng.normal(size=40).astype(np.float32),
            "row": (sensor - 1) % 65 + 1, "col": (sensor - 1) // 65 + 1, "sensor_id": sensor, "global_id": k + 1,
        }
    with store.create_recording_hdf5(path, "bench", overwrite=True) as f:
        store.write_units(f, units)
        store.write_metadata(f, {"sampling_rate": FS, "dataset_id": "bench"})
        for uid in units:
            store.write_feature_to_unit(f, uid, "rf_noise", {"centre_row": float(rng.random()),
                                                            "centre_col": float(rng.random()), "polarity": 1})
    _complete_manifest(path)


def _complete_manifest(path: Path) -> None:
    """Digests of every value in the file's checksum manifest, as a pipeline's output carries them.

    The export checks what it reads against them; the store's immediate-mode writers
    used here may leave objects out of the manifest, so they are digested by reading back.
    """
    import h5py

    from h5stream import checksums

    with h5py.File(path, "r") as f:
        manifest = checksums.read_manifest(f)
        complete = manifest is not None and all(f"/units/{u}/spike_times" in manifest.datasets for u in f["units"])
    if not complete:
        with h5py.File(path, "a") as f:
            recorder = checksums.Recorder(walk=True)
            if manifest is not None:
                recorder.seed(manifest)
            checksums.seal(f, recorder)


def _peer_columns(recording: Path) -> dict:
    """Flat spike times (s), index and waveforms as whole columns: what the peer starts from."""
    import h5py

    with h5py.File(recording, "r") as f:
        ids = sorted(f["units"])
        spikes = [f["units"][u]["spike_times"][()] for u in ids]
        waveforms = np.stack([f["units"][u]["waveform"][()] for u in ids])
    counts = np.fromiter((s.size for s in spikes), dtype=np.int64, count=len(spikes))
    return {"spike_times": np.concatenate(spikes) / FS, "index": np.cumsum(counts), "waveforms": waveforms,
            "ids": np.arange(len(ids))}


def write_peer(columns: dict, path: Path, compressed: bool = False) -> float:
    """Seconds for pynwb to build a Units table from whole columns and write it, fsynced.

    ``compressed``: spike times and waveforms through ``H5DataIO`` with gzip 1 + shuffle
    in chunks of about 1 MiB, as the export writes them.
    """
    import pynwb
    from hdmf.common import VectorData, VectorIndex

    start = time.perf_counter()
    nwbfile = pynwb.NWBFile(session_description="benchmark", identifier="peer",
                            session_start_time=_dt.datetime(2024, 1, 1, tzinfo=_dt.timezone.utc))
    spikes, waveforms = columns["spike_times"], columns["waveforms"]
    if compressed:
        gzip = dict(compression="gzip", compression_opts=1, shuffle=True)
        spikes = pynwb.H5DataIO(spikes, chunks=(min(spikes.size, 1 << 17),), **gzip)
        waveforms = pynwb.H5DataIO(waveforms, chunks=(min(len(waveforms), (1 << 20) // waveforms[0].nbytes),
                                                       *waveforms.shape[1:]), **gzip)
    spike_times = VectorData(name="spike_times", description="s", data=spikes)
    units = pynwb.misc.Units(name="units", id=columns["ids"], columns=[
        spike_times, VectorIndex(name="spike_times_index", data=columns["index"], target=spike_times),
        VectorData(name="waveform_mean", description="w", data=waveforms),
    ], waveform_rate=FS)
    nwbfile.units = units
    with pynwb.NWBHDF5IO(path, "w") as io:
        io.write(nwbfile)
    fsync_file(path)
    return time.perf_counter() - start


def read_floor(recording: Path) -> tuple[float, float, np.ndarray, np.ndarray, int]:
    """The least time found to read every unit's spike train, waveform and attributes from the recording.

    What any export from this layout has to do at least, with nothing else: no safety
    scan, no checksums, no type checks (the layout is known in advance).  Each unit group,
    its two datasets and its feature group are opened once through h5py's low-level API,
    every attribute (unit and feature) is opened by index and read in its own file type
    by direct libhdf5 calls, the waveforms are read by HDF5, and the contiguous spike
    trains are read with one ``preadv`` each at the offsets HDF5 gives, into one buffer
    (trains stored otherwise, compact ones in their object header, are read by HDF5).
    Returns (seconds, CPU seconds, samples, waveforms, attributes read), the times from the file's
    opening to the last read.
    """
    import ctypes

    from h5py import h5d, h5f, h5g, h5s, h5t

    from h5stream.native import bind, libhdf5

    hid = ctypes.c_int64
    lib = libhdf5.library()  # the libhdf5 h5py loaded, as the engine's own readers call it
    functions = bind(lib, {
        "H5Aget_num_attrs": (ctypes.c_int, [hid]),
        "H5Aopen_by_idx": (hid, [hid, ctypes.c_char_p, ctypes.c_int, ctypes.c_int, ctypes.c_uint64, hid, hid]),
        "H5Aget_type": (hid, [hid]), "H5Tget_size": (ctypes.c_size_t, [hid]),
        "H5Aread": (ctypes.c_int, [hid, hid, ctypes.c_void_p]), "H5Tclose": (ctypes.c_int, [hid]),
        "H5Aclose": (ctypes.c_int, [hid]),
    })
    assert all(functions.values())
    scratch = np.empty(64, np.uint8)
    address = scratch.ctypes.data

    def attributes(oid: int) -> int:
        count = lib.H5Aget_num_attrs(oid)
        if count < 0:
            raise OSError("cannot count the attributes")
        for index in range(count):
            aid = lib.H5Aopen_by_idx(oid, b".", 0, 0, index, 0, 0)
            tid = lib.H5Aget_type(aid)
            if lib.H5Tget_size(tid) > scratch.size or lib.H5Aread(aid, tid, address) < 0:
                raise OSError("cannot read an attribute")
            lib.H5Tclose(tid)
            lib.H5Aclose(aid)
        return count

    start, cpu = time.perf_counter(), time.process_time()
    fid = h5f.open(os.fsencode(recording), h5f.ACC_RDONLY)
    units = h5g.open(fid, b"units")
    names: list[bytes] = []
    units.links.iterate(names.append)
    places = []
    waveforms = None
    n_attrs = 0
    for k, name in enumerate(names):
        group = h5g.open(units, name)
        spikes = h5d.open(group, b"spike_times")
        offset = spikes.get_offset()
        places.append((offset, spikes.shape[0], spikes if offset is None else None))
        waveform = h5d.open(group, b"waveform")
        if waveforms is None:
            waveforms = np.empty((len(names), *waveform.shape), np.float32)
            memtype = h5t.py_create(waveforms.dtype)
        waveform.read(h5s.ALL, h5s.ALL, waveforms[k], mtype=memtype)
        n_attrs += attributes(group.id)
        feature = h5g.open(group, b"features/rf_noise")
        n_attrs += attributes(feature.id)
    samples = np.empty(sum(n for _, n, _ in places), np.uint64)
    view = memoryview(samples).cast("B")
    fd = os.open(recording, os.O_RDONLY)
    try:
        position = 0
        samples_type = h5t.py_create(samples.dtype)
        for offset, n, stored in places:
            if stored is not None:
                stored.read(h5s.ALL, h5s.ALL, samples[position:position + n], mtype=samples_type)
            elif os.preadv(fd, [view[position * 8:(position + n) * 8]], offset) != n * 8:
                raise OSError("short read")
            position += n
    finally:
        os.close(fd)
    del places
    fid.close()
    return time.perf_counter() - start, time.process_time() - cpu, samples, waveforms, n_attrs


def write_ours(recording: Path, path: Path, compression: str | None) -> float:
    from hdmea.interop.nwb import export

    start = time.perf_counter()
    export(recording, path, overwrite=True, compression=compression,
           subject={"species": "Mus musculus", "age": "P60D"})
    return time.perf_counter() - start


def check_export(recording: Path, path: Path, n_spikes: int) -> None:
    import pynwb

    with pynwb.NWBHDF5IO(path, "r") as io:
        units = io.read().units
        if units["spike_times"].target.data.shape[0] != n_spikes:
            raise AssertionError("the exported file does not hold every spike")


def measure(size: str, rounds: int | None = None) -> dict:
    n_units, n_spikes = SIZES_UNITS[size]
    rounds = rounds or POLICY.count(ROUNDS[size], 0.0)  # the runner's minimum and --rounds
    times: dict[str, list[float]] = {"peer": [], "peer_gzip": [], "gzip": [], "none": [], "peer_read": [],
                                     "floor": []}
    with scratch_dir("hdmea-bench-nwb-") as scratch:
        scratch = Path(scratch)
        recording = scratch / "rec.h5"
        make_recording(recording, n_units, n_spikes)
        columns = _peer_columns(recording)
        for _ in range(rounds):
            for key in ("peer", "peer_gzip", "gzip", "none"):
                out = scratch / f"{key}.nwb"
                if out.exists():
                    out.unlink()
                if key == "peer":
                    start = time.perf_counter()
                    fresh = _peer_columns(recording)
                    times["peer_read"].append(time.perf_counter() - start)
                    del fresh
                    seconds, _cpu, samples, waveforms, _ = read_floor(recording)
                    if samples.size != n_spikes or waveforms.shape[0] != n_units:
                        raise AssertionError("the floor's reading missed spikes or units")
                    times["floor"].append(seconds)
                    del samples, waveforms
                    times[key].append(write_peer(columns, out))
                elif key == "peer_gzip":
                    times[key].append(write_peer(columns, out, compressed=True))
                else:
                    times[key].append(write_ours(recording, out, "gzip" if key == "gzip" else None))
                    check_export(recording, out, n_spikes)
        del columns
        sizes = {key: os.path.getsize(scratch / f"{key}.nwb") / 1e6 for key in ("peer", "peer_gzip", "gzip", "none")}
        code = (f"from hdmea.interop.nwb import export\n"
                f"export({str(recording)!r}, {str(scratch / 'rss.nwb')!r}, overwrite=True)\n")
        peak_mb, _ = peak_rss_mb(code)
    return {"timings": {k: Timing(v) for k, v in times.items()}, "sizes_mb": sizes, "peak_mb": peak_mb,
            "n_units": n_units, "n_spikes": n_spikes}


def rows_from(size: str, measured: dict) -> list[Row]:
    t, mb = measured["timings"], measured["sizes_mb"]
    label = f"{measured['n_units']} units, {measured['n_spikes'] / 1e6:g} M spikes"
    peer = "pynwb Units from whole columns (uncompressed)"
    return [
        timed_row(f"nwb: export {label}, gzip 1 + shuffle", peer, t["peer"], t["gzip"], TIME_GOAL,
                  f"file {mb['gzip']:.0f} MB; peer {mb['peer']:.0f} MB"),
        timed_row(f"nwb: export {label}, uncompressed", peer, t["peer"], t["none"], TIME_GOAL,
                  f"file {mb['none']:.0f} MB; peer {mb['peer']:.0f} MB"),
        timed_row(f"nwb: export {label}, gzip 1 + shuffle", "pynwb Units from whole columns (gzip 1 + shuffle)",
                  t["peer_gzip"], t["gzip"], TIME_GOAL, f"file {mb['gzip']:.0f} MB; peer {mb['peer_gzip']:.0f} MB"),
        timed_row(f"nwb: export {label}, gzip 1 + shuffle",
                  "pynwb from whole columns (gzip 1 + shuffle) + reading them (h5py)",
                  Timing([a + b for a, b in zip(t["peer_gzip"].rounds, t["peer_read"].rounds)]), t["gzip"], None,
                  f"reading the columns alone: {t['peer_read']}"),
        timed_row(f"nwb: export {label}, uncompressed", "pynwb from whole columns + reading them (h5py)",
                  Timing([a + b for a, b in zip(t["peer"].rounds, t["peer_read"].rounds)]), t["none"], None,
                  f"reading the columns alone: {t['peer_read']}"),
        timed_row(f"nwb: least possible export {label} from our layout: reading the units alone (low-level "
                  "floor) + pynwb alone", peer, t["peer"],
                  Timing([a + b for a, b in zip(t["peer"].rounds, t["floor"].rounds)]), None,
                  f"reading the spike trains, waveforms and attributes alone (read_floor): {t['floor']}; "
                  f"the goal {TIME_GOAL:.2f} is out of reach from this layout when this ratio is below it"),
        Row(benchmark=f"nwb: export {label}, peak resident memory", peer="limit 2 GB",
            peer_value=MEMORY_LIMIT_MB, ours=measured["peak_mb"], unit="MB",
            ratio=measured["peak_mb"] / MEMORY_LIMIT_MB, goal=1.0, lower_is_better=True,
            details="VmHWM of a fresh process running export() with the defaults"),
    ]


def run(size: str) -> list[Row]:
    """Benchmark rows at ``size`` ("small" or "full")."""
    return rows_from(size, measure(size))


def measure_floor(size: str = "full", rounds: int = 7) -> str:
    """The floor alone: :func:`read_floor` and pynwb alone (uncompressed peer), interleaved, wall and CPU seconds.

    ``python -m benchmarks.suite.bench_nwb [ROUNDS]``.  The goal (ours within 1.5 x pynwb alone) is
    out of reach from this layout when floor + pynwb alone exceeds 1.5 x pynwb alone.
    """
    n_units, n_spikes = SIZES_UNITS[size]
    walls: dict[str, list[float]] = {"floor": [], "peer": []}
    cpus: dict[str, list[float]] = {"floor": [], "peer": []}
    loads = [os.getloadavg()[0]]
    with scratch_dir("hdmea-bench-nwb-floor-") as scratch:
        recording = Path(scratch) / "rec.h5"
        make_recording(recording, n_units, n_spikes)
        columns = _peer_columns(recording)
        out = Path(scratch) / "peer.nwb"
        for _ in range(rounds):
            wall, cpu, samples, waveforms, n_attrs = read_floor(recording)
            cpus["floor"].append(cpu)
            walls["floor"].append(wall)
            if samples.size != n_spikes or waveforms.shape[0] != n_units:
                raise AssertionError("the floor's reading missed spikes or units")
            del samples, waveforms
            if out.exists():
                out.unlink()
            cpu = time.process_time()
            walls["peer"].append(write_peer(columns, out))
            cpus["peer"].append(time.process_time() - cpu)
        loads.append(os.getloadavg()[0])
    floor, peer = Timing(walls["floor"]), Timing(walls["peer"])
    cfloor, cpeer = Timing(cpus["floor"]), Timing(cpus["peer"])
    verdict = "blocked by the layout" if floor.min + peer.min > 1.5 * peer.min else "reachable"
    return "\n".join([
        f"{n_units} units, {n_spikes} spikes, {n_attrs} attributes; 1-minute load {loads[0]:.1f} > {loads[1]:.1f}",
        f"floor (read_floor) wall {floor}; CPU {cfloor}",
        f"pynwb alone        wall {peer}; CPU {cpeer}",
        f"floor + pynwb alone = {floor.min + peer.min:.3f} s against 1.5 x pynwb alone = {1.5 * peer.min:.3f} s "
        f"(CPU {cfloor.min + cpeer.min:.3f} s against {1.5 * cpeer.min:.3f} s): the goal is {verdict}",
    ])



def test_rows_at_small_size(monkeypatch):
    monkeypatch.setitem(SIZES_UNITS, "small", (50, 100_000))
    measured = measure("small", rounds=1)
    rows = rows_from("small", measured)
    assert [r.goal for r in rows] == [TIME_GOAL, TIME_GOAL, TIME_GOAL, None, None, None, 1.0]
    for row in rows:
        assert row.ours > 0 and row.peer_value > 0
    assert rows[6].ours < MEMORY_LIMIT_MB


def test_floor_summary_at_small_size(monkeypatch):
    monkeypatch.setitem(SIZES_UNITS, "small", (20, 200_000))
    text = measure_floor("small", rounds=1)
    assert "20 units, 200000 spikes, 180 attributes" in text and "the goal is" in text


def test_floor_reads_every_value(tmp_path):
    import h5py

    recording = tmp_path / "rec.h5"
    make_recording(recording, 4, 4 * 10_000)  # 80 kB trains: stored contiguous, read by preadv
    _seconds, _cpu, samples, waveforms, n_attrs = read_floor(recording)
    with h5py.File(recording, "r") as f:
        ids = sorted(f["units"])
        assert all(f["units"][u]["spike_times"].id.get_offset() is not None for u in ids)
        np.testing.assert_array_equal(samples, np.concatenate([f["units"][u]["spike_times"][()] for u in ids]))
        np.testing.assert_array_equal(waveforms, [f["units"][u]["waveform"][()] for u in ids])
        assert n_attrs == sum(len(f["units"][u].attrs) + len(f["units"][u]["features/rf_noise"].attrs) for u in ids)


if __name__ == "__main__":
    import sys

    print(measure_floor("full", int(sys.argv[1]) if len(sys.argv) > 1 else 7))

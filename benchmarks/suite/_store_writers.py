"""The recording the store benchmark saves, and every way it is written: our session and the peers.

:func:`make_recording`: a synthetic recording in the contract layout (units with spike trains and
waveforms, :data:`N_FEATURES` features per unit, stimulus, metadata), spikes over :data:`DURATION_S` at
:data:`FS`.  :func:`stage_session` holds it in a :class:`~hdmea.pipeline.PipelineSession` (ours, saved by the
benchmark).  The peers write the same objects: :func:`write_plain_h5py` (one ``create_dataset`` per object,
default settings), :func:`write_nwb_per_unit` and :func:`write_nwb_columns` (pynwb's Units table, one
``add_unit`` per unit or whole columns) and :func:`write_libhdf5_floor` (bare libhdf5 calls, the floor of the
layout).  Every peer fsyncs what it wrote.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from benchmarks.harness import fsync_file
from hdmea.pipeline import create_session

FS = 20_000
DURATION_S = 20 * 60
N_FEATURES = 10


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
    from h5stream.lowlevel import LIBVER, file_type, native_hdf5, plists

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

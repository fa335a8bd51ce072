"""Electrical images: each unit's mean high-pass-filtered voltage on every electrode around its spikes.

``compute_eimage_sta`` streams the raw sensor data of the ``.cmcr`` in chunks
(:mod:`h5stream.kernels.eimage`: filter state carried across chunks, a
``window - 1`` overlap so no spike is lost at an edge, reading started early
enough for the filter to settle, division by the spikes actually used, units in
batches within a memory budget).  ``load_recording_with_eimage_sta`` is
``load_recording`` followed by it.

Stored per unit at ``units/{unit}/features/eimage_sta``: dataset ``data``
(float32, (window, 65, 65), microvolts after scaling) and attributes
``n_spikes_used``, ``n_spikes_excluded`` (window outside the time range),
``n_spikes_over_cap``, ``window`` ([first, end) samples around the spike),
``filter`` (text), ``highpass_hz``, ``filter_order``, ``start_sample``,
``stop_sample``, ``max_spikes_per_unit``, plus ``name``, ``version``,
``params_hash``, ``extracted_at``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from pathlib import Path

import numpy as np

from h5stream.staging import parse_size
from hdmea.errors import ConfigError
from hdmea.features.registry import params_hash

__all__ = ["EImageResult", "compute_eimage_sta", "load_recording_with_eimage_sta"]

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

STEP = "compute_eimage_sta"  # recorded in completed_steps; files may hold the former "eimage_sta"
FEATURE = "eimage_sta"
FEATURE_VERSION = "1"


@dataclasses.dataclass
class EImageResult:
    """What :func:`compute_eimage_sta` did (immediate mode)."""

    hdf5_path: Path | None
    units_processed: int
    n_batches: int
    start_sample: int
    stop_sample: int
    n_spikes_used: dict[str, int]
    n_spikes_excluded: dict[str, int]
    n_spikes_over_cap: dict[str, int]
    params_hash: str
    elapsed_s: float = 0.0
    skipped: bool = False


class _GuardedSensorData:
    """A raw sensor dataset that slices like an array; read failures become RecordingFormatError."""

    def __init__(self, dataset, path):
        self._ds = dataset
        self._path = path
        self.shape = dataset.shape
        self.dtype = dataset.dtype

    def __getitem__(self, key):
        from hdmea.io.mcs import guard_mcs_read

        with guard_mcs_read(self._path, self._ds.name):
            return self._ds[key]

    def read_direct(self, dest, source_sel=None):
        from hdmea.io.mcs import guard_mcs_read

        with guard_mcs_read(self._path, self._ds.name):
            self._ds.read_direct(dest, source_sel=source_sel)


def _budget_bytes(value) -> int:
    try:
        budget = parse_size(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"memory_budget must be bytes or text like '512 MB' (found {value!r})") from exc
    if budget is None:
        raise ConfigError("memory_budget must be bytes or text like '512 MB' (found None)")
    return budget


def compute_eimage_sta(
    hdf5_path: str | os.PathLike | None = None,
    cmcr_path: str | os.PathLike | None = None,
    *,
    window: tuple[int, int] = (-10, 40),
    start_s: float = 0.0,
    duration_s: float | None = None,
    highpass_hz: float = 100.0,
    filter_order: int = 2,
    max_spikes_per_unit: int | None = 10_000,
    memory_budget: int | str = "512 MiB",
    chunk_samples: int = 8192,
    sensor_dataset: str | None = None,
    n_threads: int | None = None,
    force: bool = False,
    session=None,
):
    """Electrical images of every unit from the raw sensor data.

    Parameters
    ----------
    hdf5_path
        The recording file (immediate mode).
    cmcr_path
        The raw file (default: the recording's ``source_files[0]``).
    window
        Samples ``[t + window[0], t + window[1])`` around a spike at ``t``.
    start_s, duration_s
        Time range of the raw data to use (default: all of it).
    highpass_hz, filter_order
        Butterworth high-pass applied before averaging.
    max_spikes_per_unit
        Use at most this many spikes per unit (the first in time, among the
        included spikes whose window fits the time range).
    memory_budget
        Bytes (or text like ``"512 MiB"``) for the accumulators of one batch of units.
    chunk_samples
        Samples read per chunk.
    sensor_dataset
        Which ``SensorData`` dataset (default: the first).
    n_threads
        Threads of the compiled kernels.
    force
        Recompute when images with the same parameters are stored.
    session
        Stage into this session instead of writing the file.

    Returns
    -------
    EImageResult or PipelineSession
    """
    from h5stream.kernels.eimage import butter_highpass, iter_electrical_images
    from hdmea.io.cmcr import CmcrFile
    from hdmea.pipeline.target import open_target

    budget = _budget_bytes(memory_budget)
    w0, w1 = (int(window[0]), int(window[1]))
    if w1 <= w0:
        raise ConfigError(f"window must be (first, end) with end > first, found {window!r}")
    if start_s < 0 or (duration_s is not None and duration_s <= 0):
        raise ConfigError(f"start_s must be >= 0 and duration_s > 0, found {start_s!r}, {duration_s!r}")
    t0 = time.perf_counter()
    with open_target(hdf5_path, session, step=STEP) as target:
        target.require_steps("load_recording")
        if cmcr_path is None:
            sources = target.attrs("").get("source_files") or ["", ""]
            cmcr_path = sources[0] or None
        if cmcr_path is None:
            raise ConfigError("no raw file: the recording names no .cmcr", hint="pass cmcr_path=")
        fs = float(np.asarray(target.get("metadata/sampling_rate")).reshape(-1)[0])
        with CmcrFile(cmcr_path) as cmcr:
            info = _sensor_info(cmcr, cmcr_path, sensor_dataset)
            n_samples = info.n_frames
            start = int(round(start_s * fs))
            stop = n_samples if duration_s is None else min(n_samples, start + int(round(duration_s * fs)))
            if start >= stop:
                raise ConfigError(f"the time range starts at sample {start}, after the raw data's end {stop}",
                                  found=f"start_s={start_s}", expected=f"start_s < {n_samples / fs:.3f}")
            params = {"window": [w0, w1], "start": start, "stop": stop, "highpass_hz": float(highpass_hz),
                      "filter_order": int(filter_order), "max_spikes_per_unit": max_spikes_per_unit,
                      "sensor_dataset": info.name, "adc": [info.ad_zero, info.conversion_factor]}
            digest = params_hash(FEATURE, FEATURE_VERSION, params)
            unit_ids = target.unit_ids()
            if not force and unit_ids and all(
                target.has(f"units/{u}/features/{FEATURE}")
                and target.attrs(f"units/{u}/features/{FEATURE}").get("params_hash") == digest
                for u in unit_ids
            ):
                logger.info("electrical images with the same parameters are stored; pass force=True to recompute")
                result = EImageResult(hdf5_path=_path(hdf5_path), units_processed=0, n_batches=0,
                                      start_sample=start, stop_sample=stop, n_spikes_used={},
                                      n_spikes_excluded={}, n_spikes_over_cap={}, params_hash=digest, skipped=True)
            else:
                spikes = [np.asarray(target.get(f"units/{u}/spike_times")).astype(np.int64) for u in unit_ids]
                raw = _GuardedSensorData(cmcr.h5[info.name], cmcr_path)
                sos = butter_highpass(highpass_hz, fs, filter_order)
                used, excluded, over_cap = {}, {}, {}
                n_batches = 0
                stamp = _now()
                for batch in iter_electrical_images(
                    raw, spikes, sos=sos, window=(w0, w1), start=start, stop=stop,
                    max_spikes_per_unit=max_spikes_per_unit, memory_budget_bytes=budget,
                    chunk_samples=int(chunk_samples), adc_offset=info.ad_zero, adc_scale=info.conversion_factor,
                    n_threads=n_threads,
                ):
                    n_batches += 1
                    for j, u_index in enumerate(batch.units):
                        u = unit_ids[int(u_index)]
                        used[u] = int(batch.n_spikes_used[j])
                        excluded[u] = int(batch.n_spikes_excluded[j])
                        over_cap[u] = int(batch.n_spikes_over_cap[j])
                        target.add_feature(u, FEATURE, {
                            "data": batch.images[j],
                            "n_spikes_used": used[u],
                            "n_spikes_excluded": excluded[u],
                            "n_spikes_over_cap": over_cap[u],
                            "window": [w0, w1],
                            "filter": f"butterworth highpass {float(highpass_hz):g} Hz order {int(filter_order)}",
                            "highpass_hz": float(highpass_hz),
                            "filter_order": int(filter_order),
                            "start_sample": int(start),
                            "stop_sample": int(stop),
                            "max_spikes_per_unit": -1 if max_spikes_per_unit is None else int(max_spikes_per_unit),
                        }, {"version": FEATURE_VERSION, "params_hash": digest, "extracted_at": stamp})
                target.mark_step_complete(STEP)
                result = EImageResult(hdf5_path=_path(hdf5_path), units_processed=len(unit_ids),
                                      n_batches=n_batches, start_sample=start, stop_sample=stop,
                                      n_spikes_used=used, n_spikes_excluded=excluded, n_spikes_over_cap=over_cap,
                                      params_hash=digest)
                logger.info("electrical images of %d units over samples %d..%d in %d batch(es)",
                            len(unit_ids), start, stop, n_batches)
    result.elapsed_s = time.perf_counter() - t0
    return session if session is not None else result


def load_recording_with_eimage_sta(
    cmcr_path: str | os.PathLike,
    cmtr_path: str | os.PathLike | None = None,
    dataset_id: str | None = None,
    *,
    output_path: str | os.PathLike | None = None,
    hdf5_path: str | os.PathLike | None = None,
    force: bool = False,
    window: tuple[int, int] = (-10, 40),
    start_s: float = 0.0,
    duration_s: float | None = None,
    highpass_hz: float = 100.0,
    filter_order: int = 2,
    max_spikes_per_unit: int | None = 10_000,
    memory_budget: int | str = "512 MiB",
    chunk_samples: int = 8192,
    n_threads: int | None = None,
    session=None,
    **load_kwargs,
):
    """``load_recording`` then :func:`compute_eimage_sta` on the same recording.

    Returns the :class:`~hdmea.pipeline.runner.LoadResult` of the load (immediate
    mode; its file then holds the electrical images too) or the session.
    """
    from hdmea.pipeline.runner import load_recording

    loaded = load_recording(cmcr_path, cmtr_path, dataset_id, output_path=output_path, hdf5_path=hdf5_path,
                            force=force, session=session, **load_kwargs)
    path = None if session is not None else loaded.hdf5_path
    compute_eimage_sta(path, cmcr_path, window=window, start_s=start_s, duration_s=duration_s,
                       highpass_hz=highpass_hz, filter_order=filter_order, max_spikes_per_unit=max_spikes_per_unit,
                       memory_budget=memory_budget, chunk_samples=chunk_samples, n_threads=n_threads, force=force,
                       session=session)
    return session if session is not None else loaded


def _sensor_info(cmcr, cmcr_path, name):
    from hdmea.errors import RecordingFormatError

    infos = cmcr.sensor_datasets()
    if not infos:
        raise RecordingFormatError("no raw sensor data", path=cmcr_path, obj="Acquisition/Sensor Data",
                                   expected="SensorData datasets", found="none",
                                   hint="electrical images need the raw .cmcr recording")
    if name is None:
        return infos[0]
    for info in infos:
        if name in (info.name, info.name.rsplit("/", 1)[-1]):
            return info
    raise ConfigError(f"no sensor dataset {name!r} in {cmcr_path}",
                      expected="one of " + ", ".join(i.name for i in infos), found=str(name))


def _path(hdf5_path):
    return Path(hdf5_path) if hdf5_path is not None else None


def _now() -> str:
    from hdmea.io.hdf5_store import now_iso

    return now_iso()

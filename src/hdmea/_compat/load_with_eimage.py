"""The original pipeline's ``load_recording_with_eimage_sta``: the load step, then the electrical-image step,
with the original's parameters and result (its path is ``hdmea.pipeline`` and ``hdmea.pipeline.runner``)."""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

from hdmea.errors import ConfigError
from hdmea.io.cmcr import AUTO, check_sensor_axis_order
from hdmea.io.hdf5_store import now_iso
from hdmea.io.recording import open_recording
from hdmea.session.names import COMPOSITE_STEPS
from hdmea.session.target import open_target
from hdmea.steps.eimage import FEATURE, compute_eimage_sta
from hdmea.steps.load import keeping_cmtr, load_recording
from hdmea._compat.source_info import add_cmtr_unit_info, add_sys_meta_info

__all__ = ["LoadWithEImageSTAResult", "load_recording_with_eimage_sta"]

#: The name the step records in completed_steps (as the original).
STEP = "load_recording_with_eimage_sta"


@dataclasses.dataclass
class LoadWithEImageSTAResult:
    """The original pipeline's result of loading with electrical images (fields as it had them)."""

    hdf5_path: Path
    dataset_id: str
    num_units: int
    units_with_sta: int
    stage1_completed: bool
    elapsed_seconds: float
    filter_time_seconds: float
    warnings: list[str] = dataclasses.field(default_factory=list)



def load_recording_with_eimage_sta(
    cmcr_path: str | os.PathLike,
    cmtr_path: str | os.PathLike | None = None,
    dataset_id: str | None = None,
    *,
    output_dir: str | os.PathLike = "artifacts",
    force: bool = False,
    duration_s: float | None = 120.0,
    spike_limit: int | None = 10_000,
    unit_ids: list[str] | None = None,
    window_range: tuple[int, int] = (-10, 40),
    cutoff_hz: float = 100.0,
    filter_order: int = 2,
    skip_highpass: bool = False,
    chunk_duration_s: float = 10.0,
    session=None,
    load_unit_meta: bool = True,
    load_sys_meta: bool = True,
    output_path: str | os.PathLike | None = None,
    hdf5_path: str | os.PathLike | None = None,
    start_s: float = 0.0,
    memory_budget: int | str = "512 MiB",
    chunk_samples: int = 8192,
    sensor_axis_order: str = AUTO,
    n_threads: int | None = None,
    window: tuple[int, int] | None = None,
    highpass_hz: float | None = None,
    max_spikes_per_unit: int | None | str = "spike_limit",
    peaks: str = "included",
    **load_kwargs,
):
    """``load_recording`` then :func:`compute_eimage_sta` on the same recording.

    The original pipeline's parameters are the defaults: the first ``duration_s``
    = 120 s, at most ``spike_limit`` spikes per unit, ``window_range`` samples
    around each spike, a ``cutoff_hz`` high-pass of order ``filter_order``, the
    file ``<output_dir>/<dataset_id>.h5``.  Our names say the same
    (``window``, ``highpass_hz``, ``max_spikes_per_unit``, ``output_path``;
    ``duration_s=None``: the whole recording).  ``chunk_duration_s`` is accepted:
    the raw data are streamed in chunks sized by ``memory_budget`` instead.
    Each unit's ``.cmtr`` information (``units/<unit>/unit_meta``) and both
    files' metadata (``metadata/cmcr_meta``, ``cmtr_meta``) are copied as the
    original copies them, unless ``load_unit_meta`` / ``load_sys_meta`` is False.  ``unit_ids`` (UnitIDs like ``"2"`` or
    names like ``"unit_002"``) limits the electrical images to those units, as
    in the original; every unit is loaded.  ``skip_highpass`` is refused: the
    images are always high-pass filtered.  ``peaks="all"`` averages every peak of
    a unit's ``Peaks`` table, the sorter's rejected ones too, as the original did;
    the default averages the accepted spikes (``IncludePeak == 1``).  Each unit's
    ``firing_rate_10hz`` ends one second after its last spike, as the original's
    (which reads no duration here; ``firing_rate_until="recording"`` ends every
    unit's at the recording's duration, as ``load_recording``).

    Returns
    -------
    LoadWithEImageSTAResult or PipelineSession
    """
    check_sensor_axis_order(sensor_axis_order)
    if skip_highpass:
        raise ConfigError("skip_highpass is not supported: electrical images are always high-pass filtered",
                          hint="omit skip_highpass, or pass cutoff_hz to choose the filter")
    if chunk_duration_s is not None and not chunk_duration_s > 0:
        raise ConfigError("chunk_duration_s must be positive", found=str(chunk_duration_s))
    if window is not None and tuple(window) != tuple(window_range) and tuple(window_range) != (-10, 40):
        raise ConfigError("the window is given twice (window and window_range); pass one")
    if highpass_hz is not None and highpass_hz != cutoff_hz and cutoff_hz != 100.0:
        raise ConfigError("the high-pass cutoff is given twice (highpass_hz and cutoff_hz); pass one")
    window = tuple(window if window is not None else window_range)
    highpass_hz = float(highpass_hz if highpass_hz is not None else cutoff_hz)
    if max_spikes_per_unit == "spike_limit":
        max_spikes_per_unit = spike_limit
    t0 = time.perf_counter()
    before = set(session.completed_steps) if session is not None else set()
    # the .cmtr the load opens is kept open for the copy of its unit information (its safety scan and walk:
    # 0.1 CPU s on a recording of 120 units)
    kept: list = []
    try:
        return _load_with_images(cmcr_path, cmtr_path, dataset_id, kept, t0, before, output_dir=output_dir,
                                 output_path=output_path, hdf5_path=hdf5_path, force=force, session=session,
                                 sensor_axis_order=sensor_axis_order, window=window, start_s=start_s,
                                 duration_s=duration_s, highpass_hz=highpass_hz, filter_order=filter_order,
                                 max_spikes_per_unit=max_spikes_per_unit, memory_budget=memory_budget,
                                 chunk_samples=chunk_samples, n_threads=n_threads, unit_ids=unit_ids,
                                 peaks=peaks, load_unit_meta=load_unit_meta, load_sys_meta=load_sys_meta,
                                 load_kwargs=load_kwargs)
    finally:
        for cmtr in kept:
            cmtr.close()


def _load_with_images(cmcr_path, cmtr_path, dataset_id, kept, t0, before, *, output_dir, output_path, hdf5_path,
                      force, session, sensor_axis_order, window, start_s, duration_s, highpass_hz, filter_order,
                      max_spikes_per_unit, memory_budget, chunk_samples, n_threads, unit_ids, peaks, load_unit_meta,
                      load_sys_meta, load_kwargs):
    """:func:`load_recording_with_eimage_sta` once its parameters are settled (``kept``: takes the ``.cmtr``
    the load opens, left open for the copy of its unit information; the caller closes it)."""
    with keeping_cmtr(kept if load_unit_meta else None):
        loaded = load_recording(cmcr_path, cmtr_path, dataset_id, output_dir=output_dir, output_path=output_path,
                                hdf5_path=hdf5_path, force=force, session=session,
                                sensor_axis_order=sensor_axis_order,
                                **{"firing_rate_until": "last_spike", **load_kwargs})
    path = None if session is not None else loaded.hdf5_path
    # As the original: each unit's .cmtr information and both files' metadata, unless asked not to.  The units'
    # information first: their Peaks columns, copied out while the load read each table, are staged (or written)
    # before the images are computed, not held beside the images' buffers.
    where = {"session": session} if session is not None else {"hdf5_path": loaded.hdf5_path}
    cmtr_meta: dict = {}  # the .cmtr's root attributes, read while the unit information is copied
    if load_unit_meta and cmtr_path is not None:
        add_cmtr_unit_info(cmtr_path=cmtr_path, force=True, _file_meta=cmtr_meta, _cmtr=kept[0] if kept else None,
                           **where)
    images = compute_eimage_sta(path, cmcr_path, window=window, start_s=start_s, duration_s=duration_s,
                                highpass_hz=highpass_hz, filter_order=filter_order,
                                max_spikes_per_unit=max_spikes_per_unit, memory_budget=memory_budget,
                                chunk_samples=chunk_samples, sensor_axis_order=sensor_axis_order,
                                n_threads=n_threads, force=force, session=session, unit_ids=unit_ids,
                                peaks=peaks)
    if load_sys_meta:
        add_sys_meta_info(cmcr_path=cmcr_path, cmtr_path=cmtr_path, force=True, _cmtr_meta=cmtr_meta or None,
                          **where)
    # recorded as the original records it: this step's name, not the two steps it ran (COMPOSITE_STEPS)
    with open_target(None if session is not None else loaded.hdf5_path, session, step=STEP) as target:
        target.record_as_one_step(tuple(s for s in COMPOSITE_STEPS[STEP] if s not in before))
    if session is not None:
        return session
    with open_target(loaded.hdf5_path, None, step=STEP) as target:
        # the original's immediate mode marks stage 1 on /pipeline (its session mode, when saved)
        target.set_attrs("pipeline", {"stage1_completed": True, "stage1_timestamp": now_iso()})
    with open_recording(loaded.hdf5_path) as recording:
        with_images = sum(1 for unit in recording.units() if unit.has_feature(FEATURE))
    # The filter runs interleaved with the averaging, tile by tile: its time is not measured apart (NaN).
    return LoadWithEImageSTAResult(
        hdf5_path=loaded.hdf5_path, dataset_id=loaded.dataset_id, num_units=loaded.num_units,
        units_with_sta=int(with_images), stage1_completed=loaded.stage1_completed,
        elapsed_seconds=time.perf_counter() - t0, filter_time_seconds=float("nan"),
        warnings=list(loaded.warnings))

"""The first pipeline step: load a recording's units, light reference and metadata.

``load_recording(cmcr_path, cmtr_path, ...)`` reads units from the ``.cmtr``
(spike times in samples, mean waveforms, positions, quality measures) and the
light reference and metadata from the ``.cmcr``, then writes them to the
recording file (``session=None``: the file is built beside the target and
renamed over it when complete) or stages them in a :class:`PipelineSession`.

The acquisition-rate helpers and :func:`get_frame_timestamps` serve the step and
the original pipeline (its ``hdmea.pipeline.runner`` hands them on).  Frame
timestamps are the first sample of each sync pulse's rising edge (the original
reported the sample before it).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import contextvars
import dataclasses
import logging
import os
import warnings
from pathlib import Path

from h5stream.errors import H5StreamWarning
from h5stream.files import guard_read
from h5stream.staging import parse_size
from hdmea.errors import ConfigError
from hdmea.io import _files
from hdmea.io.cmcr import CmcrFile, check_sensor_axis_order
from hdmea.io.frame_order import decide_frame_order, record_frame_order
from hdmea.io.cmtr import SORTER_GROUP, CmtrFile
from hdmea.io.hdf5_store import RecordingExistsError, source_files_attrs, stage1_params_hash
from hdmea.io.lab_series import FIRING_RATE_UNTIL, firing_rate_10hz, light_reference_series
from hdmea.io.unit_names import original_name, unit_name
from hdmea.session.names import steps_done
from hdmea.session.target import open_target
from hdmea.progress import counted

__all__ = [
    "LoadResult",
    "LargeRecordingWarning",
    "load_recording",
    "unit_key",
    "DEFAULT_MEMORY_THRESHOLD",
    "DEFAULT_ACQUISITION_RATE",
    "MIN_TYPICAL_ACQUISITION_RATE",
    "MAX_TYPICAL_ACQUISITION_RATE",
    "validate_acquisition_rate",
    "compute_frame_time",
    "get_frame_timestamps",
]

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

STEP = "load_recording"
DEFAULT_MEMORY_THRESHOLD = 4 * 1024**3
DEFAULT_ACQUISITION_RATE: float = 20000.0
DEFAULT_SAMPLING_RATE = DEFAULT_ACQUISITION_RATE
#: Rates outside this range are accepted but logged as unusual.
MIN_TYPICAL_ACQUISITION_RATE: float = 1000.0
MAX_TYPICAL_ACQUISITION_RATE: float = 100000.0
CACHED_WARNING = "load_recording already ran on this file with these parameters; nothing was reloaded"

def validate_acquisition_rate(rate: float | None) -> bool:
    """Whether ``rate`` (Hz) can be used: True for any positive number, False for None, zero or negative.

    A usable rate outside 1-100 kHz is logged as unusual (WARNING) and still accepted.
    """
    if rate is None:
        return False
    rate = float(rate)
    if not rate > 0:  # also refuses NaN
        logger.warning("acquisition_rate %s Hz is not usable (must be > 0)", rate)
        return False
    if rate < MIN_TYPICAL_ACQUISITION_RATE or rate > MAX_TYPICAL_ACQUISITION_RATE:
        logger.warning("Unusual acquisition_rate: %.0f Hz (typical: %.0f-%.0f Hz)", rate,
                       MIN_TYPICAL_ACQUISITION_RATE, MAX_TYPICAL_ACQUISITION_RATE)
    return True


def compute_frame_time(acquisition_rate: float) -> float:
    """Seconds per sample, ``1 / acquisition_rate``; ValueError (our ConfigError) for a rate <= 0."""
    if not float(acquisition_rate) > 0:
        raise ConfigError("acquisition_rate must be > 0", found=f"{acquisition_rate} Hz")
    return 1.0 / float(acquisition_rate)


def get_frame_timestamps(
    light_reference,
    frame_channel: int = 1,
    exclude_initial_frames: int = 4,
    normalize_percentile: float = 99.9,
    peak_height_threshold: float = 0.1,
):
    """Sample index (uint64) of every display frame, from the frame-sync signal.

    ``light_reference`` is the sync channel itself (1-D), the light-reference
    channels stacked (2-D, row ``frame_channel``), or the stored channels by name
    (``{"raw_ch1": ..., "raw_ch2": ...}``, channel ``raw_ch{frame_channel + 1}``).
    The signal is scaled by its ``normalize_percentile`` percentile; every peak of
    its difference above ``peak_height_threshold`` is a frame, timed at the first
    sample of the rising edge; the first ``exclude_initial_frames`` are dropped.
    """
    import numpy as np

    from hdmea.steps.section_time import frame_times_from_sync

    signal = light_reference
    if isinstance(signal, dict):
        name = f"raw_ch{int(frame_channel) + 1}"
        if name not in signal:
            raise ConfigError(f"the light reference has no channel {name!r}", found=", ".join(sorted(signal)))
        signal = signal[name]
    signal = np.asarray(signal)
    if signal.ndim == 2:
        signal = signal[int(frame_channel)]
    frames = frame_times_from_sync(signal, drop_leading_peaks=int(exclude_initial_frames),
                                   percentile=float(normalize_percentile), height=float(peak_height_threshold))
    logger.info("detected %s in the frame-sync signal", counted(frames.size, "frame"))
    return frames


class LargeRecordingWarning(H5StreamWarning):
    """A step is about to hold more data in memory than the configured threshold."""


#: inside :func:`keeping_cmtr`: the list each ``.cmtr`` a load opens is appended to, left open
_KEPT_CMTR: contextvars.ContextVar[list | None] = contextvars.ContextVar("hdmea_kept_cmtr", default=None)


@contextlib.contextmanager
def keeping_cmtr(kept: list | None):
    """Within the block, :func:`load_recording` appends the ``.cmtr`` it opens to ``kept`` and leaves it open
    for the caller's next reads (the caller closes it), the units' ``Peaks`` columns kept as they were read
    (:meth:`hdmea.io.cmtr.CmtrFile.keep_peak_columns`); ``None``: each load closes its file as usual."""
    token = _KEPT_CMTR.set(kept)
    try:
        yield kept
    finally:
        _KEPT_CMTR.reset(token)


@dataclasses.dataclass
class LoadResult:
    """What :func:`load_recording` did (immediate mode)."""

    hdf5_path: Path
    dataset_id: str
    num_units: int
    stage1_completed: bool
    warnings: list[str] = dataclasses.field(default_factory=list)
    skipped: bool = False
    estimated_bytes: int = 0

    @property
    def zarr_path(self) -> Path:
        """The recording file: the original's scripts read ``result.zarr_path`` (its zarr store is our HDF5 file)."""
        return self.hdf5_path


def unit_key(unit_id: int) -> str:
    """A unit's name from its ``.cmtr`` UnitID, as the lab names it (:func:`hdmea.io.unit_names.unit_name`)."""
    return unit_name(unit_id)


def _estimate_bytes(cmcr: CmcrFile | None, cmtr: CmtrFile | None) -> tuple[int, dict[str, int]]:
    """Bytes the step will hold, from dataset shapes only (nothing is read)."""
    parts = {"light_reference": 0, "units": 0}
    if cmcr is not None and cmcr.has_analog():
        parts["light_reference"] = 2 * cmcr.n_analog_samples() * 4
    if cmtr is not None:
        sorter = cmtr.h5[SORTER_GROUP]
        for uid in cmtr.unit_ids():
            ds = sorter[f"Unit {uid}/Peaks"] if f"Unit {uid}/Peaks" in sorter else None
            if ds is not None:
                # spike times (8 B per peak at most) plus the peaks table read once per unit
                parts["units"] += ds.shape[0] * 8 + ds.id.get_storage_size()
    return sum(parts.values()), parts


def _threshold(memory_threshold, session) -> int | None:
    """Bytes past which to warn; None when a session's memory budget already bounds what is held."""
    if memory_threshold is not None:
        value = parse_size(memory_threshold)
        if value is None or value <= 0:
            raise ConfigError(f"memory_threshold must be a positive size, found {memory_threshold!r}")
        return value
    if session is not None:
        if getattr(session, "memory_limit", None):
            return None  # staged arrays beyond the budget spill to disk
        value = getattr(session, "memory_warning", None)
        if value:
            return int(value)
    return DEFAULT_MEMORY_THRESHOLD


def _memory_warning_text(total: int, parts: dict[str, int], threshold: int, dataset_id: str) -> str:
    gib = 1024**3
    return (
        f"load_recording of {dataset_id!r} will hold about {total / gib:.2f} GiB "
        f"(units {parts['units'] / gib:.2f} GiB, light reference {parts['light_reference'] / gib:.2f} GiB), "
        f"above the threshold of {threshold / gib:.2f} GiB; set a memory budget with "
        f"create_session({dataset_id!r}, memory_limit='8 GB') (staged arrays beyond it spill to disk) "
        f"or raise the threshold with load_recording(..., memory_threshold='16 GB')"
    )


def load_recording(
    cmcr_path: str | os.PathLike | None = None,
    cmtr_path: str | os.PathLike | None = None,
    dataset_id: str | None = None,
    *,
    force: bool = False,
    session=None,
    output_path: str | os.PathLike | None = None,
    hdf5_path: str | os.PathLike | None = None,
    sampling_rate: float | None = None,
    memory_threshold: int | str | None = None,
    waveforms: bool = True,
    sensor_axis_order: str = "auto",
    firing_rate_until: str = "recording",
    # the original pipeline's parameters (see the docstring's last section)
    output_dir: str | os.PathLike = "artifacts",
    allow_overwrite: bool = False,
    config: dict | None = None,
):
    """Read units, light reference and metadata into the recording file or a session.

    Parameters
    ----------
    cmcr_path, cmtr_path
        The raw (``.cmcr``) and spike-sorting (``.cmtr``) files; at least one.
    dataset_id
        Recording id (default: the session's id, else the ``.cmtr``'s stem, else
        the ``.cmcr``'s, without trailing hyphens).
    force
        Immediate mode: rebuild a recording whose ``load_recording`` step has
        already run (otherwise it is left as it is and reported as skipped), or
        replace another file at the target path (otherwise refused).
    output_path, hdf5_path
        The recording file to create in immediate mode (two names for the same
        thing).
    sampling_rate
        Hz; needed only without a ``.cmcr`` (default 20 kHz then).
    memory_threshold
        Bytes (or text like ``"4 GB"``) past which a :class:`LargeRecordingWarning`
        is issued, logged and recorded.  Default: none for a session with a
        ``memory_limit`` (what passes the budget spills to disk), the session's
        ``memory_warning`` for other sessions, 4 GiB in immediate mode.
    waveforms
        Compute mean waveforms from the cutouts (reads the whole ``Peaks`` tables).
    sensor_axis_order
        How the ``.cmcr`` stores its frames: ``"auto"`` decides it from the data
        (the regions' shapes, else the units' spike-triggered footprints; see
        :mod:`hdmea.io.frame_order`) and stores the decision at
        ``metadata/frame_order``; ``"col_row"`` or ``"row_col"`` force it.
    firing_rate_until
        Where each unit's ``firing_rate_10hz`` (spikes per 100 ms bin from time 0, in Hz) ends:
        ``"recording"``, the ``.cmcr``'s stated duration (``LB.RecordingDuration``), as the original's
        ``load_recording`` (without a ``.cmcr``: the unit's last spike plus one second, as there);
        ``"last_spike"``, the unit's last spike plus one second for every unit, as the original's
        ``load_recording_with_eimage_sta`` (which never reads a duration), so its units' series differ
        in length.
    session
        Stage into this :class:`~hdmea.session.session.PipelineSession` instead of writing.

    The original pipeline's parameters (kept for its scripts; the last three of the signature):

    output_dir
        Immediate mode without ``output_path``: the file is
        ``<output_dir>/<dataset_id>.h5`` (the folder is created).
    allow_overwrite
        The same as ``force``.
    config
        Stage-1 configuration (any JSON-serialisable dict); its hash is stored.  A
        file loaded with another configuration is refused (FileExistsError)
        unless ``force`` or ``allow_overwrite``.

    Returns
    -------
    LoadResult or PipelineSession
    """
    from hdmea.io.dataset_ids import dataset_id_from_files, file_safe_dataset_id

    if cmcr_path is None and cmtr_path is None:
        raise ConfigError("At least one of cmcr_path or cmtr_path must be provided (load_recording reads "
                          "a .cmcr, a .cmtr or both)")
    refuse_swapped_pair(cmcr_path, cmtr_path)
    if output_path is not None and hdf5_path is not None and Path(output_path) != Path(hdf5_path):
        raise ConfigError(f"output_path {output_path} and hdf5_path {hdf5_path} differ; pass one")
    if config is not None and not isinstance(config, dict):
        raise ConfigError("config must be a dict", found=type(config).__name__)
    if firing_rate_until not in FIRING_RATE_UNTIL:
        raise ConfigError(f"firing_rate_until must be one of {', '.join(map(repr, FIRING_RATE_UNTIL))}",
                          found=repr(firing_rate_until))
    force = bool(force or allow_overwrite)
    if dataset_id is None:
        dataset_id = session.dataset_id if session is not None else dataset_id_from_files(cmcr_path, cmtr_path)
    else:
        dataset_id = file_safe_dataset_id(dataset_id)
    if output_path is not None or hdf5_path is not None:
        target_path = Path(output_path or hdf5_path)
    else:
        target_path = Path(output_dir) / f"{dataset_id}.h5"

    if session is None and target_path.exists() and not force:
        status = _stage1_status(target_path)
        if status is None:
            raise RecordingExistsError(
                "file exists and is not a recording loaded by this step", path=target_path,
                hint="pass force=True to replace it (the old file stays intact until the new one is complete)",
            )
        if config is not None and status != stage1_params_hash(config):
            raise RecordingExistsError(
                "load_recording ran on this file with another configuration", path=target_path,
                obj="/ stage1_params_hash", expected=stage1_params_hash(config), found=status or "none",
                hint="pass force=True or allow_overwrite=True to reload it",
            )
        logger.info("%s: load_recording already ran; pass force=True to rebuild", target_path)
        return LoadResult(hdf5_path=target_path, dataset_id=dataset_id, num_units=_count_units(target_path),
                          stage1_completed=True, warnings=[CACHED_WARNING], skipped=True)
    if session is None:
        target_path.parent.mkdir(parents=True, exist_ok=True)

    check_sensor_axis_order(sensor_axis_order)
    cmcr = CmcrFile(cmcr_path, sensor_axis_order=sensor_axis_order) if cmcr_path is not None else None
    try:
        cmtr = CmtrFile(cmtr_path) if cmtr_path is not None else None
        kept = _KEPT_CMTR.get()
        if cmtr is not None and kept is not None:
            cmtr.keep_peak_columns()  # the caller's copy of the units' Peaks columns: taken as they are read
            kept.append(cmtr)
        try:
            return _load(cmcr, cmtr, dataset_id, target_path, cmcr_path, cmtr_path, sampling_rate,
                         memory_threshold, waveforms, session, config, firing_rate_until)
        finally:
            if cmtr is not None and kept is None:
                cmtr.close()
    finally:
        if cmcr is not None:
            cmcr.close()


def refuse_swapped_pair(cmcr_path, cmtr_path, call: str = "load_recording") -> None:
    """Refuse a ``.cmtr`` given as the raw file and a ``.cmcr`` as the spike sorting (the order, by suffix)."""
    if cmcr_path is None or cmtr_path is None:
        return
    if Path(cmcr_path).suffix.lower() == ".cmtr" and Path(cmtr_path).suffix.lower() == ".cmcr":
        raise ConfigError(
            f"{call} takes the raw recording (.cmcr) first and its spike sorting (.cmtr) second",
            found=f"{os.fspath(cmcr_path)} first and {os.fspath(cmtr_path)} second (swapped)",
            hint=f"swap them: {os.fspath(cmtr_path)} first, then {os.fspath(cmcr_path)}")


def _stage1_status(path: Path) -> str | None:
    """The stored configuration hash ('' when none) of a file this step loaded; None for any other file."""
    # Probed the way a read opens a file: one that links outside itself raises UnsafeFileError.
    with _files.probe_output(path) as f:
        if f is None:
            return None
        try:
            with guard_read(path, "/pipeline/session_info/completed_steps"):
                steps = f.get("pipeline/session_info/completed_steps")
                if steps is None:
                    return None
                from hdmea.io import hdf5_store as store

                value = store.decode_node(store.node_from_h5(steps))
                if STEP not in steps_done(value):
                    return None
                stored = f.attrs.get("stage1_params_hash", "")
                return stored.decode() if isinstance(stored, bytes) else str(stored)
        except (OSError, KeyError, ValueError, TypeError):
            return None


def _count_units(path: Path) -> int:
    with _files.probe_output(path) as f:
        if f is None:
            raise _files.corrupt_error(path)
        with guard_read(path, "/units"):
            return len(f["units"]) if "units" in f else 0


def _light_reference_and_frames(cmcr):
    """The light reference channels and the frame times of the sync channel (None when it is empty)."""
    light = cmcr.light_reference()
    sync = light.get("raw_ch2") if isinstance(light, dict) else None
    frames = get_frame_timestamps(sync) if sync is not None and len(sync) else None
    return light, frames


def _load(cmcr, cmtr, dataset_id, target_path, cmcr_path, cmtr_path, sampling_rate, memory_threshold,
          waveforms, session, config, firing_rate_until="recording"):
    if cmcr is not None:
        fs = cmcr.sampling_rate
        if sampling_rate is not None and abs(float(sampling_rate) - fs) > 1e-6 * fs:
            raise ConfigError(f"sampling_rate {sampling_rate} disagrees with the .cmcr's {fs} Hz; omit it")
    elif validate_acquisition_rate(sampling_rate):
        fs = float(sampling_rate)
    else:
        fs = DEFAULT_ACQUISITION_RATE

    total, parts = _estimate_bytes(cmcr, cmtr)
    threshold = _threshold(memory_threshold, session)
    warning_texts = []
    if threshold is not None and total > threshold:
        text = _memory_warning_text(total, parts, threshold, dataset_id)
        logger.warning(text)
        warnings.warn(text, LargeRecordingWarning, stacklevel=3)
        warning_texts.append(text)

    units_data = {}
    # The light reference and the frame times come from the .cmcr while the .cmtr's Peaks tables
    # stream in (their reads and the kernel that summarises them hold no GIL): both files are read
    # at once, and the sync signal's peak search runs while the disk delivers the tables.
    light_job = None
    light_pool = None
    if cmcr is not None and cmcr.has_analog():
        light_pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="load-light-reference")
        light_job = light_pool.submit(_light_reference_and_frames, cmcr)
    try:
        units = cmtr.read_units(fs, waveform=waveforms) if cmtr is not None else []
        light, frames = light_job.result() if light_job is not None else (None, None)
    finally:
        if light_pool is not None:
            light_pool.shutdown(wait=True, cancel_futures=True)
    if cmtr is not None:
        # None: each unit's last spike plus one second (hdmea.io.lab_series.firing_rate_10hz)
        duration_us = cmcr.recording_duration_us() if cmcr is not None and firing_rate_until == "recording" \
            else None
        for u in units:
            # Named and described as the original pipeline names them (hdmea.io.unit_names); global_id is
            # the sorter's sensor, as the original's unit-metadata step sets it.
            data = {
                "spike_times": u.spike_times,
                "waveform": u.waveform,
                "row": int(u.row),
                "col": int(u.col),
                "global_id": int(u.sensor_id),
                "unit_num": int(u.unit_id),
                "original_name": original_name(f"Unit {int(u.unit_id)}"),
                "sensor_id": int(u.sensor_id),
                "n_peaks": int(u.n_peaks),
            }
            if len(u.spike_times):  # as the original: a unit without spikes has no firing rate
                data["firing_rate_10hz"] = firing_rate_10hz(u.spike_times, fs, duration_us)
            for name, value in u.quality.items():
                data[f"quality_{name}"] = float(value)
            units_data[unit_key(u.unit_id)] = data
        if cmtr.position_warning_units:
            named = sorted(set(cmtr.position_warning_units))
            warning_texts.append(
                f"{dataset_id}: {counted(len(named), 'unit')} placed by SensorID, their Row/Column missing or "
                f"disagreeing with it (unit ids {', '.join(map(str, named[:20]))}{', ...' if len(named) > 20 else ''}); "
                f"first: {cmtr.position_warnings[0]}")

    # acquisition_rate and sample_interval: the original pipeline's names, read by lab scripts
    metadata = {"sampling_rate": float(fs), "acquisition_rate": float(fs), "sample_interval": compute_frame_time(fs),
                "dataset_id": dataset_id}
    frame_order = None
    if cmcr is not None:
        # Decided before the metadata is read: the regions' extents and gains follow the order.
        frame_order = decide_frame_order(cmcr, [(u.row - 1, u.col - 1) for u in units] if cmtr is not None else [],
                                         [u.spike_times for u in units] if cmtr is not None else [])
        meta = cmcr.metadata()
        metadata["acquisition"] = meta
        if frames is not None:
            metadata["frame_timestamps"] = frames
            metadata["frame_time"] = frames / float(fs)
    if cmtr is not None:
        metadata["spike_sorting"] = {"n_units": len(units_data), "program": "CMOS-MEA-Tools"}
        if cmtr.unusual_values:  # values the format allows but recordings rarely hold (each warned once)
            metadata["spike_sorting"]["unusual_values"] = list(cmtr.unusual_values)

    with open_target(target_path, session, step=STEP, create=session is None, dataset_id=dataset_id,
                     overwrite=True) as target:
        if units_data:
            target.add_units(units_data)
        if light is not None:
            target.add_stimulus(light_reference=light_reference_series(light, fs))
        target.add_metadata(metadata)
        if frame_order is not None:
            record_frame_order(target, frame_order, dataset_id)
        target.set_attrs("", {**source_files_attrs(cmcr_path, cmtr_path), "stage1_completed": True,
                              "stage1_params_hash": stage1_params_hash(config)})
        for text in warning_texts:
            target.add_warning(text)
        target.mark_step_complete(STEP)

    logger.info("loaded %s: %s at %.0f Hz", dataset_id, counted(len(units_data), "unit"), fs)
    if session is not None:
        return session
    return LoadResult(hdf5_path=target_path, dataset_id=dataset_id, num_units=len(units_data),
                      stage1_completed=True, warnings=warning_texts, estimated_bytes=total)

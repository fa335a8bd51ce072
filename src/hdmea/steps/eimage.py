"""Electrical images: each unit's mean high-pass-filtered voltage on every electrode around its spikes.

``compute_eimage_sta`` streams the raw sensor data of the ``.cmcr`` in chunks
(:mod:`h5stream.kernels.eimage`: filter state carried across chunks, a
``window - 1`` overlap so no spike is lost at an edge, reading started early
enough for the filter to settle, division by the spikes actually used, units in
batches within a memory budget).  ``load_recording_with_eimage_sta``
(:mod:`hdmea.steps.load`) is ``load_recording`` followed by it.

Orientation and regions.  Images are chip-sized, ``(window, 65, 65)`` in
``(row, col)`` order (0-based: the unit attributes ``row``/``col`` minus one),
whatever the layout of the raw file.  Each region of interest
(``SensorData {roi} 1``) is filtered and averaged in its stored layout and the
result is placed on the chip through :class:`hdmea.io.cmcr.SensorDataInfo`;
how the raw frames are stored is settled first, from a few windows
(``sensor_axis_order="auto"``: :mod:`hdmea.io.frame_order`, the decision stored at
``metadata/frame_order`` or reused from there); sensors no region recorded
are NaN.  Where regions overlap, the later region's values are kept.  Several
sweeps (chunks) of one region are refused: the time between sweeps is not
stored with them, so spike times cannot be placed in them.  A unit whose own
sensor lies in no region gets an all-NaN image, ``n_spikes_used`` 0 and a
``coverage`` attribute giving the reason (also logged), never an error.  A unit
of which no spike was averaged gets an all-NaN image too, so no plot draws a
flat image from no data: as the original stores a unit without spikes in the
time range (where each of a unit's spikes has its window past the data's edge,
the original stores zeros).

Scaling: microvolts when the raw file's unit is V (``(raw - ADZero) * factor *
10**(Exponent + 6)`` per sensor).  Filtering and averaging are linear per
channel, so with per-sensor factors the kernel works on ``raw - ADZero`` and
each channel of the mean is multiplied by its gain afterwards (``units x window
x channels`` products per recording instead of one per sample and channel).
Without any factor in the file the images are ADC counts (``scaling`` attribute
``"unscaled"``).

Orientation self-check: among units whose own sensor was recorded and that
used at least :data:`MIN_SPIKES_FOR_ORIENTATION_CHECK` spikes, the fraction
whose image peak (largest ``|value|`` over window and sensors, NaN ignored)
lies within one electrode (Chebyshev distance <= 1) of the unit's ``(row,
col)``, and of ``(col, row)``.  Both are stored as attributes of the group
``metadata/eimage_orientation`` (``fraction_own``, ``fraction_transposed``,
``n_units_checked``, ``min_spikes``, ``max_distance``, ``sensor_axis_order``)
and on :class:`EImageResult`; when the transposed position fits better a warning
naming the recording is logged and added to the file's pipeline warnings.

Stored per unit at ``units/{unit}/features/eimage_sta``: dataset ``data``
(float32, (window, 65, 65) chip (row, col), NaN where not recorded) and
attributes ``n_spikes_used``, ``n_spikes_excluded`` (window outside the time
range), ``n_spikes_over_cap``, ``window`` ([first, end) samples around the
spike), ``filter`` (text), ``highpass_hz``, ``filter_order``, ``start_sample``,
``stop_sample``, ``max_spikes_per_unit``, ``value_unit`` (``uV``, the file's
unit or ``counts``), ``scaling`` (``per_sensor``, ``single`` or ``unscaled``),
``coverage`` (``recorded`` or the reason the image is empty),
``sensor_axis_order``, plus ``name``, ``version``, ``params_hash``,
``extracted_at``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from pathlib import Path

import numpy as np

from h5stream.staging import parse_size
from hdmea.errors import ConfigError, RecordingFormatError
from hdmea.features.registry import params_hash
from hdmea.io.cmcr import AUTO, check_sensor_axis_order
from hdmea.io.frame_order import FrameOrderDecision, settle_frame_order
from hdmea.io.hdf5_store import source_paths
from hdmea.io.mcs import GRID_SIZE
from hdmea.io.recording import open_recording
from hdmea.io.unit_names import resolve_unit_refs

__all__ = ["EImageResult", "compute_eimage_sta", "check_sensor_axis_order",
           "orientation_check", "MIN_SPIKES_FOR_ORIENTATION_CHECK", "ORIENTATION_METADATA"]

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

STEP = "compute_eimage_sta"  # recorded in completed_steps; files may hold the former "eimage_sta"
FEATURE = "eimage_sta"
# 2: chip (row, col) images from the vendor's [frame, col, row] layout, NaN where not recorded,
# per-sensor gains.
FEATURE_VERSION = "2"
MIN_SPIKES_FOR_ORIENTATION_CHECK = 20
ORIENTATION_METADATA = "metadata/eimage_orientation"


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
    # orientation self-check (see the module docstring); NaN when no unit qualified
    orientation_fraction_own: float = float("nan")
    orientation_fraction_transposed: float = float("nan")
    orientation_units_checked: int = 0
    units_not_recorded: list[str] = dataclasses.field(default_factory=list)
    #: how the raw frames were read and why (:mod:`hdmea.io.frame_order`), and what deciding it cost
    frame_order: FrameOrderDecision | None = None
    frame_order_seconds: float = 0.0


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

    def open_direct_rows(self):
        """Rows read straight from the disk when the dataset is one plain run of bytes, else None."""
        from h5stream.kernels.direct_rows import open_direct_rows

        return open_direct_rows(self._ds)


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
    chunk_samples: int = 32768,
    sensor_dataset: str | None = None,
    sensor_axis_order: str = AUTO,
    n_threads: int | None = None,
    force: bool = False,
    session=None,
    unit_ids=None,
    peaks: str = "included",
):
    """Electrical images of every unit from the raw sensor data (see the module docstring).

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
    peaks
        Which of a unit's peaks are averaged: ``"included"`` (default), the spikes the sorter accepted
        (``IncludePeak == 1``: the unit's ``spike_times``); ``"all"``, every row of the unit's ``Peaks``
        table in the ``.cmtr`` (named by ``source_files[1]``), the rejected ones too, as the original
        pipeline averaged them.  A peak the sorter excluded is one it judged not to be this unit's spike
        (an overlap, noise, an artefact), so its window adds another signal to the image: the default
        keeps them out (docs/guide/from-hdmea-processing.md gives the counts).
    max_spikes_per_unit
        Use at most this many spikes per unit (the first in time, among the
        included spikes whose window fits the time range).  The pass's CPU time
        grows with the windows added (each adds window x channels values); the
        cap bounds one unit's share.  On the lab-shaped recording (310 units, the
        first 120 s) no unit reaches 10,000 (at most 3,386 spikes, 770,715 in
        all), so there it changes neither the images nor the time; it bites on a
        unit firing faster than cap / duration (83 Hz over 120 s).
    memory_budget
        Bytes (or text like ``"512 MiB"``) for the chip-sized images of one batch of units.
    chunk_samples
        Samples read per chunk.
    sensor_dataset
        Use only this ``SensorData`` dataset (default: every region's).
    sensor_axis_order
        Stored frame layout of the raw file: ``"auto"`` (decided from the data
        before the images are computed: :mod:`hdmea.io.frame_order`; a decision the
        recording already holds for the same file is reused), or ``"col_row"``
        (the vendor's documented ``[col, row]``) / ``"row_col"`` to force one.
    n_threads
        Threads of the compiled kernels.
    force
        Recompute when images with the same parameters are stored.
    session
        Stage into this session instead of writing the file.
    unit_ids
        Compute only these units' images (unit names ``"unit_012"`` or ``.cmtr``
        UnitIDs ``"12"``, as the original takes them); a reference that names no
        unit is logged as a warning, as the original does.  Default: every unit.

    Returns
    -------
    EImageResult or PipelineSession
    """
    from h5stream.kernels.eimage import accumulator_bytes, butter_highpass, iter_electrical_images
    from hdmea.io.cmcr import CmcrFile
    from hdmea.session.target import open_target

    setting = check_sensor_axis_order(sensor_axis_order)
    budget = _budget_bytes(memory_budget)
    w0, w1 = (int(window[0]), int(window[1]))
    if w1 <= w0:
        raise ConfigError(f"window must be (first, end) with end > first, found {window!r}")
    if start_s < 0 or (duration_s is not None and duration_s <= 0):
        raise ConfigError(f"start_s must be >= 0 and duration_s > 0, found {start_s!r}, {duration_s!r}")
    if peaks not in ("included", "all"):
        raise ConfigError(f"peaks must be 'included' or 'all', found {peaks!r}")
    t0 = time.perf_counter()
    with open_target(hdf5_path, session, step=STEP) as target:
        target.require_steps("load_recording")
        root_attrs = target.attrs("")
        if cmcr_path is None:
            cmcr_path = source_paths(root_attrs.get("source_files"))[0] or None
        if cmcr_path is None:
            raise ConfigError("no raw file: the recording names no .cmcr", hint="pass cmcr_path=")
        recording = str(root_attrs.get("dataset_id") or hdf5_path or cmcr_path)
        fs = float(np.asarray(target.get("metadata/sampling_rate")).reshape(-1)[0])
        with CmcrFile(cmcr_path, sensor_axis_order=setting) as cmcr:
            # The frame order is settled first, from a few windows, so a wrong order never costs a full pass.
            unit_ids_here = target.unit_ids()
            positions = [_unit_position(target, u) for u in unit_ids_here]
            all_spikes = [_sample_indices(target.spike_times(u)) for u in unit_ids_here]
            t_order = time.perf_counter()
            decision = settle_frame_order(target, cmcr, recording, positions, all_spikes)
            order_seconds = time.perf_counter() - t_order
            if peaks == "all":  # the original's selection: every row of Peaks (the order is decided on spikes)
                all_spikes = _all_peaks(target, root_attrs, unit_ids_here, fs)
            if unit_ids is not None:  # the frame order is decided from every unit; images only for these
                chosen, missing = resolve_unit_refs(unit_ids, unit_ids_here)
                if missing:
                    logger.warning("%s: unit_ids %s name no unit of the recording (it has %s)", recording,
                                   missing, ", ".join(unit_ids_here))
                    for ref in missing:  # kept in the session's (or file's) warnings, as the original does
                        target.add_warning(f"Unit {ref} not found in CMTR")
                keep = [i for i, u in enumerate(unit_ids_here) if u in set(chosen)]
                unit_ids_here = [unit_ids_here[i] for i in keep]
                positions = [positions[i] for i in keep]
                all_spikes = [all_spikes[i] for i in keep]
            order = cmcr.sensor_axis_order
            regions = _regions(cmcr, cmcr_path, sensor_dataset)
            n_samples = regions[0].n_frames
            start = int(round(start_s * fs))
            stop = n_samples if duration_s is None else min(n_samples, start + int(round(duration_s * fs)))
            if start >= stop:
                raise ConfigError(f"the time range starts at sample {start}, after the raw data's end {stop}",
                                  found=f"start_s={start_s}", expected=f"start_s < {n_samples / fs:.3f}")
            params = {"window": [w0, w1], "start": start, "stop": stop, "highpass_hz": float(highpass_hz),
                      **({"peaks": peaks} if peaks != "included" else {}),
                      "filter_order": int(filter_order), "max_spikes_per_unit": max_spikes_per_unit,
                      "sensor_datasets": [i.name for i in regions], "sensor_axis_order": order,
                      "adc": [[i.ad_zero, i.row_offset, i.col_offset, i.n_rows, i.n_cols, i.scaling,
                               float(i.gains.sum())] for i in regions]}
            digest = params_hash(FEATURE, FEATURE_VERSION, params)
            if not force and unit_ids_here and all(
                target.has(f"units/{u}/features/{FEATURE}")
                and target.attrs(f"units/{u}/features/{FEATURE}").get("params_hash") == digest
                for u in unit_ids_here
            ):
                logger.info("electrical images with the same parameters are stored; pass force=True to recompute")
                result = EImageResult(hdf5_path=_path(hdf5_path), units_processed=0, n_batches=0,
                                      start_sample=start, stop_sample=stop, n_spikes_used={},
                                      n_spikes_excluded={}, n_spikes_over_cap={}, params_hash=digest, skipped=True,
                                      frame_order=decision, frame_order_seconds=order_seconds)
            else:
                coverage = [_coverage(regions, pos) for pos in positions]
                not_recorded = [u for u, c in zip(unit_ids_here, coverage) if c != "recorded"]
                for u, c in zip(unit_ids_here, coverage):
                    if c != "recorded":
                        logger.warning("%s: unit %s gets an empty electrical image: %s", recording, u, c)
                empty = np.zeros(0, dtype=np.int64)
                spikes = [s if c == "recorded" else empty for s, c in zip(all_spikes, coverage)]
                sos = butter_highpass(highpass_hz, fs, filter_order)
                window_len = w1 - w0
                # no more units than one pass of the kernel takes (its sums are padded to whole tiles)
                per_batch = max(1, budget // accumulator_bytes(window_len, GRID_SIZE * GRID_SIZE))
                value_unit = regions[0].value_unit
                scaling = ("unscaled" if any(i.scaling == "unscaled" for i in regions)
                           else "per_sensor" if any(i.scaling == "per_sensor" for i in regions) else "single")
                used, excluded, over_cap = {}, {}, {}
                check = _OrientationTally()
                n_batches = 0
                stamp = _now()
                for b0 in range(0, len(unit_ids_here), per_batch):
                    members = list(range(b0, min(len(unit_ids_here), b0 + per_batch)))
                    # one whole-chip region: the kernel's sums become the images (no second chip-sized array)
                    images = None if len(regions) == 1 and regions[0].covers_chip else _no_images(
                        len(members), (w0, w1))
                    counts = None
                    kernel_args = dict(sos=sos, window=(w0, w1), start=start, stop=stop,
                                       max_spikes_per_unit=max_spikes_per_unit, memory_budget_bytes=budget,
                                       chunk_samples=int(chunk_samples), n_threads=n_threads)
                    for info in regions:
                        # Every region shares the time axis: the spike counts of the first stand for all.
                        got, images = _region_images(iter_electrical_images, cmcr, cmcr_path, info,
                                                     [spikes[i] for i in members],
                                                     [coverage[i] == "recorded" for i in members], images,
                                                     kernel_args)
                        counts = got if counts is None else counts
                    n_batches += 1
                    for j, i in enumerate(members):
                        u = unit_ids_here[i]
                        used[u], excluded[u], over_cap[u] = (int(x[j]) for x in counts)
                        if coverage[i] == "recorded" and used[u] >= MIN_SPIKES_FOR_ORIENTATION_CHECK:
                            check.add(images[j], positions[i])
                        if not used[u]:  # no spike averaged: all NaN, as the original's, not a flat image
                            images[j] = np.nan
                        target.add_feature(u, FEATURE, {
                            "data": images[j],
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
                            "value_unit": value_unit,
                            "scaling": scaling,
                            "coverage": coverage[i],
                            "sensor_axis_order": order,
                            "peaks": peaks,
                        }, {"version": FEATURE_VERSION, "params_hash": digest, "extracted_at": stamp,
                            **_original_attrs(used[u], excluded[u], (w0, w1), highpass_hz, filter_order, fs,
                                              max_spikes_per_unit)})
                        if target.is_deferred:  # the original's session mode: a metadata group of datasets
                            target.put_values(f"units/{u}/features/{FEATURE}/metadata", _original_metadata(
                                used[u], excluded[u], (w0, w1), highpass_hz, filter_order, fs,
                                max_spikes_per_unit, (stop - start) / fs))
                own, transposed, n_checked = check.fractions()
                target.put(ORIENTATION_METADATA, {
                    "fraction_own": own, "fraction_transposed": transposed, "n_units_checked": n_checked,
                    "min_spikes": MIN_SPIKES_FOR_ORIENTATION_CHECK, "max_distance": 1,
                    "sensor_axis_order": order,
                    "decided_by": "" if decision is None else decision.decided_by,
                })
                if n_checked and transposed > own:
                    other = "row_col" if order == "col_row" else "col_row"
                    how = "" if decision is None else f" ({decision.decided_by})"
                    text = (f"{recording}: electrical images peak nearer the units' transposed positions "
                            f"(col, row) than their own (row, col): {transposed:.0%} against {own:.0%} of "
                            f"{n_checked} units; the raw file's frames were read as "
                            f"sensor_axis_order={order!r}{how}; check the file, or rerun with "
                            f"sensor_axis_order={other!r}")
                    logger.warning(text)
                    target.add_warning(text)
                target.mark_step_complete(STEP)
                result = EImageResult(hdf5_path=_path(hdf5_path), units_processed=len(unit_ids_here),
                                      n_batches=n_batches, start_sample=start, stop_sample=stop,
                                      n_spikes_used=used, n_spikes_excluded=excluded, n_spikes_over_cap=over_cap,
                                      params_hash=digest, orientation_fraction_own=own,
                                      orientation_fraction_transposed=transposed,
                                      orientation_units_checked=n_checked, units_not_recorded=not_recorded,
                                      frame_order=decision, frame_order_seconds=order_seconds)
                logger.info("electrical images of %d units over samples %d..%d in %d batch(es); orientation "
                            "check: %d units, %.2f at (row, col), %.2f at (col, row)", len(unit_ids_here), start,
                            stop, n_batches, n_checked, own, transposed)
    result.elapsed_s = time.perf_counter() - t0
    return session if session is not None else result


def orientation_check(images, positions, *, max_distance: int = 1) -> tuple[float, float, int]:
    """(fraction near own (row, col), fraction near (col, row), number of images) of chip-sized images.

    ``images``: iterable of ``(window, 65, 65)`` arrays (NaN ignored); ``positions``:
    0-based ``(row, col)`` of each image's unit.  An image's peak is its largest
    ``|value|``; an all-NaN or all-zero image is not counted.
    """
    tally = _OrientationTally(max_distance)
    for image, pos in zip(images, positions):
        tally.add(np.asarray(image), pos)
    return tally.fractions()


class _OrientationTally:
    def __init__(self, max_distance: int = 1) -> None:
        self.max_distance = max_distance
        self.n = self.own = self.transposed = 0

    def add(self, image: np.ndarray, position: tuple[int, int]) -> None:
        # each sensor's largest |value| over the window, from its largest and smallest value (no copy of the
        # image); NaN (not recorded) counts as 0: it never wins against a recorded value, and an infinity as the
        # largest finite value, as np.nan_to_num has them
        values = image.reshape(image.shape[0], -1)
        if not values.size:
            return
        magnitude = np.nan_to_num(np.fmax(np.fmax.reduce(values, axis=0), -np.fmin.reduce(values, axis=0)),
                                  nan=0.0, copy=False)
        if not np.any(magnitude > 0):  # all NaN or all zero: no peak
            return
        flat = int(np.argmax(magnitude))
        r, c = divmod(flat, image.shape[-1])
        row, col = position
        self.n += 1
        self.own += max(abs(r - row), abs(c - col)) <= self.max_distance
        self.transposed += max(abs(r - col), abs(c - row)) <= self.max_distance

    def fractions(self) -> tuple[float, float, int]:
        if not self.n:
            return float("nan"), float("nan"), 0
        return self.own / self.n, self.transposed / self.n, self.n


def _region_images(iter_electrical_images, cmcr, cmcr_path, info, spikes, recorded, images, kwargs):
    """Add one region's images of a batch of units into the chip-sized ``images``; returns the spike counts
    and the images.

    ``images`` None (a region covering the whole chip): when the kernel yields the batch's units in one
    array, that array (in chip orientation and scaled as the kernel writes it out: :meth:`chip_frame
    <hdmea.io.cmcr_sensors.SensorDataInfo.chip_frame>`) becomes the images (units not recorded NaN); otherwise
    a NaN-filled array is made and filled as for any region.
    """
    raw = _GuardedSensorData(cmcr.h5[info.name], cmcr_path)
    uniform = info.uniform_gain
    n = len(spikes)
    used = np.zeros(n, dtype=np.int64)
    excluded = np.zeros(n, dtype=np.int64)
    over_cap = np.zeros(n, dtype=np.int64)
    # a whole-chip region's images come out of the kernel in chip orientation, each sensor's gain applied
    frame = {}
    if info.covers_chip:
        frame = dict(zip(("frame_place", "frame_gains"), info.chip_frame(scale=uniform is None)))
    for batch in iter_electrical_images(raw, spikes, adc_offset=info.ad_zero,
                                        adc_scale=1.0 if uniform is None else uniform, **kwargs, **frame):
        used[batch.units], excluded[batch.units], over_cap[batch.units] = (
            batch.n_spikes_used, batch.n_spikes_excluded, batch.n_spikes_over_cap)
        # Per-sensor gains: the filter and the mean are linear per channel, so the mean
        # of (raw - ADZero) times each channel's gain equals the mean of the scaled data.
        if images is None and batch.units.size == n and np.array_equal(batch.units, np.arange(n)):
            images = batch.images  # a whole-chip region's: in chip orientation, each sensor's gain applied
            images[~np.asarray(recorded, dtype=bool)] = np.nan
            continue
        if images is None:
            images = _no_images(n, kwargs["window"])
        for j, k in enumerate(batch.units):
            if recorded[k] and frame:
                images[k] = batch.images[j]
            elif recorded[k]:
                info.place_on_chip(batch.images[j], images[k], scale=uniform is None)
    return (used, excluded, over_cap), _no_images(n, kwargs["window"]) if images is None else images


def _sample_indices(values) -> np.ndarray:
    """A unit's spike samples as int64, for reading: unsigned samples below 2**63 (as the ``.cmtr`` reader
    gives them) are a view of the stored array, not a copy, so the caller must not write into it."""
    values = np.asarray(values)
    if values.dtype == np.uint64 and (values.size == 0 or int(values.max()) < 2**63):
        return values.view(np.int64)
    return values.astype(np.int64)


def _no_images(n_units: int, window) -> np.ndarray:
    """Chip-sized images of ``n_units`` units, all NaN (filled region by region)."""
    return np.full((n_units, window[1] - window[0], GRID_SIZE, GRID_SIZE), np.nan, dtype=np.float32)


def _unit_position(target, unit_id: str) -> tuple[int, int]:
    """0-based chip (row, col) of a unit (its 1-based ``row``/``col`` attributes minus one)."""
    attrs = target.attrs(f"units/{unit_id}")
    row = int(np.asarray(attrs.get("row", 0)).reshape(-1)[0])
    col = int(np.asarray(attrs.get("col", 0)).reshape(-1)[0])
    return row - 1, col - 1


def _coverage(regions, position: tuple[int, int]) -> str:
    row, col = position
    if not (0 <= row < GRID_SIZE and 0 <= col < GRID_SIZE):
        return f"not recorded: the unit has no sensor position on the chip (row {row + 1}, col {col + 1})"
    if any(info.contains(row, col) for info in regions):
        return "recorded"
    return f"not recorded: the unit's sensor (row {row + 1}, col {col + 1}) lies in no recorded region"


def _regions(cmcr, cmcr_path, name):
    """The sensor datasets to average: ``name`` alone, else one per region (several sweeps refused)."""
    infos = cmcr.sensor_datasets()
    if not infos:
        raise RecordingFormatError("no raw sensor data", path=cmcr_path, obj="Acquisition/Sensor Data",
                                   expected="SensorData datasets", found="none",
                                   hint="electrical images need the raw .cmcr recording")
    if name is not None:
        for info in infos:
            if name in (info.name, info.name.rsplit("/", 1)[-1]):
                return [info]
        raise ConfigError(f"no sensor dataset {name!r} in {cmcr_path}",
                          expected="one of " + ", ".join(i.name for i in infos), found=str(name))
    by_region: dict[int, list] = {}
    for info in infos:
        by_region.setdefault(info.roi, []).append(info)
    sweeps = [group for group in by_region.values() if len(group) > 1]
    if sweeps:
        raise RecordingFormatError(
            "several sweeps (chunks) of one region of interest", path=cmcr_path,
            obj=", ".join(i.name for i in sweeps[0]), expected="one SensorData {roi} {chunk} per region",
            found=f"{len(sweeps[0])} chunks of region {sweeps[0][0].roi}",
            hint="the time between sweeps is not stored with them, so spike times cannot be placed in them; "
                 "pass sensor_dataset= to average one dataset that starts with the recording",
        )
    frames = {info.n_frames for info in infos}
    if len(frames) > 1:
        raise RecordingFormatError(
            "regions of interest hold different numbers of frames", path=cmcr_path,
            obj=", ".join(i.name for i in infos), expected="one time axis for all regions",
            found=", ".join(f"{i.name.rsplit('/', 1)[-1]}: {i.n_frames}" for i in infos),
            hint="pass sensor_dataset= to use one region",
        )
    return infos


def _path(hdf5_path):
    return Path(hdf5_path) if hdf5_path is not None else None


def _now() -> str:
    from hdmea.io.hdf5_store import now_iso

    return now_iso()


def _original_attrs(used, excluded, window, highpass_hz, filter_order, fs, max_spikes) -> dict:
    """The attributes the original's immediate mode puts on ``features/eimage_sta`` (beside ours)."""
    return {"n_spikes": int(used), "n_spikes_excluded": int(excluded), "pre_samples": -int(window[0]),
            "post_samples": int(window[1]), "cutoff_hz": float(highpass_hz), "filter_order": int(filter_order),
            "sampling_rate": float(fs), "spike_limit": -1 if max_spikes is None else int(max_spikes)}


def _original_metadata(used, excluded, window, highpass_hz, filter_order, fs, max_spikes, duration_s) -> dict:
    """``features/eimage_sta/metadata`` as the original's session mode writes it."""
    attrs = _original_attrs(used, excluded, window, highpass_hz, filter_order, fs, max_spikes)
    attrs["n_spikes_used"] = attrs.pop("n_spikes")
    return {**attrs, "duration_s": float(duration_s), "skip_highpass": False,
            "window_range": [int(window[0]), int(window[1])]}


def _all_peaks(target, root_attrs, unit_ids, fs) -> list[np.ndarray]:
    """Every peak of each unit's ``Peaks`` table (IncludePeak ignored) as sample indices, from the .cmtr."""
    from hdmea.io.cmtr import CmtrFile
    from hdmea.io.vendor_meta import peak_samples

    cmtr_path = source_paths(root_attrs.get("source_files"))[1]
    if not cmtr_path or not Path(cmtr_path).is_file():
        raise ConfigError("peaks='all' reads every peak from the .cmtr, which the recording does not find",
                          found=str(cmtr_path) or "none", hint="keep peaks='included', or set the source files")
    with CmtrFile(cmtr_path) as cmtr:
        return [_sample_indices(peak_samples(cmtr, int(target.attrs(f"units/{u}")["unit_num"]), fs))
                for u in unit_ids]

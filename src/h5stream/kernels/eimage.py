"""Electrical images: the mean high-pass-filtered voltage of every electrode around each spike.

The raw data (samples x electrodes, any array-like that slices along its first
axis: a numpy array, a memmap or an h5py dataset) is streamed in chunks:

* each chunk is filtered by cascaded biquads whose state carries over from the
  previous chunk, so chunked filtering equals filtering the whole range at once;
  when the time range starts after the first sample, reading starts
  ``settle_samples`` earlier so the filter has settled by ``start``;
* the last ``window - 1`` filtered rows of a chunk are kept in front of the next
  one, so a spike whose window straddles a chunk edge is still averaged whole;
  every spike is taken in the chunk where its window ends, exactly once;
* each unit's sum is divided by the spikes actually used (in range, with a whole
  window inside ``[start, stop)``, within the per-unit cap);
* units whose accumulators would exceed ``memory_budget_bytes`` are processed in
  batches, one pass over the data per batch;
* the rows are read by :class:`h5stream.kernels.raw_chunks.RawChunks`: with
  ``prefetch`` (the default) the next chunk is read while the compiled kernel
  (:mod:`h5stream._ext._eimage`, OpenMP, no GIL) filters and averages the current
  one on every free core; an h5py dataset whose rows lie in plain runs of bytes is read
  by :mod:`h5stream.kernels.direct_rows` (a chunk the page cache holds whole is viewed
  there, not copied), and the kernel takes the rows of each run of the file where they
  lie (no move to make the chunk one array: on the lab-shaped recording, whose chunks
  lie in runs of 140 MB, that move was 15.5 of its 20.3 GB); other sources are sliced;
* the kernel works tile by tile (:data:`TILE` channels, handed to the threads
  dynamically, so a descheduled thread delays one tile, not half a chunk): a
  tile's rows of the chunk are filtered :data:`SUB_ROWS` at a time (the raw rows
  a tile reads lie a whole raw row apart, so they are prefetched ahead) into a
  scratch held as lane groups of 16 channels; one group (515 KiB) stays in the
  core's L2 cache while every unit's windows ending there are added into the
  unit's sums of that group (3.2 KiB, in L1), laid out ``(channels / 16, units,
  window, 16)`` so that the visits of one group walk a contiguous run the hardware
  prefetchers stream (rewritten as ``(units, window, channels)`` in place at the
  end).  The filtered data never goes to memory.  Measured on a loaded
  2-core machine (in memory, 65536 full-chip rows, 135 units at 10 Hz): the former Numba kernels
  1.12-1.61 CPU s, this kernel 0.70-0.84 CPU s; the filter alone 0.11 s per
  32768 rows (0.4 s before the raw rows were prefetched).  Adding windows is
  bound by moving each window (window x channels float32, 850 KB for a full
  chip) and each unit's sums between the caches: 24-30 us a window with 310
  units on that machine, against 8-11 us with one unit whose sums stay in L1.
  :data:`PROFILE` gives the split of a pass.

The kernel is compiled ahead of time: a new process pays no compilation.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
from collections.abc import Iterator

import numpy as np

from h5stream import capabilities
from h5stream.cores import free_cores
from h5stream.kernels._tiles import TILE
from h5stream.kernels.raw_chunks import RawChunks
from h5stream.memory import small_page_array

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

DEFAULT_WINDOW = (-10, 40)
DEFAULT_MEMORY_BUDGET = 512 * 2**20
#: rows per chunk: 277 MB of a full 65 x 65 uint16 chip per buffer (two take turns); each chunk moves
#: every unit's sums through memory once, so larger chunks cost less CPU per row
DEFAULT_CHUNK_SAMPLES = 32768


class KernelProfile:
    """Where the passes of this process spent their time, summed since the last :meth:`reset`.

    ``read_wait_s``: wall seconds the pass waited for a chunk to be read (reading not
    hidden behind the work); ``kernel_s``: wall seconds in the compiled kernel;
    ``filter_cpu_s`` / ``accumulate_cpu_s``: its threads' CPU seconds filtering and adding
    windows; ``rows``, ``windows``: raw rows filtered and windows added; ``cached_bytes``, ``direct_bytes``,
    ``sliced_bytes``, ``mapped_bytes``: raw bytes copied from the page cache, read directly, read by slicing
    the source, and viewed in the page cache (:attr:`h5stream.kernels.raw_chunks.RawChunks.bytes_read`).
    """

    FIELDS = ("read_wait_s", "kernel_s", "filter_cpu_s", "accumulate_cpu_s", "rows", "windows", "cached_bytes",
              "direct_bytes", "sliced_bytes", "mapped_bytes")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._values = dict.fromkeys(self.FIELDS, 0.0)

    def add(self, **values) -> None:
        with self._lock:
            for key, value in values.items():
                self._values[key] += value

    def snapshot(self) -> dict:
        with self._lock:
            return dict(self._values)


#: the process's electrical-image profile (see :class:`KernelProfile`)
PROFILE = KernelProfile()


@dataclasses.dataclass
class EImageBatch:
    """Electrical images of one batch of units.

    Attributes
    ----------
    units : ndarray of int64
        Indices of the units (in the caller's order) this batch holds.
    images : ndarray, float32, shape (len(units), window, *electrode_shape)
        Mean filtered voltage; all zeros for a unit with no used spike.
    n_spikes_used, n_spikes_excluded, n_spikes_over_cap : ndarray of int64
        Spikes averaged; spikes in the time range whose window did not fit in it;
        usable spikes left out by the per-unit cap.
    """

    units: np.ndarray
    images: np.ndarray
    n_spikes_used: np.ndarray
    n_spikes_excluded: np.ndarray
    n_spikes_over_cap: np.ndarray


@dataclasses.dataclass
class EImagePlan:
    """What a run will do: the filter, the ranges and the unit batches."""

    sos: np.ndarray
    window: tuple[int, int]
    start: int
    stop: int
    read_start: int
    settle_samples: int
    chunk_samples: int
    batches: list[np.ndarray]
    selected: list[np.ndarray]
    n_excluded: np.ndarray
    n_over_cap: np.ndarray


def butter_highpass(cutoff_hz: float, fs: float, order: int = 2) -> np.ndarray:
    """Second-order sections of a Butterworth high-pass filter (as ``scipy.signal.butter`` with
    ``btype="highpass", output="sos"``).

    Designed here in a few lines of numpy (analog prototype, high-pass transform at the
    pre-warped cutoff, bilinear transform), so that a fresh process never imports
    ``scipy.signal`` (about two seconds): conjugate poles pair into biquads, the one closest to
    the unit circle last; every section's zeros lie at z = 1; the gain sits in the first.
    """
    order = int(order)
    if order < 1:
        raise ValueError(f"order: expected a positive integer (found {order})")
    if not 0 < cutoff_hz < fs / 2:
        raise ValueError(f"cutoff_hz: expected between 0 and fs/2 = {fs / 2} (found {cutoff_hz})")
    # Analog low-pass prototype poles, high-pass transform at the pre-warped cutoff (fs' = 2).
    prototype = -np.exp(1j * np.pi * np.arange(-order + 1, order, 2) / (2 * order))
    warped = 4.0 * math.tan(math.pi * cutoff_hz / fs)
    analog = warped / prototype
    # Bilinear transform (2 fs' = 4): s-plane zeros at 0 map to z = 1.
    poles = (4.0 + analog) / (4.0 - analog)
    gain = float(np.real(1.0 / np.prod(-prototype))) * float(np.real(4.0**order / np.prod(4.0 - analog)))
    upper = poles[poles.imag > 0]
    real = np.real(poles[np.abs(poles.imag) <= 0]) if order % 2 else np.zeros(0)
    upper = upper[np.argsort(np.abs(upper))]
    sections = []
    if order % 2:
        sections.append([1.0, -1.0, 0.0, 1.0, -float(real[0]), 0.0])
    for pole in upper:
        sections.append([1.0, -2.0, 1.0, 1.0, -2.0 * float(pole.real), float(abs(pole) ** 2)])
    sos = np.asarray(sections, dtype=np.float64)
    sos[0, :3] *= gain
    return sos


def settling_samples(sos: np.ndarray, tolerance: float = 1e-7) -> int:
    """Samples after which the filter's impulse response has decayed below ``tolerance``."""
    sos = np.atleast_2d(np.asarray(sos, dtype=np.float64))
    poles = np.concatenate([np.roots(np.trim_zeros(section[3:], "b")) for section in sos]) if sos.size else []
    radius = float(np.max(np.abs(poles))) if len(poles) else 0.0
    if radius <= 0.0:
        return 1
    if radius >= 1.0:
        raise ValueError(f"sos: expected a stable filter (found a pole of magnitude {radius:.6f})")
    return max(1, math.ceil(math.log(tolerance) / math.log(radius)))


def accumulator_bytes(window_len: int, n_channels: int) -> int:
    """Bytes of one unit's sums: float32, ``window_len`` samples of the channels padded to whole tiles."""
    return int(window_len) * (-(-int(n_channels) // TILE) * TILE) * 4


def _ragged_samples(spike_times, offsets):
    if offsets is None:
        parts = [np.asarray(p).reshape(-1) for p in spike_times]
    else:
        values = np.asarray(spike_times).reshape(-1)
        offsets = np.asarray(offsets, dtype=np.int64)
        if offsets.ndim != 1 or offsets.size < 1 or offsets[0] != 0 or offsets[-1] != values.size:
            raise ValueError(f"offsets: expected 1-d, from 0 to {values.size} (found {offsets[:1]}..{offsets[-1:]})")
        parts = [values[offsets[i] : offsets[i + 1]] for i in range(offsets.size - 1)]
    out = []
    for i, p in enumerate(parts):
        if p.size and not np.issubdtype(p.dtype, np.integer):
            raise TypeError(f"spike_times[{i}]: expected integer sample indices (found dtype {p.dtype})")
        p = p.astype(np.int64, copy=False)
        if p.size > 1 and np.any(p[1:] < p[:-1]):
            p = np.sort(p)
        out.append(p)
    return out


def plan_electrical_images(
    n_samples: int,
    n_channels: int,
    spike_times,
    offsets=None,
    *,
    sos: np.ndarray,
    window: tuple[int, int] = DEFAULT_WINDOW,
    start: int = 0,
    stop: int | None = None,
    settle_samples: int | None = None,
    max_spikes_per_unit: int | None = 10_000,
    memory_budget_bytes: int = DEFAULT_MEMORY_BUDGET,
    chunk_samples: int = DEFAULT_CHUNK_SAMPLES,
) -> EImagePlan:
    """Validate the parameters, select each unit's spikes and split the units into batches."""
    w0, w1 = (int(window[0]), int(window[1]))
    if w1 - w0 < 1:
        raise ValueError(f"window: expected (first, end) with end > first (found {window})")
    stop = n_samples if stop is None else min(int(stop), n_samples)
    start = int(start)
    if not 0 <= start < stop:
        raise ValueError(f"start/stop: expected 0 <= start < stop <= {n_samples} (found {start}, {stop})")
    if chunk_samples < 1:
        raise ValueError(f"chunk_samples: expected >= 1 (found {chunk_samples})")
    if max_spikes_per_unit is not None and max_spikes_per_unit < 1:
        raise ValueError(f"max_spikes_per_unit: expected >= 1 or None (found {max_spikes_per_unit})")
    sos = np.ascontiguousarray(sos, dtype=np.float64)
    if sos.ndim != 2 or sos.shape[1] != 6 or sos.shape[0] < 1:
        raise ValueError(f"sos: expected second-order sections of shape (n, 6) (found {sos.shape})")
    if not np.allclose(sos[:, 3], 1.0):
        raise ValueError("sos: expected normalised sections (a0 == 1)")
    settle = settling_samples(sos) if settle_samples is None else int(settle_samples)
    read_start = max(0, start - settle)

    units = _ragged_samples(spike_times, offsets)
    selected = []
    n_excluded = np.zeros(len(units), dtype=np.int64)
    n_over_cap = np.zeros(len(units), dtype=np.int64)
    for u, times in enumerate(units):
        in_range = times[(times >= start) & (times < stop)]
        fits = in_range[(in_range + w0 >= start) & (in_range + w1 <= stop)]
        n_excluded[u] = in_range.size - fits.size
        if max_spikes_per_unit is not None and fits.size > max_spikes_per_unit:
            n_over_cap[u] = fits.size - max_spikes_per_unit
            fits = fits[:max_spikes_per_unit]
        selected.append(fits)

    per_unit = accumulator_bytes(w1 - w0, n_channels)
    per_batch = max(1, int(memory_budget_bytes) // max(per_unit, 1))
    order = np.arange(len(units), dtype=np.int64)
    batches = [order[i : i + per_batch] for i in range(0, len(units), per_batch)] if len(units) else []
    return EImagePlan(
        sos=sos,
        window=(w0, w1),
        start=start,
        stop=stop,
        read_start=read_start,
        settle_samples=settle,
        chunk_samples=int(chunk_samples),
        batches=batches,
        selected=selected,
        n_excluded=n_excluded,
        n_over_cap=n_over_cap,
    )


def iter_electrical_images(
    raw,
    spike_times,
    offsets=None,
    *,
    fs: float = 20_000.0,
    highpass_hz: float = 100.0,
    filter_order: int = 2,
    sos: np.ndarray | None = None,
    window: tuple[int, int] = DEFAULT_WINDOW,
    start: int = 0,
    stop: int | None = None,
    settle_samples: int | None = None,
    max_spikes_per_unit: int | None = 10_000,
    memory_budget_bytes: int = DEFAULT_MEMORY_BUDGET,
    chunk_samples: int = DEFAULT_CHUNK_SAMPLES,
    adc_offset: float = 0.0,
    adc_scale: float = 1.0,
    n_threads: int | None = None,
    prefetch: bool = True,
    direct_io: bool = True,
    frame_place: np.ndarray | None = None,
    frame_gains: np.ndarray | None = None,
) -> Iterator[EImageBatch]:
    """Stream ``raw`` and yield the electrical images batch by batch (bounded memory).

    Parameters
    ----------
    raw : array-like, shape (n_samples, *electrode_shape)
        Raw voltages; sliced as ``raw[a:b]`` (numpy, memmap or h5py dataset).
    spike_times : list of int arrays, or int array with ``offsets``
        Spike sample indices per unit.
    fs, highpass_hz, filter_order : float, float, int
        The Butterworth high-pass (ignored when ``sos`` is given).
    window : (int, int)
        Samples ``[t + window[0], t + window[1])`` around a spike at ``t``.
    start, stop : int
        Time range in samples (``stop`` None: the end of the data).
    settle_samples : int, optional
        Samples read before ``start`` so the filter settles (default: until its
        impulse response has decayed by 1e-7).
    max_spikes_per_unit : int or None
        Use at most this many spikes per unit (the first in time).
    memory_budget_bytes : int
        Accumulators of one batch of units stay within this size.
    chunk_samples : int
        Samples read per chunk.
    adc_offset, adc_scale : float
        Voltage = (raw - adc_offset) * adc_scale, applied before filtering.
    n_threads : int or None
        Threads of the compiled kernel (None: the cores free now, see :func:`h5stream.cores.free_cores`,
        at most as many as OpenMP offers).
    prefetch : bool
        Read the next chunk in a background thread while the current one is processed.
    direct_io : bool
        Read an h5py dataset stored as plain runs of bytes with
        :mod:`h5stream.kernels.direct_rows` (each piece copied from the page cache when it
        holds the piece, else read with ``O_DIRECT``); False reads it through h5py.
    frame_place : int array of n_channels, optional
        The images' frames in another order: the mean of channel ``c`` (``raw``'s flattened electrode
        index) goes to position ``frame_place[c]`` of the flattened frame (a permutation; default: ``c``).
    frame_gains : float32 array of n_channels, optional
        Each frame position's mean multiplied by ``frame_gains[position]`` (after ``frame_place``).
        Both are applied as the means are written out, not in a pass of their own over the images.
    """
    shape = tuple(raw.shape)
    if len(shape) < 2:
        raise ValueError(f"raw: expected (n_samples, electrodes...) (found shape {shape})")
    electrode_shape = shape[1:]
    n_channels = int(np.prod(electrode_shape))
    if sos is None:
        sos = butter_highpass(highpass_hz, fs, filter_order)
    plan = plan_electrical_images(
        shape[0],
        n_channels,
        spike_times,
        offsets,
        sos=sos,
        window=window,
        start=start,
        stop=stop,
        settle_samples=settle_samples,
        max_spikes_per_unit=max_spikes_per_unit,
        memory_budget_bytes=memory_budget_bytes,
        chunk_samples=chunk_samples,
    )
    frame = _frame_layout(frame_place, frame_gains, n_channels)
    for batch in plan.batches:
        sums, used = _stream_batch(raw, n_channels, plan, batch, float(adc_offset), float(adc_scale), n_threads,
                                   prefetch, direct_io, frame)
        window_len = plan.window[1] - plan.window[0]
        yield EImageBatch(
            units=batch,
            images=sums.reshape(len(batch), window_len, *electrode_shape),
            n_spikes_used=used,
            n_spikes_excluded=plan.n_excluded[batch],
            n_spikes_over_cap=plan.n_over_cap[batch],
        )


def electrical_images(raw, spike_times, offsets=None, **kwargs) -> EImageBatch:
    """All units' electrical images in one :class:`EImageBatch` (see :func:`iter_electrical_images`)."""
    batches = list(iter_electrical_images(raw, spike_times, offsets, **kwargs))
    if not batches:
        w0, w1 = kwargs.get("window", DEFAULT_WINDOW)
        empty = np.zeros(0, dtype=np.int64)
        return EImageBatch(empty, np.zeros((0, w1 - w0, *raw.shape[1:]), np.float32), empty, empty, empty)
    return EImageBatch(
        units=np.concatenate([b.units for b in batches]),
        images=np.concatenate([b.images for b in batches]),
        n_spikes_used=np.concatenate([b.n_spikes_used for b in batches]),
        n_spikes_excluded=np.concatenate([b.n_spikes_excluded for b in batches]),
        n_spikes_over_cap=np.concatenate([b.n_spikes_over_cap for b in batches]),
    )


def _frame_layout(place, gains, n_channels: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``(place, gains)`` of :func:`iter_electrical_images` as the compiled kernel takes them (checked there)."""
    if place is not None:
        place = np.ascontiguousarray(place, dtype=np.int64).reshape(-1)
    if gains is not None:
        gains = np.ascontiguousarray(gains, dtype=np.float32).reshape(-1)
    for name, values in (("frame_place", place), ("frame_gains", gains)):
        if values is not None and values.size != n_channels:
            raise ValueError(f"{name}: expected one value per channel ({n_channels}), found {values.size}")
    return place, gains


def _unit_means(used: np.ndarray) -> np.ndarray:
    """The float32 factor turning each unit's sums into its mean: ``1 / used`` (0 for a unit of no spike)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(used > 0, 1.0 / np.maximum(used, 1), 0.0).astype(np.float32)


def _stream_batch(raw, n_channels, plan: EImagePlan, batch, adc_offset, adc_scale, n_threads, prefetch, direct_io,
                  frame=(None, None)):
    """One batch's images, ``(units, window * n_channels)`` means (and each unit's spikes used), laid out as
    ``frame`` (``(place, gains)``, :func:`_frame_layout`) asks."""
    from h5stream.native import compiled

    _eimage = compiled("_eimage")
    if _eimage.tile_width() != TILE:  # a stale build of the kernel
        raise RuntimeError(f"h5stream._ext._eimage works in tiles of {_eimage.tile_width()} channels, the "
                           f"wrapper in {TILE}: rebuild the package (pip install . or setup.py build_ext)")
    layout = getattr(_eimage, "sums_layout", lambda: "units, groups, window, lanes")()
    if layout != SUMS_LAYOUT:  # a stale build would add into the wrong places
        raise RuntimeError(f"h5stream._ext._eimage lays its sums out as ({layout}), the wrapper as "
                           f"({SUMS_LAYOUT}): rebuild the package (pip install . or setup.py build_ext)")
    if not hasattr(_eimage, "untile_frames"):  # a build older than the wrapper
        raise RuntimeError("h5stream._ext._eimage lays out no reordered frames: rebuild the package "
                           "(pip install . or setup.py build_ext)")
    threads = _kernel_threads(n_threads)
    w0, w1 = plan.window
    window_len = w1 - w0
    carry = window_len - 1
    ends = [plan.selected[u] + w1 for u in batch]
    used = np.array([plan.selected[u].size for u in batch], dtype=np.int64)
    n_tiles = -(-n_channels // TILE)
    padded = n_tiles * TILE
    # the sums in lane groups: a unit's share of one group of channels is contiguous (L1-sized), and
    # the units' shares of one group follow each other (the visits of a sub-block walk them in order)
    lanes = _eimage.lane_width()
    sums = _sums_array(_eimage, (padded // lanes, len(batch), window_len, lanes))
    if not used.any():  # every sum and mean 0 (a unit of no spike's image is 0 before any gain)
        images = sums.reshape(len(batch), -1)[:, : window_len * n_channels]
        if frame[1] is not None:
            for unit in images:
                frames = unit.reshape(window_len, n_channels)  # a view: each unit's row is contiguous
                frames *= frame[1]
        return images, used
    stop = min(plan.stop, max(int(e[-1]) for e in ends if e.size))
    windows = _WindowsByEnd(ends)
    scratch = _eimage.thread_scratch(threads, SUB_ROWS, window_len)  # once per pass: its pages touched once
    # b0 b1 b2 a1 a2 of each (normalised) section, float32 as the kernel computes
    coef = np.ascontiguousarray(plan.sos[:, [0, 1, 2, 4, 5]], dtype=np.float32)
    state = np.zeros((plan.sos.shape[0], 2, padded), dtype=np.float32)
    tail = np.zeros((n_tiles, carry * TILE), dtype=np.float32)
    baseline = level = None
    n_tail = 0
    with RawChunks(raw, n_channels, plan.read_start, stop, plan.chunk_samples, prefetch=prefetch,
                   direct_io=direct_io, copy_threads=threads, wait=_count_read_wait) as chunks:
        for pos, block in chunks:
            pieces = _kernel_pieces(block)
            if baseline is None:
                baseline, level = _initial_levels(plan.sos, pieces[0][0], padded, adc_offset, adc_scale)
            n = sum(piece.shape[0] for piece in pieces)
            rows, offsets = windows.chunk(pos, n, window_len, SUB_ROWS)
            t0 = time.perf_counter()
            filtering, accumulating = _eimage.filter_accumulate(
                pieces[0], baseline, level, float(adc_scale), coef, state, tail, n_tail, rows, offsets,
                len(batch), SUB_ROWS, window_len, sums, threads, scratch, pieces[1:])
            PROFILE.add(kernel_s=time.perf_counter() - t0, filter_cpu_s=filtering, accumulate_cpu_s=accumulating,
                        rows=n, windows=rows.size)
            n_tail = min(carry, n_tail + n)
    PROFILE.add(**{f"{path}_bytes": n for path, n in chunks.bytes_read.items()})
    # the means, the frames' order and gains applied as the sums are laid out (no pass of their own)
    _eimage.untile_frames(sums, n_channels, _unit_means(used), *frame)
    return sums.reshape(len(batch), -1)[:, : window_len * n_channels], used


#: rows of a chunk filtered and averaged at a time per tile: one lane group of the filtered rows
#: (with the window - 1 carried before them; 515 KiB) stays in the core's L2 cache while the windows
#: are added from it, and a unit's sums of the group (3.2 KiB) in L1 while its spikes are added;
#: each unit's sums are visited once per sub-block and group, so fewer, larger visits cost less
SUB_ROWS = 8192
#: the order of the axes of the sums the compiled kernel adds into
SUMS_LAYOUT = "groups, units, window, lanes"
#: raw types the compiled kernel reads as they are; others are converted to float64 first
_KERNEL_TYPES = tuple(np.dtype(t) for t in ("uint16", "int16", "int32", "float32", "float64"))


def _kernel_threads(n_threads: int | None) -> int:
    """Threads of the compiled kernel: ``n_threads``, or the cores free now (:func:`h5stream.cores.free_cores`),
    at most as many as OpenMP offers.

    Not every core whatever the load: the threads meet at the end of every chunk, and with Linux's session
    autogrouping a second thread on a machine whose other core is busy gets no second core, only a share of
    the same one, which it spends spinning at those meetings.  Measured on the lab-shaped recording (2 cores,
    one kept busy by another process): the electrical images took 16.1-16.6 s wall and 15.9-16.6 CPU s with
    two threads, 13.2-13.6 s and 13.1-13.6 CPU s with one."""
    from h5stream.native import compiled

    available = max(1, int(compiled("_runtime").openmp_max_threads()))
    wanted = free_cores() if n_threads is None else int(n_threads)
    return max(1, min(wanted, available))


def _kernel_pieces(block: np.ndarray | list[np.ndarray]) -> list[np.ndarray]:
    """A chunk's rows as the kernel reads them: one or more arrays (:func:`_kernel_rows`), in order."""
    if isinstance(block, np.ndarray):
        return [_kernel_rows(block)]
    block = [piece for piece in block if piece.shape[0]]
    if len(block) > 1 and all(_read_as_is(piece) for piece in block):
        return block
    return [_kernel_rows(np.concatenate(block) if len(block) > 1 else block[0])]


def _read_as_is(block: np.ndarray) -> bool:
    """The kernel reads ``block`` without a copy: native byte order, one of its types, C order."""
    return block.dtype.isnative and block.dtype in _KERNEL_TYPES and block.flags.c_contiguous


def _kernel_rows(block: np.ndarray) -> np.ndarray:
    """The chunk as (rows, channels) the kernel reads: native byte order, one of its types, C order."""
    dtype = block.dtype
    if _read_as_is(block):
        return block
    if dtype.isnative and dtype in _KERNEL_TYPES:
        return np.ascontiguousarray(block)
    if dtype.kind in "iub" and dtype.itemsize <= 2:
        return block.astype(np.int32)
    return block.astype(np.float64)


def _count_read_wait(seconds: float) -> None:
    PROFILE.add(read_wait_s=seconds)


def _sums_array(_eimage, shape) -> np.ndarray:
    """Zeroed float32 sums whose rows start on cache lines: on small pages where the system allows
    (:mod:`h5stream.memory`; a page-aligned mapping), else from the kernel's own allocator."""
    if capabilities.small_pages():
        # a fresh process faults the sums in as the first chunk adds into them: on this project's
        # benchmark machine (a virtual machine) that took 0.5 s of system time more with huge pages
        # (the lab-shaped pass, one core busy: 2.13-2.14 s against 1.58-1.62, the kernel 8.81-8.98 CPU
        # s against 8.35-8.46); each tile's sums are walked in order, so small pages cost no TLB time
        return small_page_array(shape, np.float32, zeros=True, populate=True)
    return _eimage.on_cache_lines(shape)


class _WindowsByEnd:
    """Every window of a batch, by the sample its window ends at (one sort per pass; each chunk then
    takes its windows with two binary searches, not two per unit)."""

    def __init__(self, ends: list[np.ndarray]) -> None:
        self.n_units = len(ends)
        flat = np.concatenate(ends) if ends else np.zeros(0, dtype=np.int64)
        unit = np.repeat(np.arange(self.n_units, dtype=np.int64), [e.size for e in ends])
        order = np.argsort(flat, kind="stable")  # within a unit: time order
        self.ends = np.ascontiguousarray(flat[order], dtype=np.int64)
        self.unit = unit[order]

    def chunk(self, pos: int, n: int, window_len: int, sub_rows: int) -> tuple[np.ndarray, np.ndarray]:
        """The windows ending in ``(pos, pos + n]``, grouped by (sub-block, unit) as the kernel takes them.

        Returns ``(rows, offsets)``: ``rows`` the windows' first samples relative to ``pos``,
        ``offsets`` (sub-blocks x units + 1) opening each group; within a unit, time order.
        """
        n_units = self.n_units
        n_sub = -(-n // sub_rows)
        a, b = np.searchsorted(self.ends, [pos, pos + n], side="right")
        rel = self.ends[a:b] - pos
        key = (rel - 1) // sub_rows * n_units + self.unit[a:b]
        order = np.argsort(key, kind="stable")
        offsets = np.zeros(n_sub * n_units + 1, dtype=np.int64)
        np.cumsum(np.bincount(key, minlength=n_sub * n_units), out=offsets[1:])
        return np.ascontiguousarray((rel - window_len)[order], dtype=np.int64), offsets


def _initial_levels(sos, first_row, padded, adc_offset, adc_scale):
    """(per-channel baseline, per-channel output level), float32 padded to ``padded`` channels.

    The filter runs on ``(raw - first_row) * scale`` from rest, and the response to the
    constant ``(first_row - adc_offset) * scale`` (its DC gain times that value: zero for
    a high-pass) is added back.  By linearity this equals filtering the voltage from the
    steady state of its first sample, while float32 rounding stays relative to the
    signal rather than to the electrodes' DC level.
    """
    first = np.asarray(first_row, dtype=np.float64).reshape(-1)
    baseline = np.zeros(padded, dtype=np.float32)
    baseline[: first.size] = first
    dc_gain = float(np.prod(sos[:, :3].sum(axis=1) / sos[:, 3:].sum(axis=1)))
    level = np.zeros(padded, dtype=np.float32)
    level[: first.size] = dc_gain * (first - adc_offset) * adc_scale
    return baseline, level

"""Naive numpy twins of every compiled kernel.

Each function here is slow and obviously right; tests compare the compiled
kernels against them on seeded data and edge cases.  Sections are kept per
kernel family.
"""

from __future__ import annotations

import os

import numpy as np

# ============================================================ CSR encoding (h5stream.kernels.csr)


def csr_reference(dense, missing="zero"):
    """Row-by-row CSR of ``dense``: (data, indices, indptr) with int64 indices.

    ``missing``: "zero" leaves zeros out, "nan" leaves NaN out (zeros stored),
    "zero_or_nan" leaves both out.
    """
    dense = np.asarray(dense)
    data, indices, indptr = [], [], [0]
    for row in dense:
        if missing == "zero":
            keep = row != 0
        elif missing == "nan":
            keep = ~np.isnan(row) if row.dtype.kind == "f" else np.ones(row.shape, bool)
        else:
            keep = (row != 0) & ~(np.isnan(row) if row.dtype.kind == "f" else np.zeros(row.shape, bool))
        cols = [j for j in range(row.size) if keep[j]]
        indices.extend(cols)
        data.extend(row[cols].tolist())
        indptr.append(len(indices))
    return (
        np.array(data, dtype=dense.dtype),
        np.array(indices, dtype=np.int64),
        np.array(indptr, dtype=np.int64),
    )


# ============================================================ parallel compression (h5stream.writer)


def shuffle_reference(raw: bytes, itemsize: int) -> bytes:
    """HDF5's shuffle filter: byte plane j holds byte j of every element; a tail is copied."""
    n_items = len(raw) // itemsize
    body = np.frombuffer(raw[: n_items * itemsize], dtype=np.uint8).reshape(n_items, itemsize)
    return body.T.tobytes() + raw[n_items * itemsize :]


def deflate_chunk_reference(chunk: np.ndarray, level: int, shuffle: bool = False) -> bytes:
    """What HDF5's (shuffle +) deflate filters store for one full chunk."""
    import zlib

    raw = np.ascontiguousarray(chunk).tobytes()
    if shuffle and chunk.dtype.itemsize > 1:
        raw = shuffle_reference(raw, chunk.dtype.itemsize)
    return zlib.compress(raw, level)


def padded_chunk_reference(array: np.ndarray, origin, chunks) -> np.ndarray:
    """The chunk of ``array`` at ``origin``, zero-padded to the full chunk shape."""
    out = np.zeros(chunks, dtype=array.dtype)
    src = array[tuple(slice(o, o + c) for o, c in zip(origin, chunks))]
    out[tuple(slice(0, s) for s in src.shape)] = src
    return out


def unshuffle_reference(raw: bytes, itemsize: int) -> bytes:
    """Inverse of HDF5's shuffle filter."""
    n_items = len(raw) // itemsize
    planes = np.frombuffer(raw[: n_items * itemsize], dtype=np.uint8).reshape(itemsize, n_items)
    return planes.T.tobytes() + raw[n_items * itemsize :]


def inflate_dataset_reference(ds) -> np.ndarray:
    """Read a deflate(+shuffle) chunked dataset chunk by chunk with Python's zlib, serially."""
    import math
    import zlib

    import h5py

    dcpl = ds.id.get_create_plist()
    codes = [dcpl.get_filter(i)[0] for i in range(dcpl.get_nfilters())]
    shuffled = h5py.h5z.FILTER_SHUFFLE in codes
    out = np.empty(ds.shape, ds.dtype)
    counts = [math.ceil(s / c) for s, c in zip(ds.shape, ds.chunks)]
    for index in np.ndindex(*counts):
        origin = tuple(i * c for i, c in zip(index, ds.chunks))
        _, stored = ds.id.read_direct_chunk(origin)
        raw = zlib.decompress(stored)
        if shuffled:
            raw = unshuffle_reference(raw, ds.dtype.itemsize)
        chunk = np.frombuffer(raw, dtype=ds.dtype).reshape(ds.chunks)
        region = tuple(slice(o, min(o + c, s)) for o, c, s in zip(origin, ds.chunks, ds.shape))
        out[region] = chunk[tuple(slice(0, r.stop - r.start) for r in region)]
    return out


# ============================================================ spike sectioning (h5stream.kernels.sectioning)


def section_trials_naive(spike_rows, intervals):
    """For every row and every half-open interval [start, end), the values inside (boolean mask per trial).

    Returns a list (rows) of lists (intervals) of uint64 arrays.
    """
    out = []
    for row in spike_rows:
        row = np.asarray(row, dtype=np.uint64)
        per_trial = []
        for start, end in np.asarray(intervals, dtype=np.uint64).reshape(-1, 2):
            mask = (row >= start) & (row < end)
            per_trial.append(row[mask])
        out.append(per_trial)
    return out


# ============================================================ frame-aligned rates (hdmea.features.extractors)


def frame_rates_naive(spike_times, trial_offsets, trial_bounds, frame_times, sampling_rate):
    """Frame-aligned rates (Hz) the textbook way: each trial's frame edges built one by one (the display
    frames starting inside [start, end), closed one median frame interval after the last frame), all
    trials cut to the shortest, each trial counted with np.histogram."""
    spike_times = np.asarray(spike_times, dtype=np.int64)
    frame_times = np.asarray(frame_times, dtype=np.int64)
    bounds = np.asarray(trial_bounds, dtype=np.int64).reshape(-1, 2)
    if bounds.shape[0] == 0 or frame_times.size < 2:
        return np.zeros((bounds.shape[0], 0))
    period = int(round(float(np.median(np.diff(frame_times)))))
    edges_per_trial = []
    for start, end in bounds:
        i0 = np.searchsorted(frame_times, start, side="left")
        i1 = np.searchsorted(frame_times, end, side="left")
        edges = frame_times[i0 : i1 + 1]
        if i1 >= frame_times.size:
            edges = np.append(edges, edges[-1] + period if edges.size else start)
        edges_per_trial.append(edges)
    n_frames = min(max(e.size - 1, 0) for e in edges_per_trial)
    rates = np.zeros((bounds.shape[0], n_frames))
    for k, edges in enumerate(edges_per_trial):
        edges = edges[: n_frames + 1]
        spikes = spike_times[trial_offsets[k] : trial_offsets[k + 1]]
        counts = np.histogram(spikes, bins=edges)[0] if n_frames else np.zeros(0)
        rates[k] = counts / (np.diff(edges) / sampling_rate)
    return rates


# ============================================================ STA accumulation (h5stream.kernels.sta)


def movie_frames_naive(spikes, frame_times, first_frames, n_movie_frames):
    """Each occurrence in turn, each spike in order: the last display frame starting at or before the spike
    (a scan of the frame starts), kept as a movie frame when it is one of the occurrence's and has a known
    end (a next frame)."""
    out = []
    for first in first_frames:
        for spike in spikes:
            frame = -1
            for k, start in enumerate(frame_times):
                if start <= spike:
                    frame = k
            rel = frame - int(first)
            if frame >= 0 and 0 <= rel < n_movie_frames and (int(first) + n_movie_frames < len(frame_times)
                                                              or frame < len(frame_times) - 1):
                out.append(rel)
    return np.array(out, dtype=np.int64)


def sta_reference(stimulus, spike_frames_per_unit, n_lags=60, exclude_current_frame=True):
    """Per-unit fancy-indexing STA: gather every spike's window, then average.

    Returns (sta float64 (n_units, n_lags, *frame_shape), n_used, n_excluded).
    """
    stimulus = np.asarray(stimulus)
    n_frames = stimulus.shape[0]
    first_lag = 1 if exclude_current_frame else 0
    # window slot k of a spike in frame f is frame f - first_lag - (n_lags - 1) + k
    offsets_in_window = np.arange(n_lags) - (n_lags - 1) - first_lag
    out = np.zeros((len(spike_frames_per_unit), n_lags) + stimulus.shape[1:], dtype=np.float64)
    used = np.zeros(len(spike_frames_per_unit), dtype=np.int64)
    excluded = np.zeros(len(spike_frames_per_unit), dtype=np.int64)
    for u, frames in enumerate(spike_frames_per_unit):
        frames = np.asarray(frames, dtype=np.int64)
        ok = (frames + offsets_in_window[0] >= 0) & (frames < n_frames)
        used[u] = ok.sum()
        excluded[u] = frames.size - used[u]
        if used[u]:
            windows = stimulus[frames[ok][:, None] + offsets_in_window[None, :]].astype(np.float64)
            out[u] = windows.mean(axis=0)
    return out, used, excluded


# ============================================================ electrical image (h5stream.kernels.eimage)


def eimage_reference(raw, spike_times_per_unit, sos, window=(-10, 40), start=0, stop=None, settle_samples=0,
                     max_spikes_per_unit=None, adc_offset=0.0, adc_scale=1.0):
    """Filter the whole range at once (scipy.signal.sosfilt, float64), then average each unit's windows.

    The filter starts ``settle_samples`` before ``start`` (clipped at 0) from the steady
    state of its first sample.  A spike is used when it lies in [start, stop) and its whole
    window does too; the first ``max_spikes_per_unit`` such spikes in time are used.
    Returns (images float64 (n_units, window, *electrode_shape), n_used, n_excluded, n_over_cap).
    """
    from scipy.signal import sosfilt, sosfilt_zi

    raw = np.asarray(raw)
    n = raw.shape[0]
    stop = n if stop is None else min(stop, n)
    read_start = max(0, start - settle_samples)
    x = (raw[read_start:stop].reshape(stop - read_start, -1).astype(np.float64) - adc_offset) * adc_scale
    zi = sosfilt_zi(sos)[:, :, None] * x[0][None, None, :]  # axis 0 replaced by the 2 delays
    y, _ = sosfilt(sos, x, axis=0, zi=zi)
    w0, w1 = window
    images = np.zeros((len(spike_times_per_unit), w1 - w0) + raw.shape[1:], dtype=np.float64)
    used = np.zeros(len(spike_times_per_unit), dtype=np.int64)
    excluded = np.zeros_like(used)
    over_cap = np.zeros_like(used)
    for u, times in enumerate(spike_times_per_unit):
        good = []
        for t in sorted(int(v) for v in times):
            if not start <= t < stop:
                continue
            if t + w0 < start or t + w1 > stop:
                excluded[u] += 1
                continue
            if max_spikes_per_unit is not None and len(good) >= max_spikes_per_unit:
                over_cap[u] += 1
                continue
            good.append(t)
        used[u] = len(good)
        if good:
            windows = np.stack([y[t + w0 - read_start : t + w1 - read_start] for t in good])
            images[u] = windows.mean(axis=0).reshape((w1 - w0,) + raw.shape[1:])
    return images, used, excluded, over_cap



# ============================================================ object header references (h5stream._ext._ohdr)

_OHDR_CONTINUATION, _OHDR_ATTRIBUTE, _OHDR_VLEN = 0x10, 0x0C, 9


def _le(raw: bytes, at: int, n: int) -> int:
    return int.from_bytes(raw[at:at + n], "little")


def ohdr_scan_reference(data: bytes, header_address: int, addr_size: int, length_size: int):
    """What ``h5stream._ext._ohdr.scan`` returns for the version-1 object header at ``header_address`` of the
    file whose bytes are ``data``: the number of variable-length references checked, or at the first damaged
    one ``(1, name, kind, padding, charset)`` (a type HDF5 does not define), ``(2, name, index, count,
    address)`` (a heap past the end) or ``(3, name, index, count, length)`` (longer than the file)."""
    file_size = len(data)
    prefix = data[header_address:header_address + 16]
    if len(prefix) < 16 or prefix[0] != 1:
        return 0
    chunks = [(header_address + 16, _le(prefix, 8, 4))]
    checked, seen = 0, 0
    while chunks and seen < 64:
        start, size = chunks.pop(0)
        seen += 1
        if size > 1 << 20 or start + size > file_size:
            return checked
        raw = data[start:start + size]
        p, end = 0, len(raw)
        while p + 8 <= end:
            kind, msize = _le(raw, p, 2), _le(raw, p + 2, 2)
            at = p + 8
            p = at + msize
            body = raw[at:min(p, end)]
            if kind == _OHDR_ATTRIBUTE:
                found = _ohdr_attribute(body, file_size, addr_size)
                if isinstance(found, tuple):
                    return found
                checked += found
            elif kind == _OHDR_CONTINUATION and len(body) >= addr_size + length_size:
                chunks.append((_le(body, 0, addr_size), _le(body, addr_size, length_size)))
    return checked


def _ohdr_attribute(body: bytes, file_size: int, addr_size: int):
    if len(body) < 8:
        return 0
    version, flags = body[0], body[1]
    name_size, type_size, space_size = _le(body, 2, 2), _le(body, 4, 2), _le(body, 6, 2)
    pad8 = lambda n: (n + 7) // 8 * 8  # noqa: E731
    if version == 1:
        p = 8
        name_end, type_at = p + name_size, p + pad8(name_size)
        space_at = type_at + pad8(type_size)
        data_at = space_at + pad8(space_size)
    elif version in (2, 3) and not flags & 0x03:
        p = 8 if version == 2 else 9
        name_end = type_at = p + name_size
        space_at = type_at + type_size
        data_at = space_at + space_size
    else:
        return 0
    if type_at >= len(body) or body[type_at] & 0x0F != _OHDR_VLEN:
        return 0
    if data_at > len(body) or type_size < 8:
        return 0
    name = body[p:name_end].rstrip(b"\0")
    bits, charset = body[type_at + 1], body[type_at + 2] & 0x0F
    kind, padding = bits & 0x0F, bits >> 4
    if kind > 1 or (kind == 1 and (padding > 2 or charset > 1)):
        return (1, name, kind, padding, charset)
    space = body[space_at:space_at + space_size]
    count = None
    if len(space) >= 4 and space[0] in (1, 2):
        if space[0] == 2 and space[3] == 2:
            count = 0
        else:
            dims_at, rank = (8 if space[0] == 1 else 4), space[1]
            if rank <= 32 and dims_at + 8 * rank <= len(space):
                count = int(np.prod([_le(space, dims_at + 8 * d, 8) for d in range(rank)], dtype=object))
    item = 8 + addr_size
    if count is None or count > 1 << 16 or data_at + count * item > len(body):
        return 0
    for i in range(count):
        at = data_at + i * item
        length, address = _le(body, at, 4), _le(body, at + 4, addr_size)
        if length == 0 or address == (1 << (8 * addr_size)) - 1:
            continue
        if address + 16 > file_size:
            return (2, name, i, count, address)
        if length > file_size:
            return (3, name, i, count, length)
    return count


# ============================================================ ragged histograms (h5stream.kernels.bins, ext/_bins.pyx)


def ragged_histograms_naive(values, offsets, edges):
    """Counts (n_rows, n_edges - 1) int64: row k's values in the bins of ``edges[k]``, value by value.

    A bin holds ``edges[j] <= v < edges[j + 1]``, the last bin also ``v == edges[-1]`` (numpy's histogram).
    """
    values, offsets, edges = np.asarray(values), np.asarray(offsets), np.asarray(edges)
    n_rows, n_edges = edges.shape
    counts = np.zeros((n_rows, n_edges - 1), dtype=np.int64)
    for k in range(n_rows):
        e = [int(x) for x in edges[k]]
        for v in values[offsets[k]:offsets[k + 1]].tolist():
            for j in range(n_edges - 1):
                last = j == n_edges - 2
                if e[j] <= v < e[j + 1] or (last and v == e[j + 1]):
                    counts[k, j] += 1
                    break
    return counts


# ============================================================ HDF5's Fletcher32 (h5stream.checksums, ext/_compress.pyx)


def fletcher32_naive(data: bytes) -> int:
    """HDF5's Fletcher32 of ``data``: big-endian 16-bit words (an odd last byte as a high byte), two sums
    reduced with end-around carry, ``(sum2 << 16) | sum1``."""
    words = [(data[i] << 8) | (data[i + 1] if i + 1 < len(data) else 0) for i in range(0, len(data), 2)]
    sum1 = sum2 = 0
    for w in words:
        sum1 += w
        sum2 += sum1
    fold = lambda total: 0 if total == 0 else (total - 1) % 65535 + 1  # noqa: E731
    return (fold(sum2) << 16) | fold(sum1)


# ============================================================ attribute digests recorded (h5stream.checksums, ext/_h5attrs.pyx)


def record_sets_naive(pending, sets, seqs, seq, kinds, names, legacy):
    """Move the queued attribute sets of ``pending`` (per object: path, k, then k pairs name, digest) into
    ``sets`` (digests joined in name order), ``seqs`` (``seq``, when given), ``names`` (sorted names, when
    given), forgetting ``kinds`` and ``legacy`` entries of each object recorded; an object queued with no
    pair is recorded only when it was recorded before or names are kept.  Empties ``pending``."""
    items = list(pending)
    i = 0
    while i < len(items):
        path, k = items[i], items[i + 1]
        pairs = [(items[i + 2 + 2 * j], items[i + 3 + 2 * j]) for j in range(k)]
        i += 2 + 2 * k
        if not pairs and names is None and path not in sets:
            continue
        sets[path] = "".join(digest for _name, digest in sorted(pairs, key=lambda p: p[0]))
        if seqs is not None:
            seqs[path] = seq
        kinds.pop(path, None)
        if names is not None:
            names[path] = sorted(name for name, _ in pairs)
        legacy.pop(path, None)
    pending.clear()


# ============================================================ a .cmtr Peaks table (h5stream.kernels.peaks, ext/_peaks.pyx)


def summarise_peaks_naive(timestamps, flags, amplitudes, cutouts, factor, template=None, bound=np.inf):
    """Row by row: the peaks with flag 1 give ``samples = rint(timestamp * factor)`` (uint64), their
    amplitudes (float32) and the float64 sum of their cutouts; plus the first row whose flag is neither 0
    nor 1, the first with a negative or non-finite timestamp, the first earlier than the row before
    (-1: none); with a ``template``, the rows with flag 1 holding a sample more than ``bound`` off it (or
    not a number).  Returns ``(samples, amps, sums, k, bad_flag, bad_time, unsorted, flagged)``."""
    samples, amps, flagged = [], [], []
    sums = np.zeros(cutouts.shape[1], dtype=np.float64)
    bad_flag = bad_time = unsorted = -1
    for i in range(len(timestamps)):
        t, f = float(timestamps[i]), int(flags[i])
        if bad_flag < 0 and f not in (0, 1):
            bad_flag = i
        if bad_time < 0 and not (np.isfinite(t) and t >= 0):
            bad_time = i
        if unsorted < 0 and i and timestamps[i] < timestamps[i - 1]:
            unsorted = i
        if f == 1:
            samples.append(np.rint(np.float64(t) * np.float64(factor)))
            if len(amplitudes):
                amps.append(np.float32(amplitudes[i]))
            sums += cutouts[i].astype(np.float64)
            if template is not None and cutouts.shape[1]:
                off = [abs(float(v) - float(t)) for v, t in zip(cutouts[i], template)]
                if not all(d <= bound for d in off):  # a NaN compares false
                    flagged.append(i)
    return (np.array(samples, dtype=np.float64).astype(np.uint64), np.array(amps, dtype=np.float32), sums,
            len(samples), bad_flag, bad_time, unsorted, flagged)


# ============================================================ frame-sync pulses (h5stream.kernels.sync, ext/_sync.pyx)


def sync_peaks_naive(sync, scale: float, height: float):
    """Indices (int64) of the local maxima of ``diff(sync / scale)`` (float64) at or above ``height``: a
    sample, or a flat run of equal samples, higher than its neighbours on both sides, counted once at its
    middle (rounded down); the first and last differences never count."""
    x = np.diff(np.asarray(sync, dtype=np.float64) / float(scale))
    out = []
    i = 1
    while i < len(x) - 1:
        j = i
        while j + 1 < len(x) and x[j + 1] == x[i]:
            j += 1
        if j < len(x) - 1 and x[i] >= height and x[i - 1] < x[i] and x[j + 1] < x[i]:
            out.append((i + j) // 2)
        i = j + 1
    return np.array(out, dtype=np.int64)


def step_up_responses_naive(trials, *, onset, offset, transient, sustained, baseline, threshold_factor=2.0,
                            trial_end=None):
    """``hdmea.features.on_off.step_up.step_up_responses`` trial by trial: each window's spikes counted in
    every trial's array, the first spike of every trial looked for in turn."""

    def rate(lo, hi):
        if hi <= lo or not trials:
            return 0.0
        return sum(int(np.count_nonzero((s >= lo) & (s < hi))) for s in trials) / (len(trials) * (hi - lo) / 1e6)

    def latency_ms(event, window):
        firsts = []
        for s in trials:
            inside = s[(s >= event) & (s < event + window)]
            if inside.size:
                firsts.append((float(inside.min()) - event) / 1000.0)
        return float(np.mean(firsts)) if firsts else float("nan")

    end = float("inf") if trial_end is None else float(trial_end)
    base = rate(max(0.0, onset - baseline), onset)
    on, off = rate(onset, min(onset + transient, end)), rate(offset, min(offset + transient, end))
    largest = max(on, off)
    return {
        "on_response_flag": bool(on > base * threshold_factor),
        "off_response_flag": bool(off > base * threshold_factor),
        "on_peak_value": float(on),
        "off_peak_value": float(off),
        "on_sustained_response": float(rate(onset + transient, min(offset, end))),
        "off_sustained_response": float(rate(offset + transient, min(offset + transient + sustained, end))),
        "response_quality": float(min(1.0, (largest - base) / (base + 1) / 10) if largest > 0 else 0.0),
        "on_latency_ms": latency_ms(onset, transient),
        "off_latency_ms": latency_ms(offset, transient),
        "on_off_ratio": float((on - off) / (on + off)) if on + off > 0 else 0.0,
        "baseline_rate": float(base),
    }


def segment_windows_naive(values, row_offsets, row_starts, scale, segment_rows, count_windows, event_windows):
    """``h5stream.kernels.windows.segment_windows`` row by row: each row's values made float64, less its start,
    times the scale; every window counted with masks; each row's first value inside an event window found
    with a mask and its minimum; a segment's mean with ``np.mean`` of its rows' firsts (NaN without any)."""
    n_segments = len(segment_rows) - 1
    count_windows = np.asarray(count_windows, dtype=np.float64).reshape(n_segments, -1, 2)
    event_windows = np.asarray(event_windows, dtype=np.float64).reshape(n_segments, -1, 2)
    counts = np.zeros(count_windows.shape[:2], dtype=np.int64)
    means = np.full(event_windows.shape[:2], np.nan)
    for s in range(n_segments):
        rows = []
        for r in range(segment_rows[s], segment_rows[s + 1]):
            row = np.asarray(values[row_offsets[r]:row_offsets[r + 1]]).astype(np.float64)
            rows.append((row - row_starts[r]) * scale)
        for w, (lo, hi) in enumerate(count_windows[s]):
            counts[s, w] = sum(int(np.count_nonzero((x >= lo) & (x < hi))) for x in rows)
        for f, (lo, hi) in enumerate(event_windows[s]):
            firsts = [(float(x[(x >= lo) & (x < hi)].min()) - lo) / 1000.0 for x in rows
                      if np.any((x >= lo) & (x < hi))]
            if firsts:
                means[s, f] = np.mean(np.array(firsts))
    return counts, means

"""The sparse STA kernel's multiply-add loop (ext/_sta_simd.h): the build the CPU picks (AVX2 where it has it)
and the baseline build give the same sums bit for bit, equal to a numpy twin that adds in the kernel's order."""

from __future__ import annotations

import numpy as np
import pytest

from h5stream.native import compiled


def _twin(flat, frames, offsets, n_lags, first_lag):
    """Sums in the kernel's order: equal frames merged into one weight, four windows per pass summed as
    (wa*a + wb*b) + (wc*c + wd*d), then one window at a time; each operation rounded in flat's dtype."""
    n_frames, n_pixels = flat.shape
    block = n_lags * n_pixels
    line = flat.reshape(-1)
    n_units = offsets.size - 1
    sums = np.zeros((n_units, block), flat.dtype)
    used = np.zeros(n_units, np.int64)
    excluded = np.zeros(n_units, np.int64)
    for u in range(n_units):
        unit = frames[offsets[u]:offsets[u + 1]]
        runs = []  # (first value of the window, spikes in its frame), in order
        i = 0
        while i < unit.size:
            count = 1
            while i + count < unit.size and unit[i + count] == unit[i]:
                count += 1
            f, i = int(unit[i]), i + count
            lo = f - first_lag - n_lags + 1
            if lo < 0 or f >= n_frames or f - first_lag >= n_frames:
                excluded[u] += count
                continue
            used[u] += count
            runs.append((lo * n_pixels, flat.dtype.type(count)))
        acc = sums[u]
        whole = len(runs) - len(runs) % 4
        for g in range(0, whole, 4):
            (a, wa), (b, wb), (c, wc), (d, wd) = runs[g:g + 4]
            acc += (wa * line[a:a + block] + wb * line[b:b + block]) + (wc * line[c:c + block] + wd * line[d:d + block])
        for a, wa in runs[whole:]:
            acc += wa * line[a:a + block]
    return sums, used, excluded


def _kernel(flat, frames, offsets, n_lags, first_lag, n_threads, baseline):
    n_units = offsets.size - 1
    sums = np.zeros((n_units, n_lags * flat.shape[1]), flat.dtype)
    used = np.zeros(n_units, np.int64)
    excluded = np.zeros(n_units, np.int64)
    compiled("_sta")._sta_sums(flat, frames, offsets, n_lags, first_lag, sums, used, excluded, n_threads, baseline)
    return sums, used, excluded


def _units(rng, n_frames, n_lags, first_lag):
    earliest = first_lag + n_lags - 1  # the first frame whose window starts at frame 0
    units = [
        np.array([earliest, earliest, earliest + 1, n_frames - 1, n_frames - 1, n_frames - 1]),  # both edges
        np.array([earliest - 1, earliest, n_frames, n_frames - 1]),  # one before each edge, excluded
        np.array([], dtype=np.int64),
        np.array([n_frames - 1]),  # one window: the remainder loop only
        np.arange(earliest, earliest + 7),  # one pass of four, then three alone
    ]
    units += [np.sort(rng.integers(0, n_frames, rng.integers(1, 90))) for _ in range(9)]  # repeats merged
    frames = np.concatenate(units).astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum([u.size for u in units])]).astype(np.int64)
    return frames, offsets


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_lags, n_pixels", [(1, 1), (3, 7), (5, 13), (2, 33), (4, 64)])
@pytest.mark.parametrize("first_lag", [0, 1])
def test_the_picked_and_the_baseline_loop_equal_the_twin_bit_for_bit(dtype, n_lags, n_pixels, first_lag):
    rng = np.random.default_rng(n_lags * 1000 + n_pixels * 10 + first_lag)
    n_frames = 97
    # values of every magnitude and sign: a sum rounded differently (a fused multiply-add, another
    # order) would differ in the last bits somewhere
    flat = (rng.standard_normal((n_frames, n_pixels)) * 10.0 ** rng.integers(-3, 4, (n_frames, n_pixels))).astype(dtype)
    frames, offsets = _units(rng, n_frames, n_lags, first_lag)
    want, want_used, want_excluded = _twin(flat, frames, offsets, n_lags, first_lag)
    assert want_excluded[1] == 2 and want_used[0] == 6  # the edges are really planted
    for baseline in (False, True):
        for n_threads in (1, 2):
            got, used, excluded = _kernel(flat, frames, offsets, n_lags, first_lag, n_threads, baseline)
            assert np.array_equal(got, want), (baseline, n_threads)
            assert np.array_equal(used, want_used) and np.array_equal(excluded, want_excluded)


def test_a_window_ending_past_the_movie_is_excluded_not_read():
    # a negative first_lag puts the window after the spike's frame: one ending past the last frame is excluded
    # (the kernel never reads outside the movie), the one ending on the last frame is used
    rng = np.random.default_rng(5)
    n_frames, n_pixels, n_lags, first_lag = 60, 9, 4, -3
    flat = rng.standard_normal((n_frames, n_pixels))
    last = n_frames - 1 + first_lag  # the last frame whose window ends on the movie's last frame
    frames = np.array([last - 1, last, last + 1, last + 1, n_frames - 1, 0, 1], dtype=np.int64)
    offsets = np.array([0, 5, 7], dtype=np.int64)
    want, want_used, want_excluded = _twin(flat, frames, offsets, n_lags, first_lag)
    for baseline in (False, True):
        got, used, excluded = _kernel(flat, frames, offsets, n_lags, first_lag, 1, baseline)
        assert used.tolist() == [2, 2] and excluded.tolist() == [3, 0]
        assert np.array_equal(got, want) and np.array_equal(used, want_used)
    # the window of frame f is frames [f, f + 3]: the used ones end on the last frame at most
    np.testing.assert_allclose(got[0], (flat[last - 1:last + 3] + flat[last:last + 4]).reshape(-1), rtol=1e-12)


def test_integer_stimulus_sums_are_exact_in_float32():
    # the working dtype of a small-integer movie is float32 (h5stream.kernels.sta._working_dtype): its sums are
    # integers below 2**24, exact whatever the order, so both loops equal the integer sums
    rng = np.random.default_rng(17)
    n_frames, n_pixels, n_lags = 400, 15 * 15, 6
    movie = rng.integers(0, 256, (n_frames, n_pixels)).astype(np.uint8)
    frames, offsets = _units(rng, n_frames, n_lags, 1)
    exact = np.zeros((offsets.size - 1, n_lags * n_pixels), np.int64)
    for u in range(offsets.size - 1):
        for f in frames[offsets[u]:offsets[u + 1]]:
            if f - n_lags >= 0 and f < n_frames:
                exact[u] += movie[f - n_lags:f].reshape(-1)
    flat = movie.astype(np.float32)
    for baseline in (False, True):
        got, _, _ = _kernel(flat, frames, offsets, n_lags, 1, 1, baseline)
        assert np.array_equal(got, exact.astype(np.float32))

"""The STA kernels against their naive twin, on seeded data, edges and a planted LNP filter."""

from __future__ import annotations


import numpy as np
import pytest

from h5stream.kernels.sta import spike_triggered_average
# the repository root, so that tests.reference imports without a conftest
from tests.reference import sta_reference


def _random_units(rng, n_units, n_frames, max_spikes=400):
    return [np.sort(rng.integers(0, n_frames, rng.integers(0, max_spikes))) for _ in range(n_units)]


@pytest.mark.parametrize("method", ["sparse", "dense"])
@pytest.mark.parametrize("exclude_current", [True, False])
@pytest.mark.parametrize("dtype", [np.uint8, np.float64])
def test_equals_reference_on_seeded_data(method, exclude_current, dtype):
    rng = np.random.default_rng(7)
    stimulus = (rng.random((500, 4, 5)) * 3).astype(dtype)
    units = _random_units(rng, 9, 500)
    got = spike_triggered_average(stimulus, units, n_lags=12, exclude_current_frame=exclude_current, method=method)
    sta, used, excluded = sta_reference(stimulus, units, n_lags=12, exclude_current_frame=exclude_current)
    assert got.method == method
    assert got.sta.shape == (9, 12, 4, 5) and got.sta.dtype == np.float32
    np.testing.assert_allclose(got.sta, sta, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(got.n_spikes_used, used)
    np.testing.assert_array_equal(got.n_spikes_excluded, excluded)


def test_edges_first_frames_last_frame_duplicates_and_empty_units():
    rng = np.random.default_rng(3)
    stimulus = rng.integers(0, 2, (50, 3, 3)).astype(np.uint8)
    n_lags = 5
    units = [
        np.array([0, 1, 2, 3, 4, 5, 6]),  # first frames: windows before frame 0 excluded
        np.array([49, 49, 49]),  # last frame, three spikes in one frame count three times
        np.array([], dtype=np.int64),  # no spikes
        np.array([50, 51, -1, 10]),  # beyond the movie and negative: excluded
        np.array([30, 10, 20, 10]),  # unsorted, with a repeat
    ]
    for exclude_current in (True, False):
        ref_sta, ref_used, ref_excl = sta_reference(stimulus, units, n_lags, exclude_current)
        for method in ("sparse", "dense"):
            got = spike_triggered_average(stimulus, units, n_lags=n_lags, exclude_current_frame=exclude_current, method=method)
            np.testing.assert_allclose(got.sta, ref_sta, rtol=1e-6, atol=1e-7)
            np.testing.assert_array_equal(got.n_spikes_used, ref_used)
            np.testing.assert_array_equal(got.n_spikes_excluded, ref_excl)
    # with the current frame excluded, frames 0..4 lack a full window; 5 and 6 are used
    got = spike_triggered_average(stimulus, units, n_lags=n_lags)
    assert got.n_spikes_used[0] == 2 and got.n_spikes_excluded[0] == 5
    assert got.n_spikes_used[1] == 3
    np.testing.assert_allclose(got.sta[1], stimulus[44:49].astype(np.float32))
    assert got.n_spikes_used[2] == 0 and not got.sta[2].any()
    assert got.n_spikes_used[3] == 1 and got.n_spikes_excluded[3] == 3


def test_count_weighting_a_frame_with_two_spikes_counts_twice():
    stimulus = np.zeros((20, 1), dtype=np.float64)
    stimulus[9, 0] = 1.0  # only frame 9 is bright
    # spikes at frame 10 (twice, window contains frame 9) and 15 (window frames 14 only)
    got = spike_triggered_average(stimulus, [np.array([10, 10, 15])], n_lags=1)
    assert got.sta[0, 0, 0] == pytest.approx(2 / 3)


def test_ragged_values_with_offsets_equal_list_input():
    rng = np.random.default_rng(11)
    stimulus = rng.random((300, 2, 2))
    units = _random_units(rng, 5, 300)
    offsets = np.concatenate([[0], np.cumsum([u.size for u in units])])
    a = spike_triggered_average(stimulus, units, n_lags=7)
    b = spike_triggered_average(stimulus, np.concatenate(units), offsets, n_lags=7)
    np.testing.assert_array_equal(a.sta, b.sta)


def test_serial_equals_parallel_bit_for_bit():
    rng = np.random.default_rng(5)
    stimulus = (rng.random((2000, 6, 6)) < 0.5).astype(np.uint8)
    units = _random_units(rng, 16, 2000, max_spikes=800)
    serial = spike_triggered_average(stimulus, units, n_lags=20, method="sparse", n_threads=1)
    parallel = spike_triggered_average(stimulus, units, n_lags=20, method="sparse", n_threads=2)
    np.testing.assert_array_equal(serial.sta, parallel.sta)
    np.testing.assert_array_equal(serial.n_spikes_used, parallel.n_spikes_used)


def test_planted_lnp_filter_is_recovered():
    # Linear-nonlinear-Poisson unit: rate = exp(gain * <filter, window>), binary noise.
    rng = np.random.default_rng(21)
    n_frames, n_lags, side = 12_000, 8, 5
    stimulus = rng.integers(0, 2, (n_frames, side, side)).astype(np.uint8)
    planted = np.zeros((n_lags, side, side))
    temporal = np.array([0, 0, 0.1, 0.3, 0.8, 1.0, 0.5, 0.1])
    spatial = np.zeros((side, side))
    spatial[1:4, 2:4] = 1.0
    spatial[2, 1] = -0.5
    planted = temporal[:, None, None] * spatial[None]
    centred = stimulus.astype(np.float64) - 0.5
    drive = np.zeros(n_frames)
    for k in range(n_lags):
        shift = 1 + (n_lags - 1) - k  # slot k of a spike in frame f shows frame f - shift
        drive[shift:] += np.tensordot(centred[:-shift], planted[k], axes=([1, 2], [0, 1]))
    counts = rng.poisson(0.2 * np.exp(1.5 * drive))
    frames = np.repeat(np.arange(n_frames), counts)
    assert frames.size >= 2000
    got = spike_triggered_average(stimulus, [frames], n_lags=n_lags)
    sta = got.sta[0] - got.sta[0].mean()
    corr = np.corrcoef(sta.ravel(), planted.ravel())[0, 1]
    assert corr >= 0.9


@pytest.mark.parametrize(
    "kwargs, error",
    [
        (dict(stimulus=np.zeros(10)), ValueError),
        (dict(stimulus=np.zeros((10, 2), dtype=object)), TypeError),
        (dict(n_lags=0), ValueError),
        (dict(method="fft"), ValueError),
        (dict(n_threads=0), ValueError),
        (dict(spike_frames=[np.array([1.5])]), TypeError),
        (dict(spike_frames=np.array([1, 2]), offsets=np.array([0, 3])), ValueError),
    ],
)
def test_bad_arguments_raise_typed_errors(kwargs, error):
    args = dict(stimulus=np.zeros((10, 2)), spike_frames=[np.array([5])], n_lags=2)
    args.update(kwargs)
    stimulus = args.pop("stimulus")
    frames = args.pop("spike_frames")
    offsets = args.pop("offsets", None)
    with pytest.raises(error):
        spike_triggered_average(stimulus, frames, offsets, **args)

"""The series the load derives (hdmea.io.lab_series) against plain numpy: the firing rate is np.histogram's count
over the bin edges, whatever order, ties, edges or stray values the spikes come in."""

from __future__ import annotations

import numpy as np
import pytest

from hdmea.io.lab_series import block_mean, block_means, firing_rate, firing_rate_10hz, light_reference_series


def _twin(spikes_us, duration_us, rate=10):
    spikes = np.asarray(spikes_us, dtype=np.float64)
    if spikes.size == 0:
        return np.zeros(0, np.float32)
    width = 1e6 / rate
    n_bins = int(np.ceil(duration_us / width))
    counts, _ = np.histogram(spikes, bins=np.arange(n_bins + 1) * width)
    return counts.astype(np.float32) * np.float32(rate)


def _trains():
    rng = np.random.default_rng(7)
    width = 1e5
    sorted_train = np.sort(rng.uniform(0, 3e7, 20_000))
    on_edges = np.sort(np.concatenate([np.arange(0, 300) * width, rng.integers(0, 300, 500) * width]))
    yield "sorted", sorted_train, 3e7
    yield "on the bin edges, with ties", on_edges, 300 * width  # the last edge itself counts in the last bin
    yield "past both ends", np.concatenate([[-5.0, -1.0], sorted_train, [3e7 + 1, 4e7]]), 3e7
    yield "unsorted", rng.permutation(sorted_train), 3e7
    yield "with a NaN", np.concatenate([sorted_train[:10], [np.nan], sorted_train[10:]]), 3e7
    yield "longer than numpy's blocks", np.sort(rng.uniform(0, 6e8, 200_000)), 6e8 + 12345
    yield "one spike", np.array([5e5]), 2e6
    yield "a partial last bin", sorted_train[:100], 1234567.0


@pytest.mark.parametrize("name, spikes, duration", list(_trains()), ids=[t[0] for t in _trains()])
def test_firing_rate_is_numpys_histogram(name, spikes, duration):
    got = firing_rate(spikes, duration, 10)
    want = _twin(spikes, duration)
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_array_equal(got, want)


def test_firing_rate_10hz_of_samples_and_its_default_end():
    rng = np.random.default_rng(3)
    samples = np.sort(rng.integers(0, 20_000 * 90, 5_000)).astype(np.uint64)
    us = samples.astype(np.float64) * (1e6 / 20_000.0)
    np.testing.assert_array_equal(firing_rate_10hz(samples, 20_000.0, 1e8), _twin(us, 1e8))
    np.testing.assert_array_equal(firing_rate_10hz(samples, 20_000.0, None), _twin(us, us[-1] + 1e6))
    assert firing_rate_10hz(np.zeros(0, np.uint64), 20_000.0, 1e8).size == 0


def test_block_mean_drops_the_incomplete_block():
    data = np.arange(1005, dtype=np.int16)
    np.testing.assert_array_equal(block_mean(data, 10), data[:1000].reshape(-1, 10).mean(axis=1).astype(np.float32))


def _naive_block_mean(data, factor):
    """The whole array as float64, its blocks' means as float32 (a block_mean of one piece)."""
    if factor <= 1:
        return np.asarray(data, dtype=np.float32)
    n = len(data) // factor * factor
    return np.asarray(data[:n], dtype=np.float64).reshape(-1, factor).mean(axis=1).astype(np.float32)


@pytest.mark.parametrize("n", [0, 19, 20, 1999, 2000, 2**17 - 1, 2**17 + 2001, 5 * 2**17 + 777])
@pytest.mark.parametrize("factors", [(2000, 20), (20, 2000), (3000, 7), (1, 20), (1,), (300_007, 3), (17,)])
def test_block_means_equal_whole_array_means_bit_for_bit(n, factors):
    rng = np.random.default_rng(n)
    data = (rng.standard_normal(n) * 1e3 + rng.standard_normal(n) * 1e-4).astype(np.float32)
    got = block_means(data, factors)
    assert len(got) == len(factors)
    for factor, values in zip(factors, got):
        want = _naive_block_mean(data, factor)
        assert values.dtype == np.float32 and values.shape == want.shape
        assert values.tobytes() == want.tobytes()


def test_light_reference_series_of_integer_samples():
    rng = np.random.default_rng(7)
    light = {"raw_ch1": rng.integers(-2**15, 2**15, 412_345).astype(np.int16),
             "raw_ch2": rng.standard_normal(412_345).astype(np.float32)}
    series = light_reference_series(light, 20_000.0)
    for channel in ("ch1", "ch2"):
        raw = light[f"raw_{channel}"]
        assert series[f"raw_{channel}"] is raw
        assert series[f"10hz_{channel}"].tobytes() == _naive_block_mean(raw, 2000).tobytes()
        assert series[f"1khz_{channel}"].tobytes() == _naive_block_mean(raw, 20).tobytes()

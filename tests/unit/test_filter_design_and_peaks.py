"""The Butterworth design, its settling length and the peak finder, against scipy.signal.

The pipeline computes these in numpy so that a fresh process never imports scipy.signal;
scipy is the independent reference here.
"""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
from scipy import signal

from h5stream.kernels.eimage import butter_highpass, settling_samples
from hdmea.steps.section_time import frame_times_from_sync, peaks_above


@pytest.mark.parametrize("order", range(1, 9))
@pytest.mark.parametrize(("cutoff", "fs"), [(100.0, 20000.0), (300.0, 20000.0), (1.0, 1000.0), (4000.0, 10000.0)])
def test_butter_highpass_filters_as_scipys_design(order, cutoff, fs):
    ours = butter_highpass(cutoff, fs, order)
    reference = signal.butter(order, cutoff, btype="highpass", fs=fs, output="sos")
    assert ours.shape == reference.shape
    x = np.random.default_rng(order).standard_normal(5000)
    expected = signal.sosfilt(reference, x)
    np.testing.assert_allclose(signal.sosfilt(ours, x), expected, rtol=0, atol=1e-11 * np.max(np.abs(expected)))
    if order == 2:  # one biquad: the coefficients themselves
        np.testing.assert_allclose(ours, reference, rtol=1e-12, atol=1e-15)
    _, poles, _ = signal.sos2zpk(reference)
    radius = float(np.max(np.abs(poles)))
    assert settling_samples(ours) == max(1, math.ceil(math.log(1e-7) / math.log(radius)))


def test_butter_highpass_refuses_what_scipy_refuses():
    with pytest.raises(ValueError, match="cutoff_hz"):
        butter_highpass(10000.0, 20000.0)
    with pytest.raises(ValueError, match="order"):
        butter_highpass(100.0, 20000.0, 0)


def test_settling_samples_refuses_an_unstable_filter():
    unstable = np.array([[1.0, 0.0, 0.0, 1.0, -2.5, 1.0]])
    with pytest.raises(ValueError, match="stable"):
        settling_samples(unstable)


def test_peaks_above_equals_find_peaks_on_plateaus_nan_and_inf():
    rng = np.random.default_rng(7)
    for trial in range(3000):
        size = int(rng.integers(0, 40))
        x = rng.integers(-3, 4, size).astype(np.float64)  # small integers: many plateaus
        if size and trial % 5 == 0:
            x[rng.integers(0, size, 2)] = np.nan
        if size and trial % 7 == 0:
            x[rng.integers(0, size)] = np.inf
        height = float(rng.integers(-3, 4))
        expected, _ = signal.find_peaks(x, height=height)
        np.testing.assert_array_equal(peaks_above(x, height), expected, err_msg=f"{x!r}, height {height}")


def test_frame_times_of_a_planted_sync_train():
    sync = np.zeros(2000)
    onsets = np.arange(100, 1900, 50)
    for t in onsets:
        sync[t : t + 10] = 1.0
    times = frame_times_from_sync(sync, drop_leading_peaks=4)
    np.testing.assert_array_equal(times, onsets[4:].astype(np.uint64))


def test_the_pipeline_steps_do_not_import_scipy_signal():
    code = ("import sys\n"
            "import hdmea.steps.section_time, hdmea.steps.eimage, h5stream.kernels.eimage\n"
            "from h5stream.kernels.eimage import butter_highpass, settling_samples\n"
            "settling_samples(butter_highpass(300.0, 20000.0, 3))\n"
            "print('scipy.signal' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_spike_samples_for_the_images_are_viewed_when_unsigned_and_converted_otherwise():
    from hdmea.steps.eimage import _sample_indices

    stored = np.array([3, 70_000, 2**40], dtype=np.uint64)  # as the .cmtr reader gives them
    got = _sample_indices(stored)
    assert got.dtype == np.int64 and np.shares_memory(got, stored)
    np.testing.assert_array_equal(got, [3, 70_000, 2**40])
    assert _sample_indices(np.zeros(0, dtype=np.uint64)).dtype == np.int64
    for other in (np.array([5, 9], dtype=np.int32), np.array([5.0, 9.0]), [5, 9]):
        converted = _sample_indices(other)
        assert converted.dtype == np.int64 and not np.shares_memory(converted, np.asarray(other))
        np.testing.assert_array_equal(converted, [5, 9])
    past = np.array([2**63 + 1], dtype=np.uint64)  # not a sample index: converted, not reinterpreted
    assert not np.shares_memory(_sample_indices(past), past)

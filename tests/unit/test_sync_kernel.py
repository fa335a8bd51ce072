"""The light reference read in one pass and the frame-sync pulses found in one compiled pass.

Each is checked against its naive twin: the numpy arithmetic the reader and the pulse finder
did before (whole-channel float64 copies, ``np.percentile``, ``np.diff`` and the numpy
:func:`peaks_above`, itself checked against ``scipy.signal.find_peaks``), on hand-made
channels and on the synthetic recording's sync channel.
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest

import hdmea.io.cmcr as cmcr_module
from h5stream.kernels.sync import sync_peaks
from hdmea.io.cmcr import CmcrFile
from hdmea.steps.load import get_frame_timestamps
from hdmea.steps.section_time import analog_section_times, frame_times_from_sync, peaks_above, percentile_as_float64

ANALOG = "Acquisition/Analog Data"


def naive_frame_times(sync, drop=4, percentile=99.9, height=0.1):
    """The pulse finder as plain numpy: float64 copy, np.percentile, np.diff, peaks_above."""
    sync = np.asarray(sync, dtype=np.float64)
    if sync.size < 2:
        return np.zeros(0, dtype=np.uint64)
    scale = np.percentile(sync, percentile)
    if not np.isfinite(scale) or scale <= 0:
        return np.zeros(0, dtype=np.uint64)
    return (peaks_above(np.diff(sync / scale), height)[drop:] + 1).astype(np.uint64)


def noisy_sync(n, rng, dtype=np.float32, period=333, width=83, amplitude=30000.0, noise=20.0):
    """A sync train as the acquisition stores it: pulses plus ADC noise, integer counts."""
    t = np.arange(n)
    high = (t % period) < width
    return np.rint(high * amplitude + rng.normal(0, noise, n)).astype(np.int32).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kernel_equals_numpy_peaks_of_the_scaled_difference(dtype):
    rng = np.random.default_rng(11)
    for trial in range(3000):
        size = int(rng.integers(0, 40))
        x = rng.integers(-3, 4, size).astype(dtype)  # small integers: many plateaus of the difference
        if size and trial % 5 == 0:
            x[rng.integers(0, size, 2)] = np.nan
        if size and trial % 7 == 0:
            x[rng.integers(0, size)] = np.inf
        if size and trial % 11 == 0:
            x[rng.integers(0, size)] = -np.inf
        scale = float(rng.choice([1.0, 3.0, 0.7, 1e-3]))
        height = float(rng.integers(-3, 4)) / scale
        with np.errstate(invalid="ignore"):
            expected = peaks_above(np.diff(x.astype(np.float64) / scale), height)
        got = sync_peaks(x, scale, height)
        assert got.dtype == np.int64
        np.testing.assert_array_equal(got, expected, err_msg=f"{x!r}, scale {scale}, height {height}")


def test_kernel_on_a_long_noisy_train():
    rng = np.random.default_rng(3)
    x = noisy_sync(2_000_003, rng)
    scale = float(np.percentile(x.astype(np.float64), 99.9))
    expected = peaks_above(np.diff(x.astype(np.float64) / scale), 0.1)
    assert expected.size > 5000  # the train's pulses, found
    np.testing.assert_array_equal(sync_peaks(x, scale, 0.1), expected)


def test_kernel_refuses_what_it_does_not_read():
    for bad in (np.zeros(10, dtype=np.int32), np.zeros(20, dtype=np.float32)[::2], np.zeros((3, 4)),
                np.zeros(10, dtype=">f8")):
        with pytest.raises(TypeError, match="sync_peaks"):
            sync_peaks(bad, 1.0, 0.1)
    assert sync_peaks(np.zeros(2, dtype=np.float32), 1.0, 0.1).size == 0


def test_percentile_of_float32_equals_numpys_in_float64():
    rng = np.random.default_rng(5)
    qs = [0.0, 0.1, 1.0, 25.0, 50.0, 99.0, 99.9, 99.99, 100.0, 33.3]
    for trial in range(2000):
        n = int(rng.integers(1, 300)) if trial % 50 else int(rng.integers(10_000, 200_000))
        kind = trial % 4
        if kind == 0:
            x = rng.standard_normal(n).astype(np.float32) * np.float32(rng.choice([1.0, 1e-30, 1e30]))
        elif kind == 1:
            x = rng.integers(-5, 6, n).astype(np.float32)  # ties
        elif kind == 2:
            x = (rng.integers(-(2**31), 2**31 - 1, n)).astype(np.float32)
        else:
            x = rng.standard_normal(n).astype(np.float32)
            x[rng.integers(0, n)] = rng.choice([np.inf, -np.inf, np.nan])
        q = float(rng.choice(qs))
        with np.errstate(invalid="ignore"):
            expected = float(np.percentile(x.astype(np.float64), q))
        got = percentile_as_float64(x, q)
        assert (got == expected) or (np.isnan(got) and np.isnan(expected)), (trial, n, q, got, expected)


def test_percentile_near_the_top_of_long_signals_equals_numpys():
    """The sampled threshold's path (long signals, top percentiles) and its fallback when the sample misleads."""
    rng = np.random.default_rng(8)
    n = 1_000_003
    step = n // 65536
    boosted = rng.random(n).astype(np.float32)
    boosted[::step] += 10  # the strided sample sees only the boosted samples: its threshold is too high
    signals = {
        "sync": noisy_sync(n, rng),
        "constant": np.full(n, 3.5, dtype=np.float32),
        "two levels": np.where(rng.random(n) < 0.3, 30000.0, 0.0).astype(np.float32),
        "boosted sample": boosted,
        "normal": rng.standard_normal(n).astype(np.float32),
    }
    for name, x in signals.items():
        for q in (90.0, 98.0, 99.0, 99.5, 99.9, 99.99, 99.9999, 100.0):
            expected = float(np.percentile(x.astype(np.float64), q))
            assert percentile_as_float64(x, q) == expected, (name, q)
    x = signals["normal"].copy()
    x[12345] = np.nan
    assert np.isnan(percentile_as_float64(x, 99.9)) and np.isnan(np.percentile(x.astype(np.float64), 99.9))


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.int16])
def test_frame_times_equal_the_numpy_form(dtype):
    rng = np.random.default_rng(9)
    for n in (0, 1, 2, 3, 4, 5, 50, 1000, 500_000):
        x = noisy_sync(n, rng, dtype=np.float64)
        x = x.astype(dtype) if np.dtype(dtype).kind == "f" else np.clip(x, -30000, 32000).astype(dtype)
        for drop in (0, 4):
            np.testing.assert_array_equal(frame_times_from_sync(x, drop_leading_peaks=drop),
                                          naive_frame_times(x, drop), err_msg=f"{n} samples, {dtype}")
    flat = np.zeros(1000, dtype=np.float32)
    assert frame_times_from_sync(flat).size == 0 and naive_frame_times(flat).size == 0
    negative = -np.abs(noisy_sync(1000, rng))
    assert frame_times_from_sync(negative).size == 0 and naive_frame_times(negative).size == 0
    with_nan = noisy_sync(1000, rng)
    with_nan[500] = np.nan
    assert frame_times_from_sync(with_nan).size == 0 and naive_frame_times(with_nan).size == 0


def test_frame_times_of_a_strided_and_a_byte_swapped_signal():
    rng = np.random.default_rng(2)
    x = noisy_sync(20_000, rng)
    two = np.stack([rng.standard_normal(x.size).astype(np.float32), x], axis=1)  # column 1: strided
    np.testing.assert_array_equal(frame_times_from_sync(two[:, 1]), naive_frame_times(x))
    np.testing.assert_array_equal(frame_times_from_sync(x.astype(">f4")), naive_frame_times(x))
    np.testing.assert_array_equal(get_frame_timestamps(two.T.copy()), naive_frame_times(x))


def _replace_analog(cmcr, data, zero, factor, chunks, adc_bits):
    """Put ``data`` (rows x samples) as the analog channels, with per-row ADZero and ConversionFactor and the
    ADC resolution ``adc_bits`` the channels declare (``ChannelMeta`` ``ADCBits``)."""
    with h5py.File(cmcr, "a") as f:
        group = f[ANALOG]
        old = group["ChannelData 1"]
        attrs = dict(old.attrs)
        del group["ChannelData 1"]
        ds = group.create_dataset("ChannelData 1", data=data, chunks=chunks)
        ds.attrs.update(attrs)
        meta = group["ChannelMeta"][()]
        meta_attrs = dict(group["ChannelMeta"].attrs)
        meta = np.resize(meta, data.shape[0])
        meta["ADZero"] = zero
        meta["ConversionFactor"] = factor
        meta["ADCBits"] = adc_bits
        del group["ChannelMeta"]
        group.create_dataset("ChannelMeta", data=meta).attrs.update(meta_attrs)


def _naive_rows(cmcr, rows):
    """The channels as the reader converted them before: float64 copy, minus ADZero, times the factor."""
    with h5py.File(cmcr, "r") as f:
        meta = f[ANALOG]["ChannelMeta"][()]
        out = []
        for row in rows:
            raw = f[ANALOG]["ChannelData 1"][row, :].astype(np.float64)
            zero, factor = float(meta["ADZero"][row]), float(meta["ConversionFactor"][row])
            if zero:
                raw -= zero
            if factor != 1:
                raw *= factor
            out.append(raw.astype(np.float32))
    return out


# Codes span the declared ADC's whole range of each kind as far as the stored type holds it (-2**(bits-1) ..
# 2**(bits-1) - 1 signed, 0 .. 2**bits - 1 unsigned, one kind per channel; the reader refuses any other value as
# damage): 32 bits, the widest ADC the format states, puts codes far past float32's exact integers (2**24), where one
# rounding differs from two.
@pytest.mark.parametrize(("dtype", "zero", "factor", "adc_bits"), [
    ("<i4", [0, 0, 0], [1, 1, 1], 32),
    ("<i4", [1234, -77, 0], [59605, 1, 3], 32),
    ("<u2", [32768, 32768, 0], [1, 1, 1], 16),
    ("<i8", [0, 0, 5], [1, 1, 1], 32),
    ("<u4", [0, 0, 0], [1, 1, 1], 32),
    ("<i4", [0, 0, 0], [1, 1, 1], 24),  # the synthetic recording's ADC
])
@pytest.mark.parametrize("chunks", [(3, 1000), (1, 777), None])
def test_light_reference_equals_the_row_by_row_float64_conversion(recording_copy, monkeypatch, dtype, zero, factor,
                                                                  adc_bits, chunks):
    cmcr, _ = recording_copy
    with h5py.File(cmcr, "r") as f:
        n = f[ANALOG]["ChannelData 1"].shape[1]
    info = np.iinfo(np.dtype(dtype))
    # each channel's codes are of one ADC kind: signed ones where the stored type holds them (rows 0 and 2),
    # unsigned ones in row 1 (every row for an unsigned type), each row spanning its kind's whole range
    signed = (max(info.min, -(2 ** (adc_bits - 1))), min(info.max, 2 ** (adc_bits - 1) - 1))
    unsigned = (0, min(info.max, 2**adc_bits - 1))
    rng = np.random.default_rng(4)
    data = np.empty((3, n), dtype=np.dtype(dtype))
    for row in range(3):
        low, high = signed if info.min < 0 and row != 1 else unsigned
        data[row] = rng.integers(low, high, n, dtype=np.dtype(dtype), endpoint=True)
        data[row, :4] = [low, high, 0, 1]
    _replace_analog(cmcr, data, zero, factor, chunks, adc_bits)
    monkeypatch.setattr(cmcr_module, "ANALOG_BLOCK_SAMPLES", 2500)  # several blocks and a partial last one
    expected = _naive_rows(cmcr, [0, 1, 2])
    with CmcrFile(cmcr) as f:
        light = f.light_reference()
        rows = f.analog_rows((2, 0))
        part = f.analog_row(1, 1001, 7003)
        tail = f.analog_row(1, -50)
    np.testing.assert_array_equal(light["raw_ch1"], expected[0])
    np.testing.assert_array_equal(light["raw_ch2"], expected[1])
    assert light["raw_ch1"].dtype == np.float32 and light["raw_ch1"].flags.c_contiguous
    np.testing.assert_array_equal(rows[0], expected[2])
    np.testing.assert_array_equal(rows[1], expected[0])
    np.testing.assert_array_equal(part, expected[1][1001:7003])
    np.testing.assert_array_equal(tail, expected[1][-50:])


def test_a_row_past_the_channels_is_refused(tiny_recording):
    with CmcrFile(tiny_recording.cmcr_path) as f, pytest.raises(cmcr_module.RecordingFormatError) as err:
        f.analog_row(2)
    assert "rows 0..1" in str(err.value) and str(tiny_recording.cmcr_path) in str(err.value)


def test_frame_times_of_the_synthetic_recording_equal_the_numpy_form(tiny_recording):
    with CmcrFile(tiny_recording.cmcr_path) as f:
        sync = f.light_reference()["raw_ch2"]
    got = get_frame_timestamps({"raw_ch2": sync})
    assert got.size > 0
    np.testing.assert_array_equal(got, naive_frame_times(sync))


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32])
def test_derivative_sections_equal_the_numpy_form(dtype):
    rng = np.random.default_rng(6)
    for n in (0, 1, 2, 3, 4, 100, 200_000):
        x = noisy_sync(n, rng, dtype=np.float64, period=997, width=300).astype(dtype)
        for threshold in (5000, 0.5, 40000):
            onsets = peaks_above(np.diff(x.astype(np.float64)), threshold) + 1
            keep = []
            for t in onsets:  # a section starts only after the previous one ended
                if not keep or t >= keep[-1] + 400:
                    keep.append(int(t))
            keep = np.asarray(keep, dtype=np.int64)
            expected = np.stack([keep, np.minimum(keep + 400, x.size - 1)], axis=1).astype(np.uint64).reshape(-1, 2)
            got = analog_section_times(x, threshold, 400, detect="derivative", non_overlapping=True)
            np.testing.assert_array_equal(got, expected, err_msg=f"{n} samples, threshold {threshold}")
            # the original's rule (the default): every peak starts a section
            every = np.stack([onsets, np.minimum(onsets + 400, x.size - 1)], axis=1).astype(np.uint64).reshape(-1, 2)
            got = analog_section_times(x, threshold, 400, detect="derivative")
            np.testing.assert_array_equal(got, every, err_msg=f"{n} samples, threshold {threshold}")
            if n == 200_000 and threshold == 5000:
                assert got.shape[0] > 100

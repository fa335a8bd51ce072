"""The electrical images laid out in another frame order as the kernel writes them out: the compiled
``untile_frames`` against numpy's separate passes (the mean, the reorder, the gains), bit for bit; a whole-chip
region's ``chip_frame`` against its turn in place; and the kernel's images with and without it."""

from __future__ import annotations

import numpy as np
import pytest

from h5stream.kernels.eimage import butter_highpass, electrical_images
from h5stream.native import compiled
from tests.unit.test_cmcr_reader import _region

_eimage = compiled("_eimage")
LANES = _eimage.lane_width()


def _naive(acc: np.ndarray, n_channels: int, scale, place, gains) -> np.ndarray:
    """The sums (groups, units, window, lanes) as (units, window, channels), each step a numpy pass of its own."""
    groups, units, window, lanes = acc.shape
    rows = acc.transpose(1, 2, 0, 3).reshape(units, window, groups * lanes)[:, :, :n_channels].copy()
    rows *= scale[:, None, None]
    if place is not None:
        moved = np.empty_like(rows)
        moved[:, :, place] = rows
        rows = moved
    if gains is not None:
        rows = rows * gains
    return rows


@pytest.mark.parametrize("n_channels", [1, LANES - 3, 2 * LANES, 65 * 65])
@pytest.mark.parametrize("placed", [False, True])
@pytest.mark.parametrize("with_gains", [False, True])
def test_untile_frames_equals_the_separate_passes_bit_for_bit(n_channels, placed, with_gains):
    rng = np.random.default_rng(n_channels)
    groups, units, window = -(-n_channels // LANES), 5, 7
    acc = rng.standard_normal((groups, units, window, LANES)).astype(np.float32) * 1e3
    used = np.array([0, 1, 3, 7, 1000])
    scale = np.where(used > 0, 1.0 / np.maximum(used, 1), 0.0).astype(np.float32)
    place = rng.permutation(n_channels).astype(np.int64) if placed else None
    gains = rng.uniform(0.3, 3.0, n_channels).astype(np.float32) if with_gains else None
    expected = _naive(acc, n_channels, scale, place, gains)
    _eimage.untile_frames(acc, n_channels, scale, place, gains)
    got = acc.reshape(units, -1)[:, : window * n_channels].reshape(units, window, n_channels)
    assert got.tobytes() == expected.tobytes()


def test_plain_untile_is_untile_frames_with_unit_scales_of_one():
    rng = np.random.default_rng(5)
    acc = rng.standard_normal((3, 4, 6, LANES)).astype(np.float32)
    other = acc.copy()
    _eimage.untile(acc, 2 * LANES + 5)
    _eimage.untile_frames(other, 2 * LANES + 5, np.ones(4, dtype=np.float32))
    assert acc.tobytes() == other.tobytes()


@pytest.mark.parametrize("kwargs, match", [
    ({"scale": np.ones(3, np.float32)}, "3 unit scales for 4 units"),
    ({"place": np.array([0, 1, 1, 3, 4, 5, 6, 7, 8, 9], np.int64)}, "not a permutation"),
    ({"place": np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 10], np.int64)}, "not a permutation"),
    ({"place": np.arange(9, dtype=np.int64)}, "9 places for 10 channels"),
    ({"gains": np.ones(11, np.float32)}, "11 gains for 10 channels"),
    ({"n_channels": 2 * LANES + 1}, "do not fit"),
])
def test_untile_frames_refuses_arguments_that_do_not_fit(kwargs, match):
    acc = np.zeros((2, 4, 3, LANES), dtype=np.float32)
    before = acc.copy()
    with pytest.raises(ValueError, match=match):
        _eimage.untile_frames(acc, kwargs.get("n_channels", 10), kwargs.get("scale", np.ones(4, np.float32)),
                              kwargs.get("place"), kwargs.get("gains"))
    np.testing.assert_array_equal(acc, before)


@pytest.mark.parametrize("order", ["col_row", "row_col"])
@pytest.mark.parametrize("gains", ["none", "uniform", "per_sensor"])
def test_chip_frame_gives_the_turn_in_place_bit_for_bit(order, gains):
    rng = np.random.default_rng(9)
    g = {"none": None, "uniform": np.full((65, 65), 0.5), "per_sensor": rng.uniform(0.5, 1.5, (65, 65))}[gains]
    info = _region(axis_order=order, gains=g)
    stored = rng.standard_normal((3, 4, 65, 65)).astype(np.float32)
    expected = info.to_chip_in_place(stored.copy(), scale=True)
    place, factors = info.chip_frame(scale=True)
    assert (place is None) == (order == "row_col") and (factors is None) == (g is None)
    flat = stored.reshape(3, 4, -1)
    got = np.empty_like(flat)
    got[:, :, np.arange(flat.shape[-1]) if place is None else place] = flat
    if factors is not None:
        got = got * factors
    assert got.reshape(expected.shape).tobytes() == expected.tobytes()


def test_chip_frame_needs_a_whole_chip_region():
    with pytest.raises(ValueError, match="whole-chip region"):
        _region(row_offset=2, n_rows=60, shape=(10, 65, 60)).chip_frame()


def test_the_kernel_s_images_in_another_frame_order_equal_the_reordered_images():
    rng = np.random.default_rng(21)
    raw = (rng.normal(0, 40, (9000, 6, 7)) + 2048).astype(np.uint16)
    units = [np.sort(rng.integers(0, raw.shape[0], k)) for k in (0, 1, 40, 300)]
    sos = butter_highpass(100.0, 20_000.0, 2)
    plain = electrical_images(raw, units, sos=sos, adc_offset=2048.0, memory_budget_bytes=1 << 30)
    place = rng.permutation(42)
    gains = rng.uniform(0.5, 2.0, 42).astype(np.float32)
    got = electrical_images(raw, units, sos=sos, adc_offset=2048.0, memory_budget_bytes=1 << 30,
                            frame_place=place, frame_gains=gains)
    flat = plain.images.reshape(4, 50, 42)
    expected = np.empty_like(flat)
    expected[:, :, place] = flat
    expected = (expected * gains).reshape(plain.images.shape)
    assert got.images.tobytes() == expected.tobytes()
    np.testing.assert_array_equal(got.n_spikes_used, plain.n_spikes_used)
    with pytest.raises(ValueError, match="frame_gains: expected one value per channel"):
        electrical_images(raw, units, sos=sos, frame_gains=np.ones(41, np.float32))


def test_units_of_no_spike_have_images_of_zero_times_their_gains():
    raw = np.full((3000, 6, 7), 2048, dtype=np.uint16)
    gains = np.linspace(0.5, 2.0, 42).astype(np.float32)
    empty = np.zeros(0, dtype=np.int64)
    got = electrical_images(raw, [empty, empty], sos=butter_highpass(100.0, 20_000.0, 2),
                            frame_place=np.arange(42)[::-1], frame_gains=gains)
    np.testing.assert_array_equal(got.n_spikes_used, [0, 0])
    assert got.images.shape == (2, 50, 6, 7) and not np.any(got.images)

"""The electrical images' orientation check (``hdmea.steps.eimage.orientation_check``) against its naive twin:
each image's peak is the sensor whose largest ``|value|`` over the window is largest, NaN counted as 0 and an
infinity as the largest finite value (``np.nan_to_num`` of the whole image, then its magnitude)."""

from __future__ import annotations

import numpy as np
import pytest

from hdmea.steps.eimage import orientation_check


def _naive(images, positions, max_distance=1):
    n = own = transposed = 0
    for image, (row, col) in zip(images, positions):
        magnitude = np.abs(np.nan_to_num(image.reshape(image.shape[0], -1), nan=0.0))
        if not np.any(magnitude > 0):
            continue
        r, c = divmod(int(np.argmax(magnitude.max(axis=0))), image.shape[-1])
        n += 1
        own += max(abs(r - row), abs(c - col)) <= max_distance
        transposed += max(abs(r - col), abs(c - row)) <= max_distance
    return (own / n, transposed / n, n) if n else (float("nan"), float("nan"), 0)


def _images(seed):
    rng = np.random.default_rng(seed)
    images, positions = [], []
    for k in range(40):
        image = rng.standard_normal((50, 65, 65)).astype(np.float32)
        row, col = (int(v) for v in rng.integers(0, 65, 2))
        kind = k % 8
        if kind == 1:  # a negative peak at the unit's sensor
            image[20, row, col] = -40.0
        elif kind == 2:  # the peak at the transposed sensor
            image[10, col, row] = 35.0
        elif kind == 3:  # sensors not recorded
            image[:, : row + 1] = np.nan
        elif kind == 4:  # all NaN: no peak
            image[:] = np.nan
        elif kind == 5:  # all zero: no peak
            image[:] = 0.0
        elif kind == 6:  # infinities and ties
            image[3, row, col], image[4, col, row] = np.inf, -np.inf
            image[5, 0, 0] = np.finfo(np.float32).max
        elif kind == 7:  # two sensors of the same magnitude, one negative
            image[:] = np.float32(0.5)
            image[7, row, col], image[9, col, row] = -2.0, 2.0
        images.append(image)
        positions.append((row, col))
    return images, positions


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("max_distance", [0, 1, 3])
def test_orientation_check_equals_the_naive_twin(seed, max_distance):
    images, positions = _images(seed)
    got = orientation_check(images, positions, max_distance=max_distance)
    want = _naive(images, positions, max_distance)
    np.testing.assert_array_equal(np.array(got, dtype=float), np.array(want, dtype=float))


def test_no_countable_image():
    images = [np.full((50, 65, 65), np.nan, np.float32), np.zeros((50, 65, 65), np.float32)]
    own, transposed, n = orientation_check(images, [(1, 2), (3, 4)])
    assert n == 0 and np.isnan(own) and np.isnan(transposed)

"""A movie's light template taken block by block equals numpy's mean of its sections stacked.

The naive twin is the arithmetic the step did before: every section's samples in one float64 stack (the
shorter sections padded with NaN) and ``np.nanmean`` over the sections, made float32.  The template must
equal it bit for bit, whatever the block size, the sections' lengths and overlaps, the NaN in the signal
and its dtype; and on planted signals it is the known mean.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import hdmea.steps.section_time as section_time
from hdmea.steps.section_time import light_template


def naive_template(light, pairs):
    """np.nanmean of the sections stacked in float64, NaN-padded, as float32 (None without a section)."""
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    traces = [light[max(a, 0):min(b, light.size)] for a, b in pairs if min(b, light.size) > max(a, 0)]
    if not traces:
        return None
    stack = np.full((len(traces), max(t.size for t in traces)), np.nan)
    for i, trace in enumerate(traces):
        stack[i, :trace.size] = trace
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # (a sample no section has a value at: NaN)
        return np.nanmean(stack, axis=0).astype(np.float32)


@pytest.mark.parametrize("block", [1, 7, 1000, 1 << 16])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int16])
def test_template_equals_nanmean_of_the_stacked_sections(block, dtype, monkeypatch):
    monkeypatch.setattr(section_time, "TEMPLATE_BLOCK", block)
    rng = np.random.default_rng(block + np.dtype(dtype).itemsize)
    for case in range(40 if block > 1 else 8):
        n = int(rng.integers(1, 5000 if block > 1 else 300))
        light = (rng.normal(size=n) * rng.choice([1e-3, 1.0, 1e4])).astype(dtype)
        if light.dtype.kind == "f":
            light[rng.random(n) < 0.02] = np.nan
            light[rng.random(n) < 0.02] = -0.0
        k = int(rng.integers(0, 6))
        starts = rng.integers(-50, n + 5, size=k)
        pairs = np.stack([starts, starts + rng.integers(-3, n // 2 + 2, size=k)], axis=1)  # some empty, some clipped
        expected, found = naive_template(light, pairs), light_template(light, pairs)
        if expected is None:
            assert found is None, (case, pairs)
            continue
        assert found.dtype == np.float32 and found.shape == expected.shape, (case, pairs)
        assert found.tobytes() == expected.tobytes(), (case, pairs)


def test_template_of_planted_sections_is_their_mean(monkeypatch):
    monkeypatch.setattr(section_time, "TEMPLATE_BLOCK", 64)
    # three sections of 300, 200 and 100 samples holding 1, 2 and 6: the first 100 samples average all three,
    # the next 100 the first two, the last 100 the first alone; a NaN sample is left out of its mean
    light = np.concatenate([np.full(300, 1.0), np.full(200, 2.0), np.full(100, 6.0)]).astype(np.float32)
    light[10] = np.nan
    template = light_template(light, [[0, 300], [300, 500], [500, 600]])
    expected = np.concatenate([np.full(100, 3.0), np.full(100, 1.5), np.full(100, 1.0)]).astype(np.float32)
    expected[10] = 4.0  # (2 + 6) / 2
    np.testing.assert_array_equal(template, expected)
    # a section past the signal's end is cut at it; one wholly outside counts for nothing
    np.testing.assert_array_equal(light_template(light, [[550, 700], [900, 950]]), np.full(50, 6.0, np.float32))
    assert light_template(light, [[900, 950], [5, 5]]) is None


def test_template_allocates_one_template_not_the_stack():
    import tracemalloc

    light = np.arange(2_000_000, dtype=np.float32)
    pairs = [[0, 1_000_000], [500_000, 1_500_000], [1_000_000, 2_000_000]]
    tracemalloc.start()
    try:
        template = light_template(light, pairs)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(template, naive_template(light, pairs))
    # the template (4 MB) and block-sized buffers; the stack alone would be 24 MB, nanmean's copies more
    assert peak < template.nbytes + 16 * section_time.TEMPLATE_BLOCK * 8

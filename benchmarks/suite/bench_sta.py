"""STA of many units on a dense-noise movie: our kernels against per-unit fancy indexing.

Full size: 400 units, 10,800 display frames of 15 x 15 binary noise (uint8),
60 lags, units firing ~10 Hz (Poisson per 60 Hz frame, ~1,800 spikes each).
The peer is the obvious numpy code (``tests.reference.sta_reference``): for each
unit, gather every spike's window with fancy indexing and average.  The share of
the machine's floating-point peak is the kernel's useful adds per second over a
large float32 matrix product's rate, both measured in this run.
"""

from __future__ import annotations

import time

import numpy as np

from benchmarks.harness import Row, interleave, time_rounds, timed_row

from tests.reference import sta_reference

SIZES = {
    "small": dict(units=16, frames=1_500, side=15, lags=60, rate_hz=10.0, peer_rounds=1, rounds=2),
    "full": dict(units=400, frames=10_800, side=15, lags=60, rate_hz=10.0, peer_rounds=2, rounds=5),
}


def make_data(units: int, frames: int, side: int, rate_hz: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    stimulus = (rng.random((frames, side, side)) < 0.5).astype(np.uint8)
    counts = rng.poisson(rate_hz / 60.0, size=(units, frames))
    spike_frames = [np.repeat(np.arange(frames), c) for c in counts]
    return stimulus, spike_frames


def float32_peak_gflops(n: int = 4096, rounds: int = 3) -> float:
    """Rate of a large float32 matrix product (BLAS, all cores): the practical peak."""
    a = np.random.default_rng(1).random((n, n), dtype=np.float32)
    b = np.random.default_rng(2).random((n, n), dtype=np.float32)
    timing = time_rounds(lambda: a @ b, rounds=rounds, warmup=1)
    return 2.0 * n**3 / timing.min / 1e9


def run(size: str = "small") -> list[Row]:
    from h5stream.kernels.sta import spike_triggered_average

    p = SIZES[size]
    stimulus, spikes = make_data(p["units"], p["frames"], p["side"], p["rate_hz"])
    n_spikes = sum(s.size for s in spikes)
    lags = p["lags"]
    pixels = p["side"] ** 2

    matmul_n = 1024 if size == "small" else 4096
    peak = float32_peak_gflops(matmul_n)

    results = {}
    rates = {}
    rows = []
    ours = {m: (lambda m=m: results.__setitem__(m, spike_triggered_average(stimulus, spikes, n_lags=lags, method=m)))
            for m in ("sparse", "dense")}
    for warm in ours.values():
        warm()
    # the slow peer's rounds set the count (the runner's minimum still applies)
    t = interleave({"peer": lambda: sta_reference(stimulus, spikes, n_lags=lags), **ours}, p["peer_rounds"])
    peer = t["peer"]
    for method in ("sparse", "dense"):
        timing = t[method]
        out = results[method]
        used = int(out.n_spikes_used.sum())
        # useful floating-point work: sparse adds one window per spike; dense multiplies and adds
        # over every (unit, frame) cell of every lag
        flops = used * lags * pixels if method == "sparse" else 2.0 * p["units"] * p["frames"] * lags * pixels
        gflops = flops / timing.min / 1e9
        rates[method] = gflops
        rows.append(timed_row(
            f"STA {p['units']} units x {p['frames']} frames {p['side']}x{p['side']}, {lags} lags ({method})",
            "per-unit fancy indexing (numpy)", peer, timing, 30.0 if method == "sparse" else None,
            f"{n_spikes} spikes; {gflops:.1f} GFLOP/s = {100 * gflops / peak:.1f}% of the measured float32 "
            f"peak {peak:.0f} GFLOP/s ({matmul_n}^3 float32 matmul, this run)",
        ))
    rows.append(Row(
        benchmark="STA share of float32 peak (sparse)",
        peer="float32 matmul peak (this run)",
        peer_value=peak,
        ours=rates["sparse"],
        unit="GFLOP/s",
        ratio=rates["sparse"] / peak,
        goal=None,
        details=(f"adds per second of the sparse kernel over the matmul rate (memory-bound); "
                 f"dense path {rates['dense']:.1f} GFLOP/s = {100 * rates['dense'] / peak:.1f}%"),
    ))
    return rows


def test_sta_benchmark_small_runs_and_is_correct():
    from h5stream.kernels.sta import spike_triggered_average

    stimulus, spikes = make_data(12, 800, 15, 10.0, seed=3)
    ours = spike_triggered_average(stimulus, spikes, n_lags=60)
    ref, used, _ = sta_reference(stimulus, spikes, n_lags=60)
    np.testing.assert_allclose(ours.sta, ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(ours.n_spikes_used, used)
    t0 = time.perf_counter()
    rows = run("small")
    assert time.perf_counter() - t0 < 60
    assert len(rows) == 3 and all(np.isfinite(r.ratio) and r.ratio > 0 for r in rows)
    assert rows[0].ratio > 1.0  # the kernel beats the naive gather even at small size

"""The streamed electrical-image kernel against its naive twin, at chunk edges and on planted footprints."""

from __future__ import annotations


import h5py
import numpy as np
import pytest

from h5stream.kernels._tiles import TILE
from h5stream.kernels.eimage import butter_highpass, electrical_images, iter_electrical_images, settling_samples
# the repository root, so that tests.reference imports without a conftest
from tests.reference import eimage_reference

SOS = butter_highpass(100.0, 20_000.0, 2)


def _raw(rng, n=12_000, shape=(6, 7)):
    return (rng.normal(0, 40, (n, *shape)) + 2048).astype(np.uint16)


def _check(got, ref, atol=2e-4):
    images, used, excluded, over_cap = ref
    scale = max(np.abs(images).max(), 1.0)
    np.testing.assert_allclose(got.images, images, rtol=0, atol=atol * scale)
    np.testing.assert_array_equal(got.n_spikes_used, used)
    np.testing.assert_array_equal(got.n_spikes_excluded, excluded)
    np.testing.assert_array_equal(got.n_spikes_over_cap, over_cap)


def test_equals_reference_on_seeded_data():
    rng = np.random.default_rng(2)
    raw = _raw(rng)
    units = [np.sort(rng.integers(0, raw.shape[0], rng.integers(1, 200))) for _ in range(6)]
    got = electrical_images(raw, units, sos=SOS, adc_offset=2048.0, adc_scale=0.5)
    _check(got, eimage_reference(raw, units, SOS, adc_offset=2048.0, adc_scale=0.5))
    assert got.images.shape == (6, 50, 6, 7) and got.images.dtype == np.float32


def test_every_count_of_windows_in_one_visit_of_a_unit_s_sums():
    # the kernel adds a unit's windows of one sub-block four at a time, then the 1-3 left together:
    # units with 1..13 windows, all in the first sub-block, and a unit with one window in each of many
    rng = np.random.default_rng(11)
    raw = _raw(rng, n=6000)
    units = [np.sort(rng.choice(np.arange(60, 4000), size=k, replace=False)) for k in range(1, 14)]
    units.append(np.arange(100, 5900, 400))
    got = electrical_images(raw, units, sos=SOS, adc_offset=2048.0)
    _check(got, eimage_reference(raw, units, SOS, adc_offset=2048.0))
    np.testing.assert_array_equal(got.n_spikes_used, [u.size for u in units])


def test_spikes_at_chunk_edges_first_and_last_samples_and_empty_units():
    rng = np.random.default_rng(4)
    raw = _raw(rng, n=5000)
    chunk = 1000
    edge = [c + d for c in (1000, 2000, 3000) for d in (-41, -40, -39, -1, 0, 1, 9, 10, 11)]
    units = [
        np.array(edge),
        np.array([0, 5, 9, 10, 11]),  # first samples: windows before sample 0 are excluded
        np.array([4955, 4959, 4960, 4961, 4999]),  # last samples: 4961 and 4999 run past the end
        np.array([], dtype=np.int64),
        np.array([2500, 2500, 2501]),  # repeated spike times count twice
    ]
    got = electrical_images(raw, units, sos=SOS, chunk_samples=chunk)
    ref = eimage_reference(raw, units, SOS)
    _check(got, ref)
    assert got.n_spikes_used[0] == len(edge)  # nothing lost at chunk edges
    assert got.n_spikes_used[1] == 2 and got.n_spikes_excluded[1] == 3
    assert got.n_spikes_used[2] == 3 and got.n_spikes_excluded[2] == 2
    assert got.n_spikes_used[3] == 0 and not got.images[3].any()
    # chunking does not change the result: one chunk for everything gives the same images
    whole = electrical_images(raw, units, sos=SOS, chunk_samples=raw.shape[0])
    np.testing.assert_allclose(got.images, whole.images, rtol=0, atol=1e-4)


def test_time_range_with_settling_and_cap_after_range():
    rng = np.random.default_rng(8)
    raw = _raw(rng)
    units = [np.sort(rng.integers(0, raw.shape[0], 300)) for _ in range(4)]
    settle = settling_samples(SOS)
    got = electrical_images(raw, units, sos=SOS, start=3000, stop=9000, max_spikes_per_unit=25, chunk_samples=700)
    ref = eimage_reference(raw, units, SOS, start=3000, stop=9000, settle_samples=settle, max_spikes_per_unit=25)
    _check(got, ref)
    assert (got.n_spikes_used == 25).all() and (got.n_spikes_over_cap > 0).all()
    # the filter settled: starting the filter far earlier gives the same images
    long = eimage_reference(raw, units, SOS, start=3000, stop=9000, settle_samples=3000, max_spikes_per_unit=25)
    np.testing.assert_allclose(got.images, long[0], rtol=0, atol=1e-3 * np.abs(long[0]).max())


def test_memory_budget_splits_units_into_batches_with_equal_results():
    rng = np.random.default_rng(9)
    raw = _raw(rng, n=6000)
    units = [np.sort(rng.integers(0, raw.shape[0], 80)) for _ in range(5)]
    per_unit = 50 * (-(-42 // TILE) * TILE) * 4  # the sums of 42 channels are padded to whole tiles
    batches = list(iter_electrical_images(raw, units, sos=SOS, memory_budget_bytes=2 * per_unit))
    assert [b.units.tolist() for b in batches] == [[0, 1], [2, 3], [4]]
    assert [len(b.units) for b in iter_electrical_images(raw, units, sos=SOS, memory_budget_bytes=2 * per_unit - 1)] \
        == [1] * 5
    together = electrical_images(raw, units, sos=SOS)
    np.testing.assert_array_equal(np.concatenate([b.images for b in batches]), together.images)


def test_serial_equals_parallel_and_hdf5_source_equals_numpy(tmp_path):
    rng = np.random.default_rng(10)
    raw = _raw(rng, n=8000, shape=(20, 20))
    units = [np.sort(rng.integers(0, raw.shape[0], 150)) for _ in range(6)]
    serial = electrical_images(raw, units, sos=SOS, n_threads=1, chunk_samples=1500)
    parallel = electrical_images(raw, units, sos=SOS, n_threads=2, chunk_samples=1500)
    np.testing.assert_array_equal(serial.images, parallel.images)
    path = tmp_path / "raw.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("data", data=raw, chunks=(1024, 20, 20))
    with h5py.File(path, "r") as f:
        from_file = electrical_images(f["data"], units, sos=SOS, chunk_samples=1500, prefetch=True)
    np.testing.assert_array_equal(from_file.images, serial.images)


def test_planted_footprints_are_recovered():
    rng = np.random.default_rng(12)
    n, grid = 40_000, (9, 9)
    raw = rng.normal(0, 20, (n, *grid))
    footprints = []
    units = []
    t = np.arange(50) - 10
    for u in range(3):
        centre = rng.integers(2, 7, 2)
        rr, cc = np.mgrid[: grid[0], : grid[1]]
        spatial = np.exp(-((rr - centre[0]) ** 2 + (cc - centre[1]) ** 2) / 2.0)
        temporal = -np.exp(-(t / 3.0) ** 2) * 60 + 20 * np.exp(-((t - 8) / 5.0) ** 2)
        fp = temporal[:, None, None] * spatial[None]
        times = np.sort(rng.choice(np.arange(20, n - 50), 400, replace=False))
        for s in times:
            raw[s - 10 : s + 40] += fp
        footprints.append(fp)
        units.append(times)
    got = electrical_images(raw.astype(np.float32), units, sos=SOS)
    for u, fp in enumerate(footprints):
        assert np.corrcoef(got.images[u].ravel(), fp.ravel())[0, 1] >= 0.9


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(window=(5, 5)),
        dict(start=100, stop=50),
        dict(chunk_samples=0),
        dict(max_spikes_per_unit=0),
        dict(sos=np.ones((1, 5))),
        dict(highpass_hz=20_000.0, sos=None),
    ],
)
def test_bad_arguments_raise_value_errors(kwargs):
    raw = np.zeros((1000, 2, 2), dtype=np.int16)
    args = dict(sos=SOS)
    args.update(kwargs)
    with pytest.raises(ValueError):
        electrical_images(raw, [np.array([500])], **args)


def test_non_integer_spike_times_rejected():
    with pytest.raises(TypeError):
        electrical_images(np.zeros((100, 2)), [np.array([5.5])], sos=SOS)


@pytest.mark.parametrize("order, btype, cutoff", [(4, "highpass", 100.0), (3, "bandpass", [300.0, 3000.0]),
                                                  (2, "lowpass", 500.0)])
def test_other_filters_with_a_large_dc_level_equal_reference(order, btype, cutoff):
    from scipy.signal import butter

    rng = np.random.default_rng(13)
    raw = (rng.normal(0, 50, (9000, 5, 5)) + 30000).astype(np.uint16)
    units = [np.sort(rng.integers(0, raw.shape[0], 120)) for _ in range(3)]
    sos = butter(order, cutoff, btype=btype, fs=20_000.0, output="sos")
    got = electrical_images(raw, units, sos=sos, chunk_samples=2000, adc_offset=32768.0, adc_scale=0.1,
                            start=1500, stop=8000)
    ref = eimage_reference(raw, units, sos, start=1500, stop=8000, settle_samples=settling_samples(sos),
                           adc_offset=32768.0, adc_scale=0.1)
    _check(got, ref, atol=5e-5)


def test_pipelined_streaming_equals_sequential_and_passes_read_errors_on():
    rng = np.random.default_rng(14)
    raw = _raw(rng, n=9000, shape=(6, 6))
    units = [np.sort(rng.integers(0, raw.shape[0], 200)) for _ in range(5)]
    piped = electrical_images(raw, units, sos=SOS, chunk_samples=700, prefetch=True)
    sequential = electrical_images(raw, units, sos=SOS, chunk_samples=700, prefetch=False)
    np.testing.assert_array_equal(piped.images, sequential.images)

    class FailingSource:
        shape = raw.shape
        dtype = raw.dtype

        def __getitem__(self, key):
            if key.start >= 4000:
                raise OSError("disk went away")
            return raw[key]

    for prefetch in (True, False):
        with pytest.raises(OSError, match="disk went away"):
            electrical_images(FailingSource(), units, sos=SOS, chunk_samples=700, prefetch=prefetch)


def test_a_kernel_build_with_other_sums_layout_is_refused(monkeypatch):
    from h5stream.native import compiled

    kernel = compiled("_eimage")
    monkeypatch.setattr(kernel, "sums_layout", lambda: "units, groups, window, lanes")
    raw = _raw(np.random.default_rng(3), n=500)
    with pytest.raises(RuntimeError, match=r"sums out as \(units, groups.*rebuild"):
        electrical_images(raw, [np.array([100, 200])], sos=SOS)


def test_the_kernel_takes_the_free_cores_unless_told(monkeypatch):
    """Without ``n_threads`` the kernel runs on the cores free now (one when another process keeps the
    other busy), never more than OpenMP offers; ``n_threads`` and ``H5STREAM_THREADS`` decide over it."""
    from h5stream import cores
    from h5stream._ext import _runtime
    from h5stream.kernels import eimage as module

    available = _runtime.openmp_max_threads()
    monkeypatch.delenv(cores.ENV_VAR, raising=False)
    monkeypatch.setattr(cores, "allowed_cores", lambda: 2)
    monkeypatch.setattr(cores, "others_running", lambda *a, **k: 1.0)  # one core busy elsewhere
    monkeypatch.setattr(cores, "_cache", None)
    assert module._kernel_threads(None) == 1
    assert module._kernel_threads(2) == min(2, available)
    monkeypatch.setenv(cores.ENV_VAR, "2")
    assert module._kernel_threads(None) == min(2, available)
    monkeypatch.setattr(cores, "others_running", lambda *a, **k: 0.0)
    monkeypatch.delenv(cores.ENV_VAR)
    monkeypatch.setattr(cores, "_cache", None)
    assert module._kernel_threads(None) == min(2, available)


@pytest.mark.parametrize("zeros", [True, False])
def test_the_kernel_s_arrays_start_on_cache_lines(zeros):
    from h5stream.native import compiled

    for shape in [(3, 5, 50, 16), (2, 16 * 49 + 8), (1,)]:
        arr = compiled("_eimage").on_cache_lines(shape, zeros=zeros)
        assert arr.shape == shape and arr.dtype == np.float32 and arr.flags.c_contiguous
        assert arr.ctypes.data % 64 == 0
        if zeros:
            assert not arr.any()


def test_windows_of_a_chunk_are_grouped_by_sub_block_then_unit_in_time_order():
    from h5stream.kernels.eimage import _WindowsByEnd

    rng = np.random.default_rng(8)
    ends = [np.sort(rng.integers(50, 20_000, rng.integers(0, 300))) for _ in range(9)]
    ends[2] = np.array([], dtype=np.int64)
    ends[3] = np.array([700, 700, 700, 1500])  # repeated times count each time
    index = _WindowsByEnd(ends)
    window, sub = 50, 512
    for pos, n in [(0, 4096), (4096, 4096), (699, 1), (700, 3000), (19_000, 1000), (0, 20_000)]:
        rows, offsets = index.chunk(pos, n, window, sub)
        # by hand: sub-block by sub-block, unit by unit, each unit's windows in time order
        want_rows, want_counts = [], []
        for sb in range(-(-n // sub)):
            lo, hi = pos + sb * sub, pos + min((sb + 1) * sub, n)
            for e in ends:
                mine = [int(t) - pos - window for t in e if lo < t <= hi]
                want_rows += mine
                want_counts.append(len(mine))
        assert rows.tolist() == want_rows
        assert np.diff(offsets).tolist() == want_counts and offsets[0] == 0


def test_the_kernel_refuses_a_scratch_not_made_for_it():
    from h5stream.native import compiled

    k = compiled("_eimage")
    raw = np.full((100, TILE), 2048, dtype=np.uint16)
    coef = np.ascontiguousarray(SOS[:, [0, 1, 2, 4, 5]], dtype=np.float32)

    def run(scratch):
        acc = k.on_cache_lines((TILE // k.lane_width(), 1, 50, k.lane_width()))
        return k.filter_accumulate(raw, np.zeros(TILE, np.float32), np.zeros(TILE, np.float32), 1.0, coef,
                                   np.zeros((coef.shape[0], 2, TILE), np.float32),
                                   np.zeros((1, 49 * TILE), np.float32), 0, np.zeros(0, np.int64),
                                   np.zeros(2 + 1, np.int64), 1, 64, 50, acc, 1, scratch)

    good = k.thread_scratch(1, 64, 50)
    assert good.shape == k.thread_scratch_shape(1, 64, 50) and good.ctypes.data % 64 == 0
    assert len(run(good)) == 2 and len(run(None)) == 2
    for bad in (k.thread_scratch(1, 32, 50),  # made for smaller sub-blocks
                k.on_cache_lines((1, good.shape[1] + 4))[:, 4:],  # 16 bytes into a cache line
                k.on_cache_lines((1, 2 * good.shape[1]))[:, ::2],  # not contiguous
                np.zeros(good.shape, np.float64)):
        with pytest.raises(ValueError, match="scratch"):
            run(bad)


def test_a_chunk_in_pieces_at_any_address_equals_the_chunk_in_one_array():
    """The kernel takes a chunk's rows in several arrays (runs of a file, read where they lie): the sums,
    filter state and carried rows equal those of the same rows in one array, bit for bit."""
    from h5stream.native import compiled

    k = compiled("_eimage")
    rng = np.random.default_rng(11)
    n, channels, window, sub = 1500, TILE + 9, 50, 256  # two tiles, the second partial
    raw = (rng.normal(0, 40, (n, channels)) + 2048).astype(np.uint16)
    coef = np.ascontiguousarray(SOS[:, [0, 1, 2, 4, 5]], dtype=np.float32)
    ends = [np.sort(rng.integers(window, n, 60)) for _ in range(3)]
    from h5stream.kernels.eimage import _WindowsByEnd

    rows, offsets = _WindowsByEnd(ends).chunk(0, n, window, sub)
    n_tiles, lanes = 2, k.lane_width()

    def run(first, more):
        acc = k.on_cache_lines((n_tiles * TILE // lanes, 3, window, lanes))
        state = np.zeros((coef.shape[0], 2, n_tiles * TILE), np.float32)
        tail = np.zeros((n_tiles, (window - 1) * TILE), np.float32)
        base = np.full(n_tiles * TILE, 2048, np.float32)
        k.filter_accumulate(first, base, np.zeros(n_tiles * TILE, np.float32), 1.0, coef, state, tail, 0, rows,
                            offsets, 3, sub, window, acc, 2, None, more)
        return acc, state, tail

    def at_odd_address(rows_):  # a copy starting 2 bytes past a cache line
        blob = np.empty(rows_.nbytes + 66, np.uint8)
        skip = (-blob.ctypes.data) % 64 + 2
        out = blob[skip : skip + rows_.nbytes].view(np.uint16).reshape(rows_.shape)
        out[...] = rows_
        return out

    whole = run(raw, ())
    assert whole[0].any()
    for cuts in ([1], [700], [256, 257], [100, 900, 1499], [0, 1500]):
        edges = [0, *cuts, n]
        pieces = [at_odd_address(raw[a:b]) for a, b in zip(edges, edges[1:])]
        got = run(pieces[0], pieces[1:])
        for g, w in zip(got, whole):
            np.testing.assert_array_equal(g, w)
    with pytest.raises(ValueError, match=r"more\[0\]"):
        run(raw[:10], [raw[10:].astype(np.int16)])


@pytest.mark.parametrize("portable", ["0", "1"])
def test_the_sums_start_zeroed_on_cache_lines_on_either_page_size(monkeypatch, portable):
    from h5stream import capabilities
    from h5stream.kernels.eimage import _sums_array
    from h5stream.native import compiled

    monkeypatch.setenv(capabilities.ENV_VAR, portable)
    sums = _sums_array(compiled("_eimage"), (4, 3, 50, 16))
    assert sums.shape == (4, 3, 50, 16) and sums.dtype == np.float32 and sums.flags.c_contiguous
    assert sums.ctypes.data % 64 == 0 and not sums.any()
    rng = np.random.default_rng(5)
    raw = _raw(rng)
    units = [np.sort(rng.integers(0, raw.shape[0], 40)) for _ in range(3)]
    _check(electrical_images(raw, units, sos=SOS, adc_offset=2048.0), eimage_reference(raw, units, SOS,
                                                                                         adc_offset=2048.0))

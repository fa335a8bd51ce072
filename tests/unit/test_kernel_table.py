"""The kernel table (h5stream.kernels.table) is complete and true: every ext/*.pyx has a row, every row's
wrapper, twin and benchmark exist, and every twin is compared with its kernel here on seeded data."""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import h5py
import numpy as np
import pytest

from h5stream.kernels.table import KERNELS, kernel
from tests import reference

ROOT = Path(__file__).resolve().parents[2]


def _resolve(dotted: str):
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            value = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attribute in parts[cut:]:
            value = getattr(value, attribute)
        return value
    raise ImportError(dotted)


def test_every_compiled_module_has_one_row():
    sources = sorted(p.stem for p in (ROOT / "ext").glob("*.pyx"))
    rows = [row.module for row in KERNELS]
    assert len(rows) == len(set(rows)), f"modules with two rows: {rows}"
    assert sorted(rows) == sources, (f"ext/*.pyx without a row: {sorted(set(sources) - set(rows))}; "
                                     f"rows without a source: {sorted(set(rows) - set(sources))}")
    with pytest.raises(KeyError, match="add its row"):
        kernel("_nothing")


@pytest.mark.parametrize("row", KERNELS, ids=lambda r: r.module)
def test_each_row_names_what_exists(row):
    assert callable(_resolve(row.wrapper)), row.wrapper
    assert importlib.import_module(f"h5stream._ext.{row.module}") is not None
    if row.twin is None:
        assert row.note, f"{row.module}: a kernel without a twin says why in its note"
    else:
        assert callable(getattr(reference, row.twin)), f"tests/reference.py lacks {row.twin}"
        assert row.module in COMPARED, f"{row.module}: its twin {row.twin} is compared with it nowhere here"
    if row.benchmark is not None:
        assert (ROOT / "benchmarks" / "suite" / f"{row.benchmark}.py").is_file(), row.benchmark
    assert row.fallback


# ---------------------------------------------------------------------------- each twin against its kernel


def _bins(rng):
    offsets = np.concatenate([[0], np.cumsum(rng.integers(0, 40, 7))]).astype(np.int64)
    values = rng.integers(-5, 105, offsets[-1]).astype(np.int64)
    values[offsets[0]:offsets[1]] = np.sort(values[offsets[0]:offsets[1]])
    edges = np.sort(rng.integers(0, 100, (7, 6)), axis=1).astype(np.int64)
    edges[2] = [0, 20, 20, 40, 60, 100]  # an empty bin, values on both ends
    got = _resolve(kernel("_bins").wrapper)(values, offsets, edges)
    np.testing.assert_array_equal(got, reference.ragged_histograms_naive(values, offsets, edges))
    assert got.sum() > 0


def _compress(rng):
    deflate = _resolve(kernel("_compress").wrapper)("zlib")
    for dtype, shuffle in (("<f4", True), ("<f8", False), ("<i2", True)):
        chunks = (rng.normal(size=(3, 96)) * 100).astype(dtype)
        itemsize = np.dtype(dtype).itemsize
        src = np.ascontiguousarray(chunks.view(np.uint8).reshape(3, -1))
        cap = int(deflate.deflate_bound(src.shape[1]))
        dst = np.zeros((3, cap), dtype=np.uint8)
        sizes = np.zeros(3, dtype=np.int64)
        assert deflate._deflate_chunks(src, dst, sizes, 3, 4, itemsize if shuffle else 0, 2) == 0
        for i in range(3):
            expected = reference.deflate_chunk_reference(chunks[i], 4, shuffle)
            assert bytes(dst[i, :sizes[i]]) == expected
    from h5stream.checksums import fletcher32

    for n in (0, 1, 2, 7, 1000, 4097):
        data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        assert fletcher32(data) == reference.fletcher32_naive(data), n
    assert fletcher32(b"\xff" * 4096) == reference.fletcher32_naive(b"\xff" * 4096)


def _csr(rng):
    dense = rng.integers(1, 50, (37, 23)).astype(np.float64)
    dense[rng.random(dense.shape) < 0.6] = 0
    dense[rng.random(dense.shape) < 0.1] = np.nan
    for missing in ("zero", "nan", "zero_or_nan"):
        got = _resolve(kernel("_csr").wrapper)(dense, missing=missing)
        data, indices, indptr = reference.csr_reference(dense, missing)
        np.testing.assert_array_equal(got.indptr, indptr)
        np.testing.assert_array_equal(got.indices, indices)
        np.testing.assert_array_equal(got.data, data)


def _eimage(rng):
    from h5stream.kernels.eimage import butter_highpass

    sos = butter_highpass(100.0, 20_000.0, 2)
    raw = (rng.normal(0, 40, (6000, 4, 5)) + 2048).astype(np.uint16)
    units = [np.sort(rng.integers(0, raw.shape[0], rng.integers(1, 80))) for _ in range(4)]
    got = _resolve(kernel("_eimage").wrapper)(raw, units, sos=sos, adc_offset=2048.0)
    images, used, excluded, over_cap = reference.eimage_reference(raw, units, sos, adc_offset=2048.0)
    np.testing.assert_allclose(got.images, images, rtol=0, atol=2e-4 * max(np.abs(images).max(), 1.0))
    np.testing.assert_array_equal(got.n_spikes_used, used)
    np.testing.assert_array_equal(got.n_spikes_excluded, excluded)


def _h5attrs(rng):
    record = _resolve(kernel("_h5attrs").wrapper)
    assert record is importlib.import_module("h5stream._ext._h5attrs").record_sets  # the compiled one
    for keep_names in (False, True):
        pending = []
        for k in range(40):
            names = [f"a{int(x)}" for x in rng.permutation(12)[:rng.integers(0, 6)]]
            pending += [f"/g{k % 17}", len(names)]
            for name in names:
                pending += [name, f"{int(rng.integers(0, 2**32)):08x}"]
        start = {"/g3": "deadbeef", "/x": "00000000"}
        state = [dict(start), {}, {"/g1": "text", "/x": "all"}, {} if keep_names else None, {"/g2": (0, {})}]
        twin_state = [dict(start), {}, {"/g1": "text", "/x": "all"}, {} if keep_names else None, {"/g2": (0, {})}]
        got_pending, twin_pending = list(pending), list(pending)
        record(got_pending, state[0], state[1], 5, state[2], state[3], state[4])
        reference.record_sets_naive(twin_pending, twin_state[0], twin_state[1], 5, twin_state[2], twin_state[3],
                                    twin_state[4])
        assert got_pending == twin_pending == []
        assert state == twin_state


def _ohdr(rng, tmp_path):
    from h5stream.files._headers import check_attribute_references

    path = tmp_path / "headers.h5"
    with h5py.File(path, "w") as f:  # libhdf5's default: version-1 object headers
        g = f.create_group("g")
        for i in range(int(rng.integers(20, 60))):
            g.attrs[f"text{i}"] = "v" * int(rng.integers(0, 30))
        g.attrs["count"] = np.int64(3)
        g.attrs["list"] = np.array(["a", "bb"], dtype=h5py.string_dtype())
    with h5py.File(path, "r") as f:
        addresses = [h5py.h5o.get_info(obj.id).addr for obj in (f, f["g"])]
    data = path.read_bytes()
    fd = os.open(path, os.O_RDONLY)
    try:
        for address in addresses:
            got = check_attribute_references(fd, len(data), address, (8, 8), path, "/g")
            assert got == reference.ohdr_scan_reference(data, address, 8, 8)
    finally:
        os.close(fd)


def _peaks(rng):
    summarise = _resolve(kernel("_peaks").wrapper)
    n, n_cut, factor = 3000, 8, 20_000.0 / 1e6
    table = np.zeros(n, dtype=[("Timestamp", "<i8"), ("PeakAmplitude", "<f4"), ("IncludePeak", "u1")]
                     + [(f"Sample {i}", "<f4") for i in range(n_cut)])
    table["Timestamp"] = np.sort(rng.integers(0, 10**8, n))
    table["IncludePeak"] = rng.random(n) < 0.8
    table["PeakAmplitude"] = rng.normal(size=n)
    cut = rng.normal(size=(n, n_cut)).astype(np.float32)
    for i in range(n_cut):
        table[f"Sample {i}"] = cut[:, i]
    cut_view = np.lib.stride_tricks.as_strided(table["Sample 0"], shape=(n, n_cut), strides=(table.strides[0], 4))
    for planted in (None, "flag", "order"):
        t = table.copy()
        if planted == "flag":
            t["IncludePeak"][1234] = 3
        elif planted == "order":
            t["Timestamp"][2000] = t["Timestamp"][1999] - 1
        view = np.lib.stride_tricks.as_strided(t["Sample 0"], shape=(n, n_cut), strides=(t.strides[0], 4))
        samples, amps = np.empty(n, np.uint64), np.empty(n, np.float32)
        sums = np.zeros(n_cut, np.float64)
        template, flagged = np.median(cut, axis=0).astype(np.float32), np.empty(n, np.int64)
        k, bad_flag, bad_time, unsorted, n_flagged = summarise(t["Timestamp"], t["IncludePeak"], t["PeakAmplitude"],
                                                               view, factor, samples, amps, sums, template, 3.0,
                                                               flagged)
        twin = reference.summarise_peaks_naive(t["Timestamp"], t["IncludePeak"], t["PeakAmplitude"], cut_view,
                                               factor, template, 3.0)
        assert (bad_flag, bad_time, unsorted) == twin[4:7]
        np.testing.assert_array_equal(flagged[:n_flagged], twin[7])
        if planted is None:
            assert k == twin[3] > 0
            np.testing.assert_array_equal(samples[:k], twin[0])
            np.testing.assert_array_equal(amps[:k], twin[1])
            np.testing.assert_allclose(sums, twin[2], rtol=1e-12)


def _section(rng):
    from h5stream.kernels.sectioning import rows_to_csr

    rows = [np.sort(rng.integers(0, 10_000, rng.integers(0, 300))).astype(np.uint64) for _ in range(9)]
    starts = np.sort(rng.integers(0, 9_000, 12))
    intervals = np.stack([starts, starts + rng.integers(0, 1_000, 12)], axis=1).astype(np.int64)
    intervals[3] = [500, 500]  # empty
    values, offsets = rows_to_csr(rows)
    cut = _resolve(kernel("_section").wrapper)(values, offsets, intervals, n_threads=2)
    twin = reference.section_trials_naive(rows, intervals)
    for r in range(len(rows)):
        for t in range(len(intervals)):
            np.testing.assert_array_equal(cut.interval(r, t), twin[r][t])


def _sta(rng):
    stimulus = (rng.random((400, 3, 4)) * 3).astype(np.float64)
    units = [np.sort(rng.integers(0, 400, rng.integers(0, 200))) for _ in range(6)]
    got = _resolve(kernel("_sta").wrapper)(stimulus, units, n_lags=10, method="sparse")
    sta, used, excluded = reference.sta_reference(stimulus, units, n_lags=10)
    np.testing.assert_allclose(got.sta, sta, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(got.n_spikes_used, used)
    np.testing.assert_array_equal(got.n_spikes_excluded, excluded)


def _sync(rng):
    sync_peaks = _resolve(kernel("_sync").wrapper)
    t = np.arange(5000)
    for dtype in (np.float32, np.float64):
        sync = np.rint((t % 333 < 83) * 30000.0 + rng.normal(0, 20, t.size)).astype(dtype)
        sync[1000:1010] = sync[999]  # a flat run
        got = sync_peaks(sync, 29_000.0, 0.1)
        np.testing.assert_array_equal(got, reference.sync_peaks_naive(sync, 29_000.0, 0.1))
        assert got.size > 5


def _windows(rng):
    segment_windows = _resolve(kernel("_windows").wrapper)
    n_rows = 60
    counts = rng.integers(0, 30, n_rows)
    counts[[3, 17]] = 0  # empty rows
    rows = [np.sort(rng.integers(0, 5_000, n)) for n in counts]
    rows[8] = rows[8][::-1].copy()  # a row out of order (compared, not walked)
    rows[9] = np.full(5, 2_000)  # equal values, on an edge
    row_offsets = np.concatenate([[0], np.cumsum([r.size for r in rows])]).astype(np.int64)
    starts = rng.integers(0, 100, n_rows).astype(np.float64)
    segment_rows = np.array([0, 10, 10, 35, 60], dtype=np.int64)  # one segment without rows
    edges = np.sort(rng.uniform(0, 250_000, (4, 6)), axis=1)
    edges[0, 2] = (2_000 - starts[9]) * 50.0  # an edge on the equal values
    count_windows = np.stack([edges[:, :-1], edges[:, 1:]], axis=2).copy()
    count_windows[1, 0] = count_windows[1, 0, ::-1]  # hi < lo: nothing
    count_windows[2, 1] = [np.nan, 1e5]  # a window of no number: nothing
    event_windows = np.stack([edges[:, [1, 3]], edges[:, [1, 3]] + 40_000], axis=2).copy()
    for dtype, threads in ((np.uint64, 1), (np.int64, 2), (np.float64, 1), (np.int32, 3)):
        values = np.concatenate(rows).astype(dtype)
        got = segment_windows(values, row_offsets, starts, 50.0, segment_rows, count_windows, event_windows,
                              n_threads=threads)
        want_counts, want_means = reference.segment_windows_naive(values, row_offsets, starts, 50.0, segment_rows,
                                                                  count_windows, event_windows)
        np.testing.assert_array_equal(got.counts, want_counts)
        np.testing.assert_array_equal(got.mean_first, want_means)  # bit for bit: numpy's own sum
        assert got.counts.sum() > 0 and np.isfinite(got.mean_first).sum() >= 4
        # the same rows read where they lie in a larger buffer, other values between them (row_ends)
        gaps = [rng.integers(0, 5_000, int(rng.integers(0, 9))).astype(dtype) for _ in rows]
        spread = np.concatenate([p for gap, row in zip(gaps, rows) for p in (gap, row.astype(dtype))])
        firsts = np.cumsum([g.size + r.size for g, r in zip(gaps, rows)]) - [r.size for r in rows]
        spread_got = segment_windows(spread, firsts, starts, 50.0, segment_rows, count_windows, event_windows,
                                     n_threads=threads, row_ends=firsts + [r.size for r in rows])
        np.testing.assert_array_equal(spread_got.counts, want_counts)
        np.testing.assert_array_equal(spread_got.mean_first, want_means)


#: each compiled module with a twin -> its comparison on seeded data
COMPARED = {"_bins": _bins, "_compress": _compress, "_csr": _csr, "_eimage": _eimage, "_h5attrs": _h5attrs,
            "_ohdr": _ohdr, "_peaks": _peaks, "_section": _section, "_sta": _sta, "_sync": _sync,
            "_windows": _windows}


@pytest.mark.parametrize("module", sorted(COMPARED))
def test_twin_equals_kernel_on_seeded_data(module, tmp_path):
    rng = np.random.default_rng(sum(map(ord, module)))
    compare = COMPARED[module]
    if module == "_ohdr":
        compare(rng, tmp_path)
    else:
        compare(rng)

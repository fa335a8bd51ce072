"""Direct (O_DIRECT) row reads of datasets stored in plain runs, against plain numpy and h5py reads of the same bytes."""

from __future__ import annotations

import mmap
import os

import h5py
import numpy as np
import pytest

from h5stream.kernels.direct_rows import DirectRows, open_direct_rows
from h5stream.kernels.eimage import butter_highpass, electrical_images


def _reads_like(dataset, expected, ranges, buffer_rows, depth=2) -> DirectRows:
    """Open ``dataset`` for direct reads (it must qualify) and check rows ``[a, b)`` of each range
    against ``expected``; returns the closed reader."""
    reader = open_direct_rows(dataset, piece_bytes=8192, depth=depth)
    assert reader is not None
    with reader:
        buf = reader.buffer(buffer_rows)
        for a, b in ranges:
            got = reader.read(a, b, buf)
            np.testing.assert_array_equal(got, expected[a:b])
            assert got.flags.c_contiguous
    return reader


@pytest.mark.parametrize("offset", [0, 6, 4094, 4096, 10_002])
def test_rows_equal_numpy_at_any_offset_and_piece_boundary(direct_ok, offset):
    rng = np.random.default_rng(offset)
    rows = rng.integers(0, 2**16, (997, 3, 7), dtype=np.uint16)
    path = direct_ok / "plain.bin"
    with open(path, "wb") as fh:
        fh.write(rng.integers(0, 256, offset, dtype=np.uint8).tobytes())
        fh.write(rows.tobytes())
        fh.write(b"tail")
    with DirectRows(str(path), offset, rows.shape[0], rows.shape[1:], rows.dtype, piece_bytes=4096, depth=3) as r:
        buf = r.buffer(400)
        for a, b in [(0, 1), (0, 400), (5, 6), (300, 700), (597, 997), (996, 997), (123, 124)]:
            got = r.read(a, b, buf)
            np.testing.assert_array_equal(got, rows[a:b])
            assert got.flags.c_contiguous and got.flags.aligned
        with pytest.raises(ValueError, match="buffer"):
            r.read(0, 997, buf)


def test_reading_past_the_end_of_the_file_raises(direct_ok):
    path = direct_ok / "short.bin"
    path.write_bytes(np.arange(1000, dtype=np.uint16).tobytes())
    with DirectRows(str(path), 0, 2000, (1,), np.uint16, piece_bytes=4096) as r:
        np.testing.assert_array_equal(r.read(10, 1000, r.buffer(2000))[:, 0], np.arange(10, 1000))
        with pytest.raises(OSError, match="short.bin"):
            r.read(500, 2000, r.buffer(2000))


def test_contiguous_dataset_with_userblock_reads_like_h5py(direct_ok):
    rng = np.random.default_rng(1)
    data = rng.integers(0, 2**16, (3000, 5, 6), dtype=np.uint16)
    path = direct_ok / "ub.h5"
    with h5py.File(path, "w", userblock_size=4096) as f:
        f.create_dataset("pad", data=np.arange(7, dtype=np.int8))
        f.create_dataset("a/raw", data=data)
    with h5py.File(path, "r") as f:
        _reads_like(f["a/raw"], f["a/raw"], [(0, 1000), (1000, 2000), (2999, 3000), (17, 1017)], 1000)


def test_chunks_of_whole_rows_stored_back_to_back_read_like_h5py(direct_ok):
    # written with plain h5py the way a recorder streams frames: one block of rows after another
    rng = np.random.default_rng(2)
    data = rng.integers(0, 2**16, (2050, 5, 7), dtype=np.uint16)
    path = direct_ok / "stream.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("meta", data=np.arange(3))
        ds = f.create_dataset("raw", shape=(0, 5, 7), maxshape=(None, 5, 7), chunks=(64, 5, 7), dtype=np.uint16)
        for a in range(0, data.shape[0], 100):  # blocks that do not match the chunks
            b = min(data.shape[0], a + 100)
            ds.resize(b, axis=0)
            ds[a:b] = data[a:b]
    with h5py.File(path, "r") as f:
        _reads_like(f["raw"], data, [(0, 64), (0, 700), (63, 65), (1350, 2050), (2049, 2050), (611, 1000)], 700)


def test_chunks_at_odd_file_offsets_read_like_h5py(direct_ok):
    # plain h5py: a 3-byte dataset allocated between the raw stream's first chunk and the
    # others puts those at odd byte offsets, as the metadata written during a recording does
    rng = np.random.default_rng(3)
    data = rng.integers(0, 2**16, (2000, 9, 11), dtype=np.uint16)
    path = direct_ok / "odd.h5"
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("raw", shape=data.shape, chunks=(400, 9, 11), dtype=np.uint16)
        ds[:400] = data[:400]
        f.flush()
        f.create_dataset("odd", data=np.arange(3, dtype=np.uint8))
        f.flush()
        ds[400:] = data[400:]
    with h5py.File(path, "r") as f:
        offsets = []
        f["raw"].id.chunk_iter(lambda info: offsets.append(info.byte_offset))
        assert any(o % 2 for o in offsets)  # the premise: some rows lie at odd offsets
        _reads_like(f["raw"], data, [(0, 400), (0, 900), (399, 401), (400, 1200), (1999, 2000), (1100, 2000),
                                     (5, 6)], 900)


def test_rows_spanning_runs_are_moved_next_to_each_other(direct_ok):
    # three runs at offsets of every alignment, in a file of noise
    rng = np.random.default_rng(5)
    rows = rng.integers(0, 2**16, (900, 3, 7), dtype=np.uint16)
    row_bytes = rows[0].nbytes
    path = direct_ok / "runs.bin"
    blob = bytearray(rng.integers(0, 256, 60_000, dtype=np.uint8).tobytes())
    runs = [(0, 4094), (250, 15_001), (260, 30_000)]
    ends = [250, 260, 900]
    for (r0, off), r1 in zip(runs, ends):
        blob[off : off + (r1 - r0) * row_bytes] = rows[r0:r1].tobytes()
    path.write_bytes(bytes(blob))
    with DirectRows(str(path), 0, rows.shape[0], rows.shape[1:], rows.dtype, runs=runs, piece_bytes=4096,
                    depth=2) as r:
        buf = r.buffer(700)
        for a, b in [(0, 700), (249, 251), (250, 260), (255, 265), (200, 900), (259, 260), (899, 900), (0, 1)]:
            got = r.read(a, b, buf)
            np.testing.assert_array_equal(got, rows[a:b])
            assert got.flags.c_contiguous
            # read_runs: the same rows, one array per run spanned, left where they were read
            pieces = r.read_runs(a, b, buf)
            spanned = sum(1 for (r0, _), r1 in zip(runs, ends) if r0 < b and a < r1)
            assert len(pieces) == spanned and all(np.shares_memory(p, buf) for p in pieces)
            np.testing.assert_array_equal(np.concatenate(pieces), rows[a:b])
    with pytest.raises(ValueError, match="runs"):
        DirectRows(str(path), 0, 900, (3, 7), np.uint16, runs=[(10, 0)])


def _write_two_streams(path, data, rows_per_write: int = 150):
    """``data`` as dataset "a" and reversed as "b", written in turn with plain h5py in chunks of 50 rows:
    each dataset's chunks lie in runs of the file with the other's between them."""
    with h5py.File(path, "w") as f:
        a = f.create_dataset("a", shape=data.shape, chunks=(50, *data.shape[1:]), dtype=data.dtype)
        b = f.create_dataset("b", shape=data.shape, chunks=(50, *data.shape[1:]), dtype=data.dtype)
        for i in range(0, data.shape[0], rows_per_write):
            a[i:i + rows_per_write] = data[i:i + rows_per_write]
            f.flush()  # the chunks go to the file now, not when the chunk cache is evicted at close
            b[i:i + rows_per_write] = data[::-1][i:i + rows_per_write]
            f.flush()
    return path


def test_chunks_of_two_interleaved_streams_read_like_h5py(direct_ok):
    # two streams written in turn with plain h5py: each one's chunks are runs with gaps between
    rng = np.random.default_rng(6)
    data = rng.integers(0, 2**16, (1000, 40, 41), dtype=np.uint16)
    path = _write_two_streams(direct_ok / "two.h5", data)
    with h5py.File(path, "r") as f:
        for name, expected in (("a", data), ("b", data[::-1])):
            reader = _reads_like(f[name], expected, [(0, 400), (140, 160), (149, 451), (600, 1000), (999, 1000)],
                                 400, depth=3)
            assert len(reader._run_offsets) > 1


def test_datasets_that_are_not_one_plain_run_of_bytes_are_refused(direct_ok):
    path = direct_ok / "kinds.h5"
    data = np.arange(4000, dtype=np.uint16).reshape(1000, 4)
    with h5py.File(path, "w") as f:
        f.create_dataset("contiguous", data=data)
        f.create_dataset("chunked_columns", data=data, chunks=(100, 2))  # chunks split the rows
        backwards = f.create_dataset("backwards", shape=(1000, 4), chunks=(100, 4), dtype=np.uint16)
        for i in range(900, -1, -100):  # back to back, but the last rows first
            backwards[i:i + 100] = data[i:i + 100]
        # two streams of small chunks written in turn: runs too short to pay
        a = f.create_dataset("interleaved", shape=(1000, 4), chunks=(100, 4), dtype=np.uint16)
        b = f.create_dataset("other", shape=(1000, 4), chunks=(100, 4), dtype=np.uint16)
        for i in range(0, 1000, 100):
            a[i:i + 100] = data[i:i + 100]
            f.flush()
            b[i:i + 100] = data[i:i + 100]
            f.flush()
        f.create_dataset("chunked_partial", shape=(1000, 4), chunks=(100, 4), dtype=np.uint16)[:300] = data[:300]
        f.create_dataset("compressed", data=data, compression="gzip")
        f.create_dataset("big_endian", data=data.astype(">u2"))
        f.create_dataset("unallocated", shape=(1000, 4), dtype=np.uint16)
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_layout(h5py.h5d.COMPACT)
        space = h5py.h5s.create_simple((10, 4))
        h5py.h5d.create(f.id, b"compact", h5py.h5t.NATIVE_UINT16, space, dcpl=dcpl).write(
            h5py.h5s.ALL, h5py.h5s.ALL, np.ascontiguousarray(data[:10]))
    with h5py.File(path, "r") as f:
        with open_direct_rows(f["contiguous"]) as reader:
            np.testing.assert_array_equal(reader.read(0, 1000, reader.buffer(1000)), data)
        for name in ("chunked_columns", "backwards", "interleaved", "chunked_partial", "compressed",
                     "big_endian", "unallocated", "compact"):
            assert open_direct_rows(f[name]) is None, name
    with h5py.File(path, "r+") as f:  # a writable handle may hold data not yet on disk
        assert open_direct_rows(f["contiguous"]) is None
    with h5py.File(path, "r", driver="core") as f:
        assert open_direct_rows(f["contiguous"]) is None
    with h5py.File(path, "r") as f:  # the name now leads to another file
        os.replace(path, direct_ok / "moved.h5")
        path.write_bytes((direct_ok / "moved.h5").read_bytes())
        assert open_direct_rows(f["contiguous"]) is None
    assert open_direct_rows(data) is None


def test_electrical_images_from_a_contiguous_file_equal_the_in_memory_result(direct_ok, monkeypatch):
    import h5stream.kernels.raw_chunks as raw_chunks

    opened = []

    def spy(raw, **kwargs):
        reader = open_direct_rows(raw, **kwargs)
        opened.append(reader)
        return reader

    monkeypatch.setattr(raw_chunks, "open_direct_rows", spy)
    rng = np.random.default_rng(3)
    raw = (rng.normal(0, 40, (7000, 6, 5)) + 32768).astype(np.uint16)
    units = [np.sort(rng.integers(0, raw.shape[0], 150)) for _ in range(4)]
    sos = butter_highpass(100.0, 20_000.0, 2)
    path = direct_ok / "raw.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("raw", data=raw)
    expected = electrical_images(raw, units, sos=sos, chunk_samples=900, adc_offset=32768.0)
    with h5py.File(path, "r") as f:
        for prefetch in (True, False):
            got = electrical_images(f["raw"], units, sos=sos, chunk_samples=900, adc_offset=32768.0,
                                    prefetch=prefetch)
            np.testing.assert_array_equal(got.images, expected.images)
            np.testing.assert_array_equal(got.n_spikes_used, expected.n_spikes_used)
    assert len(opened) == 2 and all(r is not None and r._fd is None for r in opened)  # direct path, closed
    with h5py.File(path, "r") as f:  # direct_io=False reads through h5py
        got = electrical_images(f["raw"], units, sos=sos, chunk_samples=900, adc_offset=32768.0, direct_io=False)
    np.testing.assert_array_equal(got.images, expected.images)
    assert len(opened) == 2


def test_electrical_images_from_chunks_in_runs_with_gaps_equal_the_in_memory_result(direct_ok):
    # two streams written in turn with plain h5py: a chunk of the pass spans several runs of the file,
    # which the kernel takes where they were read
    rng = np.random.default_rng(8)
    raw = (rng.normal(0, 40, (3000, 40, 41)) + 32768).astype(np.uint16)
    units = [np.sort(rng.integers(0, raw.shape[0], 120)) for _ in range(3)]
    sos = butter_highpass(100.0, 20_000.0, 2)
    path = _write_two_streams(direct_ok / "streams.h5", raw)
    expected = electrical_images(raw, units, sos=sos, chunk_samples=900, adc_offset=32768.0)
    with h5py.File(path, "r") as f:
        reader = open_direct_rows(f["a"])
        assert reader is not None and len(reader._run_offsets) > 6  # the premise: a chunk spans runs
        reader.close()
        got = electrical_images(f["a"], units, sos=sos, chunk_samples=900, adc_offset=32768.0)
    np.testing.assert_array_equal(got.images, expected.images)
    np.testing.assert_array_equal(got.n_spikes_used, expected.n_spikes_used)


def test_a_fresh_buffer_is_written_before_each_direct_read_lands_in_it(direct_ok, monkeypatch):
    """``fresh``: every page a direct read lands in is present when the read starts (a direct read into
    absent pages faults them in while holding the process's memory map lock); the rows are the same."""
    from h5stream.native import libc
    from h5stream.pagecache import PAGE

    rows = np.random.default_rng(11).normal(size=(2048, 512))  # 8 MiB
    path = direct_ok / "rows.bin"
    rows.tofile(path)
    present = []
    original = DirectRows._read_span

    def checking(self, fd, view, at, p0, p1, needed_end):
        if fd == self._fd:  # a direct read
            first = np.frombuffer(view, dtype=np.uint8).ctypes.data + at
            pages = bytearray(-(-(p1 - p0) // PAGE))
            if not libc.resident_pages(first, p1 - p0, pages):
                pytest.skip("no mincore here")
            present.append(all(b & 1 for b in pages))
        return original(self, fd, view, at, p0, p1, needed_end)

    monkeypatch.setattr(DirectRows, "_read_span", checking)
    for fresh in (False, True):
        with DirectRows(str(path), 0, rows.shape[0], rows.shape[1:], rows.dtype, piece_bytes=1 << 20,
                        depth=4) as reader:
            # memory never written, in pages of its own (a huge page would be present for the next piece)
            memory = mmap.mmap(-1, reader.buffer(rows.shape[0]).size)
            if hasattr(mmap, "MADV_NOHUGEPAGE"):
                memory.madvise(mmap.MADV_NOHUGEPAGE)
            buffer = np.frombuffer(memory, dtype=np.uint8)
            present.clear()
            np.testing.assert_array_equal(reader.read(0, rows.shape[0], buffer, held="direct", fresh=fresh), rows)
            assert len(present) == 8
            assert all(present) if fresh else not any(present)
            del buffer
            memory.close()


def test_a_pass_closed_before_its_end_does_not_wait_for_the_chunk_read_ahead(direct_ok, monkeypatch):
    """A streamed pass left early (Ctrl-C in the work on a chunk) closes its reader while the next chunk is
    being read ahead: the pieces of that chunk not read yet are skipped, so the close waits for the pieces in
    flight only (under load a stop waited here for a whole chunk, over a second).  Without the skip every piece
    of the chunk read ahead is read before the close returns."""
    import threading

    import h5py

    from h5stream.kernels.raw_chunks import RawChunks

    from h5stream import capabilities

    if not capabilities.direct_io():
        pytest.skip("direct reads are off here (H5STREAM_PORTABLE=1): a pass reads through the page cache")
    rows = np.random.default_rng(5).integers(0, 2**16, (4096, 256), dtype=np.uint16)  # 2 MiB
    path = direct_ok / "raw.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("raw", data=rows)
    chunk_rows, piece_bytes, depth = 1024, 64 * 1024, 2
    pieces_per_chunk = chunk_rows * rows.shape[1] * rows.itemsize // piece_bytes  # 8
    in_piece, gate = threading.Event(), threading.Event()
    spans: list[int] = []
    original = DirectRows._read_span

    def gated(self, fd, view, at, p0, p1, needed_end):
        second = p0 >= self._run_offsets[0] + chunk_rows * self.row_bytes  # a piece of the chunk read ahead
        if second:
            spans.append(p0)
            in_piece.set()
            assert gate.wait(120), "the close never came"
        return original(self, fd, view, at, p0, p1, needed_end)

    monkeypatch.setattr(DirectRows, "_read_span", gated)
    with h5py.File(path, "r") as f:
        # every chunk read (none viewed where the page cache holds it), so there is a read ahead to end
        chunks = RawChunks(f["raw"], rows.shape[1], 0, 2 * chunk_rows, chunk_rows, map_held=False)
        assert chunks.direct is not None
        chunks.direct.piece_bytes, chunks.direct.depth = piece_bytes, depth
        passing = iter(chunks)
        first, block = next(passing)
        np.testing.assert_array_equal(np.concatenate(block), rows[:chunk_rows])
        assert in_piece.wait(120)  # the second chunk is being read ahead
        shutdown = chunks._reader.shutdown

        def closing(*args, **kwargs):  # the close has begun: the piece in flight may end
            gate.set()
            return shutdown(*args, **kwargs)

        chunks._reader.shutdown = closing
        chunks.close()
    assert 1 <= len(spans) <= depth < pieces_per_chunk, spans

"""Which path the raw rows take: the page cache's answer (mincore) against files made resident or evicted
(posix_fadvise DONTNEED); held pieces copied or read directly as the measured rates say; and the electrical
images the same whichever path each piece took and whatever the thread count."""

from __future__ import annotations

import os

import h5py
import numpy as np
import pytest

from h5stream import capabilities
from h5stream.kernels.direct_rows import MAPPED_SHARE, DirectRows, open_direct_rows
from h5stream.kernels.eimage import PROFILE, butter_highpass, electrical_images
from h5stream.kernels.raw_chunks import HeldPath, RawChunks
from h5stream.pagecache import resident_fraction
from tests.reference import eimage_reference

MiB = 2**20
SOS = butter_highpass(100.0, 20_000.0, 2)


def _evict(path, offset=0, length=0):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fdatasync(fd)
        os.posix_fadvise(fd, offset, length, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def _load(path):
    with open(path, "rb") as fh:
        while fh.read(8 * MiB):
            pass


def _held_without_waiting(path, offset, length) -> bool:
    """A second opinion, by another mechanism: a read that must not wait for the disk (RWF_NOWAIT) gets
    every byte only when the page cache holds them (it may start read-ahead: ask last)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.preadv(fd, [bytearray(length)], offset, os.RWF_NOWAIT) == length
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


@pytest.fixture
def evictable(tmp_path):
    """tmp_path, where the file system takes O_DIRECT reads and gives up clean pages when told."""
    if not (capabilities.direct_io() and capabilities.page_residency() and hasattr(os, "RWF_NOWAIT")):
        pytest.skip("no O_DIRECT, mincore or RWF_NOWAIT here")
    probe = tmp_path / "probe"
    probe.write_bytes(b"\1" * (1 * MiB))
    try:
        os.close(os.open(probe, os.O_RDONLY | os.O_DIRECT))
    except OSError:
        pytest.skip("the file system refuses O_DIRECT")
    _evict(probe)
    if _held_without_waiting(probe, 0, 4096):
        pytest.skip("the file system keeps its pages in memory (tmpfs)")
    return tmp_path


def test_residency_follows_reads_and_evictions(evictable):
    path = evictable / "blob"
    path.write_bytes(np.random.default_rng(0).integers(0, 255, 32 * MiB, dtype=np.uint8).tobytes())
    _evict(path)
    assert resident_fraction(path) == 0.0
    _load(path)
    assert resident_fraction(path) == 1.0
    _evict(path, 8 * MiB, 8 * MiB)  # a hole in the middle
    assert resident_fraction(path, 0, 8 * MiB) == 1.0
    assert resident_fraction(path, 8 * MiB, 8 * MiB) == 0.0
    assert resident_fraction(path, 16 * MiB, 16 * MiB) == 1.0
    assert resident_fraction(path, 4 * MiB, 8 * MiB) == pytest.approx(0.5)
    assert resident_fraction(path) == pytest.approx(0.75)
    assert resident_fraction(path, 40 * MiB, MiB) == 0.0  # past the end: nothing held
    # the other mechanism agrees (asked last: it may read ahead)
    assert _held_without_waiting(path, 16 * MiB, 4 * MiB)
    assert not _held_without_waiting(path, 12 * MiB, 4 * MiB)


def test_nothing_is_asked_on_the_portable_paths(evictable, monkeypatch):
    path = evictable / "blob"
    path.write_bytes(b"\2" * MiB)
    monkeypatch.setenv(capabilities.ENV_VAR, "1")
    assert resident_fraction(path) is None


def _raw_file(path, rng, rows=3000, grid=(65, 65)):
    raw = (rng.normal(0, 40, (rows, *grid)) + 32768).astype(np.uint16)
    with h5py.File(path, "w") as f:  # plain h5py: chunks of whole rows, back to back
        f.create_dataset("raw", data=raw, chunks=(256, *grid))
    return raw


def test_chunks_the_cache_holds_whole_are_viewed_there_and_the_others_read(evictable, monkeypatch):
    rng = np.random.default_rng(7)
    path = evictable / "raw.h5"
    raw = _raw_file(path, rng)
    chunk = 512
    _load(path)
    with h5py.File(path, "r") as f:  # a hole in the cache over rows 1024-1535 (the file's third chunk of rows)
        lo = f["raw"].id.get_chunk_info_by_coord((1024, 0, 0)).byte_offset
    _evict(path, lo, 2 * 256 * raw[0].nbytes)
    # and the chunk over rows 2048-2559 said to lack a few pages (the cache gives up pages in folios larger than
    # that): still viewed there
    share = DirectRows.cached_share
    monkeypatch.setattr(DirectRows, "cached_share", lambda self, offset, length: (
        min(share(self, offset, length), MAPPED_SHARE + 0.01) if self._segments(2048, 2049)[0][2] == offset
        else share(self, offset, length)))
    got, kept = [], []
    with h5py.File(path, "r") as f:
        with RawChunks(f["raw"], raw[0].size, 0, raw.shape[0], chunk) as chunks:
            for pos, block in chunks:
                pieces = block if isinstance(block, list) else [block]
                mapped = not any(piece.flags.writeable for piece in pieces)
                got.append((pos, mapped))
                kept.append((pos, pieces if mapped else [p.copy() for p in pieces]))
            counts = chunks.bytes_read
    # only the chunk over the hole was read; the one lacking a few pages was viewed
    assert [m for _, m in got] == [pos != 1024 for pos, _ in got]
    assert counts["mapped"] == (len(got) - 1) * chunk * raw[0].nbytes - (chunk - raw.shape[0] % chunk) * raw[0].nbytes
    assert counts["cached"] + counts["direct"] >= chunk * raw[0].nbytes and counts["sliced"] == 0
    for pos, pieces in kept:  # the mapped rows stay valid after the pass closed, viewed by nothing else
        np.testing.assert_array_equal(np.concatenate(pieces).reshape(-1, *raw.shape[1:]), raw[pos : pos + chunk])


def test_each_piece_is_read_from_where_its_pages_are(evictable):
    rng = np.random.default_rng(5)
    path = evictable / "raw.h5"
    raw = _raw_file(path, rng)
    n_bytes = raw.nbytes
    for state in ("evicted", "resident", "half"):
        _evict(path)
        if state != "evicted":
            _load(path)
        if state == "half":
            _evict(path, 0, os.path.getsize(path) // 2)
        with h5py.File(path, "r") as f:
            reader = open_direct_rows(f["raw"], piece_bytes=MiB)
            assert reader is not None
            with reader:
                np.testing.assert_array_equal(reader.read(0, raw.shape[0], reader.buffer(raw.shape[0])), raw)
                cached, direct = reader.bytes_cached, reader.bytes_direct
        assert cached + direct >= n_bytes
        if state == "evicted":
            assert cached == 0, state
        elif state == "resident":
            assert direct == 0, state
        else:  # the first half's pieces directly, the second's from the cache (a piece on the edge either way)
            assert abs(direct - n_bytes / 2) <= 2 * MiB and abs(cached - n_bytes / 2) <= 2 * MiB, (cached, direct)


def test_held_pieces_are_copied_first_then_direct_reads_tried_once_the_copies_settled():
    paths = HeldPath()
    assert paths.path == "cached" and paths.next() == "cached"  # the pages are there: copied first
    for _ in range(HeldPath.SETTLE - 1):
        paths.record("cached", 1000, 1.0)  # 1 ms a row
        assert paths.next() == "cached"  # not settled yet
    paths.record("cached", 1000, 1.0)
    assert paths.next() == "direct"  # one chunk read directly, as a trial
    assert paths.next() == "cached"  # the trial's cycle not measured yet: the path kept
    paths.record("direct", 1000, 0.95)  # faster, but by less than MARGIN: a close call stays
    assert paths.path == "cached" and paths.switches == 0
    paths.record("sliced", 10, 1e-6)  # not a path of held pieces
    paths.record("direct", 1000, 0.0)  # not a measure
    assert paths.cost("direct") == pytest.approx(0.95e-3)
    paths.record("direct", 1000, 0.5)  # direct reads twice as fast: switched
    assert paths.path == "direct" and paths.switches == 1
    paths.record("direct", 1000, 5.0)  # one slow cycle (a busy machine) does not leave a winning path:
    assert paths.path == "direct"  # the cost is the least of the last KEEP cycles
    for _ in range(HeldPath.KEEP):
        paths.record("direct", 1000, 2.0)  # direct reads lastingly slower than copies (1 ms): back
    assert paths.path == "cached" and paths.cost("direct") == pytest.approx(2e-3) and paths.switches == 2


def test_one_slow_cycle_of_the_incumbent_does_not_hand_the_pass_to_a_slower_path():
    paths = HeldPath()
    paths.record("cached", 1000, 3.0)  # a cycle slowed by another process
    paths.record("cached", 1000, 1.0)  # the copies' true cost
    assert paths.next() == "direct"
    paths.record("direct", 1000, 1.5)  # the trial, slower than the copies' least cycle
    assert paths.path == "cached" and paths.switches == 0


def test_no_trial_starts_without_enough_chunks_left_to_repay_it():
    paths = HeldPath()
    for _ in range(HeldPath.SETTLE):
        paths.record("cached", 1000, 1.0)
    assert paths.next(left=HeldPath.AFTER_TRIAL - 1) == "cached"  # too late in the pass: no trial
    assert paths.next(left=HeldPath.AFTER_TRIAL) == "direct"  # enough chunks after it
    assert paths.next() == "cached"  # (the trial's cycle not measured yet)


def test_the_other_path_is_tried_once_every_revisit_chunks():
    paths = HeldPath()
    for _ in range(HeldPath.SETTLE):
        paths.record("cached", 1000, 1.0)
    assert paths.next() == "direct"
    paths.record("direct", 1000, 3.0)  # direct reads slower: copies kept
    picks = []
    for _ in range(3 * (HeldPath.REVISIT + 1)):
        pick = paths.next()
        picks.append(pick)
        paths.record(pick, 1000, 1.0 if pick == "cached" else 3.0)
    assert [i for i, p in enumerate(picks) if p == "direct"] == [HeldPath.REVISIT + (HeldPath.REVISIT + 1) * k
                                                                  for k in range(3)]
    assert paths.path == "cached" and paths.switches == 0


def _slow_path(monkeypatch, slow: str, seconds: float):
    """Pieces read by the path ``slow`` (``"direct"``: a disk slower than the work; ``"cached"``: copies
    that hold the work up) take ``seconds`` more each; the other path is left as it is."""
    import time

    from h5stream.kernels import direct_rows

    read_span = direct_rows.DirectRows._read_span

    def slowed(self, fd, *args):
        if fd == (self._fd if slow == "direct" else self._cached_fd):
            time.sleep(seconds)
        return read_span(self, fd, *args)

    monkeypatch.setattr(direct_rows.DirectRows, "_read_span", slowed)


@pytest.mark.parametrize("slow", ["direct", "cached"])
def test_a_pass_keeps_the_faster_path_for_held_pieces_after_one_trial(evictable, monkeypatch, slow):
    rng = np.random.default_rng(6)
    path = evictable / "raw.h5"
    raw = _raw_file(path, rng, rows=3000)
    _load(path)
    _slow_path(monkeypatch, slow, 0.02)  # 20 ms a piece of 1 MiB: about 0.2 s a chunk of 256 rows
    got = []
    with h5py.File(path, "r") as f:
        # held chunks copied, not viewed where the cache holds them: the choice between copies and direct reads
        with RawChunks(f["raw"], raw[0].size, 0, raw.shape[0], 256, map_held=False) as chunks:
            chunks.direct.piece_bytes = MiB
            chunks.direct.depth = 1
            for pos, block in chunks:
                got.append(np.concatenate(block) if isinstance(block, list) else block.copy())
            counts, switches = chunks.bytes_read, chunks.held_path.switches
    np.testing.assert_array_equal(np.concatenate(got).reshape(raw.shape), raw)
    chunk_bytes = 256 * raw[0].nbytes
    if slow == "direct":  # copies kept: only the trial's one chunk (and its pieces' edges) read directly
        assert 0 < counts["direct"] <= chunk_bytes + 2 * MiB, counts
        assert counts["cached"] >= raw.nbytes - counts["direct"] and switches == 0, counts
    else:  # copies hold the pass up: after the fresh buffers, SETTLE chunks and the trial, read directly
        copied = (2 + HeldPath.SETTLE) * chunk_bytes
        assert counts["direct"] >= raw.nbytes - copied - 2 * MiB and counts["cached"] <= copied + 2 * MiB, counts
        assert switches == 1


@pytest.mark.slow
@pytest.mark.parametrize("held", ["cached", "direct"])
def test_electrical_images_are_the_same_whichever_path_and_thread_count(evictable, monkeypatch, held):
    monkeypatch.setattr(HeldPath, "next", lambda self, left=None: held)
    monkeypatch.setattr(HeldPath, "path", property(lambda self: held))
    rng = np.random.default_rng(9)
    path = evictable / "raw.h5"
    raw = _raw_file(path, rng, rows=6000)  # 51 MB: pieces of 16 MiB, chunks of 2048 rows (17 MB)
    units = [np.sort(rng.choice(np.arange(20, raw.shape[0] - 60), 80, replace=False)) for _ in range(5)]
    kwargs = dict(sos=SOS, adc_offset=32768.0, chunk_samples=2048)
    images, used, _, _ = eimage_reference(raw, units, SOS, adc_offset=32768.0)
    in_memory = electrical_images(raw, units, n_threads=1, **kwargs)
    np.testing.assert_allclose(in_memory.images, images, rtol=0, atol=2e-4 * np.abs(images).max())
    np.testing.assert_array_equal(in_memory.n_spikes_used, used)
    seen = set()
    for state in ("evicted", "resident", "half"):
        for threads in (1, 2, 3):
            _evict(path)
            if state != "evicted":
                _load(path)
            if state == "half":
                _evict(path, os.path.getsize(path) // 2, 0)
            PROFILE.reset()
            with h5py.File(path, "r") as f:
                got = electrical_images(f["raw"], units, n_threads=threads, **kwargs)
            counts = PROFILE.snapshot()
            held_bytes = counts["cached_bytes"] + counts["mapped_bytes"]  # copied from the cache or viewed there
            seen.add((held_bytes > 0, counts["direct_bytes"] > 0))
            assert counts["sliced_bytes"] == 0
            assert held_bytes + counts["direct_bytes"] >= counts["rows"] * raw[0].nbytes > 0
            if state == "resident" and held == "cached":  # every chunk held whole: viewed, none copied
                assert counts["cached_bytes"] == 0 and counts["mapped_bytes"] > 0, counts
            np.testing.assert_array_equal(got.images, in_memory.images)  # bit for bit
            np.testing.assert_array_equal(got.n_spikes_used, in_memory.n_spikes_used)
    # every path was taken: held pieces copied and the rest read directly (a resident file: all copied, an
    # evicted one: all read directly), or every piece read directly
    assert seen == ({(False, True), (True, False), (True, True)} if held == "cached" else {(False, True)})
    with h5py.File(path, "r") as f:  # and through h5py
        got = electrical_images(f["raw"], units, n_threads=2, direct_io=False, **kwargs)
    np.testing.assert_array_equal(got.images, in_memory.images)

"""Arrays written from private block copies (``h5stream.lowlevel.write_snapshots``): the copies of megabytes
come from one reused buffer per thread, and what lands in the file, and its digest, are still exactly the
array's, whatever its shape, order, dtype or thread."""

from __future__ import annotations

import threading
import zlib

import h5py
import numpy as np
import pytest

from h5stream import lowlevel


def _reference_digest(array: np.ndarray) -> str:
    """CRC-32 of ``"<dtype.str>|<shape>"`` and the C-ordered bytes (the digest's definition), by zlib."""
    head = f"{array.dtype.str}|{tuple(int(s) for s in array.shape)}".encode("ascii")
    return f"{zlib.crc32(np.ascontiguousarray(array).tobytes(), zlib.crc32(head)) & 0xFFFFFFFF:08x}"


ROW = np.dtype([("t", "<u8"), ("amp", "<f4"), ("ch", "<i2")])


def _arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    big = rng.standard_normal((3000, 1000))  # 24 MB: three blocks and a part
    return {
        "one_d_many_blocks": rng.integers(0, 2**60, 2_500_000, dtype=np.uint64),  # 20 MB
        "rows": big,
        "transposed": big.T,  # not C-contiguous: each block gathered from strides
        "every_other_row": big[::2],
        "structured": np.array([(i, i / 3, i % 1024) for i in range(200_000)], dtype=ROW),
        "one_block_reused": rng.standard_normal(300_000).astype(">f8"),  # 2.4 MB, big-endian
        "rows_past_a_block": rng.integers(0, 255, (2, 9 << 20), dtype=np.uint8),  # one row > a block
        "small": np.arange(100, dtype=np.int32),
    }


def test_blocks_copied_into_the_reused_buffer_are_written_and_digested_exactly(tmp_path):
    arrays = _arrays()
    path = tmp_path / "blocks.h5"
    with h5py.File(path, "w") as f:
        digests = {name: lowlevel.store_array_digested(f, name, array)[1] for name, array in arrays.items()}
    with h5py.File(path, "r") as f:
        for name, array in arrays.items():
            stored = f[name][()]
            assert stored.dtype == array.dtype and stored.shape == array.shape, name
            np.testing.assert_array_equal(stored, array, err_msg=name)
            assert digests[name] == _reference_digest(array), name


def test_one_buffer_serves_every_block_of_a_thread_and_each_thread_has_its_own():
    a = np.arange(1 << 17, dtype=np.float64)  # 1 MB
    first = lowlevel._snapshot(a)
    second = lowlevel._snapshot(a[::-1])
    assert first.ctypes.data == second.ctypes.data  # the same memory, no new pages per block
    np.testing.assert_array_equal(second, a[::-1])
    other = {}
    thread = threading.Thread(target=lambda: other.setdefault("at", lowlevel._snapshot(a).ctypes.data))
    thread.start()
    thread.join()
    assert other["at"] != first.ctypes.data
    # tiny values and parts past a block get arrays of their own
    tiny = np.arange(10)
    assert lowlevel._snapshot(tiny).ctypes.data != first.ctypes.data
    assert not np.shares_memory(lowlevel._snapshot(tiny), tiny)


def test_threads_writing_at_once_each_write_their_own_values(tmp_path):
    rng = np.random.default_rng(3)
    arrays = [rng.standard_normal(1_500_000) + k for k in range(4)]  # 12 MB each: two blocks
    written: dict[int, list] = {k: [] for k in range(4)}
    start = threading.Barrier(4)

    def snapshot_blocks(k):
        start.wait()
        for _ in range(3):
            lowlevel.write_snapshots(arrays[k], lambda rows, block: written[k].append((rows, block.copy())))

    threads = [threading.Thread(target=snapshot_blocks, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k, blocks in written.items():
        assert len(blocks) == 6
        for rows, block in blocks:
            np.testing.assert_array_equal(block, arrays[k][rows[0]:rows[1]])


@pytest.mark.parametrize("shape", [(), (0,), (0, 5)])
def test_empty_and_scalar_arrays(tmp_path, shape):
    array = np.zeros(shape)
    with h5py.File(tmp_path / "e.h5", "w") as f:
        digest = lowlevel.store_array_digested(f, "x", array)[1]
        np.testing.assert_array_equal(f["x"][()], array)
    assert digest == _reference_digest(array)

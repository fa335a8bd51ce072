"""A stop while :class:`h5stream.writer.gzip.GzipChunks` stores its chunks waits for the chunks being compressed
(one per thread), never for the batches queued behind them.

The stop lands while the main thread waits for the first batch (its ``KeyboardInterrupt`` raised there); the
compression is gated so that no schedule of the threads changes what can start: a chunk past the first one
per thread waits until the last chunk of the batch is done or cancelled.  The reference: the chunks queued
are all compressed when nothing cancels them.
"""

from __future__ import annotations

import threading

import h5py
import numpy as np
import pytest

from h5stream.writer.gzip import GzipChunks

THREADS = 2
CHUNK = 4096
N_CHUNKS = 64


def test_a_stop_while_storing_compresses_no_queued_chunk(tmp_path):
    array = np.arange(N_CHUNKS * CHUNK, dtype=np.int64)
    writer = GzipChunks(array, (CHUNK,), 4, threads=THREADS)
    started: list[int] = []
    last_settled = threading.Event()  # the last chunk's future is done or cancelled
    compress, submit = writer._compress, writer._submit

    def gated_compress(index, buffers, row):
        started.append(index)
        if index >= THREADS and not last_settled.wait(timeout=10.0):  # bounded: the old code fails, not hangs
            last_settled.set()
        return compress(index, buffers, row)

    def watched_submit(number, buffers):
        queued = submit(number, buffers)
        queued[1][-1].add_done_callback(lambda _future: last_settled.set())
        return queued

    def stopped(*_args):
        raise KeyboardInterrupt  # the stop, landing while the main thread waits for the first batch

    writer._compress, writer._submit, writer._store_batch = gated_compress, watched_submit, stopped
    assert writer._per_batch == N_CHUNKS  # one batch: every chunk queued at once
    with h5py.File(tmp_path / "out.h5", "w") as f:
        dset = f.create_dataset("x", shape=array.shape, dtype=array.dtype, chunks=(CHUNK,))
        with pytest.raises(KeyboardInterrupt):
            writer.store(dset)
    # the first chunk of each thread, and the one each took next before the stop cancelled the rest
    assert len(started) <= 2 * THREADS, sorted(started)
    assert set(started) <= set(range(N_CHUNKS))

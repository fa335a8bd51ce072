"""OpenMP kernels in a process forked after a parallel region (ext/_omp_fork.h).

GNU OpenMP's threads do not survive fork(): a child of a process that ran a region with two threads waited
forever in its own first region with two.  Each test runs a kernel with two threads here, forks, runs the
same kernel asked for two threads in the child, and waits for the child's result on a pipe with a deadline
(a hang detector: the wait ends on the pipe's event, the deadline only when the child hangs); the child's
result must equal the serial run's.  A child of a freshly started process that never ran a region keeps its
threads.
"""

from __future__ import annotations

import os
import pickle
import select
import signal
import subprocess
import sys
import textwrap
import time
import zlib

import numpy as np
import pytest

from h5stream.native import compiled

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="the platform has no fork()")

#: seconds the child may take before it counts as hung (it needs well under one on a loaded machine)
DEADLINE = 60.0


def _in_forked_child(work):
    """``work()`` run in a child made by os.fork(); its result through a pipe, or a failure when it hangs."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never return into the test runner
        try:
            os.close(read_end)
            try:
                payload = pickle.dumps(("ok", work()))
            except BaseException as exc:  # noqa: BLE001 - reported to the parent
                payload = pickle.dumps(("error", repr(exc)))
            view = memoryview(payload)
            while view:
                view = view[os.write(write_end, view):]
        finally:
            os._exit(0)
    os.close(write_end)
    chunks = []
    deadline = time.monotonic() + DEADLINE
    try:
        while True:
            ready, _, _ = select.select([read_end], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                pytest.fail(f"the forked child hung: no result within {DEADLINE:.0f} s")
            chunk = os.read(read_end, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(read_end)
    os.waitpid(pid, 0)
    status, value = pickle.loads(b"".join(chunks))
    assert status == "ok", value
    return value


# ------------------------------------------------------------------ each kernel, as a function of its thread count

def _deflate(threads):
    rng = np.random.default_rng(0)
    src = np.repeat(rng.integers(0, 8, (24, 512), dtype=np.uint8), 8, axis=1)
    cap = compiled("_compress").deflate_bound(src.shape[1])
    dst = np.zeros((src.shape[0], cap), dtype=np.uint8)
    sizes = np.zeros(src.shape[0], dtype=np.int64)
    failures = compiled("_compress")._deflate_chunks(src, dst, sizes, src.shape[0], 1, 1, threads)
    rows = [zlib.decompress(bytes(dst[i, :sizes[i]])) for i in range(src.shape[0])]
    assert rows == [bytes(row) for row in src]  # zlib reads what the kernel wrote
    return failures, sizes


def _block():
    rng = np.random.default_rng(1)
    block = rng.normal(size=(300, 70))
    block[rng.random(block.shape) < 0.7] = 0.0
    return block


def _csr_count(threads):
    counts = np.zeros(300, dtype=np.int64)
    compiled("_csr")._count_rows(_block(), counts, 0, threads)
    return counts


def _csr_fill(threads):
    block = _block()
    counts = np.count_nonzero(block, axis=1)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    data = np.zeros(counts.sum(), dtype=np.float64)
    indices = np.zeros(counts.sum(), dtype=np.int64)
    failed = np.zeros(1, dtype=np.int32)
    compiled("_csr")._fill_rows(block, starts, data, indices, 0, threads, failed)
    return failed, data, indices


def _spikes():
    rng = np.random.default_rng(2)
    units = [np.sort(rng.integers(0, 50_000, rng.integers(0, 400))).astype(np.uint64) for _ in range(40)]
    offsets = np.concatenate([[0], np.cumsum([u.size for u in units])]).astype(np.int64)
    starts = np.sort(rng.integers(0, 45_000, 30)).astype(np.uint64)
    ends = starts + rng.integers(0, 5000, 30).astype(np.uint64)
    return np.concatenate(units), offsets, starts, ends


def _section(threads):
    values, offsets, starts, ends = _spikes()
    n_units, n_trials = offsets.size - 1, starts.size
    first = np.zeros((n_units, n_trials), dtype=np.int64)
    count = np.zeros((n_units, n_trials), dtype=np.int64)
    kernel = compiled("_section")
    kernel._section_counts(values, offsets, starts, ends, np.argsort(starts, kind="stable").astype(np.int64),
                           np.argsort(ends, kind="stable").astype(np.int64), first, count, threads)
    out_offsets = np.concatenate([[0], np.cumsum(count.ravel())[:-1]]).astype(np.int64)
    out = np.zeros(int(count.sum()), dtype=np.uint64)
    kernel._section_gather(values, first, count, out_offsets, out, threads)
    return first, count, out


def _sta(threads):
    rng = np.random.default_rng(3)
    stimulus = rng.normal(size=(2000, 12))
    frames = np.concatenate([np.sort(rng.integers(0, 2000, 90)) for _ in range(16)]).astype(np.int64)
    offsets = np.arange(0, 17 * 90, 90, dtype=np.int64)
    sums = np.zeros((16, 10 * 12))
    n_used = np.zeros(16, dtype=np.int64)
    n_excluded = np.zeros(16, dtype=np.int64)
    compiled("_sta")._sta_sums(stimulus, frames, offsets, 10, -5, sums, n_used, n_excluded, threads)
    return sums, n_used, n_excluded


def _windows(threads):
    from h5stream.kernels.windows import segment_windows

    rng = np.random.default_rng(4)
    n_rows = 200
    lengths = rng.integers(0, 30, n_rows)
    row_offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    values = np.concatenate([np.sort(rng.integers(0, 10_000, n)) for n in lengths]).astype(np.int64)
    row_starts = rng.integers(0, 2000, n_rows).astype(np.float64)
    segment_rows = np.array([0, 40, 90, 150, n_rows], dtype=np.int64)
    lo = rng.uniform(-2e5, 2e5, (4, 5, 1))
    count_windows = np.concatenate([lo, lo + rng.uniform(1, 3e5, (4, 5, 1))], axis=2)
    event_windows = count_windows[:, :3].copy()
    got = segment_windows(values, row_offsets, row_starts, 50.0, segment_rows, count_windows, event_windows,
                          n_threads=threads)
    return got.counts, got.mean_first


def _eimage(threads):
    from h5stream.kernels.eimage import butter_highpass, electrical_images

    rng = np.random.default_rng(5)
    raw = (rng.normal(0, 40, (4000, 6, 8)) + 32768).astype(np.uint16)
    units = [np.sort(rng.integers(0, raw.shape[0], 60)) for _ in range(3)]
    got = electrical_images(raw, units, sos=butter_highpass(100.0, 20_000.0, 2), chunk_samples=900,
                            adc_offset=32768.0, n_threads=threads)
    return got.images, got.n_spikes_used


KERNELS = {"deflate": _deflate, "csr_count": _csr_count, "csr_fill": _csr_fill, "section": _section,
           "sta": _sta, "windows": _windows, "eimage": _eimage}


def _equal(got, want):
    if isinstance(want, tuple):
        assert len(got) == len(want)
        for g, w in zip(got, want):
            _equal(g, w)
    else:
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


@pytest.mark.parametrize("name", sorted(KERNELS))
def test_kernel_in_child_forked_after_a_parallel_region(name):
    kernel = KERNELS[name]
    serial = kernel(1)
    _equal(kernel(2), serial)  # a region with two threads ran here (the ones the child inherits)
    _equal(_in_forked_child(lambda: kernel(2)), serial)


def test_child_after_a_parallel_region_runs_one_thread():
    runtime = compiled("_runtime")
    if not runtime.openmp_enabled():
        pytest.skip("kernels built without OpenMP")
    assert runtime.omp_team_size(2) == 2
    assert runtime.omp_fork_state()[0]
    assert _in_forked_child(lambda: (runtime.omp_threads(2), runtime.omp_team_size(2), runtime.omp_fork_state())) \
        == (1, 1, (True, True))
    # and its own children too
    assert _in_forked_child(lambda: _in_forked_child(lambda: runtime.omp_team_size(3))) == 1


def test_child_of_a_process_that_never_ran_a_region_keeps_its_threads():
    runtime = compiled("_runtime")
    if not runtime.openmp_enabled():
        pytest.skip("kernels built without OpenMP")
    # a fresh process (as the batch's fork server is): imports every kernel, runs none, forks
    script = textwrap.dedent("""
        import os, sys
        from h5stream.native import compiled
        for name in ("_compress", "_csr", "_eimage", "_section", "_sta", "_windows"):
            compiled(name)
        runtime = compiled("_runtime")
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.write(write_end, repr((runtime.omp_fork_state(), runtime.omp_threads(2),
                                      runtime.omp_team_size(2))).encode())
            os._exit(0)
        os.close(write_end)
        print(os.read(read_end, 1000).decode())
        os.waitpid(pid, 0)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=DEADLINE,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "((False, False), 2, 2)"

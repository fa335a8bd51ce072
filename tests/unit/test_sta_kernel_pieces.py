"""The sparse STA kernel works in runs of units, and a stop is taken between two of them
(:func:`h5stream.kernels.sta._unit_pieces`, :func:`h5stream.stops.check_point`)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from h5stream.kernels import sta
from h5stream.kernels.sta import spike_triggered_average
from tests.reference import sta_reference


def test_the_pieces_cover_every_unit_once_in_order_and_keep_whole_units():
    rng = np.random.default_rng(3)
    for n_threads in (1, 3):
        offsets = np.concatenate([[0], np.cumsum(rng.integers(0, 50, 40))])
        pieces = sta._unit_pieces(offsets, 1000, n_threads)
        assert pieces[0][0] == 0 and pieces[-1][1] == 40
        assert all(b0 == a1 for (_, b0), (a1, _) in zip(pieces, pieces[1:], strict=False))
        assert all(b > a for a, b in pieces)
    assert sta._unit_pieces(np.array([0]), 10, 2) == []


def test_the_sums_in_many_pieces_equal_the_reference(monkeypatch):
    monkeypatch.setattr(sta, "_ADDS_PER_CALL", 2_000)  # a few units per call
    rng = np.random.default_rng(11)
    stimulus = (rng.random((400, 3, 4)) * 3).astype(np.float64)
    units = [np.sort(rng.integers(0, 400, rng.integers(0, 60))) for _ in range(25)]
    offsets = np.concatenate([[0], np.cumsum([u.size for u in units])])
    assert len(sta._unit_pieces(offsets, 10 * 12, 2)) > 5  # the planted split is really in many pieces
    got = spike_triggered_average(stimulus, units, n_lags=10, method="sparse", n_threads=2)
    want, used, excluded = sta_reference(stimulus, units, n_lags=10)
    np.testing.assert_allclose(got.sta, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(got.n_spikes_used, used)
    np.testing.assert_array_equal(got.n_spikes_excluded, excluded)


# A job whose STA takes many calls of the kernel, run once to the end, then again with its first call sending
# Ctrl-C to its own process (where a terminal's would arrive while a long kernel runs): the calls are counted.
PROGRAM = textwrap.dedent(
    """
    import os, signal
    import numpy as np
    from h5stream import stops
    from h5stream.kernels import sta

    sta._ADDS_PER_CALL = 2_000
    calls = []
    kernel = sta.compiled("_sta")._sta_sums

    class Counted:
        stop = False

        def _sta_sums(self, *args):
            calls.append(1)
            if self.stop and len(calls) == 1:
                os.kill(os.getpid(), signal.SIGINT)
            kernel(*args)

    counted = Counted()
    sta.compiled = lambda name: counted
    rng = np.random.default_rng(11)
    units = [np.sort(rng.integers(0, 400, 50)) for _ in range(40)]
    stimulus = rng.random((400, 3, 4))
    sta.spike_triggered_average(stimulus, units, n_lags=10, method="sparse", n_threads=1)
    print("unstopped", len(calls))
    calls.clear()
    counted.stop = True
    try:
        with stops.kept_stops():
            sta.spike_triggered_average(stimulus, units, n_lags=10, method="sparse", n_threads=1)
        print("ran on", len(calls))
    except KeyboardInterrupt:
        print("stopped after", len(calls))
    """
)


@pytest.mark.stops
def test_a_stop_during_the_kernel_ends_the_work_before_its_next_piece(child_env):
    done = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True, timeout=300,
                          env=child_env)
    unstopped, stopped = done.stdout.splitlines()
    assert int(unstopped.split()[1]) > 10, done  # the work is many calls (one before the kernel was cut)
    assert stopped == "stopped after 1", done
    assert done.stderr == "", done.stderr

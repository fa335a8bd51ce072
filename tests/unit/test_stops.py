"""A stop that Python drops is not lost (:mod:`h5stream.stops`).

A real SIGINT to a fresh interpreter, arriving while a finalizer or a weak reference's callback runs (the
finalizer sends it to its own process, so the handler runs inside it): Python drops the KeyboardInterrupt
there and prints ``Exception ignored``.  Inside :class:`~h5stream.stops.kept_stops` the stop is raised again
at the next instruction outside the callback, and nothing is printed; without it, the work runs to its end
(the reference the test compares with: the same program without the block).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

PROGRAM = textwrap.dedent(
    """
    import os, signal, sys, weakref
    from h5stream import stops

    if {python_own}:  # Python's own Ctrl-C handler, not the one importing h5stream gives (h5stream.stops.ctrl_c)
        signal.signal(signal.SIGINT, signal.default_int_handler)

    class Finalized:
        def __del__(self):
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(1000):  # the handler runs here, inside the finalizer
                pass

    class Referent:
        pass

    def callback(ref):
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(1000):
            pass

    def work():
        if {where!r} == "finalizer":
            Finalized()
        else:
            held = Referent()
            ref = weakref.ref(held, callback)
            del held
        for _ in range(10 ** 6):
            pass
        return "ran on"

    try:
        if {kept}:
            with stops.kept_stops() as block:
                said = work()
        else:
            said = work()
        print(said, flush=True)
    except KeyboardInterrupt as exc:
        print("stopped", type(exc).__name__, flush=True)
    if {kept}:
        print("noted at the end:", block.signal_name, stops.noted(), sys.unraisablehook is sys.__unraisablehook__)
    """
)


def _run(where: str, kept: bool, child_env, python_own: bool = True) -> subprocess.CompletedProcess:
    program = PROGRAM.format(where=where, kept=kept, python_own=python_own)
    return subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120,
                          env=child_env)


@pytest.mark.stops
@pytest.mark.parametrize("where", ["finalizer", "weakref callback"])
def test_a_ctrl_c_python_drops_is_raised_again(where, child_env):
    dropped = _run(where, False, child_env)  # the reference: Python's own handling loses it
    assert dropped.stdout.splitlines() == ["ran on"], dropped
    assert "Exception ignored" in dropped.stderr, dropped.stderr
    kept = _run(where, True, child_env)
    assert kept.stdout.splitlines() == ["stopped RaisedAgain", "noted at the end: SIGINT None True"], kept
    assert kept.stderr == "", kept.stderr


@pytest.mark.stops
def test_ctrl_c_in_a_finalizer_is_raised_after_it_without_a_block(child_env):
    """The handler importing h5stream gives: Ctrl-C inside a ``__del__`` is raised as it returns (no block needed);
    the reference above (Python's own handler) drops it and runs on."""
    taken = _run("finalizer", False, child_env, python_own=False)
    assert taken.stdout.splitlines() == ["stopped KeyboardInterrupt"], taken
    assert taken.stderr == "", taken.stderr


def test_raise_if_noted_raises_a_noted_stop_once_asked():
    from h5stream import stops

    stops.raise_if_noted()  # nothing noted: nothing raised
    with stops.kept_stops() as block:
        stops.note("SIGTERM")
        stops.note("SIGINT")  # the first one is kept
        assert stops.noted() == "SIGTERM"
        with pytest.raises(KeyboardInterrupt):
            stops.raise_if_noted()
    assert block.signal_name == "SIGTERM"
    assert stops.noted() is None
    stops.raise_if_noted()


def test_other_dropped_exceptions_reach_the_previous_hook():
    from h5stream import stops

    seen = []
    previous = sys.unraisablehook
    sys.unraisablehook = seen.append
    try:
        with stops.kept_stops():
            class Finalized:
                def __del__(self):
                    raise ValueError("not a stop")

            Finalized()
        assert [type(u.exc_value) for u in seen] == [ValueError]
        assert stops.noted() is None
    finally:
        sys.unraisablehook = previous


def test_a_progress_callback_ends_the_work_on_a_noted_stop_the_way_its_block_raises():
    from h5stream import stops
    from hdmea.progress import Progress

    bar = Progress(10, "planted long step", enabled=False)
    bar.update()  # nothing noted: it counts
    with stops.kept_stops():
        stops.note("SIGINT")  # a stop whose KeyboardInterrupt never came
        with pytest.raises(KeyboardInterrupt):
            bar.update()

    class JobStop(BaseException):
        pass

    def job_stop():
        raise JobStop

    with stops.kept_stops((JobStop,), at_check=job_stop):
        bar.update()
        stops.note("SIGTERM")
        with pytest.raises(JobStop):
            bar.update()
    assert bar.count == 2  # the two updates that came before any stop
    bar.close()


def test_a_signal_handler_called_below_the_blocks_hook_raises_nothing_there():
    """On 3.13 a monitoring callback runs inside the unraisable hook; a stop raised there was printed as
    ``Exception ignored in sys.unraisablehook`` (a stopped ``hdmea batch`` in the stop campaign)."""
    from h5stream import stops

    seen = []

    def raise_again(ident, kind):
        seen.append(stops.raise_unsafe_at(sys._getframe()))
        return None

    with stops.kept_stops(raise_again=raise_again):
        class Finalized:
            def __del__(self):
                raise KeyboardInterrupt

        Finalized()
    assert seen == [True]
    assert not stops.raise_unsafe_at(sys._getframe())

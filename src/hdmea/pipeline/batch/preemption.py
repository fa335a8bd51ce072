"""Stopping on SIGTERM or SIGINT without losing work: checkpoint, say so, exit 75.

A cluster stops a job before it is done for several reasons: its time limit
(``sbatch --signal=B:TERM@N`` sends SIGTERM N seconds before it), preemption by
a job of higher priority, ``scancel``; at a terminal, Ctrl-C.  ``hdmea run``,
``run-one`` and ``batch`` treat SIGTERM and SIGINT alike:

1. the signal raises :class:`Preempted` in the recording's job, wherever it is
   (a compiled kernel finishes its call first), in a place where the job's own
   ``except``, ``finally`` and ``with`` blocks take it (on Python 3.13, where
   one raised at a loop's closing jump would skip them, at the loop's start or
   as the next call returns: :mod:`h5stream.interrupts`);
2. the pipeline writes the steps it has finished to ``<out>.checkpoint.h5``
   (:func:`hdmea.pipeline.run.run_pipeline`), and the job reports
   ``status="preempted"`` with that path;
3. the command prints one line, ``stopped; run the same command again to
   resume``, naming the signal, the SLURM job and the checkpoint, and exits
   with :data:`EXIT_PREEMPTED` (75, ``EX_TEMPFAIL``: "try again later") after
   SIGTERM or inside a SLURM job, 130 after Ctrl-C at a terminal.

Running the same command again resumes from the checkpoint; the log says
``resuming from <out>.checkpoint.h5 (steps done: ...)``.  A second signal while
the checkpoint is written is logged and ignored (SLURM follows its SIGTERM with
SIGKILL after ``KillWait`` seconds anyway).

A batch's driver passes the stop on to the jobs it runs: on this process's job
thread, in the workers of a Dask cluster (:func:`stop_jobs` run on each
worker), or by SIGTERM to a process pool's workers (where signals cannot do it,
by an event each worker's thread waits on:
:class:`hdmea.pipeline.batch.pool.Pool`).  A job that had not started
yet reports ``preempted`` at once, without running.

On Windows, SIGBREAK (Ctrl-Break, or ``CTRL_BREAK_EVENT`` sent to the
command's process group) stops a run as SIGTERM and SIGINT do; a SIGTERM sent
there by another process is ``TerminateProcess``, which no handler sees.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from h5stream import interrupts, stops
from hdmea.progress import STOP_NOTE, slurm_job

__all__ = ["EXIT_PREEMPTED", "STOP_SIGNALS", "stop_signals", "Preempted", "stop_on_signals", "stop_jobs",
           "job_thread", "shielded", "raise_if_stopped", "signals_noted", "stop_requested", "describe_stop", "slurm_job_text",
           "jobs_running"]

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

# A stop raised in a thread by h5stream.interrupts (its way on Python 3.13) never lands in this module's
# bookkeeping: a job thread's registration, a shield's count, a handler's state are always complete.
interrupts.never_raise_in(__file__)

#: Exit status of a command stopped by a signal after checkpointing (``EX_TEMPFAIL`` of sysexits.h).
#: the job-array script (``hdmea slurm-script``) requeues its task on it; a cluster can do so itself with
#: ``RequeueExit=75`` in slurm.conf.
EXIT_PREEMPTED = 75


def stop_signals(module=signal) -> tuple[signal.Signals, ...]:
    """The signals that stop a run, of those the system has: SIGTERM, SIGINT, and SIGBREAK where it exists.

    SIGBREAK is Windows' Ctrl-Break, and what ``os.kill(pid, signal.CTRL_BREAK_EVENT)``
    delivers to a process started with ``CREATE_NEW_PROCESS_GROUP``: the one stop
    another process can send there that a handler catches.  (``os.kill(pid,
    signal.SIGTERM)`` and ``taskkill /F`` end a Windows process with
    ``TerminateProcess``, which runs no handler: nothing is checkpointed.)
    """
    names = ("SIGTERM", "SIGINT", "SIGBREAK")
    return tuple(getattr(module, name) for name in names if hasattr(module, name))


#: The signals that stop a run the same way (:func:`stop_signals` of this system).
STOP_SIGNALS: tuple[signal.Signals, ...] = stop_signals()


def slurm_job_text(environ: dict | None = None) -> str:
    """``"SLURM job 12 task 3"``, ``"SLURM job 12"``, or ``""`` outside SLURM."""
    ids = slurm_job(environ)
    if ids is None:
        return ""
    job, task = ids
    return f"SLURM job {job} task {task}" if task else f"SLURM job {job}"


class Preempted(BaseException):
    """A signal stopped a recording's job; what it finished is in its checkpoint.

    A ``BaseException`` (like ``KeyboardInterrupt``), so that no ``except
    Exception`` of a step takes it for a failure of its own.  ``checkpoint`` is
    the file the finished steps were written to (None: nothing to keep, or the
    checkpoint could not be written: ``checkpoint_error`` says why).
    """

    def __init__(self, signal_name: str | None = None, *, recording: str | None = None,
                 checkpoint: str | os.PathLike | None = None, steps_done: Sequence[str] = (),
                 step: str | None = None, checkpoint_error: str | None = None) -> None:
        if signal_name is None:
            # Raised into a job's thread by class (no arguments): it has arrived, in this thread; the
            # signal is the process's.  (No lock: this may run while this thread holds _state.)
            _raised.discard(threading.get_ident())
        signal_name = signal_name or _stopping or "SIGTERM"
        super().__init__(signal_name)
        self.signal_name = signal_name
        self.recording = recording
        self.checkpoint = None if checkpoint is None else Path(checkpoint)
        self.steps_done = list(steps_done)
        self.step = step
        self.checkpoint_error = checkpoint_error

    def __reduce__(self):
        return (_rebuild, (self.signal_name, self.recording, self.checkpoint, self.steps_done, self.step,
                           self.checkpoint_error))

    def __str__(self) -> str:
        return describe_stop(self.signal_name, self.recording, self.checkpoint, self.steps_done, self.step,
                             self.checkpoint_error)


def _rebuild(signal_name, recording, checkpoint, steps_done, step, checkpoint_error) -> Preempted:
    return Preempted(signal_name, recording=recording, checkpoint=checkpoint, steps_done=steps_done, step=step,
                     checkpoint_error=checkpoint_error)


def describe_stop(signal_name: str, recording: str | None, checkpoint: str | os.PathLike | None,
                  steps_done: Sequence[str] | None, step: str | None = None,
                  checkpoint_error: str | None = None) -> str:
    """One message: which signal stopped which recording where, what was kept, and what to do (``steps_done``
    None: its job did not run here)."""
    job = slurm_job_text()
    where = f" ({job})" if job else ""
    what = f"recording {recording!r}" if recording else "the run"
    during = f" during step {step}" if step else ""
    text = f"{signal_name} received{where}: {what} stopped{during}"
    if checkpoint is not None and steps_done is None:  # not run here: its checkpoint is an earlier run's
        text += (f" before its job ran; the steps an earlier run finished are kept in {checkpoint}. "
                 "Run the same command again to resume from there")
    elif checkpoint is not None:
        text += (f"; its finished steps ({', '.join(steps_done) or 'none'}) are checkpointed in {checkpoint}. "
                 "Run the same command again to resume from there")
    elif checkpoint_error:
        text += (f"; its checkpoint could not be written ({checkpoint_error}), so the recording starts over "
                 "when the same command runs again")
    elif recording:
        text += "; no step had finished, nothing to keep. Run the same command again to process it"
    else:
        text += ". Run the same command again"
    return text


# --------------------------------------------------------------------------- this process's signals

# Reentrant: a signal handler runs on the main thread between two of its bytecodes, also while that
# thread holds the lock (and the arrival of a raised Preempted may too).
_state = threading.RLock()
_stopping: str | None = None  # the signal that stopped this process's jobs, once one did
_job_threads: set[int] = set()  # idents of threads running a job now
_stopped_threads: set[int] = set()  # job threads told to stop already (each is told once)
_noting = 0  # > 0: the main thread only notes a signal (a batch's driver polls for it)
_shielded: dict[int, int] = {}  # thread ident -> depth of shielded() blocks it is in
_pending: set[int] = set()  # threads whose stop waits for the end of their shielded() block
_raised: set[int] = set()  # threads with a Preempted raised into them that has not arrived yet
_main_told = False  # stop_jobs sent the main thread its signal, which the handler has not taken yet
_raise_later = False  # the handler could not raise where it was called: the signal was delivered again


def jobs_running() -> bool:
    """Whether a job of this process runs now (a thread inside :class:`job_thread`)."""
    with _state:
        return bool(_job_threads)


def stop_requested() -> str | None:
    """The name of the signal that stopped this process's jobs, or None."""
    return _stopping


@contextlib.contextmanager
def stop_on_signals(signals: Sequence[signal.Signals] = STOP_SIGNALS) -> Iterator[None]:
    """While inside, the first of ``signals`` raises :class:`Preempted` in the main thread (those this process
    ignores stay ignored).

    A later signal is logged and ignored, so that the checkpoint it started is
    not cut short.  Outside the main thread (where Python cannot take
    signals) this does nothing.  The previous handlers come back at the end.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    # A stop asked before (Ctrl-C while the command line started) whose KeyboardInterrupt never came ends here.
    stops.raise_if_noted()
    # A signal this process ignores stays ignored: a shell's background job, a batch's worker (whose driver
    # takes Ctrl-C and passes the stop on, h5stream.quiet_start)
    previous = {sig: signal.getsignal(sig) for sig in signals if signal.getsignal(sig) is not signal.SIG_IGN}
    for sig in previous:
        signal.signal(sig, _on_signal)
    try:
        with stops.kept_stops((Preempted,), _raise_again, at_check=_at_check_point):
            yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _reset()


def _at_check_point() -> None:
    """How a check point (a progress callback, a kernel's pieces: :func:`h5stream.stops.check_point`) in the main
    thread takes a noted stop: :func:`raise_if_stopped`, except inside :func:`signals_noted` (a batch's driver,
    which reads the stop from :func:`stop_requested` and reports every recording before it ends)."""
    with _state:
        if _noting > 0:
            return
    raise_if_stopped()


def _raise_again(ident: int, kind: type[BaseException]) -> type[BaseException] | None:
    """A :class:`Preempted` that Python dropped in thread ``ident`` (raised inside a finalizer or a weakref
    callback): raised again there (:class:`h5stream.stops.kept_stops` raises what this returns), or at the end
    of the thread's :class:`shielded` block."""
    with _state:
        if _stopping is None:
            return None  # not this process's stop (a job's own exception of that class): nothing to raise
        if _shielded.get(ident):
            _pending.add(ident)
            return None
        _raised.add(ident)  # until it arrives (Preempted notes that); a raise_if_stopped first takes it back
        return Preempted


def _reset() -> None:
    global _stopping, _main_told, _raise_later
    with _state:
        _stopping = None
        _main_told = False
        _raise_later = False
        _stopped_threads.clear()
        _pending.discard(threading.get_ident())
        if threading.get_ident() in _raised:  # a stop on its way to this thread ends with the handling
            _take_back_own()


@contextlib.contextmanager
def signals_noted() -> Iterator[None]:
    """Inside, a stop signal raises nothing in the main thread: :func:`stop_requested` tells it.

    For a batch's driver, which waits for its jobs in short steps and checks
    between two; the jobs on threads of this process are stopped at once.
    """
    global _noting
    with _state:
        _noting += 1
    try:
        yield
    finally:
        with _state:
            _noting -= 1


def _on_signal(signum: int, frame) -> object:
    global _stopping, _main_told, _raise_later
    name = signal.Signals(signum).name
    main = threading.main_thread().ident
    with _state:
        if _raise_later:  # the stop this handler could not raise where it was called before
            _raise_later = False
            if _shielded.get(main):  # a file is being written since: the stop comes when it is complete
                _pending.add(main)
                return
            told = True
        elif _main_told:
            # stop_jobs's signal to a job on the main thread (the stop was noted there already).
            _main_told = False
            if main not in _job_threads:  # its job ended before the signal came: nothing to stop
                return
            if _shielded.get(main):
                _pending.add(main)
                return
            told = True
        else:
            told = False
    if told:
        return _raise_here(frame, _stopping, signum)
    stops.note(name)  # a Preempted that Python drops does not drop the stop
    with _state:
        first = _stopping is None
        if first:
            _stopping = name
        _stop_threads(exclude=main)
        noting = _noting > 0
    if not first:
        logger.warning("%s received again while stopping; ignored (the checkpoint is being written)", name,
                       extra=STOP_NOTE)
        return
    logger.warning("%s received: stopping, keeping what is finished", name, extra=STOP_NOTE)
    if noting:
        return
    with _state:
        if _shielded.get(main):
            _pending.add(main)  # a file is being written: the stop comes when it is complete
            return
    return _raise_here(frame, name, signum)


def _raise_here(frame, signal_name: str | None, signum: int) -> object:
    """Raise :class:`Preempted` from the signal handler called at ``frame``, where the frame's own handlers
    (``except``, ``finally``, ``with``) take it; otherwise (Python 3.13 at a loop's closing jump, which lies
    outside the loop's blocks) at the main thread's next place inside them (:mod:`h5stream.interrupts`).
    Inside the import system's own code, a ``__del__`` or a weakref callback (where the raise would be dropped,
    or leave the import lock held) nothing is raised: returned to the handler's caller, what this returns
    delivers ``signum`` again, and the handler raises at the next instruction outside them."""
    global _raise_later
    if stops.raise_unsafe_at(frame):
        with _state:
            _raise_later = True
        return stops.delivered_again(signum)
    if interrupts.lands_in_its_handlers(frame):
        raise Preempted(signal_name)
    with _state:
        _raise_in_thread(threading.main_thread().ident)


def _stop_threads(exclude: int | None = None) -> list[int]:
    """Raise :class:`Preempted` once in each job thread not stopped yet (call with ``_state`` held)."""
    told = []
    for ident in _job_threads - _stopped_threads:
        if ident != exclude:
            if _shielded.get(ident):
                _pending.add(ident)
            else:
                _raise_in_thread(ident)
            _stopped_threads.add(ident)
            told.append(ident)
    return told


class shielded:
    """Inside, a stop does not cut the calling thread short: a file being written is completed first.

    Call :func:`raise_if_stopped` after the block where the work may stop
    there; where the block finished the work (the output's final save), the
    stop has nothing left to do.  (A class of this module, not a generator's
    context manager: a stop raised in the thread never lands between its count
    and the block, :func:`h5stream.interrupts.never_raise_in`.)
    """

    def __enter__(self) -> None:
        ident = threading.get_ident()
        with _state:
            _shielded[ident] = _shielded.get(ident, 0) + 1

    def __exit__(self, *exc_info) -> None:
        ident = threading.get_ident()
        with _state:
            _shielded[ident] -= 1
            if not _shielded[ident]:
                del _shielded[ident]


def raise_if_stopped() -> None:
    """Raise :class:`Preempted` here when this process was told to stop (outside a :func:`shielded` block).

    Work calls it at the points where it can stop: after a shielded block (a
    stop that came during it is raised here) and between two steps (a stop
    whose exception never reached the thread, or could not be raised into it,
    ends the work here).  A stop raised into this thread that has not arrived
    yet is taken back and raised here instead: each thread gets one.
    """
    ident = threading.get_ident()
    with _state:
        if _shielded.get(ident):
            return
        if ident not in _pending and _stopping is None:
            # not stopped by this module's handling; a stop its own handler noted (Ctrl-C while a command
            # line starts, in a job run from Python) whose KeyboardInterrupt Python dropped ends the work here
            stops.raise_if_noted()
            return
        _pending.discard(ident)
        if ident in _job_threads:
            _stopped_threads.add(ident)  # told now: stop_jobs raises nothing more into it
        if ident in _raised:
            _take_back_own()
        stopping = _stopping
    raise Preempted(stopping)


def stop_jobs(signal_name: str = "SIGTERM") -> int:
    """Stop every job of this process (Dask workers run it with ``client.run``); returns how many ran.

    The running jobs get :class:`Preempted` raised in their threads; jobs that
    start later report ``preempted`` without running.  A job on the main thread
    (a process pool's worker, told from another thread) gets SIGTERM sent to
    that thread where signals reach threads (POSIX) and the thread takes its
    stop signals (the signal also ends a blocking wait), :class:`Preempted`
    raised at its next instruction elsewhere.  Called on the main thread while
    it runs a job, it raises :class:`Preempted` there.
    """
    global _stopping, _main_told
    main = threading.main_thread().ident
    with _state:
        if _stopping is None:
            _stopping = signal_name
        in_main = main in _job_threads and main not in _stopped_threads
        told = _stop_threads(exclude=main)
        if in_main:
            _stopped_threads.add(main)
            if _shielded.get(main):
                _pending.add(main)  # a file is being written: the stop comes when it is complete
                in_main = False
                told.append(main)
        stopping = _stopping
    if in_main:
        if threading.get_ident() == main:
            raise Preempted(stopping)
        from h5stream import capabilities

        if capabilities.posix_signals() and signal.getsignal(signal.SIGTERM) is _on_signal:
            with _state:
                _main_told = True
            signal.pthread_kill(main, signal.SIGTERM)
        else:
            _raise_in_thread(main)
    return len(told) + in_main


def _raise_in_thread(ident: int) -> None:
    """Raise :class:`Preempted` in thread ``ident`` at its next Python instruction (call with ``_state`` held).

    Noted in ``_raised`` until it arrives (:class:`Preempted` notes that), so
    that a thread which stops on its own first takes it back.  When it cannot
    be raised (the thread kept starting threads; on 3.13, no monitoring tool id
    was free), the thread stops at its next
    :func:`raise_if_stopped`.
    """
    _raised.add(ident)  # before: it may arrive before raise_in_thread returns
    if not interrupts.raise_in_thread(ident, Preempted):
        _raised.discard(ident)
        logger.warning("the stop could not be raised in a job's thread; it stops at its next step")


def _take_back_own() -> None:
    interrupts.take_back_own()
    _raised.discard(threading.get_ident())


class job_thread:
    """Mark the calling thread as running a job, which :func:`stop_jobs` and the signal handler stop.

    Raises :class:`Preempted` at once when this process was already told to
    stop.  (A class of this module, not a generator's context manager: a stop
    raised in the thread never lands between the thread's registration and the
    job, nor after the job has ended, :func:`h5stream.interrupts.never_raise_in`.)
    """

    def __enter__(self) -> None:
        ident = threading.get_ident()
        with _state:
            stopping = _stopping
            if stopping is None:
                _job_threads.add(ident)
        if stopping is not None:
            raise Preempted(stopping)

    def __exit__(self, *exc_info) -> None:
        ident = threading.get_ident()
        with _state:  # not while a stop is raised into this thread: it lands inside the job
            _job_threads.discard(ident)
            _stopped_threads.discard(ident)
            _pending.discard(ident)
            if ident in _raised:  # raised as the job ended: it is not to land in the caller's code
                _take_back_own()

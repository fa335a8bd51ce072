"""Jobs for the batch-engine tests: real HDF5 in, real HDF5 out, and real process deaths.

Kept in their own module (not a test file) so that worker processes import them
by name.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import h5py
import numpy as np

from h5stream.errors import FormatError
from h5stream.files import create_atomic, guard_read, open_validated

KILL_ONCE_SUFFIX = ".kill-once"


def make_input(path: Path, values: np.ndarray) -> None:
    with h5py.File(path, "w") as f:
        f["x"] = values


def kill_once_marker(cmcr: Path) -> Path:
    return cmcr.with_name(cmcr.name + KILL_ONCE_SUFFIX)


def die_if_marked(cmcr: Path) -> None:
    """SIGKILL this worker the first time (the marker is consumed before dying)."""
    marker = kill_once_marker(Path(cmcr))
    if marker.exists():
        marker.unlink()
        os.kill(os.getpid(), signal.SIGKILL)


def sum_job(recording, output, config):
    """Sum dataset ``x`` of the input into the output file; dies once when marked."""
    die_if_marked(recording.cmcr)
    with open_validated(recording.cmcr) as f, guard_read(recording.cmcr, "/x"):
        if "x" not in f:
            raise FormatError("dataset is missing", path=recording.cmcr, obj="/x")
        values = f["x"][()]
    with create_atomic(output, overwrite=True) as out:
        out["sum"] = np.asarray(values.sum())
        out.attrs["pid"] = os.getpid()
    return {"sum": float(values.sum()), "pid": os.getpid()}


LINGER_SUFFIX = ".linger"


def linger_marker(cmcr: Path) -> Path:
    return cmcr.with_name(cmcr.name + LINGER_SUFFIX)


def outlive_the_pool_job(recording, output, config):
    """``sum_job`` whose marked recordings outlive a pool that another worker's death broke.

    A job marked with :func:`linger_marker` ignores SIGTERM (the broken pool's) and keeps its
    claim 2 s, having said it runs (``<marker>.running``); a job marked with
    :func:`kill_once_marker` waits for that before it kills its worker.
    """
    cmcr = Path(recording.cmcr)
    lingering = linger_marker(cmcr)
    if lingering.exists():
        lingering.unlink()
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the job's own handler is put back after the job
        lingering.with_name(lingering.name + ".running").touch()
        time.sleep(2.0)
    elif kill_once_marker(cmcr).exists():
        deadline = time.monotonic() + 10.0
        while not list(cmcr.parent.glob("*.running")) and time.monotonic() < deadline:
            time.sleep(0.01)
    return sum_job(recording, output, config)


def memory_error_once_job(recording, output, config):
    marker = kill_once_marker(Path(recording.cmcr))
    if marker.exists():
        marker.unlink()
        raise MemoryError("simulated allocation failure")
    return sum_job(recording, output, config)


def buggy_job(recording, output, config):
    raise ZeroDivisionError("a deterministic bug")


def io_error_job(recording, output, config):
    raise OSError(5, "Input/output error", str(output))


def pipeline_job_killed_after_first_checkpoint(recording, output, config):
    """The real pipeline job; SIGKILLs its worker right after the first checkpoint when marked."""
    from hdmea.pipeline.batch import run_pipeline

    def maybe_die(step):
        if step.name == "load_recording":
            die_if_marked(recording.cmcr)

    report = run_pipeline(recording.cmcr, recording.cmtr, output, config, dataset_id=recording.name,
                          on_step=maybe_die)
    return dict(report.as_dict(), threads=thread_limits(), threads_per_job=config.batch.threads_per_job,
                profiling=worker_profiling_enabled(), malloc_trim=os.environ.get("MALLOC_TRIM_THRESHOLD_"),
                timers=worker_timers())


THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


def thread_limits() -> dict:
    """The thread caps this worker process runs under, as its libraries see them."""
    import numba

    limits = {name: os.environ.get(name) for name in THREAD_VARIABLES}
    limits["numba_pool"] = int(numba.config.NUMBA_NUM_THREADS)
    return limits


def thread_limits_job(recording, output, config):
    """``sum_job`` that also reports its worker's thread caps and the job's kernel threads."""
    detail = sum_job(recording, output, config)
    detail.update(thread_limits(), threads_per_job=config.batch.threads_per_job)
    return detail


#: what a process's environment holds of the waiting variables the batch gives its processes
WAIT_VARIABLES = ("OMP_WAIT_POLICY", "OPENBLAS_THREAD_TIMEOUT")


def quiet_waits_job(recording, output, config):
    """``sum_job`` that also reports the waiting variables its worker process holds (read by numpy's
    OpenBLAS and the kernels' OpenMP runtime when they loaded, before the job)."""
    detail = sum_job(recording, output, config)
    detail.update({name: os.environ.get(name) for name in WAIT_VARIABLES})
    return detail


def report_waits_check(f) -> None:
    """An input check (run by the separate reading process) that reports that process's waiting variables."""
    import json

    raise FormatError("waiting variables", path=f.filename, obj="/",
                      found=json.dumps({name: os.environ.get(name) for name in WAIT_VARIABLES}))


def worker_profiling_enabled() -> bool:
    """Whether this Dask worker's configuration has its statistical task profiler on."""
    import dask

    return bool(dask.config.get("distributed.worker.profile.enabled"))


def worker_timers() -> dict:
    """The intervals, in seconds, of this Dask worker's event-loop health check (``tick``), system
    monitor (``monitor``) and memory monitor (``memory_monitor``), as the worker runs them."""
    from distributed import get_worker

    callbacks = get_worker().periodic_callbacks
    return {name: callbacks[name].callback_time / 1000
            for name in ("tick", "monitor", "memory_monitor") if name in callbacks}


def ignore_sigterm_and_sleep(pid_file: str, seconds: float) -> None:
    """A worker's job that outlives its pool's SIGTERM: it writes its pid, then sleeps."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    Path(pid_file).write_text(str(os.getpid()))
    time.sleep(seconds)


def die_once_file_exists(pid_file: str) -> None:
    """SIGKILL this worker once ``pid_file`` exists (another worker is then running)."""
    deadline = time.monotonic() + 10.0
    while not Path(pid_file).exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(os.getpid(), signal.SIGKILL)


def leave_a_thread_behind_job(recording, output, config):
    """A job that starts a thread that never ends (the interpreter's exit joins it: its worker process cannot end
    by itself), says it runs (``<cmcr>.running``), then waits until its stop."""
    import threading

    threading.Thread(target=threading.Event().wait, name="never-ends", daemon=False).start()
    Path(str(recording.cmcr) + ".running").touch()
    threading.Event().wait()  # the stop's Preempted ends the wait


def wait_until_stopped_job(recording, output, config):
    """A job that says it runs (``<cmcr>.running`` holds its worker's process id), then waits until its stop."""
    import threading

    Path(str(recording.cmcr) + ".running").write_text(str(os.getpid()))
    threading.Event().wait()  # the stop's Preempted ends the wait

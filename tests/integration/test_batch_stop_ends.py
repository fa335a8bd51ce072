"""A stopped batch ends although a worker process of its pool cannot end by itself.

The job leaves a thread that never ends, which the worker's interpreter joins at its exit; the batch's driver
waited for that exit for ever after the job had reported its stop (``hdmea batch`` under load, about one stop
in fifty).  Its pool is now closed with a bound: the workers of a stopped batch get
:data:`hdmea.pipeline.batch.pool.STOPPED_POOL_GRACE_SECONDS` to end once their jobs reported, then are killed.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tests.integration import _batch_jobs as jobs

pytestmark = [pytest.mark.stops,
              pytest.mark.skipif(os.name == "nt", reason="SIGTERM to a process runs its handler on POSIX only")]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
def _driver(tmp_path, job: str) -> tuple[subprocess.Popen, Path]:
    """A batch of one recording on a pool of one worker process running ``job``, in a session of its own (the
    workers, children of the pool's fork server, are ended with it at the end); and the file that says the
    job runs."""
    cmcr = tmp_path / "rec0.cmcr"
    jobs.make_input(cmcr, np.arange(10.0))
    (tmp_path / "rec0.cmtr").write_bytes(b"")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    with open(tmp_path / "stdout", "w") as out, open(tmp_path / "stderr", "w") as err:
        driver = subprocess.Popen([sys.executable, "-c", DRIVER, str(cmcr), str(tmp_path / "out"), job], env=env,
                                  stdout=out, stderr=err, start_new_session=True, cwd=ROOT)
    running = tmp_path / "rec0.cmcr.running"
    while not running.exists():  # until the job runs
        assert driver.poll() is None, (tmp_path / "stderr").read_text()
        with contextlib.suppress(subprocess.TimeoutExpired):
            driver.wait(timeout=0.05)
    return driver, running


def _end(driver: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(driver.pid, signal.SIGKILL)
    driver.wait()


DRIVER = textwrap.dedent(
    """
    import sys
    from hdmea.pipeline.batch import run_batch
    from hdmea.pipeline.batch.preemption import stop_on_signals
    from hdmea.pipeline.batch.recordings import Recording
    from tests.integration import _batch_jobs as jobs

    with stop_on_signals():
        summary = run_batch([Recording.from_paths(sys.argv[1])], None, sys.argv[2], workers=1,
                            job=getattr(jobs, sys.argv[3]), show_progress=False, verify_inputs=False)
    print("stopped by", summary.stopped_by, [r.status for r in summary.results], flush=True)
    """
)


def test_a_stopped_batch_ends_when_a_worker_cannot_end_by_itself(tmp_path):
    driver, _ = _driver(tmp_path, "leave_a_thread_behind_job")
    try:
        driver.send_signal(signal.SIGTERM)
        try:  # a bound, not a wait on time: before the fix the driver never ended
            driver.wait(timeout=120)
        except subprocess.TimeoutExpired:
            pytest.fail("the stopped batch did not end: " + (tmp_path / "stderr").read_text())
    finally:
        _end(driver)
    out, err = (tmp_path / "stdout").read_text(), (tmp_path / "stderr").read_text()
    assert driver.returncode == 0, err
    assert out.strip() == "stopped by SIGTERM ['preempted']", (out, err)
    assert "Traceback" not in err, err


def _ends_within(pid: int, seconds: float) -> bool:
    """Whether process ``pid`` (not a child of this one) ends within ``seconds``: waits on its pidfd."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return bool(select.select([fd], [], [], seconds)[0])  # readable once the process has ended
    finally:
        os.close(fd)


@pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="waits on a process's pidfd (Linux)")
def test_a_worker_whose_driver_was_killed_stops_its_job_and_ends(tmp_path):
    """A driver that ends without ending its pool (killed; a stop that cut its pool's shutdown short) left its
    worker waiting for ever for work: stopped ``hdmea batch`` runs under load left about one in fifteen."""
    driver, running = _driver(tmp_path, "wait_until_stopped_job")
    worker = int(running.read_text())
    try:
        os.kill(driver.pid, signal.SIGKILL)  # the driver alone, not its workers
        driver.wait()
        assert _ends_within(worker, 60.0), "the worker of a killed driver still runs"  # before: for ever
    finally:
        _end(driver)


def test_passing_a_stop_on_returns_when_a_worker_of_the_pool_has_died(tmp_path):
    """A SIGTERM to the process group ends an idle worker (its own handling is over) before the driver passes
    the stop on; the driver's multiprocessing Event.set() then waited for that dead worker to wake, for ever:
    the hang of about one stopped ``hdmea batch`` in forty under load."""
    import threading

    from hdmea.pipeline.batch.executors import _process_pool

    pool = _process_pool(1)
    try:
        worker = pool.submit(os.getpid).result(timeout=120)
        os.kill(worker, signal.SIGKILL)  # idle, its stop watch waiting for the driver
        assert _ends_within(worker, 60.0)
        told = threading.Thread(target=pool.stop_jobs, args=("SIGTERM",), daemon=True)
        told.start()
        told.join(60.0)  # a bound: before the fix it never returned
        assert not told.is_alive(), "passing the stop on waited for a dead worker"
    finally:
        pool.close(stopped=True)

"""A stopped batch ends although a worker process of its pool cannot end by itself.

The job leaves a thread that never ends, which the worker's interpreter joins at its exit; the batch's driver
waited for that exit for ever after the job had reported its stop (``hdmea batch`` under load, about one stop
in fifty).  Its pool is now closed with a bound: the workers of a stopped batch get
:data:`hdmea.pipeline.batch.pool.STOPPED_POOL_GRACE_SECONDS` to end once their jobs reported, then are killed.
"""

from __future__ import annotations

import contextlib
import os
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
DRIVER = textwrap.dedent(
    """
    import sys
    from hdmea.pipeline.batch import run_batch
    from hdmea.pipeline.batch.preemption import stop_on_signals
    from hdmea.pipeline.batch.recordings import Recording
    from tests.integration import _batch_jobs as jobs

    with stop_on_signals():
        summary = run_batch([Recording.from_paths(sys.argv[1])], None, sys.argv[2], workers=1,
                            job=jobs.leave_a_thread_behind_job, show_progress=False, verify_inputs=False)
    print("stopped by", summary.stopped_by, [r.status for r in summary.results], flush=True)
    """
)


def test_a_stopped_batch_ends_when_a_worker_cannot_end_by_itself(tmp_path):
    cmcr = tmp_path / "rec0.cmcr"
    jobs.make_input(cmcr, np.arange(10.0))
    (tmp_path / "rec0.cmtr").write_bytes(b"")
    running = tmp_path / "rec0.cmcr.running"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    out_file, err_file = tmp_path / "stdout", tmp_path / "stderr"
    with open(out_file, "w") as out, open(err_file, "w") as err:
        # a session of its own: the workers (children of the pool's fork server) are ended with it below
        driver = subprocess.Popen([sys.executable, "-c", DRIVER, str(cmcr), str(tmp_path / "out")], env=env,
                                  stdout=out, stderr=err, start_new_session=True, cwd=ROOT)
    try:
        while not running.exists():  # the job runs: its worker has started the thread that never ends
            assert driver.poll() is None, err_file.read_text()
            try:
                driver.wait(timeout=0.05)
            except subprocess.TimeoutExpired:
                pass
        driver.send_signal(signal.SIGTERM)
        # a bound, not a wait on time: before the fix the driver never ended
        try:
            driver.wait(timeout=120)
        except subprocess.TimeoutExpired:
            pytest.fail("the stopped batch did not end: " + err_file.read_text())
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
    out, err = out_file.read_text(), err_file.read_text()
    assert driver.returncode == 0, err
    assert out.strip() == "stopped by SIGTERM ['preempted']", (out, err)
    assert "Traceback" not in err, err

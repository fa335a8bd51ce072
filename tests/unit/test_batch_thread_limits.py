"""A batch worker caps the thread pools of libraries already loaded (threadpoolctl), not only the environment."""

from __future__ import annotations

import json
import subprocess
import sys


def test_worker_limits_loaded_blas_and_openmp_pools(child_env):
    code = (
        "import json, numpy, threadpoolctl\n"
        "from hdmea.pipeline.batch.workers import _limit_loaded_libraries\n"
        "before = threadpoolctl.threadpool_info()\n"
        "_limit_loaded_libraries(1)\n"
        "after = threadpoolctl.threadpool_info()\n"
        "print(json.dumps([[p['internal_api'], p['num_threads']] for p in after]))\n"
    )
    env = {k: v for k, v in child_env.items() if not k.endswith(("NUM_THREADS", "MAX_THREADS"))}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120,
                          check=True)
    pools = json.loads(done.stdout)
    assert pools, "numpy's BLAS is seen by threadpoolctl"
    assert all(threads == 1 for _api, threads in pools), pools

"""Hooks that hold a job at a known moment (right after its first step, at an import) until a stop ends it.

A test that stops a real ``hdmea`` process once its log says ``load_recording``
is done races the job: the later steps of the suite's small recordings take a
few hundred milliseconds (about 0.2 s for ``hdmea run`` on 4 units), and on a
loaded 2-core machine the signal can arrive after the job has finished (it then
exits 0, with nothing to stop).  With the hook on the job's Python path (as
``sitecustomize``, imported at start-up) the job waits inside that log line,
checking for a stop every 10 ms, so the stop always lands in a running step.
"""

from __future__ import annotations

import os
from pathlib import Path

#: the text of the ``sitecustomize`` module
HOLD_AFTER_LOAD = '''
import logging, sys, time


class _HoldAfterLoad(logging.Handler):
    def emit(self, record):
        if record.getMessage().startswith("load_recording done"):
            from hdmea.pipeline.batch.preemption import raise_if_stopped

            print("test hook: job held after load_recording until a signal", file=sys.stderr, flush=True)
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline:
                raise_if_stopped()  # the stop, raised into this thread or only recorded, ends the job here
                time.sleep(0.01)


logging.getLogger("hdmea.pipeline.run").addHandler(_HoldAfterLoad())
'''

#: what the hook prints when it starts holding
HELD_TEXT = "test hook: job held after load_recording"

#: the text of a ``sitecustomize`` module that holds the process at the first import of {module!r}
HOLD_AT_IMPORT = '''
import importlib.abc, sys, time


class _HoldAtImport(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == {module!r}:
            sys.meta_path.remove(self)
            print("test hook: held at the import of {module}", file=sys.stderr, flush=True)
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline:  # the stop's handler runs between two of these sleeps
                time.sleep(0.01)
        return None


sys.meta_path.insert(0, _HoldAtImport())
'''


def hold_at_import(folder: Path, env: dict[str, str], module: str) -> dict[str, str]:
    """A hook that holds the process at the first import of ``module`` (it prints :func:`held_at_text` then);
    ``env`` with its folder first on ``PYTHONPATH``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(HOLD_AT_IMPORT.format(module=module))
    return {**env, "PYTHONPATH": os.pathsep.join([str(folder), *filter(None, [env.get("PYTHONPATH")])])}


def held_at_text(module: str) -> str:
    return f"test hook: held at the import of {module}"


def hold_after_load(folder: Path, env: dict[str, str]) -> dict[str, str]:
    """Write the hook into ``folder`` (created); ``env`` with the folder first on ``PYTHONPATH``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(HOLD_AFTER_LOAD)
    return {**env, "PYTHONPATH": os.pathsep.join([str(folder), *filter(None, [env.get("PYTHONPATH")])])}

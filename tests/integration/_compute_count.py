"""A ``sitecustomize`` hook that records every computation of a recording, in any process.

Each time a pipeline step finishes for a recording, the process appends
``<recording> <pid> <step>`` to the file named by ``HDMEA_TEST_COMPUTE_LOG`` (one
``O_APPEND`` write per line, so lines of processes side by side never mix).
After ``load_recording`` (the first step of every computation) it waits
``HDMEA_TEST_COMPUTE_PAUSE`` seconds and, when ``HDMEA_TEST_COMPUTE_GATE`` names a
file, until that file exists: long enough for another batch to reach the same
recording while this one computes it.  The count comes from the steps'
own log, not from the batch's claims, markers or summaries that it checks.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

#: A batch configuration naming each recording's stimulus file beside it.
BATCH_CONFIG = '[stimulus]\nfile = "{dir}/{name}.stimulus.json"\n'


def copies_of_one_recording(tmp_path_factory, names) -> tuple[Path, Path]:
    """A folder of small synthetic recordings (one, copied under each of ``names``) and its batch
    configuration: the batches of the tests share one input, so a count of computations is per name."""
    from hdmea.synthetic import generate_recording

    made = tmp_path_factory.mktemp("made")
    generate_recording(made, "tiny", n_units=3, seed=5)
    src = tmp_path_factory.mktemp("recordings")
    for name in names:
        for suffix in (".cmcr", ".cmtr", ".stimulus.json"):
            shutil.copyfile(made / f"tiny{suffix}", src / f"{name}{suffix}")
    config = src / "batch.toml"
    config.write_text(BATCH_CONFIG)
    return src, config

HOOK = '''
import logging, os, re, time


class _CountComputations(logging.Handler):
    def emit(self, record):
        found = re.match(r"(\\w+) done in ", record.getMessage())
        if found is None:
            return
        from hdmea.progress import current_recording

        name = current_recording()
        if name is None:  # a worker's warm-up on its own synthetic recording
            return
        fd = os.open(os.environ["HDMEA_TEST_COMPUTE_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{name} {os.getpid()} {found.group(1)}\\n".encode())
        finally:
            os.close(fd)
        if found.group(1) != "load_recording":
            return
        time.sleep(float(os.environ.get("HDMEA_TEST_COMPUTE_PAUSE", "0")))
        gate = os.environ.get("HDMEA_TEST_COMPUTE_GATE")
        deadline = time.monotonic() + 240
        while gate and not os.path.exists(gate) and time.monotonic() < deadline:
            time.sleep(0.01)


_runner = logging.getLogger("hdmea.pipeline.run")
_runner.addHandler(_CountComputations())
_runner.setLevel(logging.INFO)
'''


def count_computations(folder: Path, env: dict[str, str], log: Path, pause: float = 0.0) -> dict[str, str]:
    """Write the hook into ``folder``; ``env`` with it first on ``PYTHONPATH`` and the log and pause set."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(HOOK)
    return {**env, "PYTHONPATH": os.pathsep.join([str(folder), *filter(None, [env.get("PYTHONPATH")])]),
            "HDMEA_TEST_COMPUTE_LOG": str(log), "HDMEA_TEST_COMPUTE_PAUSE": str(pause)}


def steps_done(log: Path) -> list[tuple[str, int, str]]:
    """``(recording, pid, step)`` of every step that finished so far."""
    if not log.exists():
        return []
    return [(name, int(pid), step) for name, pid, step in
            (line.split() for line in log.read_text().splitlines() if line)]


def computations(log: Path) -> list[tuple[str, int]]:
    """``(recording, pid)`` of every computation started so far (its first step done)."""
    return [(name, pid) for name, pid, step in steps_done(log) if step == "load_recording"]

"""Instruction counts of code regions under Valgrind's callgrind: cost figures the machine's load cannot move.

A cost of a few percent (the checksums' share of a save or a load) is smaller
than what this machine's CPU time does from one run to the next: a second
process, a disk stall or the page cache move a 0.3 s save by 5-10%, so two runs
of the same code can give verdicts on both sides of a 5% goal.  The number of
instructions a region executes does not depend on the load: it changes by a
few hundredths of a percent between runs (garbage-collector timing, hash
seeds), so a cost measured in instructions says the same thing on a quiet and
on a busy machine.  The work these figures cover (digests, manifest, checks)
is CPU work on data already in memory, so instructions are its measure; the
rows still report the CPU seconds of the same code beside them.

How it works: a script runs under ``valgrind --tool=callgrind
--instr-atstart=no`` (untimed parts, imports and set-up, run uninstrumented at
a few times native speed); :func:`region` switches instrumentation on, zeroes
the counters, runs its block and dumps the counters with the region's label
(callgrind's client requests, from a small C helper compiled on first use
with the system's compiler and Valgrind's headers).  :func:`count` returns every
region's instruction count by label.  Outside Valgrind :func:`region` only
runs its block.

:func:`available` is False without ``valgrind``, a C compiler or
``valgrind/callgrind.h`` (Debian: ``valgrind``); callers then fall back to CPU
seconds.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterator

__all__ = ["available", "region", "count", "cost", "spread", "InstructionCountError"]

_HELPER_ENV = "H5STREAM_BENCH_CALLGRIND_HELPER"

_HELPER_SOURCE = r"""
#include <valgrind/valgrind.h>
#include <valgrind/callgrind.h>
int h5s_cg_running(void) { return RUNNING_ON_VALGRIND; }
void h5s_cg_start(void) { CALLGRIND_START_INSTRUMENTATION; CALLGRIND_ZERO_STATS; }
void h5s_cg_stop(const char *label) { CALLGRIND_DUMP_STATS_AT(label); CALLGRIND_STOP_INSTRUMENTATION; }
"""

_TRIGGER = re.compile(r"^desc: Trigger: Client Request: (.*)$", re.M)
_TOTALS = re.compile(r"^(?:totals|summary): (\d+)", re.M)


class InstructionCountError(RuntimeError):
    """A script run under callgrind failed or dumped no region."""


def _compiler() -> str | None:
    return os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")


@functools.lru_cache(maxsize=1)
def helper_library() -> Path | None:
    """The compiled client-request helper (built once per source text), or None when it cannot be built."""
    compiler = _compiler()
    if shutil.which("valgrind") is None or compiler is None:
        return None
    tag = hashlib.sha256(_HELPER_SOURCE.encode()).hexdigest()[:12]
    target = Path(tempfile.gettempdir()) / f"h5stream-bench-callgrind-{os.getuid()}-{tag}.so"
    if target.exists():
        return target
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "helper.c"
        source.write_text(_HELPER_SOURCE)
        built = Path(tmp) / "helper.so"
        result = subprocess.run([compiler, "-O2", "-shared", "-fPIC", "-o", str(built), str(source)],
                                capture_output=True, text=True)
        if result.returncode != 0:  # no valgrind/callgrind.h
            return None
        shutil.move(str(built), str(target))
    return target


def available() -> bool:
    """True when regions can be counted here (valgrind, a C compiler and Valgrind's headers)."""
    return helper_library() is not None


@functools.lru_cache(maxsize=1)
def _loaded() -> ctypes.CDLL | None:
    path = os.environ.get(_HELPER_ENV)
    if not path:
        return None
    lib = ctypes.CDLL(path)
    lib.h5s_cg_stop.argtypes = [ctypes.c_char_p]
    return lib if lib.h5s_cg_running() else None


@contextlib.contextmanager
def region(label: str) -> Iterator[None]:
    """Count the block's instructions under the label (inside :func:`count`'s run; else just run it)."""
    lib = _loaded()
    if lib is None:
        yield
        return
    lib.h5s_cg_start()
    try:
        yield
    finally:
        lib.h5s_cg_stop(label.encode())


def count(script: str, *, timeout: float = 3600.0, paths: tuple[str, ...] = ()) -> dict[str, list[int]]:
    """Run ``script`` (Python source) under callgrind; label -> instruction counts of its regions, in order.

    The script runs with this repository's root on ``sys.path`` (it can import
    ``benchmarks``), then ``paths`` (for example another tree's ``src``), and ``PYTHONHASHSEED=0``.
    """
    helper = helper_library()
    if helper is None:
        raise InstructionCountError("instruction counts need valgrind, a C compiler and valgrind/callgrind.h")
    root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ, PYTHONHASHSEED="0", **{_HELPER_ENV: str(helper)})
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, *paths, env.get("PYTHONPATH")) if p)
    with tempfile.TemporaryDirectory() as out:
        try:
            result = subprocess.run(
                ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}/cg.%p",
                 sys.executable, "-c", script],
                capture_output=True, text=True, env=env, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise InstructionCountError(f"script under callgrind still running after {timeout:.0f} s") from exc
        if result.returncode != 0:
            raise InstructionCountError(f"script under callgrind exited with {result.returncode}: "
                                        f"{result.stderr[-2000:]}")
        counts: dict[str, list[int]] = {}
        dumps = sorted(Path(out).glob("cg.*.*"), key=lambda p: int(p.name.rsplit(".", 1)[1]))
        for dump in dumps:
            text = dump.read_text(errors="replace")
            label, total = _TRIGGER.search(text), _TOTALS.search(text)
            if label is None or total is None:
                continue
            counts.setdefault(label.group(1), []).append(int(total.group(1)))
    if not counts:
        raise InstructionCountError("the script under callgrind dumped no region")
    return counts


def cost(on: list[int], off: list[int]) -> float:
    """The relative cost of ``on`` over ``off`` from their smallest counts (0.02: 2% more instructions)."""
    return min(on) / min(off) - 1.0


def spread(counts: list[int]) -> float:
    """How far apart a side's counts are: (largest - smallest) / smallest."""
    return max(counts) / min(counts) - 1.0

"""Run a format's mutations in reader processes and collect one outcome per mutation.

The plan is split into ``workers`` shards read by concurrent processes.  When a
process dies (a crash of libhdf5: a signal or a non-zero exit) the mutation it was
reading is counted as ``crash`` and a new process goes on with the next one; a
read still running after ``hang_seconds``, or ten times the child's own timed read of the
unmutated file when that is longer (libhdf5 looping on a damaged file, not a busy machine), is
ended by the child's faulthandler watchdog and counted as ``hang`` the same way, with
the innermost Python frame it was stuck in.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

from tests.fuzz._mutations import Mutation

OUTCOMES = ("identical", "typed", "raw", "crash", "hang", "warned", "silent")
REPO = Path(__file__).resolve().parents[2]


@dataclasses.dataclass
class FuzzReport:
    format: str
    mutations: list[Mutation]
    outcomes: dict[int, dict]  # mutation index -> outcome record
    seconds: float = 0.0

    @property
    def seeds(self) -> list[int]:
        return sorted({m.seed for m in self.mutations})

    def count(self, outcome: str, kind: str | None = None) -> int:
        return sum(1 for m in self.mutations if self.outcomes[m.index]["outcome"] == outcome
                   and (kind is None or m.kind == kind))

    def row(self) -> dict[str, int]:
        return {"mutations": len(self.mutations), **{o: self.count(o) for o in OUTCOMES}}

    def examples(self, outcome: str, n: int = 5) -> list[str]:
        out = []
        for m in self.mutations:
            record = self.outcomes[m.index]
            if record["outcome"] == outcome:
                detail = record.get("difference") or f"{record.get('error')} at {record.get('where', '?')}: " \
                                                      f"{record.get('message', '')[:200]}"
                out.append(f"#{m.index} {m.describe()}: {detail}")
                if len(out) == n:
                    break
        return out

    def by_kind(self) -> dict[str, collections.Counter]:
        table: dict[str, collections.Counter] = {}
        for m in self.mutations:
            table.setdefault(m.kind, collections.Counter())[self.outcomes[m.index]["outcome"]] += 1
        return table


def _child_env() -> dict[str, str]:
    paths = [str(REPO), *(p for p in sys.path if p)]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "PYTHONFAULTHANDLER": "1"}


#: a Python line calling libhdf5 itself through the engine's direct bindings (``lib.H5Aread(...)``), or a
#: compiled kernel that does (an object's attributes: ``lib.read_plain(...)``; a group's links and plain
#: datasets in the open-time scan: ``members(gid.id, ...)``): faulthandler shows no frame inside them
_DIRECT_CALL = re.compile(r"\blib\.(H5\w+|read_plain)\(|\bmembers\(gid\.id,")


def inside_libhdf5(where: str) -> bool:
    """Whether a hang's frame ("file:line in function") is a call into libhdf5: an h5py frame, or a line of
    the engine that calls libhdf5 directly (h5stream.batch_attrs), whose loop is the library's."""
    if where.startswith("h5py/"):
        return True
    match = re.match(r"(h5stream/[\w/]+\.py):(\d+) in ", where)
    if match is None:
        return False
    source = Path(__file__).resolve().parents[2] / "src" / match.group(1)
    try:
        line = source.read_text().splitlines()[int(match.group(2)) - 1]
    except (OSError, IndexError):
        return False
    return bool(_DIRECT_CALL.search(line))


def _hang_frame(stderr_tail: str) -> str:
    """Where faulthandler's dump found the reader: the innermost Python frame ("file:line in function").

    Every thread is dumped; a thread inside h5py (a libhdf5 call) is the one that hangs
    or crashed, so its frame is chosen when there is one, else the first thread's.
    """
    innermost = []
    for block in stderr_tail.split("most recent call first")[1:]:
        frames = re.findall(r'File "([^"]+)", line (\d+) in (\S+)', block)
        if frames:
            path, line, function = frames[0]
            innermost.append(f"{path.rsplit('/site-packages/', 1)[-1].rsplit('/src/', 1)[-1]}:{line} in {function}")
    if not innermost:
        return "?"
    return next((where for where in innermost if where.startswith("h5py/")), innermost[0])


def _run_shard(fmt: str, originals: Path, workdir: Path, shard: list[Mutation], hang_seconds: float,
               startup_timeout: float, outcomes: dict[int, dict]) -> None:
    pending = list(shard)
    attempt = 0
    while pending:
        attempt += 1
        spec = workdir / f"spec-{attempt}.json"
        spec.write_text(json.dumps({"format": fmt, "originals": str(originals), "workdir": str(workdir / "files"),
                                    "hang_seconds": hang_seconds,
                                    "mutations": [dataclasses.asdict(m) for m in pending]}))
        stderr_path = workdir / f"stderr-{attempt}.txt"
        with open(stderr_path, "wb") as stderr:
            proc = subprocess.Popen([sys.executable, "-m", "tests.fuzz._child", str(spec)], stdout=subprocess.PIPE,
                                    stderr=stderr, env=_child_env(), cwd=REPO, text=True)
        lines: queue.Queue = queue.Queue()

        def pump(stream=proc.stdout, lines=lines) -> None:
            for line in stream:
                lines.put(line)
            lines.put(None)

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        ready = False
        limit = wall = hang_seconds
        while pending:
            try:
                # the child's own watchdog ends a hung read; this one is a backstop
                line = lines.get(timeout=startup_timeout if not ready else wall + 60)
            except queue.Empty:
                proc.kill()
                proc.wait()
                proc.stdout.close()
                raise RuntimeError(f"fuzz reader of {fmt} stopped answering (mutation {pending[0].index})")
            if line is None:  # the process ended before reading every mutation
                code = proc.wait()
                tail = stderr_path.read_text(errors="replace")[-3000:]
                if not ready or code == 0:
                    raise RuntimeError(f"fuzz reader of {fmt} failed outside a mutated read "
                                       f"(exit status {code}): {tail}")
                if "Timeout (" in tail or code == -signal.SIGXCPU:
                    outcomes[pending[0].index] = {"outcome": "hang", "error": "timeout",
                                                  "message": f"still reading after {limit:.1f} s of CPU time"
                                                             f" or {wall:.0f} s of waiting",
                                                  "where": _hang_frame(tail)}
                else:
                    outcomes[pending[0].index] = {"outcome": "crash", "error": f"exit status {code}",
                                                  "message": tail[-600:], "where": _hang_frame(tail)}
                pending.pop(0)
                break
            record = json.loads(line)
            if record.get("ready"):
                ready = True
                limit = max(limit, record.get("hang_seconds", 0.0))  # the child's watchdog limits
                wall = max(wall, record.get("wall_seconds", 0.0))
                continue
            assert record["index"] == pending[0].index, (record, pending[0])
            outcomes[record["index"]] = record
            pending.pop(0)
        else:
            proc.wait()
        reader.join(timeout=5)
        proc.stdout.close()


def run_mutations(fmt: str, originals: Path, workdir: Path, mutations: list[Mutation], *, workers: int = 2,
                  hang_seconds: float = 3.0, startup_timeout: float = 120.0) -> FuzzReport:
    """Read every mutation of ``fmt``'s original in ``workers`` concurrent processes; one outcome each."""
    import time

    started = time.perf_counter()
    outcomes: dict[int, dict] = {}
    failures: list[BaseException] = []

    def shard_runner(folder: Path, shard: list[Mutation]) -> None:
        try:
            _run_shard(fmt, originals, folder, shard, hang_seconds, startup_timeout, outcomes)
        except BaseException as exc:  # reported by the caller's thread
            failures.append(exc)

    threads = []
    for i in range(workers):
        folder = workdir / f"shard{i}"
        folder.mkdir(parents=True, exist_ok=True)
        threads.append(threading.Thread(target=shard_runner, args=(folder, mutations[i::workers])))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        raise failures[0]
    (workdir / "outcomes.json").write_text(json.dumps(
        [{**dataclasses.asdict(m), **outcomes.get(m.index, {})} for m in mutations], indent=0))
    missing = [m.index for m in mutations if m.index not in outcomes]
    if missing:
        raise RuntimeError(f"fuzz reader of {fmt} left mutations without an outcome: {missing[:10]}")
    return FuzzReport(fmt, mutations, outcomes, time.perf_counter() - started)

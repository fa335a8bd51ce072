"""The reader process of the fuzz tests: ``python -m tests.fuzz._child SPEC.json``.

Reads the original once through the format's public reader, then, for each planned
mutation, writes the mutated file (a new inode each time) in its own folder, reads it
through the same reader and prints one JSON line: the mutation's index and its outcome
(``identical``, ``typed``, ``raw``, ``warned`` or ``silent``, with the error or the first
difference).  ``warned``, for vendor files only: a changed result read with an
:class:`~hdmea.errors.UnusualVendorValueWarning` whose text the result keeps (the
recording stores it), so the change is reported rather than silent.  A crash of libhdf5
ends this process; faulthandler writes the stack to stderr and the parent counts the
mutation it was reading as a crash.  A read that has used ``hang_seconds`` of this process's
CPU time (libhdf5 looping on a damaged file), or that has waited ten times as long in wall time,
has its stack dumped by faulthandler, which ends the process; the parent counts it as a hang.
CPU time, not wall time: on a busy machine a read that computes slowly is not a loop.
"""

from __future__ import annotations

import faulthandler
import json
import math
import resource
import shutil
import signal
import sys
import time
import traceback
import warnings
from pathlib import Path


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class _Watchdog:
    """Ends a read that loops: the kernel sends SIGXCPU once the process has used ``cpu`` more seconds of CPU
    (RLIMIT_CPU's soft limit, moved before each read), faulthandler dumps every thread's stack and the signal's
    default action ends the process; a read that waits rather than computes is ended after ``wall`` seconds
    (faulthandler's timer, whose dump starts with "Timeout (")."""

    def __init__(self, cpu: float, wall: float) -> None:
        self.cpu, self.wall = cpu, wall
        self.soft, self.hard = resource.getrlimit(resource.RLIMIT_CPU)
        faulthandler.register(signal.SIGXCPU, all_threads=True, chain=True)

    def arm(self) -> None:
        limit = math.ceil(_cpu_seconds() + self.cpu)
        if self.hard != resource.RLIM_INFINITY:
            limit = min(limit, self.hard)
        resource.setrlimit(resource.RLIMIT_CPU, (limit, self.hard))
        faulthandler.dump_traceback_later(self.wall, exit=True)

    def disarm(self) -> None:
        faulthandler.cancel_dump_traceback_later()
        resource.setrlimit(resource.RLIMIT_CPU, (self.soft, self.hard))


def _write(path: Path, content: bytes) -> None:
    path.unlink(missing_ok=True)  # a new inode: nothing cached for the old file can apply
    path.write_bytes(content)


def _keeps(value, text: str) -> bool:
    """Whether a loaded result holds ``text`` (a warning's) as one of its strings."""
    if isinstance(value, str):
        return value == text
    if isinstance(value, dict):
        return any(_keeps(v, text) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_keeps(v, text) for v in value)
    return False


def main(spec_path: str) -> int:
    faulthandler.enable()
    from h5stream.errors import H5StreamError
    from tests.fuzz._compare import difference
    from tests.fuzz._formats import FORMATS
    from tests.fuzz._mutations import TRUNCATED, Mutation, store_files

    spec = json.loads(Path(spec_path).read_text())
    fmt = FORMATS[spec["format"]]
    originals, work = Path(spec["originals"]), Path(spec["workdir"])
    work.mkdir(parents=True, exist_ok=True)
    root = work / fmt.root
    if fmt.store:  # a store a crashed reader left damaged is copied again
        shutil.rmtree(root, ignore_errors=True)
    if not root.exists():
        (shutil.copytree if (originals / fmt.root).is_dir() else shutil.copy)(originals / fmt.root, root)
        for sibling in fmt.siblings:
            shutil.copy(originals / sibling, work / sibling)
    target = root / fmt.target if fmt.target else root
    if fmt.store:  # a zarr store: each mutation damages the files it names, which are put back after the read
        files = store_files(originals / fmt.root)

        def damage(changes: dict) -> None:
            for rel, content in changes.items():
                (root / rel).unlink(missing_ok=True)
                if content is not None:
                    (root / rel).write_bytes(content)

        def apply(mutation) -> None:
            damage(mutation.apply_to_store(files))

        def restore(mutation) -> None:
            damage({rel: files[rel] for rel in mutation.apply_to_store(files)})

        largest = max(files, key=lambda rel: len(files[rel]))
        half = Mutation(-1, TRUNCATED, 0, 0, member=largest)  # the warm-up's damage
    else:
        original = (originals / fmt.root / fmt.target if fmt.target else originals / fmt.root).read_bytes()

        def apply(mutation) -> None:
            _write(target, original[:len(original) // 2] if mutation is None else mutation.apply(original))

        def restore(mutation) -> None:
            _write(target, original)

        half = None  # the warm-up's damage: the file truncated to half
        restore(half)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the original reads without any warning
        reference = fmt.load(root)
    # The error paths' first use imports and compiles code: done here, off the hang watchdog's clock.
    apply(half)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            fmt.load(root)
        except BaseException as exc:  # noqa: BLE001 - only warming up
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
    restore(half)
    assert difference(reference, reference) is None  # imports the comparison's modules now
    # The watchdog's limit: the spec's, or ten times the CPU time of an unmutated read timed here, whichever is
    # longer; the wall-time backstop ten times that, for a read that waits.
    started = _cpu_seconds()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fmt.load(root)
    hang_seconds = max(float(spec["hang_seconds"]), 10 * (_cpu_seconds() - started))
    watchdog = _Watchdog(hang_seconds, 10 * hang_seconds)
    print(json.dumps({"ready": True, "hang_seconds": round(hang_seconds, 2), "wall_seconds": watchdog.wall}),
          flush=True)
    for item in spec["mutations"]:
        mutation = Mutation(**item)
        apply(mutation)
        result: dict = {"index": mutation.index}
        started = time.perf_counter()
        # A read past the watchdog's limits dumps every thread's stack and ends this process.
        watchdog.arm()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                loaded = fmt.load(root)
            except (KeyboardInterrupt, SystemExit):
                raise
            except H5StreamError as exc:
                result.update(outcome="typed", error=type(exc).__name__, message=str(exc)[:400])
            except BaseException as exc:  # noqa: BLE001 - an untyped exception (a Rust panic too) is counted
                tb = traceback.extract_tb(exc.__traceback__)
                frame = next((f for f in reversed(tb) if "/src/" in f.filename), tb[-1] if tb else None)
                where = f"{frame.filename.rsplit('/src/', 1)[-1]}:{frame.lineno}" if frame else "?"
                result.update(outcome="raw", error=type(exc).__name__, message=str(exc)[:400], where=where)
            else:
                watchdog.disarm()  # the watchdog times the read only
                found = difference(reference, loaded)
                kept = [str(w.message) for w in caught if w.category.__name__ == "UnusualVendorValueWarning"
                        and _keeps(loaded, str(w.message))] if found is not None and not fmt.own else []
                result.update(outcome="identical" if found is None else "warned" if kept else "silent",
                              difference=found)
                if kept:
                    result["warning"] = kept[0][:400]
        watchdog.disarm()
        restore(mutation)
        result["seconds"] = round(time.perf_counter() - started, 4)
        if caught:
            result["warnings"] = sorted({w.category.__name__ for w in caught})
        print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

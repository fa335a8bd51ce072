"""A session far larger than its memory budget and its machine's memory, with the lab's value mix: staged,
spilled, saved, reopened lazily; also checkpointed and resumed.

Each run is a fresh process (:func:`benchmarks.harness.peak_rss_mb`: its own high-water mark, VmHWM) that
stages a session the way the pipeline does, in its order: every unit's spike train (``add_units``), the
spike sectioning of every unit into ``TRIALS`` trials (the real step, :func:`hdmea.steps.section_spike_times`:
the original's per-trial arrays and the ragged form, thousands of small values), then the large
raw-derived arrays, ``ARRAYS_PER_UNIT`` per unit of ``ARRAY_MB`` each (``add_feature``; their data are made
outside the timed calls), past the memory budget, so they spill.  Then it saves and the saved file is
reopened lazily (``PipelineSession.load``, one unit's sectioned trials read).  Three runs:

* ``target``: the session made with its target path: the spill file lives beside the target and
  becomes it at the save;
* ``no target``: made without one: the spill file lives in the temporary folder (``TMPDIR``, a
  folder of this run) until the save to a path in another folder of the same filesystem moves it there;
* ``checkpoint``: made with its target, checkpointed (a complete copy: the spill file and the
  checkpoint are on the disk together), closed, then a second process resumes from the checkpoint
  (``PipelineSession.load``) and saves to the target (which copies it: checkpoint and target together).

The checkpoint's peer, measured in the same run: ``copy_s``, a copy of the checkpoint file's bytes (one
``copy_file_range`` call per range, then fsync) into a new file, its source cold (its pages dropped from the
cache first, ``posix_fadvise(DONTNEED)``, as they are before the resume): a checkpoint, and a save to another
path, hold a copy by nature, and a copy reads and writes every byte (with no reflink, as on ext4).  The
checkpoint run's rows state ``checkpoint_s`` and the resumed save's ``save_s`` against it beside the time
against dd.  The checkpoint reads its source, the spill file, where the copy reads the checkpoint file: the
record also holds the cold sequential read of each (``spill_read_s`` after the checkpoint, before the session
closes; ``checkpoint_read_s`` after the copy; 16 MiB reads, pages dropped first), as the same disk may serve
the bytes of two files of one size at different rates (on a virtual disk, by how they were written).

A thread of the parent samples, every 0.2 s, the bytes the files of the run's own folders hold
(``st_blocks``): ``disk_peak_gb`` is the most the run held at once beyond its inputs (there are none),
whatever else the shared disk holds.  ``dd_s`` is writing and fsyncing as many bytes as the session
staged, in the same run (``tofile`` + fsync in 256 MB pieces, as :mod:`benchmarks.suite._bounded_save`).

Goals (per run): ``peak_rss_mb`` at most ``budget_mb + 300``; ``disk_peak_gb`` at most 1.2 x the session
(the checkpoint run: 2.2 x, one copy by nature); ``staging_s + save_s`` at most 1.3 x ``dd_s``; the
checkpoint and the resumed save each at most 1.3 x ``copy_s``.  The checkpoint run's time against ``dd_s``
is stated without a goal: its ``save_s`` is the resumed save, which reads every byte of the cold checkpoint
and writes it again, a copy that ``dd_s`` (a write of bytes already in memory) does not make; the rows
against ``copy_s`` judge it.

The 50 GB runs take minutes and most of a disk: they run on request only,
``H5STREAM_BENCH_HUGE=1 python -m benchmarks --size full --only session_huge``, or
``python -m benchmarks.suite.bench_session_huge --gb 50 --checkpoint-gb 25 --json PATH``.  Without the
variable a full-size run gives no rows; the small size (a 48 MB session, 8 MB budget) runs in the suite.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import threading
import time
from pathlib import Path

import pytest

from benchmarks.harness import Row, peak_rss_mb, require_free_space, scratch_dir, write_json
from benchmarks.suite._bounded_save import _raw_write_seconds

#: The size of each read of :func:`cold_read_seconds`.
READ_BLOCK = 16 << 20

#: the budget, the size of one large array, per unit: large arrays, trials, spikes
SIZES = {"small": dict(session_mb=48, budget_mb=8, array_mb=2),
         "full": dict(session_mb=50 * 1024, budget_mb=512, array_mb=32)}
CHECKPOINT_MB = {"small": 48, "full": 25 * 1024}
ARRAYS_PER_UNIT = 4
TRIALS = 200
SPIKES = 20_000
HUGE_VARIABLE = "H5STREAM_BENCH_HUGE"
REPO = Path(__file__).resolve().parents[2]

STAGE_CODE = """
import json, os, time
import numpy as np
from hdmea.pipeline import PipelineSession, create_session
from hdmea.steps.spike_sectioning import section_spike_times

p = json.loads({params!r})
budget = p["budget_mb"] * 2**20
s = create_session("huge", hdf5_path=p["target"] if p["with_target"] else None, memory_limit=budget)
n_units, values = p["n_units"], p["array_mb"] * 2**20 // 8
rng = np.random.default_rng(0)
duration = 30 * 60 * 20000
trains = {{f"unit_{{u:04d}}": np.sort(rng.integers(0, duration, {spikes})).astype(np.uint64) for u in range(n_units)}}
trial = duration // {trials}
sections = np.stack([np.arange({trials}) * trial, np.arange({trials}) * trial + trial - 20], axis=1).astype(np.int64)
staging_s = 0.0
t0 = time.perf_counter()
s.add_metadata({{"sampling_rate": 20000.0}})
s.add_units({{u: {{"spike_times": t, "row": i % 64, "col": i // 64}} for i, (u, t) in enumerate(trains.items())}})
s.add_stimulus(section_times={{"step_up_5s_5i_30x": sections}})
s.mark_step_complete("load_recording")
s.mark_step_complete("add_section_time")
section_spike_times(session=s)
staging_s += time.perf_counter() - t0
del trains
base = np.arange(values, dtype=np.float64)
for i in range(n_units):
    for k in range({arrays}):
        data = base + float(i * {arrays} + k)  # fresh data per array, made outside the timed calls
        t0 = time.perf_counter()
        s.add_feature(f"unit_{{i:04d}}", f"raw_derived_{{k}}", {{"data": data}})
        staging_s += time.perf_counter() - t0
        del data
staged, spilled = s.staged_bytes, s.spilled_bytes
out = {{"staging_s": staging_s, "staged": staged, "spilled": spilled}}
if p["checkpoint"]:
    t0 = time.perf_counter()
    s.checkpoint(p["checkpoint"])
    out["checkpoint_s"] = time.perf_counter() - t0
    from benchmarks.suite.bench_session_huge import cold_read_seconds
    out["spill_read_s"] = cold_read_seconds(s.spill_path)  # the checkpoint's source, read as the copy reads its own
    s.close()
else:
    t0 = time.perf_counter()
    s.save(p["target"])
    out["save_s"] = time.perf_counter() - t0
    s.close()
    t0 = time.perf_counter()
    r = PipelineSession.load(p["target"])
    trials = r.units["unit_0000"]["spike_times_sectioned"]["step_up_5s_5i_30x"]["trials_spike_times"]
    out["reopen_s"] = time.perf_counter() - t0
    out["reopened_trials"] = len(trials)
    r.close()
print(json.dumps(out))
"""

RESUME_CODE = """
import json, time
from hdmea.pipeline import PipelineSession
p = json.loads({params!r})
t0 = time.perf_counter()
s = PipelineSession.load(p["checkpoint"], memory_limit=p["budget_mb"] * 2**20)
load_s = time.perf_counter() - t0
t0 = time.perf_counter()
s.save(p["target"])
save_s = time.perf_counter() - t0
s.close()
print(json.dumps({{"resume_load_s": load_s, "resume_save_s": save_s}}))
"""


class DiskWatch:
    """The most bytes the files under ``folders`` held at once, sampled every 0.2 s on a thread."""

    def __init__(self, *folders: Path) -> None:
        self.folders, self.peak, self._stop = folders, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def held(self) -> int:
        total = 0
        for folder in self.folders:
            for root, _, files in os.walk(folder):
                for name in files:
                    try:
                        total += os.lstat(os.path.join(root, name)).st_blocks * 512
                    except FileNotFoundError:
                        pass
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.held())
            self._stop.wait(0.2)

    def __enter__(self) -> DiskWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.held())


def drop_cached(path: Path) -> None:
    """Drop the pages of ``path`` (written and fsynced) from the page cache: the next read comes from the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        if hasattr(os, "posix_fadvise"):
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def cold_read_seconds(path: str | os.PathLike) -> float:
    """The seconds a sequential read of all of ``path`` takes, its pages dropped from the cache first
    (:func:`drop_cached`), in reads of :data:`READ_BLOCK` bytes."""
    drop_cached(Path(path))
    buffer = bytearray(READ_BLOCK)
    start = time.perf_counter()
    with open(path, "rb", buffering=0) as fh:
        while fh.readinto(buffer):
            pass
    return time.perf_counter() - start


def copy_seconds(source: Path, copy: Path) -> float:
    """A copy of ``source``'s bytes into the new file ``copy``, its source cold: ``copy_file_range`` over the
    whole range (the kernel's copy, in as few calls as it takes), then fsync; the copy is removed."""
    drop_cached(source)
    start = time.perf_counter()
    fd, out = os.open(source, os.O_RDONLY), os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        size, done = os.fstat(fd).st_size, 0
        while done < size:
            n = os.copy_file_range(fd, out, size - done, done, done)
            if n == 0:
                raise OSError(f"{source} ended at byte {done} of {size}")
            done += n
        os.fsync(out)
    finally:
        os.close(out)
        os.close(fd)
    seconds = time.perf_counter() - start
    copy.unlink()
    return seconds


def _child_env(tmp: Path) -> dict:
    # the child imports what this run imports (the source tree first, with its compiled kernels)
    return {"PYTHONPATH": os.pathsep.join(p for p in sys.path if p), "TMPDIR": str(tmp)}


def measure(kind: str, session_mb: int, budget_mb: int, array_mb: int, work: Path) -> dict:
    """One run (``target``, ``no target`` or ``checkpoint``) of a session of ``session_mb``: its record."""
    n_units = max(1, session_mb // (array_mb * ARRAYS_PER_UNIT))
    out_dir, tmp = work / "out", work / "tmp"
    for folder in (out_dir, tmp):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    target = out_dir / "huge.h5"
    params = {"with_target": kind != "no target", "target": str(target), "budget_mb": budget_mb,
              "array_mb": array_mb, "n_units": n_units,
              "checkpoint": str(work / "tmp" / "huge.checkpoint.h5") if kind == "checkpoint" else None}
    code = STAGE_CODE.format(params=json.dumps(params), spikes=SPIKES, trials=TRIALS, arrays=ARRAYS_PER_UNIT)
    record = {"run": kind, "session_gb": None, "budget_mb": budget_mb, "units": n_units,
              "arrays_per_unit": ARRAYS_PER_UNIT, "array_mb": array_mb, "trials_per_unit": TRIALS}
    with DiskWatch(out_dir, tmp) as watch:
        peak, text = peak_rss_mb(code, env=_child_env(tmp))
        found = json.loads(text.strip().splitlines()[-1])
        record["peak_rss_mb"] = peak
        if kind == "checkpoint":
            drop_cached(Path(params["checkpoint"]))  # the resume reads it from the disk, as its peer below
            peak2, text = peak_rss_mb(RESUME_CODE.format(params=json.dumps(params)), env=_child_env(tmp))
            found.update(json.loads(text.strip().splitlines()[-1]))
            record["resume_peak_rss_mb"] = peak2
            found["save_s"] = found["resume_save_s"]
    record.update(found)
    record["session_gb"] = found["staged"] / 2**30
    record["disk_peak_gb"] = watch.peak / 2**30
    record["file_gb"] = target.stat().st_size / 2**30
    target.unlink()
    if kind == "checkpoint":
        checkpoint = Path(params["checkpoint"])
        record["checkpoint_file_gb"] = checkpoint.stat().st_size / 2**30
        record["copy_s"] = copy_seconds(checkpoint, tmp / "copy.bin")
        record["checkpoint_read_s"] = cold_read_seconds(checkpoint)  # (after the copy, which it would warm)
    shutil.rmtree(out_dir)
    shutil.rmtree(tmp)
    raw = work / "raw.bin"
    record["dd_s"] = _raw_write_seconds(int(found["staged"]), raw)
    raw.unlink()
    record["load_1min"] = os.getloadavg()[0]
    return record


def record_rows(record: dict) -> list[Row]:
    """The rows of one run's record: memory, disk, time (the record's fields travel with each row)."""
    gb = record["session_gb"]
    name = f"session {gb:.0f} GB" + ("" if record["run"] == "target" else f", {record['run']}")
    disk_goal = 2.2 if record["run"] == "checkpoint" else 1.2
    total = record["staging_s"] + record["save_s"]
    fields = {k: record[k] for k in ("session_gb", "budget_mb", "peak_rss_mb", "disk_peak_gb", "staging_s",
                                      "save_s", "dd_s", "checkpoint_s", "copy_s", "spill_read_s", "checkpoint_read_s")
              if k in record}
    details = json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in record.items()})
    budget = record["budget_mb"]
    rows = [
        Row(name, "budget + 300 MB", budget + 300, record["peak_rss_mb"], "MB",
            record["peak_rss_mb"] / (budget + 300), 1.0, lower_is_better=True, details=details, fields=fields),
        Row(f"{name} disk", "the session's size", gb, record["disk_peak_gb"], "GB", record["disk_peak_gb"] / gb,
            disk_goal, lower_is_better=True, details="the most its own files held at once", fields=fields),
        Row(f"{name} time", "dd: write + fsync of the same bytes", record["dd_s"], total, "s",
            total / record["dd_s"], None if record["run"] == "checkpoint" else 1.3, lower_is_better=True,
            details=f"staging {record['staging_s']:.1f} s + save {record['save_s']:.1f} s", fields=fields),
    ]
    if "copy_s" in record:
        copy_s = record["copy_s"]
        peer = "a cold copy of the checkpoint's bytes (copy_file_range + fsync)"
        rows += [
            Row(f"{name} checkpoint", peer, copy_s, record["checkpoint_s"], "s", record["checkpoint_s"] / copy_s,
                1.3, lower_is_better=True, details=f"checkpoint {record['checkpoint_s']:.1f} s, copy {copy_s:.1f} s; "
                f"cold read of its source (the spill) {record['spill_read_s']:.1f} s, of the checkpoint file "
                f"{record['checkpoint_read_s']:.1f} s", fields=fields),
            Row(f"{name} resumed save", peer, copy_s, record["save_s"], "s", record["save_s"] / copy_s, 1.3,
                lower_is_better=True, details=f"resumed save {record['save_s']:.1f} s, copy {copy_s:.1f} s",
                fields=fields),
        ]
    return rows


def run(size: str = "small", work: Path | None = None, *, session_mb: int | None = None,
        checkpoint_mb: int | None = None) -> list[Row]:
    if size == "full" and os.environ.get(HUGE_VARIABLE) != "1" and session_mb is None:
        return []  # on request only (see the module's text)
    spec = dict(SIZES[size])
    if session_mb is not None:
        spec["session_mb"] = session_mb
    ckpt_mb = checkpoint_mb if checkpoint_mb is not None else CHECKPOINT_MB[size]
    rows = []
    with scratch_dir("h5stream-huge-") as d:
        work = Path(work or d)
        require_free_space(work, int(spec["session_mb"] * 2**20 * 1.1), "the session benchmark",
                           "pass a smaller --gb")
        for kind in ("target", "no target"):
            rows += record_rows(measure(kind, spec["session_mb"], spec["budget_mb"], spec["array_mb"], work))
        if ckpt_mb:
            require_free_space(work, int(ckpt_mb * 2**20 * 2.1), "the checkpoint run", "pass a smaller --checkpoint-gb")
            rows += record_rows(measure("checkpoint", ckpt_mb, spec["budget_mb"], spec["array_mb"], work))
    return rows


@pytest.mark.campaign  # three sessions in fresh processes, and dd: tens of seconds
def test_bench_session_huge_small():
    rows = run("small")
    assert len(rows) == 11
    for row in rows:
        assert row.fields["peak_rss_mb"] > 0 and row.fields["dd_s"] > 0 and row.fields["session_gb"] > 0.04
    checkpoint = [row for row in rows if "checkpoint" in row.benchmark]
    assert [row.benchmark.rsplit(" ", 2)[-2:] for row in checkpoint[-2:]] == [["checkpoint", "checkpoint"],
                                                                              ["resumed", "save"]]
    assert all(row.fields["copy_s"] > 0 and row.peer_value == row.fields["copy_s"] for row in checkpoint[-2:])
    assert all(row.fields["spill_read_s"] > 0 and row.fields["checkpoint_read_s"] > 0 for row in checkpoint[-2:])
    assert "cold read of its source (the spill)" in checkpoint[-2].details
    # the saved file and the sessions were checked in the child: a lazy reopen saw every trial
    assert all("\"reopened_trials\": 200" in r.details for r in rows[:6:3])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gb", type=float, default=50.0, help="the session's size (GB) of the first two runs")
    parser.add_argument("--checkpoint-gb", type=float, default=25.0, help="the checkpoint run's session (0: none)")
    parser.add_argument("--json", type=Path, help="write the table here")
    args = parser.parse_args(argv)
    from benchmarks.harness import format_table

    rows = run("full", session_mb=int(args.gb * 1024), checkpoint_mb=int(args.checkpoint_gb * 1024))
    print(format_table(rows))
    for row in rows:
        if row.unit == "MB":
            print(row.benchmark, row.details)
    if args.json:
        import subprocess

        commit = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=REPO, capture_output=True,
                                text=True).stdout.strip()
        write_json(rows, args.json, commit=commit, size="full", module="session_huge",
                   command=" ".join(["python -m benchmarks.suite.bench_session_huge", *(argv or sys.argv[1:])]),
                   load_1min=os.getloadavg()[0])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

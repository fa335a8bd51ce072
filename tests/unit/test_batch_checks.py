"""The batch's input pre-check dealt out to several reading processes (the reading itself replaced)."""

from __future__ import annotations

from pathlib import Path

import pytest

import hdmea.io.mcs as mcs
from hdmea.errors import RecordingFormatError
from hdmea.pipeline.batch import Recording, prechecks


def _recordings(tmp_path: Path, n: int) -> list[Recording]:
    return [Recording(f"r{i}", tmp_path / f"r{i}.cmcr", tmp_path / f"r{i}.cmtr") for i in range(n)]


@pytest.mark.parametrize("processes", [1, 2, 3, 7])
def test_every_recording_is_read_once_and_every_error_kept(tmp_path, monkeypatch, processes):
    items = _recordings(tmp_path, 7)
    calls: list[list[str]] = []

    def fake_verify(recordings, **kwargs):
        names = [r.name for r in recordings]
        calls.append(names)
        return {name: RecordingFormatError("bad", path=str(tmp_path / f"{name}.cmtr"), hint="restore it")
                for name in names if name in ("r1", "r4")}

    monkeypatch.setattr(mcs, "verify_recordings", fake_verify)
    todo = [0, 1, 2, 4, 5, 6]  # r3 finished already: not read
    out = prechecks._unverified_inputs(items, todo, processes=processes)
    assert len(calls) == min(processes, len(todo))
    assert sorted(name for names in calls for name in names) == ["r0", "r1", "r2", "r4", "r5", "r6"]
    assert sorted(out) == [1, 4]
    for i in (1, 4):
        (problem,) = out[i]
        assert problem.recording == f"r{i}" and problem.kind == "data"
        assert problem.path == tmp_path / f"r{i}.cmtr" and "restore it" in problem.hint
        # plain words and the error's own message; the class name only in its own field
        assert problem.what == "the input file is damaged or not a recording: bad", problem.what
        assert problem.error_type == "RecordingFormatError"


def test_default_processes_follow_the_recordings_and_the_free_cores(tmp_path, monkeypatch):
    import h5stream.cores as cores

    from hdmea.pipeline.batch.prechecks import VERIFY_RECORDINGS_PER_PROCESS as PER

    calls = []
    monkeypatch.setattr(mcs, "verify_recordings", lambda recordings, **kw: calls.append(len(recordings)) or {})
    monkeypatch.setattr(cores, "free_cores", lambda: 2)
    # a handful of recordings: one reading process, whatever the cores (each process costs its start)
    prechecks._unverified_inputs(_recordings(tmp_path, 5), list(range(5)))
    assert calls == [5]
    calls.clear()
    # past PER recordings a second process, up to the free cores
    n = 3 * PER
    prechecks._unverified_inputs(_recordings(tmp_path, n), list(range(n)))
    assert sorted(calls) == [n // 2, n - n // 2]
    calls.clear()
    monkeypatch.setattr(cores, "free_cores", lambda: 1)
    prechecks._unverified_inputs(_recordings(tmp_path, n), list(range(n)))
    assert calls == [n]


def test_a_claim_held_by_another_process_is_its_own_kind_never_infrastructure(tmp_path):
    import errno as _errno

    from h5stream.errors import WriterClaimError
    from hdmea.errors import RecordingLockedError
    from hdmea.pipeline.batch import INFRASTRUCTURE, classify_error
    from hdmea.pipeline.batch.failures import HELD

    holder = {"host": "node7", "pid": 4242, "thread": 1, "time": "2026-11-26T10:00:00+00:00"}
    claim = WriterClaimError("file is already open for writing", path=tmp_path / "r.h5", holder=holder)
    locked = RecordingLockedError("File is already open for writing", path=tmp_path / "r.h5", holder=holder)
    other = WriterClaimError("held by another program", path=tmp_path / "r.h5", other_program=True)
    assert [classify_error(e) for e in (claim, locked, other)] == [HELD] * 3
    # an ordinary I/O error of the same base class stays an infrastructure error (retried)
    assert classify_error(OSError(_errno.EIO, "Input/output error")) == INFRASTRUCTURE


def test_sorting_a_workers_error_imports_nothing_and_knows_dask_types_once_dask_is_loaded(monkeypatch):
    """A stopped batch sorts its workers' errors (a pool broken by the stop): the sorting never imports
    dask.distributed (an import, or a failed one where it is not installed, held a stop past a second on a busy
    machine); its error types count once a batch loaded it (a planted ``distributed`` module here)."""
    import concurrent.futures as cf
    import sys
    import types

    from hdmea.pipeline.batch import INFRASTRUCTURE, classify_error
    from hdmea.pipeline.batch.failures import describe_error

    looked_up: list[str] = []

    class Spy:
        @staticmethod
        def find_spec(name, path=None, target=None):
            looked_up.append(name)
            return None

    for name in [n for n in sys.modules if n == "distributed" or n.startswith("distributed.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(sys, "meta_path", [Spy(), *sys.meta_path])
    assert classify_error(cf.BrokenExecutor("a worker died")) == INFRASTRUCTURE
    assert "worker died" in describe_error(cf.BrokenExecutor("a worker died"))
    assert classify_error(ValueError("a bug")) == "error"
    assert not [name for name in looked_up if name.startswith("distributed")], looked_up

    class KilledWorker(Exception):
        pass

    class CommClosedError(OSError):
        pass

    distributed, comm, core = (types.ModuleType(n) for n in ("distributed", "distributed.comm",
                                                              "distributed.comm.core"))
    distributed.KilledWorker, core.CommClosedError = KilledWorker, CommClosedError
    for module in (distributed, comm, core):
        monkeypatch.setitem(sys.modules, module.__name__, module)
    assert classify_error(KilledWorker("w1")) == INFRASTRUCTURE
    assert "worker died" in describe_error(KilledWorker("w1"))
    assert classify_error(CommClosedError("closed")) == INFRASTRUCTURE

"""The batch's small files (``.done`` markers, the summary) appear whole or not at all."""

from __future__ import annotations

import json
import os

import pytest

from h5stream.errors import WriteError
from hdmea.pipeline.batch import BatchSummary, RecordingResult, done_marker_path, read_done_marker
from hdmea.pipeline.batch.recordings import write_done_marker


def _summary(tmp_path, status="done"):
    result = RecordingResult(name="rec0", output=tmp_path / "rec0.h5", status=status, seconds=1.5, attempts=1)
    return BatchSummary(results=[result], seconds=2.0, executor="test")


def _fail_fsync(monkeypatch):
    real = os.fsync

    def fsync(fd):
        if os.path.basename(os.readlink(f"/proc/self/fd/{fd}")).startswith(("batch_summary", "rec0")):
            raise OSError(5, "Input/output error")
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)


def test_summary_replaces_the_old_one_whole_and_leaves_no_partial_file(tmp_path):
    path = tmp_path / "batch_summary.json"
    _summary(tmp_path, "failed").write_json(path)
    written = _summary(tmp_path).write_json(path)
    assert written == path
    assert json.loads(path.read_text()) == json.loads(json.dumps(_summary(tmp_path).as_dict(), default=str))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["batch_summary.json"]


def test_summary_that_cannot_be_made_durable_leaves_the_old_one(tmp_path, monkeypatch):
    path = tmp_path / "batch_summary.json"
    _summary(tmp_path, "failed").write_json(path)
    before = path.read_bytes()
    _fail_fsync(monkeypatch)
    with pytest.raises(WriteError, match="batch_summary.json"):
        _summary(tmp_path).write_json(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["batch_summary.json"]


def test_done_marker_round_trips_and_a_failed_write_leaves_no_marker(tmp_path, monkeypatch):
    output = tmp_path / "rec0.h5"
    output.write_bytes(b"finished output")
    record = {"recording": "rec0", "config_digest": "d14f119ed76b6baf", "seconds": 1.25}
    write_done_marker(output, record)
    assert read_done_marker(output) == record
    assert json.loads(done_marker_path(output).read_text()) == record
    done_marker_path(output).unlink()
    _fail_fsync(monkeypatch)
    with pytest.raises(WriteError):
        write_done_marker(output, record)
    assert read_done_marker(output) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rec0.h5"]

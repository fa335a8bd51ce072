"""The batch's small files (``.done`` markers, the summary) appear whole or not at all."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

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
    real_write = os.write

    def full_disk(fd, data):
        if os.path.basename(os.readlink(f"/proc/self/fd/{fd}")).startswith("rec0.h5.done"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", full_disk)
    with pytest.raises(WriteError, match="rec0.h5.done"):
        write_done_marker(output, record)
    assert read_done_marker(output) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rec0.h5"]


def test_done_marker_is_written_without_fsync_and_replaced_by_a_rename(tmp_path, monkeypatch):
    """A lost marker only reruns an idempotent job: no fsync of the file or of the directory."""
    from h5stream.files import atomic

    output = tmp_path / "rec0.h5"
    output.write_bytes(b"finished output")
    write_done_marker(output, {"config_digest": "old"})
    synced: list[str] = []
    renamed: list[tuple[str, bytes]] = []
    real_replace = os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(os.readlink(f"/proc/self/fd/{fd}")))
    monkeypatch.setattr(atomic, "fsync_directory", lambda path: synced.append(str(path)))

    def replace(src, dst):
        # at the moment of the rename the target still holds the whole old record
        renamed.append((os.path.basename(dst), Path(dst).read_bytes()))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(os, "link", lambda *a, **k: pytest.fail("the marker replaces, it never links"))
    write_done_marker(output, {"config_digest": "new"})
    assert synced == []
    assert [(name, json.loads(old)) for name, old in renamed] == [("rec0.h5.done", {"config_digest": "old"})]
    assert read_done_marker(output) == {"config_digest": "new"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rec0.h5", "rec0.h5.done"]


@pytest.mark.parametrize("content", [b"", b"{", b'{"config_digest": "d14f', b"\xff\xfe{}", b"[]", b"null",
                                     b'"done"', b"\x00" * 64])
def test_an_empty_or_torn_done_marker_reads_as_not_done(tmp_path, content):
    output = tmp_path / "rec0.h5"
    output.write_bytes(b"finished output")
    done_marker_path(output).write_bytes(content)
    assert read_done_marker(output) is None


def test_a_job_whose_marker_is_empty_runs_again(tmp_path):
    """After a crash the marker may be empty: the job is done again and the marker rewritten."""
    from hdmea.config import PipelineConfig
    from hdmea.pipeline.batch import Recording, run_job

    ran: list[str] = []

    def job(recording, output, config):
        ran.append(recording.name)
        output.write_bytes(b"made")
        return {"n": len(ran)}

    recording = Recording("rec0", tmp_path / "rec0.cmcr", tmp_path / "rec0.cmtr")
    output = tmp_path / "rec0.h5"
    config = PipelineConfig()
    assert run_job(recording, output, config, job=job)["status"] == "done"
    assert run_job(recording, output, config, job=job)["status"] == "skipped"
    done_marker_path(output).write_bytes(b"")
    assert run_job(recording, output, config, job=job)["status"] == "done"
    assert ran == ["rec0", "rec0"]
    marker = read_done_marker(output)
    assert marker["config_digest"] == config.digest() and marker["detail"] == {"n": 2}

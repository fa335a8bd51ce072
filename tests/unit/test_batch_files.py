"""The batch's small files (``.done`` markers, the summary) appear whole or not at all."""

from __future__ import annotations

import errno
import json
import multiprocessing
import os
from pathlib import Path

import pytest

from h5stream.errors import WriteError
from hdmea.pipeline.batch import BatchSummary, RecordingResult, done_marker_path, read_done_marker
from hdmea.pipeline.batch.recordings import write_done_marker
from hdmea.pipeline.batch.summary import merge_summaries


def _summary(tmp_path, status="done", batch_id="host:1:aaaa", name="rec0"):
    result = RecordingResult(name=name, output=tmp_path / f"{name}.h5", status=status, seconds=1.5, attempts=1)
    return BatchSummary(results=[result], seconds=2.0, executor="test", batch_id=batch_id)


def _fail_fsync(monkeypatch):
    real = os.fsync

    def fsync(fd):
        if os.path.basename(os.readlink(f"/proc/self/fd/{fd}")).startswith(("batch_summary", "rec0")):
            raise OSError(5, "Input/output error")
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)


def test_summary_merges_each_batch_and_leaves_no_partial_file_or_lock(tmp_path):
    path = tmp_path / "batch_summary.json"
    first, second = _summary(tmp_path, "failed", "h:1:a"), _summary(tmp_path, "done", "h:2:b")
    first.write_json(path)
    written = second.write_json(path)
    assert written == path
    merged = json.loads(path.read_text())
    as_json = [json.loads(json.dumps(s.as_dict(), default=str)) for s in (first, second)]
    assert merged["batches"] == as_json  # each batch's own rows, in the order the batches ended
    assert merged["results"] == [{**as_json[1]["results"][0], "batch": "h:2:b"}]
    assert merged["written_by"] == "h:2:b" and merged["executor"] == "test" and merged["version"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["batch_summary.json"]


def test_a_row_that_decided_a_recording_is_kept_over_later_held_or_skipped_rows(tmp_path):
    rows = {"done": "h:1:a", "held": "h:2:b", "skipped": "h:3:c"}
    for status, batch in rows.items():
        _summary(tmp_path, status, batch).write_json(tmp_path / "s.json")
    merged = json.loads((tmp_path / "s.json").read_text())
    assert [(r["status"], r["batch"]) for r in merged["results"]] == [("done", "h:1:a")]
    assert [b["results"][0]["status"] for b in merged["batches"]] == ["done", "held", "skipped"]
    # a later batch that decided it again (a rerun that failed, or computed it anew) replaces the row
    _summary(tmp_path, "failed", "h:4:d").write_json(tmp_path / "s.json")
    merged = json.loads((tmp_path / "s.json").read_text())
    assert [(r["status"], r["batch"]) for r in merged["results"]] == [("failed", "h:4:d")]
    # held first, then done by another batch: done
    merge = merge_summaries(merge_summaries(None, _summary(tmp_path, "held", "x").as_dict()),
                            _summary(tmp_path, "done", "y").as_dict())
    assert [(r["status"], r["batch"]) for r in merge["results"]] == [("done", "y")]


def test_a_version_1_summary_counts_as_one_earlier_batch(tmp_path):
    v1 = {"seconds": 3.0, "executor": "old", "startup_seconds": 0.5, "worker_setup_seconds": [], "stopped_by": None,
          "results": [{"name": "old0", "status": "done", "seconds": 1.0}]}
    merged = merge_summaries(v1, _summary(tmp_path, "done", "h:9:z", name="new0").as_dict())
    assert [(r["name"], r["batch"]) for r in merged["results"]] == [("old0", None), ("new0", "h:9:z")]
    assert merged["batches"][0]["executor"] == "old" and merged["batches"][0]["results"] == v1["results"]


def _write_one(path: str, index: int, ready, go) -> None:
    summary = _summary(Path(path).parent, "done", f"h:{index}:p", name=f"rec{index}")
    ready.put(index)
    go.wait()
    summary.write_json(path)


def test_summaries_written_by_many_processes_at_once_keep_every_batch(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    ready, go = ctx.Queue(), ctx.Event()
    path = tmp_path / "batch_summary.json"
    procs = [ctx.Process(target=_write_one, args=(str(path), i, ready, go)) for i in range(6)]
    for p in procs:
        p.start()
    for _ in procs:
        ready.get(timeout=60)
    go.set()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    merged = json.loads(path.read_text())
    assert sorted(b["batch_id"] for b in merged["batches"]) == [f"h:{i}:p" for i in range(6)]
    assert sorted(r["name"] for r in merged["results"]) == [f"rec{i}" for i in range(6)]
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
    from h5stream.files import publish

    output = tmp_path / "rec0.h5"
    output.write_bytes(b"finished output")
    write_done_marker(output, {"config_digest": "old"})
    synced: list[str] = []
    renamed: list[tuple[str, bytes]] = []
    real_replace = os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(os.readlink(f"/proc/self/fd/{fd}")))
    monkeypatch.setattr(publish, "fsync_directory", lambda path: synced.append(str(path)))

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

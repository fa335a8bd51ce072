"""Small files hdmea writes (stimulus JSON, report page and figures, demo configuration) are atomic.

A write that fails part-way (full disk, simulated by a patched ``os.write``)
leaves the previous file byte for byte and nothing else in the directory.
"""

from __future__ import annotations

import errno
import json
import os

import numpy as np
import pytest

from h5stream.errors import WriteError
from hdmea.stimulus import StimulusConfig


def _fail_writes(monkeypatch):
    def full_disk(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full_disk)


def _stimulus(length: int) -> StimulusConfig:
    return StimulusConfig(playlist=["a"], movie_lengths={"a": length})


def test_stimulus_json_is_replaced_whole(tmp_path, monkeypatch):
    path = tmp_path / "rec.stimulus.json"
    assert _stimulus(100).save_json(path) == path
    before = path.read_bytes()
    assert json.loads(before)["movie_lengths"] == {"a": 100}

    with monkeypatch.context() as m:
        _fail_writes(m)
        with pytest.raises(WriteError, match="free disk space") as info:
            _stimulus(200).save_json(path)
    assert isinstance(info.value, OSError) and str(path) in str(info.value)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rec.stimulus.json"]

    _stimulus(200).save_json(path)
    assert StimulusConfig.load_json(path).movie_lengths == {"a": 200}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rec.stimulus.json"]


def test_report_figure_is_replaced_whole(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    from hdmea.report import figures

    fig = figures._new_figure(1.0, 1.0)
    fig.add_subplot(1, 1, 1).plot([0, 1], [0, 1])
    target = tmp_path / "f.png"
    target.write_bytes(b"old image")
    with monkeypatch.context() as m:
        _fail_writes(m)
        with pytest.raises(WriteError):
            figures._save(fig, target)
    assert target.read_bytes() == b"old image"
    assert [p.name for p in tmp_path.iterdir()] == ["f.png"]
    assert figures._save(fig, target) == target
    assert target.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert [p.name for p in tmp_path.iterdir()] == ["f.png"]


def test_report_page_is_replaced_whole(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    from hdmea.io.hdf5_store import create_recording_hdf5, write_metadata
    from hdmea.report import write_report

    rec = tmp_path / "rec.h5"
    f = create_recording_hdf5(rec, "rec")
    write_metadata(f, {"sampling_rate": np.float64(20000.0)})
    f.close()
    out = tmp_path / "out"
    out.mkdir()
    page = out / "rec.html"
    page.write_text("old page", encoding="utf-8")
    with monkeypatch.context() as m:
        _fail_writes(m)
        with pytest.raises(WriteError, match="rec.html"):
            write_report(rec, out)
    assert page.read_text(encoding="utf-8") == "old page"
    assert [p.name for p in out.iterdir()] == ["rec.html"]

    report = write_report(rec, out)
    assert report.html == page and report.figures == []
    text = page.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and "<h1>rec</h1>" in text
    assert [p.name for p in out.iterdir()] == ["rec.html"]

"""The check before a session's save or checkpoint replaces a file: what it refuses, and the mark that spares
it the walk of a file the session writer wrote (:mod:`h5stream.files.self_contained`).

Files a read refuses (external links, external storage, virtual datasets) are planted with plain h5py, as
foreign files and as session files changed by plain h5py after their save; each must still be refused, by
``refuse_unsafe_target`` and by the session's save and checkpoint over it, with the file left byte for byte
as it was.  A session file unchanged since its save is replaced without its objects being opened.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import pytest

import h5stream.files.validated as validated
from h5stream.errors import UnsafeFileError
from h5stream.files import refuse_unsafe_target
from h5stream.files.self_contained import MARK, mark_self_contained, marked_self_contained
from hdmea.pipeline import PipelineSession, create_session


def _xattrs_kept(folder: Path) -> bool:
    probe = folder / "xattr-probe"
    probe.write_bytes(b"")
    try:
        os.setxattr(probe, "user.h5stream.probe", b"1")
        os.utime(probe, ns=(1, 1_234_567_891))
        return os.stat(probe).st_mtime_ns == 1_234_567_891
    except (OSError, AttributeError):
        return False
    finally:
        probe.unlink()


@pytest.fixture
def marks(tmp_path):
    if not _xattrs_kept(tmp_path):
        pytest.skip(f"{tmp_path}'s filesystem keeps no user extended attributes or nanosecond times")
    return tmp_path


def _session(n_units: int = 3):
    s = create_session("2024.08.08-10.40.20-Rec")
    rng = np.random.default_rng(4)
    s.add_units({f"unit_{i:03d}": {"spike_times": np.sort(rng.integers(0, 10**6, 50)).astype(np.uint64),
                                   "sta": rng.random((3, 4, 4)).astype(np.float32)} for i in range(n_units)})
    return s


def _add_external_link(f: h5py.File, folder: Path) -> str:
    f["linked"] = h5py.ExternalLink(str(folder / "elsewhere.h5"), "/data")
    return "/linked"


def _add_external_storage(f: h5py.File, folder: Path) -> str:
    raw = folder / "raw.bin"
    raw.write_bytes(np.arange(10, dtype="<i4").tobytes())
    f.create_dataset("external", shape=(10,), dtype="<i4", external=[(str(raw), 0, 40)])
    return "/external"


def _add_virtual(f: h5py.File, folder: Path) -> str:
    source = folder / "vsource.h5"
    with h5py.File(source, "w") as g:
        g["data"] = np.arange(10)
    layout = h5py.VirtualLayout(shape=(10,), dtype=np.int64)
    layout[:] = h5py.VirtualSource(str(source), "data", shape=(10,))
    f.create_virtual_dataset("virtual", layout)
    return "/virtual"


PLANTS = {"external link": _add_external_link, "external storage": _add_external_storage,
          "virtual dataset": _add_virtual}


def _refused_everywhere(path: Path, obj: str, folder: Path) -> None:
    """``refuse_unsafe_target``, a session's save and its checkpoint over ``path`` all refuse it, naming
    ``obj``; the file is left byte for byte as it was."""
    before = path.read_bytes()
    with pytest.raises(UnsafeFileError) as info:
        refuse_unsafe_target(path)
    assert info.value.obj == obj
    s = _session(1)
    with pytest.raises(UnsafeFileError):
        s.save(output_path=path, overwrite=True)
    with pytest.raises(UnsafeFileError):
        s.checkpoint(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in folder.iterdir() if ".partial" in p.name or p.suffix == ".claim") == []


@pytest.mark.parametrize("plant", sorted(PLANTS))
def test_a_foreign_file_a_read_refuses_is_not_replaced(tmp_path, plant):
    path = tmp_path / "foreign.h5"
    with h5py.File(path, "w") as f:
        f["kept"] = np.arange(5)
        obj = PLANTS[plant](f, tmp_path)
    _refused_everywhere(path, obj, tmp_path)


@pytest.mark.parametrize("plant", sorted(PLANTS))
def test_a_session_file_changed_since_its_save_is_walked_and_refused(marks, plant):
    path = _session().save(output_path=marks / "out.h5")
    assert marked_self_contained(path)  # (the session writer marked it)
    with h5py.File(path, "a") as f:  # plain h5py writes into the session's file after its save
        obj = PLANTS[plant](f, marks)
    assert os.getxattr(path, MARK)  # the mark is still there, but no longer matches the file
    assert not marked_self_contained(path)
    _refused_everywhere(path, obj, marks)


def test_a_mark_copied_onto_other_bytes_is_not_trusted(marks):
    ours = _session().save(output_path=marks / "out.h5")
    path = marks / "foreign.h5"
    with h5py.File(path, "w") as f:
        obj = _add_external_link(f, marks)
    os.setxattr(path, MARK, os.getxattr(ours, MARK))
    assert not marked_self_contained(path)
    _refused_everywhere(path, obj, marks)
    # the mark's own form: the same size and time as the file, other first bytes
    mark_self_contained(path)
    assert marked_self_contained(path)
    with open(path, "r+b") as fh:
        head = fh.read(64)
        fh.seek(0)
        fh.write(head[:40] + bytes(24))  # (a write: the time changes too, and is put back below)
    mark = os.getxattr(path, MARK).decode().split()
    os.utime(path, ns=(os.stat(path).st_atime_ns, int(mark[3])))
    assert not marked_self_contained(path)


def test_session_files_unchanged_since_their_save_are_replaced_without_a_walk(marks, monkeypatch):
    s = _session()
    saved = s.save(output_path=marks / "out.h5")
    checkpoint = s.checkpoint(marks / "work.checkpoint.h5")
    resumed = PipelineSession.load(checkpoint).save(output_path=marks / "resumed.h5")  # (the copy of the file)
    assert all(marked_self_contained(p) for p in (saved, checkpoint, resumed))
    walked = []  # the files the check before a replace walked
    real = validated._scan_links_and_storage

    def counted(f, path):
        walked.append(path)
        return real(f, path)

    monkeypatch.setattr(validated, "_scan_links_and_storage", counted)
    s.save(output_path=saved, overwrite=True)
    s.checkpoint(checkpoint)
    PipelineSession.load(checkpoint).save(output_path=resumed, overwrite=True)
    assert walked == []
    with h5py.File(saved, "r") as f:  # the file replaced is the session's, read back by plain h5py
        assert sorted(f["units"]) == ["unit_000", "unit_001", "unit_002"]
    # a plain h5py file without the mark is walked, and replaced (it holds nothing a read refuses)
    plain = marks / "plain.h5"
    with h5py.File(plain, "w") as f:
        f["x"] = np.arange(3)
    s.save(output_path=plain, overwrite=True)
    assert walked[-1] == plain and marked_self_contained(plain)

"""A session resumed from a checkpoint and saved unchanged to a new path is a copy of the checkpoint's bytes
with its changes written in (:mod:`hdmea.session._copy_save`): the file must read back, in plain h5py, as the
object-by-object save writes it, and every byte copied must be checked as that save checks it.

The reference is the object-by-object save of the same checkpoint (the copy switched off), read with plain
h5py; the damage is done by plain file writes at the storage address h5py gives.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from h5stream.errors import ChecksumError, H5StreamError
from hdmea.pipeline import PipelineSession, create_session
from hdmea.session import _copy_save, tree as session_tree
from tests.filecompare import TIMESTAMP_ATTRS, compare_files

MANIFEST = "h5stream_checksums"


def _checkpoint(path: Path) -> None:
    """A session of the lab's value mix (large and small arrays, scalars, text, lists, features, stimulus,
    metadata, warnings, steps, source files), checkpointed at ``path``."""
    rng = np.random.default_rng(7)
    session = create_session("rec", output_dir=None)
    session.set_source_files(cmcr_path="/data/rec.cmcr", cmtr_path="/data/rec.cmtr")
    units = {}
    for i in range(6):
        units[f"unit_{i:03d}"] = {
            "spike_times": np.sort(rng.integers(0, 10**7, 3000 + i)).astype(np.uint64),  # 24 kB: left on disk
            "waveform": rng.normal(size=50).astype(np.float32),  # small: read at load
            "row": i // 3, "col": i % 3, "label": f"u{i}", "quality": 0.5 + i / 10,
        }
    session.add_units(units)
    session.add_metadata({"sampling_rate": 20000.0, "labels": ["a", "b"], "acquisition": {"gain": 1000}})
    session.add_stimulus(light_reference={"raw": np.sin(np.arange(40_000) / 9.0)},
                         frame_times={"default": np.arange(0, 2_400_000, 333)},
                         section_times={"step": [[0, 600_000], [1_200_000, 1_800_000]]})
    session.add_features("step_on", [(uid, {"on": np.arange(20.0) * k, "score": float(k)}, {"movie": "step"})
                                     for k, uid in enumerate(units)])
    session.put("units/unit_000/big", rng.normal(size=300_000))  # chunked and compressed by the writer
    session.mark_step_complete("load_recording")
    session.add_warning("a warning")
    session.checkpoint(path)
    session.close()


@pytest.fixture()
def checkpoint(tmp_path) -> Path:
    path = tmp_path / "work.checkpoint.h5"
    _checkpoint(path)
    return path


def _copies(monkeypatch) -> list:
    """Records each save that tried the copy: its result (True when the file was copied), or "raised"."""
    taken = []
    original = _copy_save.save_by_copy

    def spy(*args, **kwargs):
        taken.append("raised")
        taken[-1] = original(*args, **kwargs)
        return taken[-1]

    monkeypatch.setattr("hdmea.session.session.save_by_copy", spy)
    return taken


def _object_by_object(checkpoint: Path, target: Path, monkeypatch) -> None:
    with monkeypatch.context() as m:
        m.setattr(session_tree.SessionTree, "unchanged_since_load", lambda self: None)
        session = PipelineSession.load(checkpoint)
        session.save(target)
        session.close()


def _layouts(path: Path) -> dict:
    """Every object's kind, member order, attribute order, and a dataset's dtype, shape, layout, chunks and
    filters, as plain h5py reads them."""
    out = {}
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Group):
                out[name] = ("group", list(obj), list(obj.attrs))
            else:
                out[name] = ("dataset", str(obj.dtype), obj.shape, obj.id.get_create_plist().get_layout(),
                             obj.chunks, obj.compression, obj.shuffle, obj.fletcher32, list(obj.attrs))
        f.visititems(visit)
        out["/"] = ("group", list(f), list(f.attrs))
    return out


def test_an_unchanged_resume_is_copied_and_reads_back_as_the_object_by_object_save(checkpoint, tmp_path, monkeypatch):
    reference = tmp_path / "reference.h5"
    _object_by_object(checkpoint, reference, monkeypatch)
    taken = _copies(monkeypatch)
    session = PipelineSession.load(checkpoint)
    target = session.save(tmp_path / "out" / "resumed.h5")
    assert taken == [True]
    assert session.is_saved and session.save_state.value == "saved"
    assert compare_files(reference, target, ignore_attrs=TIMESTAMP_ATTRS | {MANIFEST}, session_rules=False) == []
    assert _layouts(reference) == _layouts(target)
    with h5py.File(reference, "r") as a, h5py.File(target, "r") as b:
        ma, mb = (json.loads(f.attrs[MANIFEST]) for f in (a, b))
        assert ma["datasets"] == mb["datasets"] and mb.get("sets_complete") is True
        for kind, sets in ma["attribute_digests"].items():  # the same objects covered; timestamps aside
            assert set(sets) == set(mb["attribute_digests"][kind])
        assert "checkpoint_name" not in b["pipeline/session_info"].attrs  # a save, not a checkpoint
        np.testing.assert_array_equal(b["units/unit_000/big"][()], a["units/unit_000/big"][()])
    from h5stream.files.checksum_checks import check_file

    assert check_file(target)["manifest"]
    again = PipelineSession.load(target)  # verified as it is read
    np.testing.assert_array_equal(again.get("units/unit_003/spike_times"), session.get("units/unit_003/spike_times"))
    assert list(again.completed_steps) == ["load_recording"] and again.warnings == ["a warning"]
    again.close()
    session.close()
    assert sorted(p.name for p in target.parent.iterdir()) == ["resumed.h5"]


def test_a_changed_session_saves_object_by_object(checkpoint, tmp_path, monkeypatch):
    taken = _copies(monkeypatch)
    session = PipelineSession.load(checkpoint)
    session.put("units/unit_001/extra", np.arange(5))
    session.save(tmp_path / "a.h5")
    session.close()
    assert taken == []
    with h5py.File(tmp_path / "a.h5", "r") as f:
        np.testing.assert_array_equal(f["units/unit_001/extra"][()], np.arange(5))


def test_an_array_read_and_changed_in_place_is_saved_as_changed(checkpoint, tmp_path, monkeypatch):
    """A small array read at load is handed to the caller by a read; changed in place, it is written."""
    taken = _copies(monkeypatch)
    session = PipelineSession.load(checkpoint)
    waveform = session.units["unit_002"]["waveform"]
    waveform[:3] = 99.0
    expected = np.array(session.get("units/unit_002/waveform"))
    session.save(tmp_path / "a.h5")
    session.close()
    assert True not in taken
    with h5py.File(tmp_path / "a.h5", "r") as f:
        np.testing.assert_array_equal(f["units/unit_002/waveform"][()], expected)


def _damage(path: Path, obj: str) -> None:
    """Flip 16 bytes inside the stored data of ``obj`` (its contiguous block, or its first chunk)."""
    with h5py.File(path, "r", locking=False) as f:  # (the session holds it open)
        ds = f[obj]
        if ds.chunks is None:
            offset, size = ds.id.get_offset(), ds.id.get_storage_size()
        else:
            info = ds.id.get_chunk_info(0)
            offset, size = info.byte_offset, info.size
    stat = os.stat(path)
    with open(path, "r+b") as fh:
        fh.seek(offset + size // 2)
        old = fh.read(16)
        fh.seek(offset + size // 2)
        fh.write(bytes(b ^ 0x5A for b in old))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # the same size and time: only the bytes differ


@pytest.mark.parametrize("member", ["units/unit_004/spike_times", "units/unit_000/big"])
def test_a_flipped_byte_of_the_checkpoint_fails_the_copy_and_keeps_the_target(checkpoint, tmp_path, monkeypatch,
                                                                               member):
    """Damage the copy cannot tell from the file's identity (same size and time) is found by the digests."""
    target = tmp_path / "T.h5"
    target.write_bytes(b"an earlier file")
    taken = _copies(monkeypatch)
    session = PipelineSession.load(checkpoint)
    _damage(checkpoint, member)
    try:
        with pytest.raises(ChecksumError) as info:
            session.save(target, overwrite=True)
    finally:
        session.close()
    assert info.value.path == str(checkpoint) and info.value.obj in (f"/{member}", member)
    assert taken == ["raised"]  # found by the copy's check
    assert target.read_bytes() == b"an earlier file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["T.h5", "work.checkpoint.h5"]


def test_a_flipped_byte_of_a_value_read_at_load_is_refused_at_load(checkpoint):
    """A small value lives in its object's header (compact) or beside it: the load reads and checks it."""
    with h5py.File(checkpoint, "r") as f:
        addr = h5py.h5o.get_info(f["units/unit_002/waveform"].id).addr
    with open(checkpoint, "r+b") as fh:
        fh.seek(addr + 40)
        old = fh.read(8)
        fh.seek(addr + 40)
        fh.write(bytes(b ^ 0xFF for b in old))
    with pytest.raises(H5StreamError):
        PipelineSession.load(checkpoint).save(checkpoint.with_name("T.h5"))
    assert not checkpoint.with_name("T.h5").exists()


def test_a_source_written_to_after_the_load_saves_object_by_object(checkpoint, tmp_path, monkeypatch):
    """A source whose time changed since the load is not copied: the object-by-object save checks each value."""
    taken = _copies(monkeypatch)
    session = PipelineSession.load(checkpoint)
    _damage(checkpoint, "units/unit_004/spike_times")
    os.utime(checkpoint)  # the write as another program leaves it: a new modification time
    with pytest.raises(ChecksumError):
        session.save(tmp_path / "T.h5")
    session.close()
    assert taken == [False]
    assert not (tmp_path / "T.h5").exists()


def test_a_source_replaced_after_the_load_saves_what_was_loaded(checkpoint, tmp_path, monkeypatch):
    """The copy reads the file the load opened and checked, not whatever the path names now."""
    reference = tmp_path / "reference.h5"
    _object_by_object(checkpoint, reference, monkeypatch)
    taken = _copies(monkeypatch)
    session = PipelineSession.load(checkpoint)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f.attrs["dataset_id"] = "another"
    os.replace(other, checkpoint)
    session.save(tmp_path / "T.h5")
    session.close()
    assert taken == [True]
    assert compare_files(reference, tmp_path / "T.h5", ignore_attrs=TIMESTAMP_ATTRS | {MANIFEST},
                         session_rules=False) == []


def test_a_spilled_session_is_not_copied(checkpoint, tmp_path, monkeypatch):
    taken = _copies(monkeypatch)
    session = PipelineSession.load(checkpoint, memory_limit="1KB", hdf5_path=tmp_path / "T.h5")
    session.put("units/unit_000/added", np.arange(50_000, dtype=np.float64))
    session.save()
    session.close()
    assert taken == []
    with h5py.File(tmp_path / "T.h5", "r") as f:
        np.testing.assert_array_equal(f["units/unit_000/added"][()], np.arange(50_000, dtype=np.float64))
    shutil.rmtree(tmp_path / "unused", ignore_errors=True)


def test_the_copy_digests_each_array_as_it_copies_it(checkpoint, tmp_path, monkeypatch):
    """Every array left on disk at load is digested from the blocks of the copy as they are written (no second
    pass over the copy), an array across several blocks too, and each digest is the one of the values plain
    h5py reads from the checkpoint."""
    from h5stream.digests import array_digest

    monkeypatch.setattr("h5stream.files.copying.COPY_BLOCK", 4096)  # (spike times: 24 kB, over several blocks)
    made = []
    real = _copy_save._CopiedDigests
    monkeypatch.setattr(_copy_save, "_CopiedDigests", lambda tree: made.append(real(tree)) or made[-1])
    read_back = []
    monkeypatch.setattr(_copy_save, "_bytes_digest", lambda *args: read_back.append(args) or None)
    taken = _copies(monkeypatch)
    session = PipelineSession.load(checkpoint)
    session.save(tmp_path / "T.h5")
    session.close()
    assert taken == [True] and read_back == []
    [copied] = made
    with h5py.File(checkpoint, "r") as f:
        expected = {id(data): array_digest(f[data.name][()]) for data in copied._arrays}
    assert len(expected) >= 6 and any(data.nbytes > 4 * 4096 for data in copied._arrays)
    assert copied.digests == expected

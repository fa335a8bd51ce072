"""Saves that copy from a file read on demand check every value they copy against its stored digest.

``PipelineSession.load(K).save(T)`` and ``hdmea migrate`` copy a source's arrays inside the HDF5 library;
each copy is read back and compared with the digest the source's checksum manifest holds for it.  The
sources are damaged on disk by plain file writes at the dataset's storage address (read with h5py), the
way a bad sector or a stray write damages a file: the copy must fail with a typed error naming the source
file, the object, the digest expected and the one found, and nothing may replace the target.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from h5stream.errors import ChecksumError, WriteError
from hdmea.pipeline import PipelineSession, create_session

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "golden" / "hdmea_recording.h5"
BIG = 300_000  # float64 values of the large array: chunked and compressed by the writer


def _source(path: Path) -> dict[str, np.ndarray]:
    """A recording with a small contiguous array and a large chunked one, and the values written."""
    rng = np.random.default_rng(4)
    values = {"spike_times": np.arange(20, dtype=np.uint64) * 7, "small": rng.normal(size=5000),
              "big": np.repeat(rng.normal(size=BIG // 100), 100)}
    session = create_session("src", output_dir=None)
    session.add_units({"unit_000": dict(values)})
    session.save(path)
    session.close()
    return values


def _damage(path: Path, obj: str) -> str:
    """Overwrite 16 bytes inside the stored data of ``obj`` (its first chunk, or its contiguous block)."""
    with h5py.File(path, "r") as f:
        ds = f[obj]
        if ds.chunks is None:
            offset, size = ds.id.get_offset(), ds.id.get_storage_size()
        else:
            info = ds.id.get_chunk_info(0)
            offset, size = info.byte_offset, info.size
    assert offset is not None and size > 64
    with open(path, "r+b") as fh:
        fh.seek(offset + size // 2)
        old = fh.read(16)
        fh.seek(offset + size // 2)
        fh.write(bytes(b ^ 0x5A for b in old))
    return obj


@pytest.mark.parametrize("member", ["small", "big"])
def test_load_then_save_refuses_a_damaged_source_and_keeps_the_target(tmp_path, member):
    source, target = tmp_path / "K.h5", tmp_path / "T.h5"
    _source(source)
    shutil.copy(source, target)  # an earlier good file at the target
    before = target.read_bytes()
    obj = _damage(source, f"units/unit_000/{member}")
    session = PipelineSession.load(source)
    try:
        with pytest.raises(ChecksumError) as info:
            session.save(target, overwrite=True)
    finally:
        session.close()
    error = info.value
    assert error.path == str(source) and error.obj in (f"/{obj}", obj)
    if member == "small":  # the copy's digest differs from the stored one: both named
        assert error.expected.startswith("crc32 ") and error.found.startswith("crc32 ")
        assert error.expected != error.found and "source is damaged" in str(error)
    else:  # the damaged chunk fails HDF5's own Fletcher32 or decompression as it is read back
        assert "checksum" in str(error).lower() or "damaged" in str(error).lower()
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["K.h5", "T.h5"]


def test_an_intact_source_copies_with_its_values(tmp_path):
    source, target = tmp_path / "K.h5", tmp_path / "T.h5"
    values = _source(source)
    session = PipelineSession.load(source)
    session.save(target)
    session.close()
    with h5py.File(target, "r") as f:
        for name, value in values.items():
            np.testing.assert_array_equal(f[f"units/unit_000/{name}"][()], value)
    from h5stream.files.checksum_checks import check_file

    assert check_file(target)["manifest"]


def test_a_small_whole_array_is_rewritten_and_a_larger_one_copied_each_as_stored(tmp_path, monkeypatch):
    """An array of at most REWRITE_LIMIT bytes is read, checked and written (no library copy), a larger one copied
    inside the library, and one added by plain h5py without a digest (chunked, compressed) copied as stored:
    each keeps its layout (chunks and filters included), values and digest, as plain h5py reads them and as
    the source's manifest (written from the arrays in memory) holds them."""
    import json

    from h5stream.tree import filearray, write

    source, target = tmp_path / "K.h5", tmp_path / "T.h5"
    values = _source(source)
    values["foreign"] = np.arange(40_000, dtype=np.int32)
    with h5py.File(source, "r+") as f:  # another tool's array: chunked and compressed, no digest
        f.create_dataset("units/unit_000/foreign", data=values["foreign"], chunks=(4096,), compression="gzip")
    copied = []
    library_copy = write.copy_dataset_at
    monkeypatch.setattr(write, "copy_dataset_at", lambda *a: (copied.append(a[1]), library_copy(*a))[1])
    monkeypatch.setattr(filearray, "REWRITE_LIMIT", values["small"].nbytes)  # "big" is larger
    session = PipelineSession.load(source)
    session.add_warning("changed: saved object by object")  # (unchanged, it would be a copy of the file)
    session.save(target)
    session.close()
    assert sorted(copied) == ["/units/unit_000/big", "/units/unit_000/foreign"]
    with h5py.File(source, "r") as a, h5py.File(target, "r") as b:
        digests = [json.loads(f.attrs["h5stream_checksums"])["datasets"] for f in (a, b)]
        for name in ("small", "big", "foreign"):
            old, new = a[f"units/unit_000/{name}"], b[f"units/unit_000/{name}"]
            np.testing.assert_array_equal(new[()], values[name])
            assert new.dtype == old.dtype and new.chunks == old.chunks and new.compression == old.compression
            assert new.id.get_create_plist().get_layout() == old.id.get_create_plist().get_layout()
            if name != "foreign":
                assert digests[1][new.name] == digests[0][old.name]
        assert b["units/unit_000/foreign"].chunks == (4096,)


def test_a_spilling_session_keeps_its_spilled_data_when_a_source_is_damaged(tmp_path):
    """The save into the spill file checks the copies before any spilled array moves."""
    source, target = tmp_path / "K.h5", tmp_path / "out" / "T.h5"
    _source(source)
    _damage(source, "units/unit_000/small")
    target.parent.mkdir()
    session = PipelineSession.load(source, memory_limit="1KB", hdf5_path=target)
    new = np.arange(50_000, dtype=np.float64)
    session.put("units/unit_000/features/added/data", new)
    spill = list(target.parent.glob("T.h5.partial-*"))
    assert len(spill) == 1  # spilled beside the target: the save finishes this file in place
    with pytest.raises(ChecksumError):
        session.save()
    assert not target.exists() and list(target.parent.glob("T.h5.partial-*")) == spill
    np.testing.assert_array_equal(np.asarray(session.get("units/unit_000/features/added/data")), new)
    session.close()


def test_hdmea_migrate_refuses_a_damaged_source(tmp_path):
    positional = tmp_path / "positional.h5"
    session = PipelineSession.load(GOLDEN)  # positional names; saved with a checksum manifest
    session.save(positional)
    session.close()
    obj = _damage(positional, "units/unit_002/features/sta_dense_noise_15x15/sta")
    done = subprocess.run([sys.executable, "-m", "hdmea", "migrate", str(positional), str(tmp_path / "new.h5")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "units renamed" not in done.stdout
    assert str(positional) in done.stderr and obj in done.stderr and "crc32" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "new.h5").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["positional.h5"]


# --------------------------------------------------------------------------- a save that cannot write

SAVE_CHILD = r"""
import json, os, resource, signal, sys
from pathlib import Path
from hdmea.pipeline import PipelineSession, create_session
import numpy as np

source, folder, limit = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
target = folder / "T.h5"
good = create_session("good", output_dir=None)
good.put("metadata/note", "an earlier good file")
good.save(target)
good.close()
before = target.read_bytes()
if limit:  # the OS refuses writes past this many bytes of one file (EFBIG)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
session = PipelineSession.load(source)
result = {}
try:
    session.save(target, overwrite=True)
    result["error"] = None
except BaseException as exc:
    result.update(error=type(exc).__name__, mro=[c.__name__ for c in type(exc).__mro__], message=str(exc))
session.close()
if limit:
    resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
result["target_intact"] = target.read_bytes() == before
result["left"] = sorted(p.name for p in folder.iterdir())
print(json.dumps(result))
"""


def _big_source(path: Path) -> None:
    session = create_session("big", output_dir=None)
    session.add_units({"unit_000": {"spike_times": np.arange(5, dtype=np.uint64),
                                    "big": np.random.default_rng(1).normal(size=BIG)}})  # 2.4 MB, incompressible
    session.save(path)
    session.close()


def _run_child(prefix: list[str], source: Path, folder: Path, limit: int) -> dict:
    import json

    script = folder.parent / "save_child.py"
    script.write_text(SAVE_CHILD)
    done = subprocess.run([*prefix, sys.executable, str(script), str(source), str(folder), str(limit)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def _mount_works() -> bool:
    if shutil.which("unshare") is None or not sys.platform.startswith("linux"):
        return False
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
                           capture_output=True, timeout=30)
    return probe.returncode == 0


def test_a_full_disk_is_a_typed_error_and_keeps_the_target(tmp_path):
    """A real full disk: the target's folder is a 1 MiB tmpfs (mounted in a user and mount namespace of
    the child), the copy needs 2.4 MB."""
    if not _mount_works():
        pytest.skip("no tmpfs can be mounted here (unshare -rm refused)")
    source, folder = tmp_path / "K.h5", tmp_path / "small_disk"
    folder.mkdir()
    _big_source(source)
    mount = f"mount -t tmpfs -o size=1m tmpfs {folder} && exec \"$@\""
    result = _run_child(["unshare", "-rm", "sh", "-c", mount, "sh"], source, folder, 0)
    assert result["error"] == "WriteError" and "H5StreamError" in result["mro"], result
    assert "the disk is full" in result["message"] and "free disk space" in result["message"], result
    assert result["target_intact"] and result["left"] == ["T.h5"], result


def test_every_other_write_failure_is_a_typed_error(tmp_path):
    """The OS refuses to grow a file past 1 MB (RLIMIT_FSIZE: EFBIG at the write): no raw h5py error."""
    source, folder = tmp_path / "K.h5", tmp_path / "out"
    folder.mkdir()
    _big_source(source)
    result = _run_child([], source, folder, 1_000_000)
    assert result["error"] == "WriteError" and "H5StreamError" in result["mro"], result
    assert "any earlier file is intact" in result["message"], result
    assert result["target_intact"] and result["left"] == ["T.h5"], result


@pytest.mark.parametrize("how", ["replaced", "damaged"])
def test_a_source_replaced_since_it_was_loaded_is_named_so_not_damaged(tmp_path, how):
    """Values read again from the source's path (its handle closed meanwhile) that differ from their digests: when
    another file was put at the path since the tree was read, the error says so; damage in the file that was
    loaded stays "the source is damaged"."""
    from hdmea.io.recording import read_lazy_tree

    source = tmp_path / "K.h5"
    _source(source)
    if how == "damaged":
        _damage(source, "units/unit_000/small")
    tree, opened = read_lazy_tree(source)
    opened.close()  # the handle goes; the next read opens the path again
    if how == "replaced":
        other = tmp_path / "other.h5"
        session = create_session("src", output_dir=None)
        session.add_units({"unit_000": {"spike_times": np.arange(20, dtype=np.uint64) * 7,
                                        "small": np.random.default_rng(5).normal(size=5000),
                                        "big": np.zeros(BIG)}})
        session.save(other)
        session.close()
        other.replace(source)
    small = tree.children["units"].children["unit_000"].children["small"].data
    try:
        with pytest.raises(ChecksumError) as info:
            small.check_source()
    finally:
        opened.close()
    text = str(info.value)
    assert info.value.path == str(source) and info.value.obj in ("/units/unit_000/small", "units/unit_000/small")
    if how == "replaced":
        assert "replaced since it was loaded" in text and "damaged" not in text, text
    else:
        assert "the source is damaged" in text and "replaced since" not in text, text

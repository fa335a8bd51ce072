"""AnnData zarr stores are as safe as our HDF5 files: kills, races, damage, leftovers, full and read-only disks.

Every store read back here is compared against the container saved (or the
anndata object written), and every damage is made by hand on the store's files
(deleting, flipping, swapping, truncating, editing ``.zarray`` with plain JSON).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from h5stream.errors import StaleClaimWarning, StaleFilesWarning
from h5scp import ScpContainer
from h5scp.io import (
    IOFormatError,
    IOTargetExistsError,
    IOWriteError,
    IOWriterClaimError,
    load,
    load_anndata_zarr,
    save,
    save_anndata_zarr,
)
from h5scp.io.exceptions import IOChecksumError
from h5scp.testing import assert_container_equal, example_container
from tests.conftest import tmpfs_mount

pytest.importorskip("zarr")
anndata = pytest.importorskip("anndata")

pytestmark = pytest.mark.filterwarnings("ignore:Writing zarr v2 data will no longer be the default:UserWarning")
ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in [str(ROOT), *sys.path] if p)}


def _pair(tmp_path: Path) -> tuple[ScpContainer, ScpContainer, Path, Path]:
    """Two containers of different shapes, as loaded from files (so a child process saves the same ones)."""
    a, b = tmp_path / "A.h5", tmp_path / "B.h5"
    save(example_container(n_samples=40, n_proteins=30, seed=1), a)
    save(example_container(n_samples=25, n_proteins=20, seed=2), b)
    return load(a), load(b), a, b


def _one_assay(c: ScpContainer, loaded: ScpContainer) -> ScpContainer:
    return ScpContainer(c.obs, {"proteins": c.assays["proteins"]}, history=loaded.history)


def _equals_one_of(loaded: ScpContainer, *candidates: ScpContainer) -> int:
    for i, c in enumerate(candidates):
        try:
            assert_container_equal(loaded, _one_assay(c, loaded))
            return i
        except AssertionError:
            continue
    raise AssertionError("the store holds neither container")


@pytest.fixture
def store(tmp_path):
    c = example_container(n_samples=30, n_proteins=25, seed=4)
    path = save_anndata_zarr(c, tmp_path / "c.zarr", assay="proteins")
    return c, path


def _chunks(path: Path, array: str) -> list[Path]:
    return sorted(p for p in (path / array).iterdir() if not p.name.startswith("."))


# --------------------------------------------------------------------------- kills


_SAVER = textwrap.dedent(
    """
    import os, signal, sys
    from h5scp.io import load, save
    from h5stream.files import folders
    cs = [load(sys.argv[2]), load(sys.argv[3])]
    stop = sys.argv[4]
    if stop != "loop":  # die at one moment of the publish: just before, or just after, the exchange
        real = folders._exchange
        def exchange(a, b):
            if stop == "before":
                os.kill(os.getpid(), signal.SIGKILL)
            done = real(a, b)
            os.kill(os.getpid(), signal.SIGKILL)
        folders._exchange = exchange
    print("start", flush=True)
    i = 1
    while True:
        save(cs[i % 2], sys.argv[1], assay="proteins", overwrite=True)
        print("saved", i % 2, flush=True)
        i += 1
    """
)


def _saver(path: Path, a: Path, b: Path, stop: str = "loop") -> subprocess.Popen:
    # the saver's temporary folder beside the test's own, in pytest's base folder (which pytest removes): a saver
    # killed mid-save cannot remove its scratch, and the system's temporary folder is shared
    scratch = path.parent.with_name(path.parent.name + "-tmp")
    scratch.mkdir(exist_ok=True)
    proc = subprocess.Popen([sys.executable, "-c", _SAVER, str(path), str(a), str(b), stop], stdout=subprocess.PIPE,
                            env={**ENV, "TMPDIR": str(scratch)})
    assert proc.stdout.readline().strip() == b"start"
    return proc


def _end(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=30)
    proc.stdout.close()


@pytest.mark.slow
def test_sigkill_at_random_moments_of_saves_leaves_a_complete_store(tmp_path):
    """A writer looping saves of two containers is killed at random moments, 12 times: the path always holds
    one of them complete (checked against its digests and against the container), and the next save clears
    what the killed one left."""
    A, B, a, b = _pair(tmp_path)
    path = tmp_path / "c.zarr"
    started = time.perf_counter()
    save_anndata_zarr(A, path, assay="proteins")
    seconds = time.perf_counter() - started  # one save, to spread the kills over
    rng = random.Random(68)
    seen, leftovers = set(), 0
    for _kill in range(12):
        proc = _saver(path, a, b)
        try:
            for _save in range(rng.choice([0, 1, 2])):  # let some saves complete first
                assert proc.stdout.readline().startswith(b"saved")
            time.sleep(rng.uniform(0.0, 1.5 * seconds))
            proc.send_signal(signal.SIGKILL)
        finally:
            _end(proc)
        seen.add(_equals_one_of(load_anndata_zarr(path), A, B))
        leftovers += sum(1 for p in tmp_path.iterdir() if ".partial-dir-" in p.name)
    assert leftovers > 0  # some kills fell while a store was being written
    assert seen == {0, 1}  # and saves completed between the kills
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        save_anndata_zarr(B, path, assay="proteins", overwrite=True)
    assert {type(w.message) for w in caught} <= {StaleClaimWarning, StaleFilesWarning}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["A.h5", "B.h5", "c.zarr"]
    assert _equals_one_of(load_anndata_zarr(path), A, B) == 1


@pytest.mark.parametrize("stop", ["before", "after"])
def test_sigkill_just_before_or_after_the_swap(tmp_path, stop):
    """The one step from old to new: a writer killed just before it holds the old store at the path, just after
    the new one (the old one waits beside it, and the next save removes it)."""
    A, B, a, b = _pair(tmp_path)
    path = tmp_path / "c.zarr"
    save_anndata_zarr(A, path, assay="proteins")
    proc = _saver(path, a, b, stop)  # its first save writes B
    try:
        assert proc.wait(timeout=120) == -signal.SIGKILL
    finally:
        _end(proc)
    assert _equals_one_of(load_anndata_zarr(path), A, B) == (0 if stop == "before" else 1)
    left = [p.name for p in tmp_path.iterdir() if ".partial-dir-" in p.name]
    assert len(left) == 1  # the new store (before) or the old one (after), never at the path
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        save_anndata_zarr(A, path, assay="proteins", overwrite=True)
    assert {type(w.message) for w in caught} == {StaleClaimWarning, StaleFilesWarning}  # its claim, its folder
    assert any("removed 1 folder" in str(w.message) for w in caught)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["A.h5", "B.h5", "c.zarr"]


def test_leftovers_of_earlier_versions_are_cleared_or_put_back(tmp_path, store):
    c, path = store
    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True, check=True).stdout)
    shutil.copytree(path, tmp_path / f"c.zarr.partial-{dead}")
    shutil.copytree(path, tmp_path / f"c.zarr.partial-dir-{dead}-3")
    alive = tmp_path / f"c.zarr.partial-dir-{os.getpid()}-99"  # a live writer's: kept
    alive.mkdir()
    # an earlier version's writer killed between its two renames: the old store aside, none at the path
    os.rename(path, tmp_path / f"c.zarr.old-{dead}")
    with pytest.warns(StaleFilesWarning) as caught:
        with pytest.raises(IOTargetExistsError):
            save_anndata_zarr(c, path, assay="proteins")
    said = " ".join(str(w.message) for w in caught)
    assert "restored" in said and f"c.zarr.partial-{dead}" in said and f"c.zarr.partial-dir-{dead}-3" in said
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.zarr", alive.name]
    assert_container_equal(load_anndata_zarr(path), _one_assay(c, load_anndata_zarr(path)))


def test_a_system_without_the_one_step_swap_refuses_to_replace(tmp_path, store, monkeypatch):
    from h5stream.files import folders

    c, path = store
    before = {p.relative_to(path): p.read_bytes() for p in path.rglob("*") if p.is_file()}
    monkeypatch.setattr(folders, "_exchange", lambda a, b: False)
    with pytest.raises(IOWriteError, match="cannot replace a folder in one step") as info:
        save_anndata_zarr(example_container(seed=8), path, assay="proteins", overwrite=True)
    assert "save to a new path" in str(info.value)
    assert {p.relative_to(path): p.read_bytes() for p in path.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.zarr"]
    save_anndata_zarr(c, tmp_path / "new.zarr", assay="proteins")  # a new path needs no exchange
    assert_container_equal(load_anndata_zarr(tmp_path / "new.zarr"), load_anndata_zarr(path))


# --------------------------------------------------------------------------- one writer


_RACER = textwrap.dedent(
    """
    import os, sys, time
    from h5scp.io import IOWriterClaimError, load, save
    c = load(sys.argv[2])
    go = sys.argv[3]
    print("ready", flush=True)
    while not os.path.exists(go):
        time.sleep(0.001)
    try:
        save(c, sys.argv[1], assay="proteins", overwrite=True)
    except IOWriterClaimError as exc:
        print("claim", exc, flush=True)
    else:
        print("saved", flush=True)
    """
)


@pytest.mark.slow
def test_two_concurrent_saves_one_succeeds_the_other_is_told_who_holds_it(tmp_path):
    A, B, a, b = _pair(tmp_path)
    path = tmp_path / "c.zarr"
    save_anndata_zarr(A, path, assay="proteins")
    tally = {"saved": 0, "claim": 0}
    for round_ in range(6):
        go = tmp_path / f"go-{round_}"
        procs = [subprocess.Popen([sys.executable, "-c", _RACER, str(path), str(src), str(go)],
                                  stdout=subprocess.PIPE, text=True, env=ENV) for src in (a, b)]
        for p in procs:
            assert p.stdout.readline().strip() == "ready"
        go.touch()
        answers = [p.communicate(timeout=120)[0].strip() for p in procs]
        kinds = sorted(line.split()[0] for line in answers)
        assert kinds == ["claim", "saved"], answers
        assert "already open for writing by pid" in next(line for line in answers if line.startswith("claim"))
        winner = answers.index("saved")
        assert _equals_one_of(load_anndata_zarr(path), A, B) == winner
        for kind in kinds:
            tally[kind] += 1
    assert tally == {"saved": 6, "claim": 6}
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("go-")) == ["A.h5", "B.h5", "c.zarr"]


def test_a_save_while_another_holds_the_claim_is_refused_in_process(tmp_path, store):
    from h5stream.files import WriterClaim

    c, path = store
    with WriterClaim(path):
        with pytest.raises(IOWriterClaimError, match="already open for writing"):
            save_anndata_zarr(example_container(seed=3), path, assay="proteins", overwrite=True)
    assert_container_equal(load_anndata_zarr(path), _one_assay(c, load_anndata_zarr(path)))


# --------------------------------------------------------------------------- damage


def test_a_deleted_chunk_is_a_checksum_error_naming_it(store):
    _c, path = store
    chunk = _chunks(path, "X")[0]
    chunk.unlink()
    with pytest.raises(IOChecksumError, match="a file of the store is missing") as info:
        load_anndata_zarr(path)
    assert info.value.obj == "X/0.0" and str(path) in str(info.value)


def test_flipped_bytes_in_a_chunk_are_a_checksum_error_naming_it(store):
    _c, path = store
    chunk = _chunks(path, "X")[0]
    raw = bytearray(chunk.read_bytes())
    for i in range(16):
        raw[20 + 3 * i] ^= 0x5A
    chunk.write_bytes(bytes(raw))
    with pytest.raises(IOChecksumError, match="checksum mismatch") as info:
        load_anndata_zarr(path)
    assert info.value.obj == "X/0.0"
    with pytest.raises(IOFormatError, match="X/0.0"):  # unchecked, the codec meets the damage: still typed
        load_anndata_zarr(path, verify=False)


def _big(tmp_path: Path) -> tuple[ScpContainer, Path]:
    """A store whose X zarr splits into many chunks of one size (random bits: blosc stores them as they are)."""
    import polars as pl

    from h5scp import Assay, ScpMatrix

    n, f = 2000, 300
    x = np.random.default_rng(5).integers(0, 2**62, size=(n, f)).view(np.float64)  # finite, incompressible
    c = ScpContainer(pl.DataFrame({"_index": [f"s{i}" for i in range(n)]}),
                     {"proteins": Assay(pl.DataFrame({"_index": [f"p{j}" for j in range(f)]}), {"raw": ScpMatrix(x)})})
    return c, save_anndata_zarr(c, tmp_path / "big.zarr", assay="proteins")


def test_two_swapped_chunks_are_a_checksum_error(tmp_path):
    _c, path = _big(tmp_path)
    chunks = _chunks(path, "X")
    assert len(chunks) > 2
    a, b = chunks[0], chunks[1]
    assert a.stat().st_size == b.stat().st_size  # the sizes alone would not tell
    da, db = a.read_bytes(), b.read_bytes()
    a.write_bytes(db)
    b.write_bytes(da)
    with pytest.raises(IOChecksumError, match="checksum mismatch") as info:
        load_anndata_zarr(path)
    assert info.value.obj == a.relative_to(path).as_posix()


def test_a_half_truncated_chunk_is_a_typed_error_in_a_process_that_survives(tmp_path):
    """The chunk is checked before blosc sees it (blosc trusts the length in its header and reads past a
    truncated buffer): our store by its digest, a store anndata wrote by the blosc header's own length."""
    _c, ours = _big(tmp_path)
    adata = anndata.AnnData(np.random.default_rng(1).random((2000, 300)))
    theirs = tmp_path / "theirs.zarr"
    adata.write_zarr(theirs)
    for path in (ours, theirs):
        chunk = _chunks(path, "X")[1]
        chunk.write_bytes(chunk.read_bytes()[: chunk.stat().st_size // 2])
    script = textwrap.dedent(
        """
        import sys
        from h5scp.io import IOFormatError, load_anndata_zarr
        for path in sys.argv[1:]:
            try:
                load_anndata_zarr(path)
            except IOFormatError as exc:
                print(type(exc).__name__, exc.obj, str(exc)[:300], flush=True)
        """
    )
    done = subprocess.run([sys.executable, "-c", script, str(ours), str(theirs)], capture_output=True, text=True,
                          env=ENV, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert len(lines) == 2, done.stdout
    assert lines[0].startswith("IOChecksumError X/0.1 ") and "another size than was written" in lines[0]
    assert lines[1].startswith("IOFormatError X/0.1 ") and "blosc chunk's header disagrees" in lines[1]


def test_an_extra_chunk_file_is_a_checksum_error(store):
    _c, path = store
    (path / "X" / "9.9").write_bytes(b"\0" * 64)
    with pytest.raises(IOChecksumError, match="not written with it") as info:
        load_anndata_zarr(path)
    assert info.value.obj == "X/9.9"


def test_a_changed_root_attribute_is_a_checksum_error(store):
    _c, path = store
    attrs = json.loads((path / ".zattrs").read_text())
    attrs["creation_time"] = "2001-01-01T00:00:00+00:00"
    (path / ".zattrs").write_text(json.dumps(attrs))
    with pytest.raises(IOChecksumError, match="root group's metadata differs") as info:
        load_anndata_zarr(path)
    assert info.value.obj == ".zattrs"


_HUGE = textwrap.dedent(
    """
    import json, resource, sys
    resource.setrlimit(resource.RLIMIT_AS, (3 * 2**30, 3 * 2**30))  # an allocation of 6 GiB fails outright
    from h5scp.io import IOFormatError, load_anndata_zarr
    try:
        load_anndata_zarr(sys.argv[1])
    except IOFormatError as exc:
        print(type(exc).__name__, exc.obj, str(exc)[:400])
    """
)


@pytest.mark.parametrize("ours", [True, False])
def test_a_zarray_claiming_40_million_rows_is_refused_before_allocating(tmp_path, ours):
    path = tmp_path / "c.zarr"
    if ours:
        save_anndata_zarr(example_container(n_samples=30, n_proteins=25, seed=4), path, assay="proteins")
    else:
        anndata.AnnData(np.random.default_rng(1).random((30, 20))).write_zarr(path)
    meta = json.loads((path / "X" / ".zarray").read_text())
    meta["shape"][0] = 40_000_000
    meta["chunks"][0] = 40_000_000
    (path / "X" / ".zarray").write_text(json.dumps(meta))
    done = subprocess.run([sys.executable, "-c", _HUGE, str(path)], capture_output=True, text=True, env=ENV,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    if ours:
        assert done.stdout.startswith("IOChecksumError X/.zarray "), done.stdout
    else:
        assert done.stdout.startswith("IOFormatError X/.zarray "), done.stdout
        assert "declares more data than its chunk files hold" in done.stdout


_STATED = textwrap.dedent(
    """
    import sys, time, tracemalloc
    import zarr, anndata  # imported before the measure: the load's own cost is measured
    from h5scp.io import load
    tracemalloc.start()
    started = time.process_time()
    try:
        load(sys.argv[1])
    except Exception as exc:
        refused = f"{type(exc).__name__} {exc.obj}"
    else:
        refused = "loaded"
    # the process's own peak (VmHWM, reset at exec): ru_maxrss keeps the forking parent's peak across exec
    hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
    print(refused, time.process_time() - started, tracemalloc.get_traced_memory()[1], hwm * 1024)
    """
)


def test_a_store_of_100_kb_stating_10_million_rows_is_refused_before_memory_is_used(tmp_path):
    """Chunks without their files read as fill: a store anndata wrote (2,000 rows in 1 chunk) whose ``.zarray``
    files state 10 M rows was filled in memory, 2.4 GB and a minute, before it was refused."""
    path = tmp_path / "stated.zarr"
    rows = 2_000
    obs = __import__("pandas").DataFrame(index=[f"cell{i}" for i in range(rows)])
    anndata.AnnData(np.random.default_rng(3).random((rows, 5)).astype("f4"), obs=obs).write_zarr(path)
    stated = []
    for meta_path in sorted(path.rglob(".zarray")):
        meta = json.loads(meta_path.read_text())
        if meta["shape"] and meta["shape"][0] == rows:
            meta["shape"][0] = 10_000_000
            meta_path.write_text(json.dumps(meta))
            stated.append(meta_path.parent.relative_to(path).as_posix())
    assert "X" in stated and "obs/_index" in stated, stated
    assert sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) < 200_000
    done = subprocess.run([sys.executable, "-c", _STATED, str(path)], capture_output=True, text=True, env=ENV,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    refused, obj, cpu_seconds, traced, peak_rss = done.stdout.split()
    assert (refused, obj) == ("IOFormatError", "X/.zarray"), done.stdout
    assert int(traced) < 200 * 2**20 and int(peak_rss) < 400 * 2**20, done.stdout  # Python's, the process's
    assert float(cpu_seconds) < 2.0, done.stdout  # CPU time: the refusal's own work, whatever the load


def test_a_store_anndata_wrote_without_our_digests_loads_exactly(tmp_path):
    x = np.random.default_rng(2).random((50, 7)).astype(np.float32)
    path = tmp_path / "a.zarr"
    anndata.AnnData(x).write_zarr(path)
    c = load(path, assay="rna")
    assert np.array_equal(c.assays["rna"].layers["X"].X, x)


# --------------------------------------------------------------------------- full and read-only disks


def test_a_full_disk_is_a_write_error_and_leaves_nothing(tmp_path, store):
    c, path = store
    with tmpfs_mount(tmp_path / "small", "size=2m") as small:
        shutil.copytree(path, small / "c.zarr")
        big = _big(tmp_path)[0]  # about 5 MB
        with pytest.raises(IOWriteError, match="No space left on device") as info:
            save_anndata_zarr(big, small / "c.zarr", assay="proteins", overwrite=True)
        assert str(small / "c.zarr") in str(info.value) and "free disk space" in str(info.value)
        assert sorted(p.name for p in small.iterdir()) == ["c.zarr"]
        assert_container_equal(load_anndata_zarr(small / "c.zarr"), load_anndata_zarr(path))


def test_a_read_only_filesystem_is_a_write_error_naming_the_store(tmp_path, store):
    c, path = store
    folder = tmp_path / "ro"
    with tmpfs_mount(folder, "size=4m"):
        shutil.copytree(path, folder / "c.zarr")
        subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
        with pytest.raises(IOWriteError, match="Read-only file system") as info:
            save_anndata_zarr(c, folder / "c.zarr", assay="proteins", overwrite=True)
        assert str(folder / "c.zarr") in str(info.value) and "writable" in str(info.value)
        assert_container_equal(load_anndata_zarr(folder / "c.zarr"), load_anndata_zarr(path))


def test_a_full_temporary_folder_is_a_write_error_naming_the_store(tmp_path, store, monkeypatch):
    import tempfile

    c, path = store
    with tmpfs_mount(tmp_path / "tmp", "size=256k") as small:
        monkeypatch.setattr(tempfile, "tempdir", str(small))
        big = example_container(n_samples=400, n_proteins=300, seed=6)
        with pytest.raises(IOWriteError, match="temporary folder") as info:
            save_anndata_zarr(big, path, assay="proteins", overwrite=True)
        assert str(info.value).startswith(str(path)) and "No space left" in str(info.value)
        assert list(small.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.zarr", "tmp"]
    assert_container_equal(load_anndata_zarr(path), _one_assay(c, load_anndata_zarr(path)))


def test_a_text_chunk_replaced_by_numbers_in_a_store_anndata_wrote_is_refused_at_once(tmp_path):
    """numcodecs' text decoder allocates as many values as a chunk's first four bytes state (up to 2**32,
    tens of GB) before it meets the end of the data: the count is checked first."""
    import pandas as pd

    path = tmp_path / "a.zarr"
    anndata.AnnData(np.random.default_rng(3).random((40, 5)),
                    obs=pd.DataFrame({"note": [f"n{i}" for i in range(40)]},
                                     index=[f"c{i}" for i in range(40)])).write_zarr(path)
    text = path / "obs" / "note" / "0"
    assert json.loads((path / "obs" / "note" / ".zarray").read_text())["dtype"] == "|O"
    text.write_bytes((path / "X" / "0.0").read_bytes())
    started = time.perf_counter()
    with pytest.raises(IOFormatError) as info:
        load_anndata_zarr(path, assay="rna")
    assert time.perf_counter() - started < 20
    assert info.value.obj == "obs/note/0" and ("number of values" in str(info.value)
                                               or "cannot be decoded" in str(info.value))

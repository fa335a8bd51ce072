"""Corrupt and hostile inputs give typed errors in bounded time, never a crash or foreign data.

Every file is read by :func:`h5stream.files.verify_files`: a separate process opens
it with ``open_validated`` (with a format check built on ``require_attr_format``)
and reads every attribute and every dataset in full inside ``guard_read``.  The
child reports each file's outcome; an untyped exception, a crash of the child or
a read running past 10 seconds would show up in the result and fail the test
(hangs become typed errors by design and are accepted as such).
"""

from __future__ import annotations

import os
import signal
import struct
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from h5stream.errors import FormatError, SourceNotFoundError, UnsafeFileError
from h5stream.files import create_atomic, open_validated, require_attr_format, verify_files

FORMAT_NAME = "h5stream-test"
READ_TIMEOUT = 10.0
SECRET = np.full(64, 0x5EC2E7, dtype=np.int32)  # data that lives outside every test file


def check_test_format(f: h5py.File) -> None:
    """Format check run inside the reader process (imported there by name)."""
    require_attr_format(
        f, f.filename, name_attr="format", expected_name=FORMAT_NAME, version_attr="format_version",
        supported=("1.0",),
    )


def hang_check(f: h5py.File) -> None:
    time.sleep(600)


def crash_check(f: h5py.File) -> None:
    os.kill(os.getpid(), signal.SIGSEGV)


def write_valid(path: Path) -> None:
    rng = np.random.default_rng(3)
    with create_atomic(path) as f:
        f.attrs["format"] = FORMAT_NAME
        f.attrs["format_version"] = "1.0"
        f.attrs["created_by"] = "tests"
        units = f.create_group("units")
        for unit in range(6):
            g = units.create_group(f"unit_{unit:03d}")
            g.attrs["row"], g.attrs["col"] = unit, 2 * unit
            g.create_dataset("spike_times", data=np.sort(rng.integers(0, 10**6, 200)))
            g.create_group("features")
        f.create_dataset(
            "traces", data=rng.normal(size=(64, 128)).astype("f4"), chunks=(16, 32),
            compression="gzip", shuffle=True,
        )
        f.create_dataset("labels", data=np.array(["on", "off", "on-off"], dtype=object),
                         dtype=h5py.string_dtype())
        f.create_dataset("ragged/values", data=rng.random(500))
        f.create_dataset("ragged/offsets", data=np.array([0, 100, 350, 500]))
        f["alias"] = h5py.SoftLink("/units/unit_000")


def assert_typed(path: Path, result: FormatError | None) -> None:
    if result is None:
        return
    assert isinstance(result, FormatError), (path, result)
    message = str(result)
    assert "untyped" not in message, message
    assert "crashed" not in message, message
    assert result.path == str(path)


@pytest.fixture(scope="module")
def valid_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("valid") / "valid.h5"
    write_valid(path)
    return path


def test_valid_file_reads_fully(valid_file):
    assert verify_files([valid_file], check=check_test_format, timeout=READ_TIMEOUT) == [None]


def test_byte_flips_truncations_and_foreign_files(valid_file, tmp_path):
    rng = np.random.default_rng(2026)
    original = valid_file.read_bytes()
    flipped = []
    for i in range(200):
        data = bytearray(original)
        for _ in range(int(rng.integers(1, 9))):
            data[int(rng.integers(0, len(data)))] ^= int(rng.integers(1, 256))
        path = tmp_path / f"flip_{i:03d}.h5"
        path.write_bytes(bytes(data))
        flipped.append(path)
    truncated = []
    for length in sorted({0, 7, 8, 96, 511, 2048, len(original) - 1,
                          *rng.integers(1, len(original), 18).tolist()}):
        path = tmp_path / f"trunc_{length:07d}.h5"
        path.write_bytes(original[:length])
        truncated.append(path)
    foreign = {
        "text.h5": b"this is a text file, not HDF5\n" * 10,
        "random.h5": rng.integers(0, 256, 4096, dtype=np.uint8).tobytes(),
        "signature_then_junk.h5": b"\x89HDF\r\n\x1a\n" + b"\xff" * 1000,
        "zip.h5": b"PK\x03\x04" + b"\x00" * 200,
    }
    foreign_paths = []
    for name, content in foreign.items():
        path = tmp_path / name
        path.write_bytes(content)
        foreign_paths.append(path)

    paths = flipped + truncated + foreign_paths
    started = time.monotonic()
    results = verify_files(paths, check=check_test_format, timeout=READ_TIMEOUT)
    elapsed = time.monotonic() - started
    for path, result in zip(paths, results):
        assert_typed(path, result)
    hung = [p for p, r in zip(paths, results) if r is not None and "did not finish" in str(r)]
    assert elapsed < 60 + READ_TIMEOUT * len(hung)
    by_path = dict(zip(paths, results))
    # Every truncation and every foreign file is refused; flips hit data or metadata.
    assert all(by_path[p] is not None for p in truncated + foreign_paths)
    assert all("not an HDF5 file" in str(by_path[p]) for p in foreign_paths[:2] + foreign_paths[3:])
    flip_errors = sum(by_path[p] is not None for p in flipped)
    assert 0 < flip_errors <= 200


def test_file_of_another_format(tmp_path):
    cases = {
        "anndata.h5": {"encoding-type": "anndata", "encoding-version": "0.1.0"},
        "other_name.h5": {"format": "scptensor", "format_version": "1.0"},
        "no_version.h5": {"format": FORMAT_NAME},
        "future.h5": {"format": FORMAT_NAME, "format_version": "7.0"},
    }
    paths = []
    for name, attrs in cases.items():
        path = tmp_path / name
        with h5py.File(path, "w") as f:
            f.attrs.update(attrs)
            f["x"] = np.arange(3)
        paths.append(path)
    results = verify_files(paths, check=check_test_format, timeout=READ_TIMEOUT)
    for path, result in zip(paths, results):
        assert type(result) is FormatError, (path, result)
        assert str(path) in str(result)
    assert results[0].obj == "/@format" and "'h5stream-test'" in str(results[0])
    assert "'scptensor'" in str(results[1])
    assert "missing" in str(results[2])
    assert "'7.0'" in str(results[3]) and "upgrade" in str(results[3])
    for path in paths:  # the same refusal in this process
        with pytest.raises(FormatError):
            open_validated(path, check=check_test_format)


def test_files_that_point_outside_themselves_are_refused(tmp_path):
    secret = tmp_path / "secret.bin"
    SECRET.tofile(secret)
    secret_h5 = tmp_path / "secret.h5"
    with h5py.File(secret_h5, "w") as f:
        f["x"] = SECRET
    stem = {"format": FORMAT_NAME, "format_version": "1.0"}

    external_link = tmp_path / "external_link.h5"
    with h5py.File(external_link, "w") as f:
        f.attrs.update(stem)
        f["units/unit_000/spikes"] = h5py.ExternalLink(str(secret_h5), "/x")
    external_storage = tmp_path / "external_storage.h5"
    with h5py.File(external_storage, "w") as f:
        f.attrs.update(stem)
        f.create_dataset("traces", shape=SECRET.shape, dtype=SECRET.dtype,
                         external=[(str(secret), 0, SECRET.nbytes)])
    virtual = tmp_path / "virtual.h5"
    with h5py.File(virtual, "w") as f:
        f.attrs.update(stem)
        layout = h5py.VirtualLayout(shape=SECRET.shape, dtype=SECRET.dtype)
        layout[:] = h5py.VirtualSource(str(secret_h5), "x", shape=SECRET.shape)
        f.create_virtual_dataset("traces", layout)
    # Sanity: plain h5py does read the secret through each of them.
    with h5py.File(external_storage, "r") as f:
        assert (f["traces"][()] == SECRET).all()

    paths = [external_link, external_storage, virtual]
    results = verify_files(paths, check=check_test_format, timeout=READ_TIMEOUT)
    expected_objects = ["/units/unit_000/spikes", "/traces", "/traces"]
    for path, result, obj in zip(paths, results, expected_objects):
        assert isinstance(result, UnsafeFileError), (path, result)
        assert result.obj == obj and str(path) in str(result)
        with pytest.raises(UnsafeFileError):
            open_validated(path, check=check_test_format)


def test_missing_file_and_directory(tmp_path):
    results = verify_files([tmp_path / "absent.h5", tmp_path], timeout=READ_TIMEOUT)
    assert isinstance(results[0], SourceNotFoundError)
    assert type(results[1]) is FormatError and "directory" in str(results[1])


def test_reads_that_hang_or_crash_become_typed_errors(valid_file):
    started = time.monotonic()
    hung, after = verify_files([valid_file, valid_file.parent / "x.h5"], check=hang_check, timeout=1.0)
    assert time.monotonic() - started < 30
    assert type(hung) is FormatError and "did not finish within 1 s" in str(hung)
    assert isinstance(after, SourceNotFoundError)  # the reader restarted for the next file
    crashed, = verify_files([valid_file], check=crash_check, timeout=READ_TIMEOUT)
    assert type(crashed) is FormatError and "crashed" in str(crashed)
    assert str(-signal.SIGSEGV) in str(crashed)


def corrupt_global_heap_object_size(path: Path) -> None:
    """Give the second object of the first global heap collection a size it does not have.

    libhdf5 2.0 loops forever reading the variable-length strings of such a file
    (found by the byte-flip test above).
    """
    data = bytearray(path.read_bytes())
    start = data.find(b"GCOL")
    assert start >= 0
    first_size = struct.unpack_from("<Q", data, start + 16 + 8)[0]
    second = start + 16 + 16 + (first_size + 7) // 8 * 8
    assert struct.unpack_from("<H", data, second)[0] == 2
    struct.pack_into("<Q", data, second + 8, 209)
    path.write_bytes(bytes(data))


def test_a_file_that_makes_libhdf5_loop_is_a_typed_error_in_time(tmp_path):
    path = tmp_path / "looping_heap.h5"
    with h5py.File(path, "w") as f:
        f.attrs["format"] = FORMAT_NAME
        f.attrs["format_version"] = "1.0"
        f.create_dataset("labels", data=np.array(["on", "off"], dtype=object), dtype=h5py.string_dtype())
    corrupt_global_heap_object_size(path)
    good = tmp_path / "good.h5"
    write_valid(good)
    started = time.monotonic()
    looping, after = verify_files([path, good], check=check_test_format, timeout=3.0)
    assert time.monotonic() - started < 3.0 + 30  # the limit, plus starting two reader processes
    assert isinstance(looping, FormatError)
    assert looping.path == str(path)
    assert after is None  # the next file is read by a fresh reader
    # The open's own scan of global heaps (files up to 16 MB) refuses it before any read; larger
    # files are left to the out-of-process check, whose time limit the verify_files call above shows.
    started = time.monotonic()
    with pytest.raises(FormatError, match="global heap collection is damaged"):
        open_validated(path, check=check_test_format, verify_timeout=3.0)
    assert time.monotonic() - started < 3.0
    with open_validated(good, check=check_test_format, verify_timeout=10.0) as f:
        assert f["ragged/offsets"][()].tolist() == [0, 100, 350, 500]

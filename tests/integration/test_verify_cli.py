"""``hdmea verify FILE`` and ``python -m scptensor verify FILE``: whole-file checks, as users run them.

Files are written by the public saves, damaged by flipping one byte on disk,
and checked by the commands in subprocesses: exit status 0 with a summary for
a good file, non-zero with the typed error naming the object for a damaged one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest

from hdmea.pipeline import create_session
from h5scp.io import save
from h5scp.testing import example_container
from tests.data.golden import golden_cases as cases


def run(*args) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "error"}
    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, timeout=120, env=env)


def flip_copy(path, target, offset: int):
    shutil.copyfile(path, target)
    with open(target, "r+b") as raw:
        raw.seek(offset)
        byte = raw.read(1)
        raw.seek(offset)
        raw.write(bytes([byte[0] ^ 0x01]))
    return target


@pytest.fixture()
def recording(tmp_path):
    path = tmp_path / "rec.h5"
    s = create_session("rec", hdf5_path=path)
    s.add_units({f"u{i}": {"spike_times": np.arange(i, 40_000, 7, dtype=np.uint64), "row": 1, "col": i}
                 for i in range(3)})
    s.add_metadata({"trace": np.arange(30_000, dtype=np.float32)})
    s.save()
    s.close()
    return path


def test_hdmea_verify_good_and_damaged(tmp_path, recording):
    good = run("-m", "hdmea", "verify", recording)
    assert good.returncode == 0, good.stderr
    line = good.stdout.strip()
    assert line.startswith(f"{recording}: OK, ") and "datasets" in line and "attributes checked" in line
    assert " MB read in " in line and "no checksum manifest" not in line
    with h5py.File(recording, "r") as f:
        offset = f["units/u1/spike_times"].id.get_offset() + 100
    bad = flip_copy(recording, tmp_path / "bad.h5", offset)
    result = run("-m", "hdmea", "verify", bad)
    assert result.returncode != 0 and result.stdout == ""
    assert "ChecksumError" not in result.stderr and "[/units/u1/spike_times]" in result.stderr  # no class names
    assert "expected crc32 " in result.stderr and "found crc32 " in result.stderr


@pytest.mark.parametrize("ext", [".h5", ".h5ad", ".h5mu"])
def test_scptensor_verify_good_and_damaged_chunk(tmp_path, ext):
    container = example_container(n_samples=300, n_proteins=40, peptides_per_protein=3, seed=5)
    path = tmp_path / f"c{ext}"
    # gzip throughout: chunked datasets, each chunk with Fletcher32 (the default, compression="auto",
    # stores this container's random arrays plain and contiguous, with no chunk to damage)
    save(container, path, compression="gzip", **({"assay": "proteins"} if ext == ".h5ad" else {}))
    good = run("-m", "h5scp", "verify", path)
    assert good.returncode == 0, good.stderr
    assert good.stdout.startswith(f"{path}: OK, ") and "by Fletcher32" in good.stdout
    with h5py.File(path, "r") as f:
        chunked = []
        f.visititems(lambda n, o: chunked.append("/" + n) if isinstance(o, h5py.Dataset) and o.chunks else None)
        name = chunked[0]
        offset = f[name].id.get_chunk_info(0).byte_offset + 20
    bad = flip_copy(path, tmp_path / f"bad{ext}", offset)
    result = run("-m", "h5scp", "verify", bad)
    assert result.returncode != 0 and result.stdout == ""
    assert result.stderr.startswith("python -m h5scp verify: ") and f"[{name}]" in result.stderr
    assert "checksum" in result.stderr


def test_scptensor_verify_legacy_file_says_it_has_no_checksums():
    legacy = cases.HERE.parent / "scptensor_legacy_v1.h5"
    result = run("-m", "h5scp", "verify", legacy)
    assert result.returncode == 0, result.stderr
    assert "no checksum manifest" in result.stdout and "datasets carry no checksum" in result.stdout


def test_verify_missing_file_fails(tmp_path):
    for module in ("hdmea", "h5scp"):
        result = run("-m", module, "verify", tmp_path / "nothing.h5")
        assert result.returncode != 0 and "nothing.h5" in result.stderr


def test_hdmea_verify_attribute_flip_names_the_attribute(tmp_path, recording):
    """Attributes are listed per object (manifest version 2): the command still names the damaged one."""
    with h5py.File(recording, "r") as f:
        dataset_id = f.attrs["dataset_id"]
    data = recording.read_bytes()
    needle = b"\x00rec\x00"  # the 3-byte dataset id in the global heap, unique in the file
    assert dataset_id == "rec" and data.count(needle) == 1
    bad = flip_copy(recording, tmp_path / "bad.h5", data.find(needle) + 2)
    result = run("-m", "hdmea", "verify", bad)
    assert result.returncode == 1 and "[/@dataset_id]" in result.stderr and "expected crc32 " in result.stderr


def test_hdmea_verify_version_1_manifest(tmp_path):
    """A file whose manifest is in its version-1 form (made with plain h5py and zlib) verifies as before."""
    from tests import manifest_v1

    path = tmp_path / "v1.h5"
    manifest = manifest_v1.write_v1_recording(path)
    good = run("-m", "hdmea", "verify", path)
    assert good.returncode == 0, good.stderr
    count = sum(len(a) for a in manifest["attributes"].values())
    assert "2 datasets (2 by digest" in good.stdout and f"{count} attributes checked" in good.stdout
    bad = flip_copy(path, tmp_path / "bad.h5", path.read_bytes().find(manifest_v1.LABEL.encode()) + 3)
    result = run("-m", "hdmea", "verify", bad)
    assert result.returncode != 0 and "[/units/u1/@label]" in result.stderr
    assert f"expected crc32 {manifest['attributes']['/units/u1']['label']}" in result.stderr

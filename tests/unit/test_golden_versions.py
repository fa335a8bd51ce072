"""One golden file per format version: every version constant of the source has one, and today's code reads it.

``golden_cases.VERSIONS`` maps each ``(module, constant, value)`` to its file in tests/data/golden
(written by ``make_golden.py`` or ``make_versions.py``, which say how). A new format version (a changed
``FORMAT_VERSION``, ``MANIFEST_VERSION`` or ``*_FORMAT_VERSION`` constant, or a new one) fails
:func:`test_every_format_version_constant_has_a_golden_file` until its golden file is written by the
code that introduces it. The files after the first set are read here against their snapshots
(recorded with the code that wrote them) and their own checksums.
"""

from __future__ import annotations

import ast
import importlib
import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from tests.data.golden import golden_cases as cases

GOLDEN = cases.HERE
SRC = Path(__file__).resolve().parents[2] / "src"
_CONSTANT = ("FORMAT_VERSION", "MANIFEST_VERSION")


def _version_constants() -> list[tuple[str, str]]:
    """(module, name) of every module-level ``*FORMAT_VERSION`` / ``MANIFEST_VERSION`` assignment in src/."""
    found = []
    for path in sorted(SRC.rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Name) and target.id.endswith(_CONSTANT):
                        found.append((module, target.id))
    return found


def test_every_format_version_constant_has_a_golden_file():
    constants = _version_constants()
    assert len(constants) >= 5, constants  # the scan sees the constants it is meant to see
    missing = []
    for module, name in constants:
        value = getattr(importlib.import_module(module), name)
        golden = cases.VERSIONS.get((module, name, value))
        if golden is None or not (GOLDEN / golden).exists():
            missing.append(f"{module}.{name} = {value!r}")
    assert not missing, ("format versions without a golden file in tests/data/golden (write one with the code "
                         "that introduces the version, add it to golden_cases.VERSIONS): " + ", ".join(missing))


def test_every_registered_golden_file_exists_and_is_not_stale():
    constants = set(_version_constants())
    for (module, name, _value), golden in cases.VERSIONS.items():
        assert (GOLDEN / golden).exists(), golden
        assert (module, name) in constants, f"{module}.{name} is no longer a version constant of the source"


# ----------------------------------------------------------------------------- files say their version


def _stamp(golden: str):
    path = GOLDEN / golden
    if golden.endswith(".parquet"):
        return json.loads((path / "manifest.json").read_text())["format_version"]
    if golden.endswith(".zarr"):
        return json.loads((path / ".zattrs").read_text())["scptensor-checksums"]["format_version"]
    with h5py.File(path, "r") as f:
        if golden == cases.CHECKSUMMED_GOLDEN or golden.startswith("scptensor_2.0_checksums_v"):
            return json.loads(f.attrs["h5stream_checksums"])["version"]
        if golden == cases.MIGRATED_GOLDEN:
            return f["pipeline/migration"].attrs["format_version"]
        if "h5stream_format_version" in f.attrs:
            return f.attrs["h5stream_format_version"]
        return f.attrs["format_version"]


@pytest.mark.parametrize("key", list(cases.VERSIONS), ids=lambda k: f"{k[0]}.{k[1]}-{k[2]}")
def test_each_golden_file_is_written_in_its_version(key):
    stamp = _stamp(cases.VERSIONS[key])
    assert (stamp.decode() if isinstance(stamp, bytes) else stamp) == key[2]


# ----------------------------------------------------------------------------- the files read exactly


def test_parquet_1_0_reads_exactly_with_its_crc_manifest():
    from h5scp.io.formats_parquet import load_parquet
    from h5scp.testing import assert_container_equal

    path = GOLDEN / cases.PARQUET_GOLDEN
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["checksums"]["algorithm"] == "crc32" and manifest["checksums"]["files"]
    loaded = load_parquet(path)
    assert_container_equal(loaded, cases.expected_container(loaded))


def test_parquet_1_0_damaged_copy_is_refused(tmp_path):
    from h5scp.io.exceptions import IOChecksumError
    from h5scp.io.formats_parquet import load_parquet

    copy = shutil.copytree(GOLDEN / cases.PARQUET_GOLDEN, tmp_path / "copy.parquet")
    obs = copy / "obs.parquet"
    raw = bytearray(obs.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    obs.write_bytes(bytes(raw))
    with pytest.raises(IOChecksumError, match="obs.parquet"):
        load_parquet(copy)


def _zarr_expected():
    from h5scp import ScpContainer
    from h5scp.testing import example_container

    c = cases.fix_history_times(example_container(seed=cases.CONTAINER_SEED))
    return c, ScpContainer(c.obs, {"peptides": c.assays["peptides"]}, history=c.history)


def test_zarr_1_0_reads_exactly_with_its_manifest():
    import anndata

    from h5scp.io.formats_zarr import load_anndata_zarr
    from h5scp.testing import assert_container_equal

    path = GOLDEN / cases.ZARR_GOLDEN
    manifest = json.loads((path / ".zattrs").read_text())["scptensor-checksums"]
    on_disk = {p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()} - {".zattrs"}
    assert manifest["algorithm"] == "crc32" and set(manifest["files"]) == on_disk and manifest["self"]
    c, expected = _zarr_expected()
    assert_container_equal(load_anndata_zarr(path), expected)
    # a third-party reader sees the same X (the peptides' norm layer)
    def dense(x):
        return np.asarray(x.toarray() if hasattr(x, "toarray") else x)

    np.testing.assert_array_equal(dense(anndata.read_zarr(path).X), dense(c.assays["peptides"].layers["norm"].X))


def test_zarr_1_0_damaged_copy_is_refused(tmp_path):
    from h5scp.io.exceptions import IOChecksumError
    from h5scp.io.formats_zarr import load_anndata_zarr

    copy = shutil.copytree(GOLDEN / cases.ZARR_GOLDEN, tmp_path / "copy.zarr")
    chunk = copy / "X" / "data" / "0"  # the values of the sparse X
    raw = bytearray(chunk.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    chunk.write_bytes(bytes(raw))
    with pytest.raises(IOChecksumError, match="checksum mismatch") as info:
        load_anndata_zarr(copy)
    assert info.value.obj == chunk.relative_to(copy).as_posix()


def _session_snapshot(path: Path) -> dict:
    from hdmea.pipeline import PipelineSession

    loaded = PipelineSession.load(path)
    try:
        return {"dataset_id": loaded.dataset_id, "completed_steps": list(loaded.completed_steps),
                "warnings": list(loaded.warnings), "tree": loaded.get("")}
    finally:
        loaded.close()


def test_checksummed_recording_verifies_and_reads_exactly():
    from h5stream.files.checksum_checks import check_file

    path = GOLDEN / cases.CHECKSUMMED_GOLDEN
    summary = check_file(path)
    assert summary["manifest"] and summary["datasets"] > 0
    expected = cases.load_snapshot(GOLDEN / "hdmea_recording_checksummed.expected")
    assert expected["completed_steps"] and len(expected["tree"]["units"]) == cases.RECORDING_UNITS
    cases.assert_same(_session_snapshot(path), expected, "checksummed recording")


def test_checksummed_recording_damaged_copy_is_refused(tmp_path):
    from h5stream.files.checksum_checks import check_file
    from h5stream.errors import ChecksumError

    copy = tmp_path / "copy.h5"
    shutil.copyfile(GOLDEN / cases.CHECKSUMMED_GOLDEN, copy)
    with h5py.File(copy, "r+") as f:  # a value changed behind the writer's back, with plain h5py
        listed = json.loads(f.attrs["h5stream_checksums"])["datasets"]
        assert "/stimulus/light_reference/raw_ch1" in listed  # a dataset the manifest's CRC-32 covers
        data = f["stimulus/light_reference/raw_ch1"]
        data[0] = np.asarray(data[0]) + 1
    with pytest.raises(ChecksumError, match="raw_ch1"):
        check_file(copy)


@pytest.mark.parametrize("version", [2, 3])
def test_checksummed_container_reads_exactly_verified(version):
    """Manifest version 3 added names digests; a container written with version 2 (none) reads as before."""
    from h5stream.files.checksum_checks import check_file
    from h5scp.io import load_hdf5
    from h5scp.testing import assert_container_equal

    path = GOLDEN / cases.CHECKSUMMED_CONTAINER_GOLDEN.format(version=version)
    loaded = load_hdf5(path, verify=True)
    assert_container_equal(loaded, cases.expected_container(loaded))
    summary = check_file(path)
    assert summary["manifest"] and summary["attributes"] > 0
    assert (summary["names"] > 0) == (version >= 3)


def test_checksummed_container_v3_renamed_attribute_is_refused(tmp_path):
    """A root attribute's name with one byte changed (its value and every value digest intact)."""
    from h5scp.io import load_hdf5
    from h5scp.io.exceptions import IOChecksumError

    copy = tmp_path / "copy.h5"
    raw = bytearray((GOLDEN / cases.CHECKSUMMED_CONTAINER_GOLDEN.format(version=3)).read_bytes())
    at = raw.find(b"history_saved\0")
    assert at > 0 and raw.find(b"history_saved\0", at + 1) < 0
    raw[at + 8] ^= 0x01  # "history_saved" -> "history_raved"
    copy.write_bytes(bytes(raw))
    with pytest.raises(IOChecksumError, match="names of the object's attributes or members") as info:
        load_hdf5(copy)
    assert f"{copy} [/]" in str(info.value) and "history_raved" in str(info.value)


def test_migrated_recording_reads_exactly_with_its_migration_record():
    from h5stream.tree import decode_node, node_from_h5
    from hdmea.io.hdf5_store import open_recording_hdf5

    path = GOLDEN / cases.MIGRATED_GOLDEN
    expected = cases.load_snapshot(GOLDEN / "hdmea_migrated.expected")
    migration = expected.pop("migration")
    cases.assert_same(_session_snapshot(path), expected, "migrated recording")
    with open_recording_hdf5(path, "r") as f:
        record = decode_node(node_from_h5(f["pipeline/migration"]))
    cases.assert_same(record, migration, "migration record")
    assert record["format_version"] == "1" and record["source_format"].startswith("zarr v2")

"""End-to-end checksums (h5stream.checksums): flipped bytes in files our writers produce are caught.

Each test writes a file through a public save, flips one byte of its raw
storage on disk (found with HDF5's own offsets for contiguous data and chunks,
or by searching the file for planted bytes), and checks that the default load
raises ChecksumError naming the object, while ``verify=False`` returns the
damaged value as stored.
"""

from __future__ import annotations

import json
import logging
import shutil
import zlib

import h5py
import numpy as np
import pytest

from h5stream import checksums
from h5stream.files import checksum_checks as checksum_file
from h5stream.checksums import _fletcher32 as fletcher32_module
from h5stream.errors import ChecksumError, FormatError
from hdmea.io.hdf5_store import create_recording_hdf5, open_recording_hdf5, write_metadata, write_units
from hdmea.pipeline import PipelineSession, create_session
from h5scp.io import load, save
from h5scp.io.exceptions import IOChecksumError
from h5scp.testing import example_container
from tests.data.golden import golden_cases as cases
from tests import manifest_v1

LEGACY_CONTAINER = cases.HERE.parent / "scptensor_legacy_v1.h5"


def flip(path, offset: int, mask: int = 0x40) -> None:
    """XOR one byte of the file at ``offset`` (the file is damaged on disk, nothing else changes)."""
    with open(path, "r+b") as raw:
        raw.seek(offset)
        byte = raw.read(1)
        raw.seek(offset)
        raw.write(bytes([byte[0] ^ mask]))


def damaged_copy(path, tmp_path, offset: int, name: str = "damaged"):
    target = tmp_path / f"{name}{path.suffix}"
    shutil.copyfile(path, target)
    flip(target, offset)
    return target


def manifest_of(path) -> dict:
    with h5py.File(path, "r") as f:
        return json.loads(f.attrs[checksums.MANIFEST_ATTR])


def contiguous_offset(path, name: str) -> int:
    with h5py.File(path, "r") as f:
        ds = f[name]
        assert ds.id.get_create_plist().get_layout() == h5py.h5d.CONTIGUOUS
        return ds.id.get_offset()


def chunk_offset(path, name: str, index: int = 0) -> int:
    with h5py.File(path, "r") as f:
        info = f[name].id.get_chunk_info(index)
        return info.byte_offset


def _text_crc(value: str) -> str:
    """The digest of one text attribute, computed here from the documented formula."""
    raw = value.encode("utf-8")
    return f"{zlib.crc32(raw, zlib.crc32(len(raw).to_bytes(8, 'little'), zlib.crc32(b'text|()'))):08x}"


def find_bytes(path, needle: bytes) -> int:
    data = path.read_bytes()
    at = data.find(needle)
    assert at >= 0 and data.find(needle, at + 1) < 0, "the planted bytes occur exactly once"
    return at


# --------------------------------------------------------------------------- the digests


@pytest.mark.parametrize("payload", [b"", b"\x01", b"ab", b"abc", bytes(720), b"\xff" * 721,
                                     bytes(range(256)) * 9 + b"\x07"])
def test_fletcher32_equals_hdf5_filter(tmp_path, payload):
    data = np.frombuffer(payload, np.uint8) if payload else np.zeros(1, np.uint8)
    with h5py.File(tmp_path / "f.h5", "w") as f:
        ds = f.create_dataset("d", data=data, chunks=(data.size,), fletcher32=True)
        _mask, stored = ds.id.read_direct_chunk((0,))
    assert stored[:-4] == data.tobytes()
    assert int.from_bytes(stored[-4:], "little") == checksums.fletcher32(data.tobytes())
    # the numpy arithmetic used when libhdf5 cannot be called directly gives the same checksum
    assert int.from_bytes(stored[-4:], "little") == fletcher32_module._fletcher32_numpy(data)
    assert bytes(checksums.strip_fletcher32(stored)) == data.tobytes()
    damaged = bytearray(stored)
    damaged[0] ^= 0x10
    with pytest.raises(ChecksumError, match="Fletcher32"):
        checksums.strip_fletcher32(bytes(damaged), path="x.h5", obj="/d")


def test_digests_cover_dtype_shape_and_bytes():
    a = np.arange(12, dtype="<f4").reshape(3, 4)
    expected = zlib.crc32(a.tobytes(), zlib.crc32(b"<f4|(3, 4)"))
    assert checksums.array_digest(a) == f"{expected:08x}"
    assert checksums.array_digest(np.asfortranarray(a)) == checksums.array_digest(a)  # C order, always
    assert checksums.array_digest(a.reshape(4, 3)) != checksums.array_digest(a)
    assert checksums.array_digest(a.astype("<i4")) != checksums.array_digest(a.view("<i4"))
    crc = zlib.crc32(b"text|(2,)")
    for item in ("é", "ab"):
        raw = item.encode("utf-8")
        crc = zlib.crc32(raw, zlib.crc32(len(raw).to_bytes(8, "little"), crc))
    assert checksums.text_digest(np.array(["é", "ab"], dtype=object)) == f"{crc:08x}"
    # text digests agree however h5py hands the strings back (str, bytes)
    assert checksums.text_digest(np.array([b"\xc3\xa9", b"ab"], dtype=object)) == f"{crc:08x}"


@pytest.mark.parametrize("n", [0, 1, 2047, 2048, 100_003])
def test_large_array_digests_equal_zlib(n):
    """Large arrays go through libdeflate's CRC-32 when installed: the value is zlib's, in one piece or in blocks."""
    a = np.random.default_rng(n).integers(0, 2**63, n, dtype=np.uint64)[::-1]  # not contiguous: copied first
    want = zlib.crc32(np.ascontiguousarray(a).tobytes(), zlib.crc32(f"<u8|({n},)".encode()))
    assert checksums.array_digest(a) == f"{want:08x}"
    crc = checksums.digest_start(a.dtype, a.shape)
    for start in range(0, n, 30_000):
        crc = checksums.digest_update(crc, a[start:start + 30_000])
    assert checksums.digest_end(crc) == f"{want:08x}"


@pytest.mark.parametrize("layout", [
    dict(shape=(1000,), dtype="<f8"),
    dict(shape=(333, 7), dtype=">i2"),
    dict(shape=(250, 3, 2), dtype="<c16", chunks=(16, 3, 2), compression="gzip"),
    dict(shape=(5000,), dtype="|b1"),
    dict(shape=(2, 5), dtype="<u4"),
    dict(shape=(0, 4), dtype="<f4"),
    dict(shape=(), dtype="<i8"),
    dict(shape=(40,), dtype=[("a", "<i4"), ("b", "<f8")]),
])
def test_stored_digest_in_blocks_equals_the_digest_of_the_whole_read(tmp_path, monkeypatch, layout):
    """A stored dataset digested block by block (here blocks of ~1 kB) has the digest of its values
    read whole, the CRC-32 of its header and bytes computed here with zlib."""
    monkeypatch.setattr("h5stream.digests.BLOCK_BYTES", 1000)
    layout = dict(layout)
    shape, dtype = layout.pop("shape"), np.dtype(layout.pop("dtype"))
    rng = np.random.default_rng(len(shape))
    values = rng.integers(0, 255, size=int(np.prod(shape)) * dtype.itemsize, dtype=np.uint8)
    values = np.frombuffer(values.tobytes(), dtype=dtype).reshape(shape) if dtype.kind != "b" else \
        rng.integers(0, 2, size=shape).astype(bool)
    with h5py.File(tmp_path / "d.h5", "w") as f:
        ds = f.create_dataset("d", data=values, **layout)
        read = ds[()]
        want = zlib.crc32(np.ascontiguousarray(read).tobytes(),
                          zlib.crc32(f"{read.dtype.str}|{tuple(read.shape)}".encode()))
        assert checksums.stored_digest(ds) == f"{want:08x}"
        blocks = [np.array(b) for b in checksums.read_blocks(ds)]  # copies: the buffer is reused
        assert np.array_equal(np.concatenate(blocks) if shape else blocks[0], values)
        if len(shape) and shape[0] * values[:1].nbytes > 2000:
            assert len(blocks) > 2


# --------------------------------------------------------------------------- the recording store


def _saved_session(tmp_path, **session_kwargs):
    path = tmp_path / "rec.h5"
    s = create_session("rec", hdf5_path=path, **session_kwargs)
    s.add_units({"u1": {"spike_times": np.arange(1000, 1100, dtype=np.uint64) * np.uint64(0x0101010101),
                        "waveform": np.linspace(0, 1, 50, dtype=np.float32), "row": 3, "col": 4}})
    s.add_feature("u1", "sta", {"kernel": np.arange(10.0)},
                  {"params": '{"city": "mobile-checksum-probe"}', "version": "1"})
    s.add_metadata({"trace": np.arange(20_000, dtype=np.float64), "operator": "lab"})
    s.save()
    s.close()
    return path


def _datasets(path) -> dict[str, str]:
    """Every dataset of a file -> its layout: "compact", "contiguous" or "chunked"."""
    names = {h5py.h5d.COMPACT: "compact", h5py.h5d.CONTIGUOUS: "contiguous", h5py.h5d.CHUNKED: "chunked"}
    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda n, o: out.__setitem__("/" + n, names[o.id.get_create_plist().get_layout()])
                     if isinstance(o, h5py.Dataset) else None)
    return out


def test_recording_manifest_lists_every_dataset_and_text_attribute(tmp_path):
    path = _saved_session(tmp_path)
    manifest = manifest_of(path)
    assert manifest["format"] == "h5stream-checksums" and manifest["algorithm"] == "crc32"
    layouts = _datasets(path)
    with h5py.File(path, "r") as f:
        trace = f["metadata/trace"][()]
        # compact data live in version-2 object headers, which HDF5 checksums itself
        assert all(h5py.h5o.get_info(f[n].id).hdr.version == 2 for n, kind in layouts.items() if kind == "compact")
    assert set(manifest["datasets"]) == {n for n, kind in layouts.items() if kind != "compact"}
    assert "/units/u1/spike_times" in layouts and layouts["/metadata/trace"] == "contiguous"
    assert manifest["datasets"]["/metadata/trace"] == checksums.array_digest(trace)
    # one string per object: the digests of its text attributes in name order (numbers sit in checksummed headers)
    assert manifest["version"] == 3 and manifest["attributes"] == {}
    assert manifest["name_digests"] == {}  # version-2 headers: HDF5 checksums the names itself
    assert manifest["attribute_digests"]["text"]["/units/u1/features/sta"] == (
        _text_crc("sta") + _text_crc('{"city": "mobile-checksum-probe"}') + _text_crc("1"))  # name, params, version
    stats = checksum_file.check_file(path)
    assert stats["datasets"] + stats["header"] == len(layouts) and stats["unchecked"] == 0


def test_recording_contiguous_flip_is_a_checksum_error(tmp_path):
    path = _saved_session(tmp_path)
    offset = contiguous_offset(path, "metadata/trace") + 8 * 123 + 7  # high byte of trace[123]
    bad = damaged_copy(path, tmp_path, offset)
    expected = manifest_of(path)["datasets"]["/metadata/trace"]
    session = PipelineSession.load(bad)
    with pytest.raises(ChecksumError) as info:
        session.metadata["trace"]  # noqa: B018 - the lazy array is read (and checked) here
    message = str(info.value)
    assert str(bad) in message and "[/metadata/trace]" in message and f"expected crc32 {expected}" in message
    assert "found crc32 " in message
    session.close()
    # verify=False hands over the damaged values
    unchecked = PipelineSession.load(bad, verify=False)
    trace = unchecked.metadata["trace"]
    unchecked.close()
    wrong = np.flatnonzero(trace != np.arange(20_000, dtype=np.float64))
    assert wrong.tolist() == [123]
    with pytest.raises(ChecksumError, match=r"\[/metadata/trace\]"):
        checksum_file.check_file(bad)


def test_recording_compact_flip_is_a_checksum_error(tmp_path):
    path = _saved_session(tmp_path)
    spikes = np.arange(1000, 1100, dtype=np.uint64) * np.uint64(0x0101010101)
    bad = damaged_copy(path, tmp_path, find_bytes(path, spikes.tobytes()[:64]) + 9)
    # compact data live in the object header, which HDF5 checksums itself (v2 headers)
    with pytest.raises(ChecksumError, match=r"\[/units/u1/spike_times\]"):
        PipelineSession.load(bad)
    with pytest.raises(ChecksumError, match=r"\[/units/u1/spike_times\]"):
        checksum_file.check_file(bad)


def test_recording_json_attribute_flip_is_a_checksum_error(tmp_path):
    path = _saved_session(tmp_path)
    bad = damaged_copy(path, tmp_path, find_bytes(path, b"mobile-checksum-probe"), name="attr")
    with pytest.raises(ChecksumError) as info:
        PipelineSession.load(bad)
    assert "[/units/u1/features/sta/@params]" in str(info.value)
    unchecked = PipelineSession.load(bad, verify=False)
    params = unchecked.units["u1"]["features"]["sta"]["params"]
    unchecked.close()
    assert params != '{"city": "mobile-checksum-probe"}' and params.startswith('{"city": "')


def test_recording_updates_keep_the_manifest_right(tmp_path):
    path = tmp_path / "imm.h5"
    with create_recording_hdf5(path, "rec") as f:
        write_units(f, {"a": {"spike_times": np.arange(5000), "row": 1, "col": 1},
                        "b": {"spike_times": np.arange(3), "row": 1, "col": 2}})
    with open_recording_hdf5(path, "r+") as f:
        write_units(f, {"a": {"spike_times": np.arange(10, 6000), "row": 2, "col": 2}})
        write_metadata(f, {"note": "second pass"})
    manifest = manifest_of(path)
    with h5py.File(path, "r") as f:
        assert manifest["datasets"]["/units/a/spike_times"] == checksums.array_digest(f["units/a/spike_times"][()])
        assert "/units/b/spike_times" not in f or "/units/b/spike_times" not in manifest["datasets"]
        # the update wrote version-1 headers (no HDF5 checksum): its compact data have digests
        assert h5py.h5o.get_info(f["metadata/note"].id).hdr.version == 1
    assert "/metadata/note" in manifest["datasets"]
    # ... and the objects it wrote list all their attributes, numbers too: col, global_id?, row, spike_count
    with h5py.File(path, "r") as f:
        names = sorted(f["units/a"].attrs)
        want = "".join(f"{zlib.crc32(f['units/a'].attrs[n].tobytes(), zlib.crc32(b'<i8|()')):08x}" for n in names)
    assert names == ["col", "row", "spike_count"] and manifest["attribute_digests"]["all"]["/units/a"] == want
    stats = checksum_file.check_file(path)
    assert stats["datasets"] + stats["header"] == len(_datasets(path)) and stats["unchecked"] == 0
    session = PipelineSession.load(path)
    assert session.units["a"]["spike_times"].tolist() == list(range(10, 6000))
    session.close()


def test_spilled_and_copied_arrays_carry_their_digests(tmp_path):
    path = _saved_session(tmp_path, memory_limit=1024)  # every array spills, then moves into the file
    assert checksum_file.check_file(path)["unchecked"] == 0
    assert "/metadata/trace" in manifest_of(path)["datasets"]
    copy = tmp_path / "checkpoint.h5"
    session = PipelineSession.load(path)
    session.checkpoint(copy)  # lazy arrays are copied by the library, digests carried over
    session.close()
    assert manifest_of(copy)["datasets"] == manifest_of(path)["datasets"]
    checksum_file.check_file(copy)
    # a damaged source is refused as it is copied (the copy read back against its digest): nothing written
    bad = damaged_copy(path, tmp_path, contiguous_offset(path, "metadata/trace") + 5)
    session = PipelineSession.load(bad)
    with pytest.raises(ChecksumError, match=r"\[/metadata/trace\]: a value copied from a file differs"):
        session.checkpoint(tmp_path / "from_bad.h5")
    session.close()
    assert not (tmp_path / "from_bad.h5").exists()
    # loaded with verify=False, it is copied as stored, with the digest of what was copied
    session = PipelineSession.load(bad, verify=False)
    session.checkpoint(tmp_path / "from_bad.h5")
    session.close()
    checksum_file.check_file(tmp_path / "from_bad.h5")
    with h5py.File(bad, "r") as src, h5py.File(tmp_path / "from_bad.h5", "r") as dst:
        np.testing.assert_array_equal(dst["metadata/trace"][()], src["metadata/trace"][()])


def test_legacy_recording_loads_unchecked_with_one_note(caplog):
    path = cases.HERE / "hdmea_checkpoint.h5"
    with h5py.File(path, "r") as f:
        assert checksums.MANIFEST_ATTR not in f.attrs
    checksums._noted.discard(str(path))
    with caplog.at_level(logging.INFO, logger="h5stream.checksums"):
        for _ in range(2):
            PipelineSession.load(path).close()
    notes = [r for r in caplog.records if r.name == "h5stream.checksums"]
    assert len(notes) == 1 and notes[0].levelno == logging.INFO and "without verification" in notes[0].message


# --------------------------------------------------------------------------- the container formats


def _big_container():
    return example_container(n_samples=300, n_proteins=40, peptides_per_protein=3, seed=3)


def test_container_contiguous_flip(tmp_path):
    path = tmp_path / "c.h5"
    container = example_container()
    save(container, path, compression=None)
    name = "/assays/proteins/layers/log/X"
    bad = damaged_copy(path, tmp_path, contiguous_offset(path, name) + 8 * 2 + 6)
    with pytest.raises(IOChecksumError) as info:
        load(bad)
    assert isinstance(info.value, ChecksumError) and f"[{name}]" in str(info.value)
    assert manifest_of(path)["datasets"][name] in str(info.value)
    got = load(bad, verify=False).assays["proteins"].layers["log"].X
    want = container.assays["proteins"].layers["log"].X
    differs = ~((got == want) | (np.isnan(got) & np.isnan(want)))
    assert np.argwhere(differs).tolist() == [[0, 2]]
    assert "checksum" in str(pytest.raises(ChecksumError, checksum_file.check_file, bad).value)


@pytest.mark.parametrize("compression", ["gzip", "lzf"])
def test_container_chunk_flip_fletcher32(tmp_path, compression):
    path = tmp_path / "c.h5"
    save(_big_container(), path, compression=compression)
    name = "/assays/proteins/layers/log/X"
    with h5py.File(path, "r") as f:
        ds = f[name]
        assert ds.chunks is not None and checksums.has_fletcher32(ds.id)
        assert name not in manifest_of(path)["datasets"]  # the chunks carry the checksum
    bad = damaged_copy(path, tmp_path, chunk_offset(path, name) + 40)
    with pytest.raises(ChecksumError, match=rf"\[{name}\]"):
        load(bad)
    with pytest.raises(ChecksumError, match=rf"\[{name}\]"):
        checksum_file.check_file(bad)
    # the other layers load: a partial load reads (and checks) only what it asks for
    got = load(bad, layers=["raw"], assays=["proteins"])
    assert list(got.assays["proteins"].layers) == ["raw"]


def test_container_json_attribute_flip(tmp_path):
    path = tmp_path / "c.h5"
    save(example_container(), path)
    with h5py.File(path, "r") as f:
        order = f["assays"].attrs["order"]
    bad = damaged_copy(path, tmp_path, find_bytes(path, order.encode()) + 3)
    with pytest.raises(ChecksumError, match=r"\[/assays/@order\]"):
        load(bad)
    with pytest.raises(ChecksumError, match=r"\[/assays/@order\]"):
        checksum_file.check_file(bad)


@pytest.mark.parametrize("ext", [".h5ad", ".h5mu"])
def test_anndata_and_mudata_read_our_checksummed_files(tmp_path, ext):
    container = _big_container()
    path = tmp_path / f"c{ext}"
    want = container.assays["proteins"].layers["log"].X
    # gzip throughout: chunked datasets with Fletcher32 (the default stores this container's arrays plain)
    if ext == ".h5ad":
        save(container, path, assay="proteins", layer="log", compression="gzip")
        import anndata

        adata = anndata.read_h5ad(path)
        got = adata.X
    else:
        save(container, path, compression="gzip")
        import mudata

        with mudata.set_options(pull_on_update=False):
            adata = mudata.read_h5mu(path).mod["proteins"]
        got = adata.layers["log"]
    with h5py.File(path, "r") as f:
        chunked = []
        f.visititems(lambda n, o: chunked.append(n) if isinstance(o, h5py.Dataset) and o.chunks else None)
        assert chunked and all(checksums.has_fletcher32(f[n].id) for n in chunked)
    assert np.array_equal(np.asarray(got), want, equal_nan=True)
    assert list(adata.obs_names) == container.sample_ids.to_list()
    stats = checksum_file.check_file(path)
    assert stats["fletcher32"] >= 1 and stats["unchecked"] == 0


def test_legacy_container_loads_unchecked(caplog):
    from h5scp.core.exceptions import LegacyFormatWarning

    path = LEGACY_CONTAINER
    checksums._noted.discard(str(path))
    with caplog.at_level(logging.INFO, logger="h5stream.checksums"), pytest.warns(LegacyFormatWarning):
        load(path)
    assert [r.levelno for r in caplog.records if r.name == "h5stream.checksums"] == [logging.INFO]


def test_damaged_manifest_is_a_checksum_error(tmp_path):
    path = tmp_path / "c.h5"
    save(example_container(), path)
    bad = damaged_copy(path, tmp_path, find_bytes(path, b'"format":"h5stream-checksums"') + 2)
    with pytest.raises(ChecksumError, match="h5stream_checksums"):
        load(bad)
    assert isinstance(load(bad, verify=False), type(example_container()))


def test_checksum_error_is_a_format_error():
    assert issubclass(ChecksumError, FormatError) and issubclass(IOChecksumError, ChecksumError)
    from hdmea.errors import ChecksumError as hdmea_checksum_error

    assert hdmea_checksum_error is ChecksumError


def test_chunked_text_dataset_digest_covers_the_strings(tmp_path):
    """Variable-length strings live outside their chunks (HDF5 refuses Fletcher32 on them): the manifest covers them."""
    from h5stream.elements import read_elem, write_elem
    from h5stream.files import create_atomic, open_validated

    values = np.array([f"name-{i}-" + "x" * (i * 7 % 900) for i in range(3000)], dtype=object)
    values[1234] = "planted-unique-text-probe"
    path = tmp_path / "s.h5"
    with create_atomic(path, checksums="walk") as f:
        write_elem(f, "s", values, compression="gzip")
    with h5py.File(path, "r") as f:
        assert f["s"].chunks is not None and checksums.is_text_dataset(f["s"])
        assert not checksums.has_fletcher32(f["s"].id)
    assert "/s" in manifest_of(path)["datasets"]
    bad = damaged_copy(path, tmp_path, find_bytes(path, b"planted-unique-text-probe") + 3)
    with open_validated(bad) as f:
        checksums.attach(f, path=bad)
        with pytest.raises(ChecksumError, match=r"\[/s\]"):
            read_elem(f["s"])
    with open_validated(bad) as f:
        checksums.attach(f, verify=False)
        assert read_elem(f["s"])[1234] != "planted-unique-text-probe"


# --------------------------------------------------------------------------- manifest versions


def test_version_1_manifest_made_by_hand_still_verifies_and_names_the_attribute(tmp_path):
    """A file whose manifest lists attributes by name (version 1) loads and verifies as before."""
    path = tmp_path / "v1.h5"
    manifest = manifest_v1.write_v1_recording(path)
    stats = checksum_file.check_file(path)
    assert stats["manifest"] and stats["datasets"] == 2 and stats["unchecked"] == 0
    assert stats["attributes"] == sum(len(a) for a in manifest["attributes"].values())
    session = PipelineSession.load(path)
    unit = session.units["u1"]
    assert unit["label"] == manifest_v1.LABEL and unit["row"] == 3
    np.testing.assert_array_equal(unit["spike_times"], manifest_v1.SPIKES)
    np.testing.assert_array_equal(session.metadata["trace"], manifest_v1.TRACE)
    session.close()
    bad = damaged_copy(path, tmp_path, find_bytes(path, manifest_v1.LABEL.encode()) + 4)
    for read in (lambda p: PipelineSession.load(p).units, checksum_file.check_file):
        with pytest.raises(ChecksumError) as info:
            read(bad)
        assert info.value.obj == "/units/u1/@label" and manifest["attributes"]["/units/u1"]["label"] in str(info.value)
    unchecked = PipelineSession.load(bad, verify=False)
    assert unchecked.units["u1"]["label"] != manifest_v1.LABEL
    unchecked.close()


def test_update_of_a_version_1_file_keeps_its_digests_by_name(tmp_path):
    path = tmp_path / "v1.h5"
    old = manifest_v1.write_v1_recording(path)
    with open_recording_hdf5(path, "r+") as f:
        write_units(f, {"u2": {"spike_times": np.arange(9, dtype=np.uint64), "row": 1, "col": 2, "label": "new"}})
    manifest = manifest_of(path)
    assert manifest["version"] == 3
    # untouched objects keep their version-1 digests; rewritten ones (the root's updated_at, u2) are sets
    assert manifest["attributes"] == {p: old["attributes"][p] for p in ("/units/u1", "/metadata")}
    with h5py.File(path, "r") as f:
        u2 = f["units/u2"].attrs
        want = "".join(manifest_v1.text_crc(u2[n]) if n == "label" else manifest_v1.array_crc(u2[n])
                       for n in sorted(u2))  # col, label, row, spike_count: every attribute (version-1 headers)
    assert manifest["attribute_digests"]["all"]["/units/u2"] == want
    assert "/" in manifest["attribute_digests"]["all"] and manifest["attribute_digests"]["text"] == {}
    checksum_file.check_file(path)
    bad = damaged_copy(path, tmp_path, find_bytes(path, manifest_v1.OPERATOR.encode()) + 2)
    with pytest.raises(ChecksumError) as info:
        PipelineSession.load(bad).metadata  # noqa: B018
    assert info.value.obj == "/metadata/@operator"


def test_version_2_attribute_set_names_the_object_and_its_attributes(tmp_path):
    """Under version 2 a flipped byte names the attribute; an added or removed text attribute the object's set."""
    path = tmp_path / "rec.h5"
    s = create_session("rec", hdf5_path=path)
    s.add_units({"u1": {"spike_times": np.arange(50, dtype=np.uint64), "row": 3, "col": 4}})
    s.add_feature("u1", "sta", {"kernel": np.arange(10.0)}, {"params": "planted-v2-params-probe", "version": "1"})
    s.save()
    s.close()
    packed = manifest_of(path)["attribute_digests"]["text"]["/units/u1/features/sta"]
    assert packed == "".join(_text_crc(v) for v in ("sta", "planted-v2-params-probe", "1"))  # name, params, version
    bad = damaged_copy(path, tmp_path, find_bytes(path, b"planted-v2-params-probe") + 9)
    for read in (lambda p: PipelineSession.load(p), checksum_file.check_file, check_open_file):
        with pytest.raises(ChecksumError) as info:
            read(bad)
        assert info.value.obj == "/units/u1/features/sta/@params" and _text_crc("planted-v2-params-probe") in str(
            info.value)
    for n, edit in enumerate(["add text", "remove", "add number"]):
        edited = tmp_path / f"edited{n}.h5"
        shutil.copyfile(path, edited)
        with h5py.File(edited, "r+") as f:
            attrs = f["units/u1/features/sta"].attrs
            if edit == "add text":
                attrs["note"] = "added later"
            elif edit == "remove":
                del attrs["version"]
            else:
                attrs["score"] = 0.5  # numbers sit in the checksummed object header: not part of a text set
        if edit == "add number":
            assert PipelineSession.load(edited).units["u1"]["features"]["sta"]["score"] == 0.5
            assert checksum_file.check_file(edited)["attributes"] >= 3
            continue
        found = "name, note, params, version" if edit == "add text" else "name, params"
        for read in (lambda p: PipelineSession.load(p), checksum_file.check_file):
            with pytest.raises(ChecksumError) as info:
                read(edited)
            assert info.value.obj == "/units/u1/features/sta" and "expected 3 text attributes" in str(info.value)
            assert found in str(info.value)


def check_open_file(path):
    """check_file of a file the caller opened through the validated path."""
    from h5stream.files import open_validated

    with open_validated(path) as f:
        return checksum_file.check_file(path, f=f)


def _tricky_text(rng: np.random.Generator) -> str:
    alphabet = ["a", "/", "_", "0", "~", " ", '"', "\\", "\x00", "\t", "\x1f", "\x7f", "\x85", "\xa0", "é",
                "\u2028", "\ud800", "\U0001f600"]
    plain = rng.random() < 0.5
    return "".join(alphabet[i] for i in rng.integers(0, 6 if plain else len(alphabet), rng.integers(0, 7)))


def test_manifest_text_is_exactly_what_json_dumps_writes():
    """The manifest encoder's fast path for maps of plain paths gives json.dumps's text, escapes included."""
    rng = np.random.default_rng(19)
    for _ in range(2000):
        def strings(n):
            return {_tricky_text(rng): _tricky_text(rng) for _ in range(n)}
        document = {"format": "h5stream-checksums", "version": 2, "datasets": strings(int(rng.integers(0, 6))),
                    "attribute_digests": {"text": strings(3), "all": {}}, "attributes": {"/a": strings(2)},
                    "other": [1, 2.5, None, True]}
        assert checksums.encode_manifest(document) == json.dumps(document, separators=(",", ":"), ensure_ascii=True)
    for code in [*range(0x800), 0x2028, 0xD800, 0xDFFF, 0xFFFF, 0x10000, 0x10FFFF]:
        one = {f"/x{chr(code)}": "0badf00d"}
        assert checksums.encode_manifest(one) == json.dumps(one, separators=(",", ":"), ensure_ascii=True)


def test_recorder_keeps_no_empty_sets_and_resolves_the_default_kind():
    recorder = checksums.Recorder(headers_checksummed=True)
    recorder.seed(checksums.Manifest("f.h5", {}, {}, text_sets={"/t": "00000001"}, all_sets={"/x": "00000002"}))
    recorder.attribute_set("/numbers_only", {})  # nothing covered, nothing recorded before: no entry at all
    assert "/numbers_only" not in recorder.attribute_sets
    datasets, sets, legacy = recorder.current()
    assert sets == {"text": {"/t": "00000001"}, "all": {"/x": "00000002"}} and datasets == {} and legacy == {}
    recorder.attribute_set("/t", {})  # the object lost its text attributes: its set leaves the manifest
    recorder.attribute_set("/x", {"b": "0000000b", "a": "0000000a"})  # rewritten: the file's kind, name order
    recorder.attribute_set("/y", {"n": "0000000c"}, checksums.ALL_ATTRS)  # an explicit kind is kept
    _datasets, sets, _legacy = recorder.current()
    assert sets == {"text": {"/x": "0000000a0000000b"}, "all": {"/y": "0000000c"}}
    recorder.removed("/y")
    assert recorder.current()[1] == {"text": {"/x": "0000000a0000000b"}, "all": {}}


def test_a_recorder_of_complete_sets_keeps_empty_ones_and_the_manifest_says_so(tmp_path):
    recorder = checksums.Recorder(headers_checksummed=True)
    recorder.sets_complete = True
    recorder.attribute_set("/numbers_only", {})  # attributes, none covered: an empty set
    recorder.attribute_set("/t", {"a": "0000000a"})
    recorder.attribute_set("/t", {})  # the object lost its text attributes: its set is now empty
    recorder.attribute_set("/gone", {})
    recorder.removed("/gone")
    assert recorder.current()[1] == {"text": {"/numbers_only": "", "/t": ""}, "all": {}}
    with h5py.File(tmp_path / "f.h5", "w") as f:
        written = checksums.seal(f, recorder)
    assert written["sets_complete"] is True
    with h5py.File(tmp_path / "f.h5", "r") as f:
        manifest = checksums.read_manifest(f)
    assert manifest.sets_complete and manifest.text_sets == {"/numbers_only": "", "/t": ""}
    assert manifest.covers_attrs("/numbers_only") and not manifest.covers_attrs("/other")
    plain = checksums.Recorder(headers_checksummed=True)  # a writer that does not record every object
    plain.attribute_set("/numbers_only", {})
    with h5py.File(tmp_path / "g.h5", "w") as f:
        assert "sets_complete" not in checksums.seal(f, plain)
    with h5py.File(tmp_path / "g.h5", "r") as f:
        assert not checksums.read_manifest(f).sets_complete


@pytest.mark.parametrize("stored", ["yes", 1, None])
def test_a_manifest_whose_complete_sets_flag_is_not_true_is_damaged(tmp_path, stored):
    with h5py.File(tmp_path / "f.h5", "w") as f:
        f.attrs["h5stream_checksums"] = json.dumps({
            "format": "h5stream-checksums", "version": 3, "algorithm": "crc32", "datasets": {},
            "attribute_digests": {"text": {}, "all": {}}, "attributes": {}, "name_digests": {},
            "sets_complete": stored})
    with h5py.File(tmp_path / "f.h5", "r") as f, pytest.raises(ChecksumError, match="sets_complete"):
        checksums.read_manifest(f)


def test_version_2_manifest_made_by_hand_verifies_and_names_a_changed_attribute(tmp_path):
    """A file and its version-2 "text" manifest written with plain h5py and zlib, read by our checker."""
    path = tmp_path / "v2_by_hand.h5"
    text = h5py.string_dtype("utf-8")
    with h5py.File(path, "w", libver=("v110", "latest")) as f:  # version-2 headers: numbers need no digest
        unit = f.create_group("units/u1")
        unit.attrs.create("zeta", "last by name", dtype=text)
        unit.attrs.create("label", manifest_v1.LABEL, dtype=text)
        unit.attrs.create("\u00e9t\u00e9", "non-ASCII name", dtype=text)
        unit.attrs["row"] = np.int64(3)
        unit.create_dataset("spike_times", data=manifest_v1.SPIKES)
        packed = "".join(manifest_v1.text_crc(unit.attrs[n]) for n in sorted(["zeta", "label", "\u00e9t\u00e9"]))
        manifest = {"format": "h5stream-checksums", "version": 2, "algorithm": "crc32",
                    "datasets": {"/units/u1/spike_times": manifest_v1.array_crc(manifest_v1.SPIKES)},
                    "attribute_digests": {"text": {"/units/u1": packed}, "all": {}}, "attributes": {}}
        f.attrs.create(checksums.MANIFEST_ATTR, json.dumps(manifest), dtype=text)
    stats = checksum_file.check_file(path)
    assert stats["manifest"] and stats["unchecked"] == 0
    with h5py.File(path, "r+") as f:
        f["units/u1"].attrs.modify("label", "changed-label-probe")
    with pytest.raises(ChecksumError, match=r"\[/units/u1/@label\]"):
        checksum_file.check_file(path)


def test_unknown_manifest_version_asks_for_a_newer_h5stream(tmp_path):
    path = tmp_path / "v9.h5"
    manifest_v1.write_v1_recording(path)
    with h5py.File(path, "r+") as f:
        document = json.loads(f.attrs[checksums.MANIFEST_ATTR])
        document["version"] = 9
        f.attrs[checksums.MANIFEST_ATTR] = json.dumps(document)
    with pytest.raises(FormatError, match="upgrade h5stream") as info:
        checksum_file.check_file(path)
    assert "version 9" in str(info.value) and not isinstance(info.value, ChecksumError)


def test_sequence_attribute_is_refused_before_it_is_read(tmp_path):
    """A variable-length sequence attribute (what a damaged string type becomes) is a typed error, never read."""
    from h5stream.elements import read_elem

    path = tmp_path / "seq.h5"
    with h5py.File(path, "w") as f:
        g = f.create_group("g")
        sequences = np.empty(1, dtype=object)
        sequences[0] = np.arange(3, dtype=np.uint8)
        g.attrs.create("encoding-type", sequences, dtype=h5py.vlen_dtype(np.uint8))
        g.attrs["encoding-version"] = "0.2.0"
    with h5py.File(path, "r") as f:
        with pytest.raises(FormatError) as info:
            read_elem(f["g"])
        assert info.value.obj == "/g/@encoding-type" and "variable-length sequence" in str(info.value)
        checksums.refuse_sequence_attr(f["g"], "encoding-version")  # text passes


def test_attribute_values_read_in_one_pass_equal_h5pys(tmp_path):
    """read_attr_values against h5py on attributes written by plain h5py: every kind keeps its value and type
    (numbers of each width, variable-length and fixed-size text, booleans, arrays, an empty value), and the
    root's manifest attribute is left out."""
    from h5stream.checksums import MANIFEST_ATTR, read_attr_values

    path = tmp_path / "plain.h5"
    with h5py.File(path, "w") as f:
        g = f.create_group("g")
        for value in (np.int8(-3), np.uint16(7), np.int64(-2**40), np.uint64(2**63), np.float32(1.5),
                      np.float64(-0.25)):
            g.attrs[f"n_{value.dtype}"] = value
        g.attrs["text"] = "électrode"
        g.attrs["fixed"] = np.bytes_(b"abc")
        g.attrs["flag"] = True
        g.attrs["array"] = np.arange(4, dtype=np.int32)
        g.attrs["texts"] = ["a", "bc"]
        g.attrs["empty"] = h5py.Empty("f8")
        f.attrs["format"] = "plain"
        f.attrs[MANIFEST_ATTR] = "{}"
    with h5py.File(path, "r") as f:
        for obj, where in ((f["g"], "/g"), (f, "/")):
            got = read_attr_values(obj, where)
            expected = {k: v for k, v in obj.attrs.items() if not (where == "/" and k == MANIFEST_ATTR)}
            assert got is not None and set(got) == set(expected)
            for name, value in expected.items():
                assert type(got[name]) is type(value), name
                if isinstance(value, np.ndarray):
                    np.testing.assert_array_equal(got[name], value)
                    assert got[name].dtype == value.dtype
                elif isinstance(value, h5py.Empty):
                    assert got[name].dtype == value.dtype
                else:
                    assert got[name] == value, name
        assert MANIFEST_ATTR in read_attr_values(f)  # without the root's name, nothing is left out


def test_a_checked_attribute_set_is_kept_only_for_a_file_open_read_only(tmp_path):
    import polars as pl

    from h5stream.checksums import attr_value, manifest_for
    from h5scp import Assay, ScpContainer, ScpMatrix, save_hdf5

    path = tmp_path / "c.h5"
    container = ScpContainer(pl.DataFrame({"_index": ["s1", "s2"]}),
                             {"p": Assay(pl.DataFrame({"_index": ["P1"]}), {"raw": ScpMatrix(np.ones((2, 1)))})})
    save_hdf5(container, path)
    for mode, kept in (("r", True), ("r+", False)):
        with h5py.File(path, mode) as f:
            checksums.attach(f, path=path)
            first = attr_value(f, "format_version")
            assert first == f.attrs["format_version"]
            assert ("/" in manifest_for(f).checked_values) is kept
            assert attr_value(f, "format_version") == first and attr_value(f, "no such name", 7) == 7


def test_a_large_plain_array_digested_while_it_is_written_has_the_reference_digest(tmp_path):
    """An uncompressed array past ``OVERLAPPED_DIGEST_BYTES`` is digested on another thread while HDF5
    writes it: the manifest holds Python's zlib CRC-32 of its header and bytes, and a changed byte fails."""
    from h5stream.files import atomic
    from h5stream.writer import OVERLAPPED_DIGEST_BYTES, WriteOptions, write_array

    values = np.random.default_rng(4).lognormal(size=(OVERLAPPED_DIGEST_BYTES // 8 // 100 + 1, 100))
    path = tmp_path / "big.h5"
    with atomic.create_atomic(path, checksums=True) as f:
        write_array(f, "x", values, WriteOptions())
    expected = zlib.crc32(values.tobytes(), zlib.crc32(f"{values.dtype.str}|{values.shape}".encode("ascii")))
    assert manifest_of(path)["datasets"]["/x"] == f"{expected:08x}"
    checksum_file.check_file(path)
    with h5py.File(path, "r+") as f:
        f["x"][7, 3] = -1.0
    with pytest.raises(ChecksumError, match=r"\[/x\]"):
        checksum_file.check_file(path)


def test_the_names_check_takes_the_names_the_open_time_scan_listed(tmp_path, monkeypatch):
    """Objects the scan listed are not opened again; the check's verdict is the one reached by opening each."""
    from h5stream.checksums import _names as names_module
    from h5stream.files import open_validated

    path = tmp_path / "c.h5"
    save(example_container(), path)
    opened = []
    reopen = names_module._object_id
    monkeypatch.setattr(names_module, "_object_id", lambda fid, where: opened.append(where) or reopen(fid, where))
    listed: dict = {}
    with open_validated(path, names=listed) as f:
        manifest = checksums.read_manifest(f, str(path))
        assert manifest.name_digests and set(manifest.name_digests) <= set(listed)
        assert checksums.check_names(f, manifest, checksums.MANIFEST_ATTR, listed) == len(manifest.name_digests)
        assert opened == []
        # a stale listing (a member name as another would have stored it) is refused as the file's own names are
        where = next(w for w in sorted(manifest.name_digests) if listed[w][1])
        attrs, members = listed[where]
        with pytest.raises(ChecksumError, match="names of the object's attributes or members") as info:
            checksums.check_names(f, manifest, checksums.MANIFEST_ATTR, {**listed, where: (attrs, members[1:])})
        assert info.value.obj == where
        # without a listing each object is opened, with the same outcome
        assert checksums.check_names(f, manifest, checksums.MANIFEST_ATTR) == len(manifest.name_digests)
        assert sorted(opened) == sorted(manifest.name_digests)

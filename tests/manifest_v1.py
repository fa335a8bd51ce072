"""A recording whose checksum manifest is in its version-1 form, made with plain h5py and zlib.

Files written before version 2 of the manifest listed every digested attribute
by name (``"attributes": {path: {name: digest}}``).  This module writes such a
file without any of the engine's writers: the objects through h5py's high-level
API, the digests from the documented formula through ``zlib.crc32``, so the
tests that read it check the reader against an independent reference.
"""

from __future__ import annotations

import json
import zlib

import h5py
import numpy as np

LABEL = "planted-v1-label-probe"
OPERATOR = "planted-v1-operator-probe"
SPIKES = np.arange(0, 70_000, 7, dtype=np.uint64)
TRACE = np.linspace(-1.0, 1.0, 3000)


def text_crc(value: str) -> str:
    """CRC-32 of ``"text|()"``, the UTF-8 length (8 bytes, little endian) and the UTF-8 bytes."""
    raw = value.encode("utf-8")
    crc = zlib.crc32(len(raw).to_bytes(8, "little"), zlib.crc32(b"text|()"))
    return f"{zlib.crc32(raw, crc):08x}"


def array_crc(array: np.ndarray) -> str:
    """CRC-32 of ``"<dtype.str>|<shape>"`` and the raw bytes in C order."""
    array = np.asarray(array)
    header = f"{array.dtype.str}|{tuple(int(s) for s in array.shape)}".encode("ascii")
    return f"{zlib.crc32(array.tobytes(order='C'), zlib.crc32(header)):08x}"


def write_v1_recording(path) -> dict:
    """Write the recording and its version-1 manifest; returns the manifest."""
    text = h5py.string_dtype("utf-8")
    root_text = {"dataset_id": "rec-v1", "h5stream_format": "hdmea-recording", "h5stream_format_version": "1",
                 "created_at": "2026-01-01T00:00:00+00:00", "updated_at": "2026-01-01T00:00:00+00:00"}
    with h5py.File(path, "w") as f:  # h5py's defaults: version-1 object headers, no header checksums
        for name, value in root_text.items():
            f.attrs.create(name, value, dtype=text)
        unit = f.create_group("units/u1")
        unit.attrs.create("label", LABEL, dtype=text)
        unit.attrs["row"] = np.int64(3)
        unit.create_dataset("spike_times", data=SPIKES)
        metadata = f.create_group("metadata")
        metadata.create_dataset("trace", data=TRACE)
        metadata.attrs.create("operator", OPERATOR, dtype=text)
        manifest = {
            "format": "h5stream-checksums", "version": 1, "algorithm": "crc32",
            "datasets": {"/units/u1/spike_times": array_crc(SPIKES), "/metadata/trace": array_crc(TRACE)},
            "attributes": {
                "/": {name: text_crc(value) for name, value in root_text.items()},
                "/units/u1": {"label": text_crc(LABEL), "row": array_crc(np.asarray(3, dtype=np.int64))},
                "/metadata": {"operator": text_crc(OPERATOR)},
            },
        }
        f.attrs.create("h5stream_checksums", json.dumps(manifest), dtype=text)
    return manifest

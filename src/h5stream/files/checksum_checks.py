"""Whole-file checks of the end-to-end checksums (the ``verify`` commands).

:func:`check_file` reads every dataset of a file (Fletcher32 chunks by reading
them, the others against the digests of the file's checksum manifest) and
every attribute the manifest lists; :func:`check_summary` says what it
checked in one line.  The digests themselves and the checks made while
loading are in :mod:`h5stream.checksums`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import h5py
import numpy as np

from h5stream.checksums import (
    ALL_ATTRS,
    MANIFEST_ATTR,
    attr_name_text,
    Manifest,
    check_attribute_set,
    check_names,
    check_value,
    checked_read,
    is_text_dataset,
    mismatch_error,
    read_manifest,
    refuse_sequence_attr,
    stored_digest,
    stored_digests,
    utf8_bytes,
)
from h5stream.errors import ChecksumError

__all__ = ["check_file", "check_summary"]

def _in_checksummed_header(layout: int, header_version: int) -> bool:
    """True for a compact dataset in a version-2 object header (HDF5 checksums the header and its data)."""
    return layout == h5py.h5d.COMPACT and header_version >= 2


_VLEN_READ_TYPES: dict[int, Any] = {}


def _vlen_read_type(cset: int):
    """The memory type h5py reads a variable-length string attribute of character set ``cset`` with."""
    entry = _VLEN_READ_TYPES.get(cset)
    if entry is None:
        dtype = h5py.string_dtype("utf-8" if cset == h5py.h5t.CSET_UTF8 else "ascii")
        entry = _VLEN_READ_TYPES[cset] = (dtype, h5py.h5t.py_create(dtype))
    return entry


def _read_attr(oid, name: str, aid=None):
    """Attribute ``name`` of the object ``oid`` as ``obj.attrs[name]`` returns it (KeyError: missing).

    A scalar variable-length string (most digested attributes) is read directly
    through the low-level API, as h5py reads it (a ``str``, undecodable bytes
    kept by ``surrogateescape``); any other attribute through h5py itself.
    """
    if aid is None:
        aid = h5py.h5a.open(oid, name.encode("utf-8"))
    tid = aid.get_type()
    if tid.get_class() == h5py.h5t.VLEN:  # variable-length strings are class STRING
        holder = h5py.Group(oid) if isinstance(oid, h5py.h5g.GroupID) else h5py.Dataset(oid)
        refuse_sequence_attr(holder, name)  # raises: reading it could crash libhdf5
    if (isinstance(tid, h5py.h5t.TypeStringID) and tid.is_variable_str()
            and aid.get_space().get_simple_extent_type() == h5py.h5s.SCALAR):
        dtype, mtype = _vlen_read_type(tid.get_cset())
        buffer = np.zeros((), dtype=dtype)
        aid.read(buffer, mtype=mtype)
        item = buffer[()]
        return item.decode("utf-8", "surrogateescape") if isinstance(item, bytes) else item
    holder = h5py.Group(oid) if isinstance(oid, h5py.h5g.GroupID) else h5py.Dataset(oid)
    return holder.attrs[name]


def _check_legacy_attrs(manifest: Manifest, oid, where: str, expected: Mapping[str, str]) -> int:
    """Version-1 digests of the object ``oid`` at ``where``: each listed attribute, read once by its id."""
    count = 0
    for name, digest in expected.items():
        if where == "/" and name == MANIFEST_ATTR:
            continue
        at = f"{where.rstrip('/')}/@{name}"
        try:
            value = _read_attr(oid, name)
        except KeyError:
            raise ChecksumError("an attribute listed in the checksum manifest is missing",
                                path=manifest.path, obj=at, expected="the attribute", found="nothing",
                                hint="the file is damaged or was edited by another tool") from None
        check_value(manifest, at, digest, value)
        count += 1
    return count


_MAYBE_TEXT_CLASSES = (h5py.h5t.STRING, h5py.h5t.VLEN)


def _attr_names(manifest: Manifest, oid, where: str) -> list[str]:
    names: list[bytes] = []
    h5py.h5a.iterate(oid, names.append)
    return [attr_name_text(manifest.path, where, n) for n in names]


def _check_attr_set(manifest: Manifest, oid, where: str, kind: str, packed: str) -> int:
    """The attribute set of the object ``oid`` at ``where``; only attributes that may be text are read for
    a ``"text"`` set (a string or variable-length type: what h5py can read back as text)."""
    values = {}
    root = where == "/"
    for name in _attr_names(manifest, oid, where):
        if root and name == MANIFEST_ATTR:
            continue
        aid = None
        if kind != ALL_ATTRS:
            aid = h5py.h5a.open(oid, name.encode("utf-8"))
            if aid.get_type().get_class() not in _MAYBE_TEXT_CLASSES:
                continue
        values[name] = _read_attr(oid, name, aid)
    return check_attribute_set(manifest, where, kind, packed, values)


def _check_object_attrs(manifest: Manifest, oid, where: str) -> int:
    """Every digest of the attributes of the object ``oid`` at ``where``; returns how many were checked."""
    count = 0
    legacy = manifest.attributes.get(where)
    if legacy:
        count += _check_legacy_attrs(manifest, oid, where, legacy)
    kind, packed = manifest.attribute_set(where)
    if packed is not None:
        count += _check_attr_set(manifest, oid, where, kind, packed)
    return count


def check_file(path: str | os.PathLike, *, f: h5py.File | None = None, link_rule=None) -> dict:
    """Check a whole file: every digest of its manifest, and every Fletcher32 chunk by reading it.

    Datasets are read in blocks, so memory stays bounded.  Returns
    ``{"manifest": bool, "datasets": n, "fletcher32": n, "header": n,
    "attributes": n, "unchecked": n, "bytes": n}`` (``header``: compact
    datasets inside version-2 object headers, which HDF5 checksums;
    ``unchecked``: datasets with no checksum at all; ``names``: objects whose attribute and member names
    were checked against their digest).  Raises :class:`ChecksumError` at the first mismatch, naming the object.

    ``link_rule(path)`` (see :func:`h5stream.files.verify_files`) names the external links the file
    may hold (never followed); every other one is refused when the file is opened here.

    Objects are opened once each through the low-level API (a group only when
    the manifest lists attributes of it); the h5py dataset is made only for the
    datasets whose values are read.
    """
    own = f is None
    if own:
        from h5stream.files.validated import open_validated

        f = open_validated(path, allow_link=link_rule(os.fspath(path)) if link_rule is not None else None)
    label = os.fspath(path)
    try:
        manifest = read_manifest(f, label)
        stats = {"manifest": manifest is not None, "datasets": 0, "fletcher32": 0, "header": 0, "attributes": 0,
                 "unchecked": 0, "bytes": 0, "names": check_names(f, manifest, MANIFEST_ATTR) if manifest else 0}
        digests = manifest.datasets if manifest is not None else {}
        # (name, object type, object header version) of every object, from one visit of the file.
        names: list[tuple[bytes, int, int]] = []
        h5py.h5o.visit(f.id, lambda name, info: names.append((name, info.type, info.hdr.version)), info=True)
        is_dataset = h5py.h5o.TYPE_DATASET
        for raw, kind, header_version in [(b".", h5py.h5o.TYPE_GROUP, 0)] + names:
            name = raw.decode("utf-8") if isinstance(raw, bytes) else raw
            where = "/" if name == "." else "/" + name
            expected_attrs = manifest is not None and manifest.covers_attrs(where)
            if kind != is_dataset and not expected_attrs:
                continue  # nothing of this object to check
            oid = None
            try:
                oid = h5py.h5o.open(f.id, raw)
                if expected_attrs:
                    stats["attributes"] += _check_object_attrs(manifest, oid, where)
                if kind != is_dataset or not isinstance(oid, h5py.h5d.DatasetID):
                    continue
                if oid.get_space().get_simple_extent_type() == h5py.h5s.NULL:
                    continue  # no value (h5py's shape None)
                dcpl = oid.get_create_plist()
                layout = dcpl.get_layout()
                fletcher = layout == h5py.h5d.CHUNKED and any(
                    dcpl.get_filter(i)[0] == h5py.h5z.FILTER_FLETCHER32 for i in range(dcpl.get_nfilters()))
                expected = digests.get(where)
                if not fletcher and expected is None:
                    if _in_checksummed_header(layout, header_version):
                        # HDF5 checked the header holding the data when the object was opened.
                        stats["header"] += 1
                        stats["bytes"] += oid.get_storage_size()
                    else:
                        stats["unchecked"] += 1
                    continue
                obj = h5py.Dataset(oid)
                if is_text_dataset(obj) or obj.dtype.hasobject:
                    data = obj[()]
                    stats["bytes"] += sum(len(utf8_bytes(v)) for v in np.asarray(data, dtype=object).ravel().tolist())
                    if expected is not None:
                        check_value(manifest, where, expected, data, text=is_text_dataset(obj))
                else:
                    pieces = manifest.pieces.get(where) if manifest is not None else None
                    found, found_pieces = stored_digests(obj) if pieces is not None else (stored_digest(obj), None)
                    stats["bytes"] += obj.nbytes
                    if expected is not None and found != expected:
                        raise mismatch_error(manifest, where, expected, found)
                    if pieces is not None and found_pieces != pieces:  # the piece digests a partial load checks
                        raise mismatch_error(manifest, f"{where} (piece digests)", pieces[:48], str(found_pieces)[:48])
                stats["fletcher32" if fletcher else "datasets"] += 1
            except (OSError, RuntimeError) as exc:
                dataset = h5py.Dataset(oid) if isinstance(oid, h5py.h5d.DatasetID) else None
                with checked_read(label, where, dataset=dataset):
                    raise
        return stats
    finally:
        if own:
            f.close()


def carries_no_checksum(stats: dict) -> bool:
    """Whether :func:`check_file` found nothing to check: no digest, no Fletcher32, no checksummed header, no
    checksummed attribute and no manifest (a file another tool wrote: its values cannot be verified)."""
    checked = stats["datasets"] + stats["fletcher32"] + stats["header"] + stats["attributes"]
    return checked == 0 and not stats["manifest"] and not stats.get("names")


def check_summary(path, stats: dict, seconds: float) -> str:
    """One line saying what :func:`check_file` checked (for the ``verify`` commands)."""
    checked = stats["datasets"] + stats["fletcher32"] + stats["header"]
    mb = stats["bytes"] / 1e6
    text = (f"{os.fspath(path)}: OK, {checked} datasets ({stats['datasets']} by digest, "
            f"{stats['fletcher32']} by Fletcher32, {stats['header']} in checksummed headers) and "
            f"{stats['attributes']} attributes checked, "
            f"{mb:.1f} MB read in {seconds:.2f} s")
    if stats.get("names"):
        text += f"; the attribute and member names of {stats['names']} objects checked"
    if stats["unchecked"]:
        text += f"; {stats['unchecked']} datasets carry no checksum"
    if not stats["manifest"]:
        text += "; no checksum manifest (written before checksums or by another tool)"
    return text

"""The checksum manifest of :mod:`h5stream.checksums`: its format, the reading of versions 1 to 3, and
the checks of values read against a :class:`Manifest`.

The manifest is the root attribute ``h5stream_checksums`` (:data:`MANIFEST_ATTR`),
UTF-8 JSON text written in the same atomic save as the data::

    {"format": "h5stream-checksums", "version": 3, "algorithm": "crc32",
     "datasets": {"/units/u1/spike_times": "3a1f09c2", ...},
     "attribute_digests": {
         "text": {"/units/u1/features/f": "0b5e77d19c0e11a4...", ...},
         "all": {"/obs": "77e0a2c4...", ...}},
     "attributes": {},
     "sets_complete": true,
     "name_digests": {"/": "5c0e81d2", "/obs": "9a41f3b0", ...},
     "pieces": {"/assays/proteins/layers/raw/X": "32/6e1f0c2a9b03d4e1...", ...}}

``datasets`` maps the path of each contiguous or compact dataset to its digest
(:mod:`h5stream.digests`).  ``pieces`` (optional, in any version: a reader
that does not know it checks the whole digest as before) maps the path of each such
dataset larger than one piece to the digests of its pieces, runs of whole rows that a
read of some rows checks instead of the whole (:mod:`h5stream.checksums._pieces`).

Attributes are listed per object (version 2): the value under
``attribute_digests[kind][path]`` is the concatenation of the digests of the
object's *covered* attributes, in the order of their names (Unicode code
points, the same as the order of their UTF-8 bytes), 8 hex digits each.  Under
``"all"`` every attribute of the object is covered (the manifest attribute of
the root aside); under ``"text"`` only its text attributes (a value h5py reads
back as ``str`` or as an array of strings), which is what a writer records when
the file's object headers are version 2: HDF5 checksums those headers, and so
the numbers stored in them, itself, while the bytes of variable-length text
live in the global heap, which has no checksum.  The reader lists the
object's attributes, keeps the covered ones, sorts their names and pairs them
with the digests, so a mismatch names the attribute; attributes added to or
removed from an object since it was written are a mismatch of the object's
set, naming the object and the attributes found.  No names are stored, which
keeps the manifest small: one short string per object whose attributes carry
digests (a 4,000-unit recording: 3.0 MB instead of 5.3 MB in version 1).

``name_digests`` (version 3) maps the path of each object that has attributes
or members to the digest of their names, in files whose object headers HDF5
does not checksum (written by a walking recorder; empty otherwise): the
digests above pair values with names but do not cover the names, so a
damaged name of an optional attribute or member would read as its absence.
What it covers and how it is checked: :mod:`h5stream.checksums._names`.
Versions 1 and 2 have no such digests; their files are read as before.

``sets_complete`` (optional, versions 2 and 3: ``true`` or absent) says that the writer recorded a set
for every object it wrote with attributes, an empty one (``""``) for an object none of whose attributes
is covered (numbers only, in a checksummed header): an object without a set then had no attribute at
all, and one found on it (a number too) was added by another tool.  Without it (older writers, writers
that do not record every object, and updates in place) only attributes of the covered kind are refused there.  A
reader that does not know the member ignores it and reads the file as before.

Version 1 (files written before version 2) listed every attribute by name,
``"attributes": {"/units/u1": {"name": "0b5e77d1", ...}}``; such files are
read and verified as before, and an update of one keeps the digests of the
objects it does not rewrite in that form (the ``attributes`` member of a
version-2 manifest, usually empty).

:mod:`h5stream.checksums` re-exports these names.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import h5py
import numpy as np

from h5stream.digests import _h5attrs, _is_text, array_digest, scalar_text_digest, text_digest, value_digest
from h5stream.errors import ChecksumError, FormatError

__all__ = [
    "ALGORITHM",
    "MANIFEST_ATTR",
    "MANIFEST_FORMAT",
    "MANIFEST_VERSION",
    "READABLE_VERSIONS",
    "SETS_COMPLETE",
    "TEXT_ATTRS",
    "ALL_ATTRS",
    "Manifest",
    "read_manifest",
    "encode_manifest",
    "mismatch_error",
    "check_value",
    "check_attribute_set",
    "refuse_sequence_attr",
    "read_attr",
    "attr_name_text",
    "refuse_unrecorded_attrs",
]

ALGORITHM = "crc32"
MANIFEST_ATTR = "h5stream_checksums"
MANIFEST_FORMAT = "h5stream-checksums"
MANIFEST_VERSION = 3
#: manifest versions this module reads (1: digests of attributes by name; 2: without names digests)
READABLE_VERSIONS = (1, 2, 3)
#: the kinds of attribute sets of a version-2 manifest (see the module text)
TEXT_ATTRS = "text"
ALL_ATTRS = "all"
#: the manifest's member saying that every object written with attributes has a set (see the module text)
SETS_COMPLETE = "sets_complete"


class Manifest:
    """The digests stored in a file (see the module text).

    ``datasets``: path -> digest; ``text_sets`` and ``all_sets``: path -> the
    packed digests of the object's covered attributes (version 2);
    ``attributes``: path -> {name: digest} (version 1, and objects an update of
    a version-1 file did not rewrite); ``name_digests``: path -> the digest of
    the object's attribute and member names (version 3); ``pieces``: path -> the digests of the
    dataset's pieces (:mod:`h5stream.checksums._pieces`).  ``checked_values``:
    path -> every attribute of the object as read and found equal to its set's
    digests, kept while the file is open read-only, so a later lookup of one of
    them reads nothing again (:func:`h5stream.checksums.attr_value`).  ``read_handle``: (the file's number in
    the library, its descriptor or None), kept by :func:`h5stream.checksums.read_whole_checked` while the file
    is open.
    """

    __slots__ = ("path", "version", "datasets", "attributes", "text_sets", "all_sets", "name_digests",
                 "pieces", "checked_values", "sets_complete", "read_handle", "__weakref__")

    def __init__(self, path, datasets: dict[str, str], attributes: dict[str, dict[str, str]],
                 text_sets: dict[str, str] | None = None, all_sets: dict[str, str] | None = None,
                 version: int = MANIFEST_VERSION, name_digests: dict[str, str] | None = None,
                 pieces: dict[str, str] | None = None, sets_complete: bool = False) -> None:
        self.path = path
        self.sets_complete = sets_complete
        self.version = version
        self.datasets = datasets
        self.attributes = attributes
        self.text_sets = text_sets if text_sets is not None else {}
        self.all_sets = all_sets if all_sets is not None else {}
        self.name_digests = name_digests if name_digests is not None else {}
        self.pieces = pieces if pieces is not None else {}
        self.checked_values: dict[str, dict[str, Any]] = {}
        self.read_handle: tuple[tuple[int, int], int | None] | None = None

    def attribute_set(self, where: str) -> tuple[str | None, str | None]:
        """(kind, packed digests) of the attributes of the object at ``where``; (None, None) without."""
        packed = self.text_sets.get(where)
        if packed is not None:
            return TEXT_ATTRS, packed
        packed = self.all_sets.get(where)
        if packed is not None:
            return ALL_ATTRS, packed
        return None, None

    def covers_attrs(self, where: str) -> bool:
        """True when attributes of the object at ``where`` carry digests."""
        return where in self.text_sets or where in self.all_sets or bool(self.attributes.get(where))

    def __len__(self) -> int:
        return (len(self.datasets) + sum(len(a) for a in self.attributes.values())
                + sum(len(p) // 8 for sets in (self.text_sets, self.all_sets) for p in sets.values()))


def _damaged_manifest(path, where: str, found: str) -> ChecksumError:
    return ChecksumError("the checksum manifest is not in the expected form", path=path, obj=where,
                         expected=f"a {MANIFEST_FORMAT!r} document", found=found,
                         hint="the file is damaged; restore it from a copy or load with verify=False")


def _string_map(value) -> bool:
    return isinstance(value, dict) and all(isinstance(v, str) for v in value.values())


def read_manifest(f: h5py.File, path=None) -> Manifest | None:
    """The manifest of an open file; None when it has none.  A damaged manifest is a ChecksumError.

    Reads every version of :data:`READABLE_VERSIONS`; a newer version is a
    :class:`~h5stream.errors.FormatError` asking for a newer h5stream.
    """
    path = f.filename if path is None else path
    where = f"/@{MANIFEST_ATTR}"
    try:
        if MANIFEST_ATTR not in f.attrs:  # a damaged attribute header fails here already
            return None
        stored = f.attrs[MANIFEST_ATTR]
        if isinstance(stored, bytes):
            stored = stored.decode("utf-8")
        document = json.loads(str(stored))
    except (OSError, RuntimeError, ValueError, TypeError, UnicodeError) as exc:
        raise ChecksumError(f"the checksum manifest cannot be read ({type(exc).__name__})", path=path, obj=where,
                            expected="the JSON manifest of the file's digests", found="damaged text",
                            hint="the file is damaged; restore it from a copy or load with verify=False") from exc
    ok = (isinstance(document, dict) and document.get("format") == MANIFEST_FORMAT
          and isinstance(document.get("datasets"), dict))
    if not ok:
        raise _damaged_manifest(path, where, repr(str(document)[:80]))
    version = document.get("version")
    if version not in READABLE_VERSIONS or document.get("algorithm") != ALGORITHM:
        raise FormatError("unsupported checksum manifest", path=path, obj=where,
                          expected=f"version {' or '.join(map(str, READABLE_VERSIONS))}, algorithm {ALGORITHM}",
                          found=f"version {version!r}, algorithm {document.get('algorithm')!r}",
                          hint="upgrade h5stream")
    attributes = document.get("attributes", {} if version >= 2 else None)
    if not isinstance(attributes, dict):
        raise _damaged_manifest(path, where, "no attribute digests")
    pieces = document.get("pieces", {})
    if not _string_map(pieces):
        raise _damaged_manifest(path, where, "piece digests that are not per-dataset strings")
    if version == 1:
        return Manifest(path, document["datasets"], attributes, version=1, pieces=pieces)
    sets = document.get("attribute_digests")
    if not (isinstance(sets, dict) and _string_map(sets.get(TEXT_ATTRS, {})) and _string_map(sets.get(ALL_ATTRS, {}))):
        raise _damaged_manifest(path, where, "attribute digests that are not per-object strings")
    names = document.get("name_digests", {}) if version >= 3 else {}
    if not _string_map(names):
        raise _damaged_manifest(path, where, "names digests that are not per-object strings")
    if version >= 3 and "name_digests" not in document:
        raise _damaged_manifest(path, where, "no names digests (a version-3 manifest always has the member)")
    complete = document.get(SETS_COMPLETE, False)
    if complete is not True and complete is not False:
        raise _damaged_manifest(path, where, f"{SETS_COMPLETE} {complete!r} (true when present)")
    return Manifest(path, document["datasets"], attributes, sets.get(TEXT_ATTRS, {}), sets.get(ALL_ATTRS, {}),
                    version=version, name_digests=names, pieces=pieces, sets_complete=complete)


# --------------------------------------------------------------------------- writing it


def _plain(text: str) -> bool:
    """True when json.dumps(..., ensure_ascii=True) writes ``text`` as it is: printable ASCII without the
    quote and the backslash (checked by str methods, in C: a regular expression takes longer than the
    encoding itself)."""
    return text.isascii() and text.isprintable() and '"' not in text and "\\" not in text


def _json(value) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=True)


def _encode(value) -> str:
    if not isinstance(value, dict):
        return _json(value)
    if _h5attrs is not None:  # compiled: a map of plain strings in one pass, no string per entry
        text = _h5attrs.plain_map_json(value)
        if text is not None:
            return text
    try:
        keys, values = "".join(value), "".join(value.values())
    except TypeError:  # not a map of strings to strings: a map of maps, or other values
        if all(isinstance(k, str) for k in value):
            return "{" + ",".join([f"{_json(k)}:{_encode(v)}" for k, v in value.items()]) + "}"
        return _json(value)
    if not (_plain(keys) and _plain(values)):
        return _json(value)
    # A map of tens of thousands of paths: one string per entry and one list, where json.dumps makes a
    # tuple per entry (enough allocations to set off a full garbage collection in a large save).
    return "{" + ",".join([f'"{k}":"{v}"' for k, v in value.items()]) + "}"


def encode_manifest(document: Mapping[str, Any]) -> str:
    """The manifest's JSON text: the same text as ``json.dumps(document, separators=(",", ":"),
    ensure_ascii=True)``, built faster for its large maps of plain paths to digests."""
    return _encode(dict(document))


# --------------------------------------------------------------------------- checking values against it


def mismatch_error(manifest: Manifest, obj: str, expected: str, found: str) -> ChecksumError:
    return ChecksumError("checksum mismatch: the stored value differs from what was written",
                         path=manifest.path, obj=obj, expected=f"{ALGORITHM} {expected}",
                         found=f"{ALGORITHM} {found}",
                         hint="the file is damaged; restore it from a copy, or load with verify=False "
                              "to get the data as stored")


def check_value(manifest: Manifest | None, obj: str, expected: str | None, value, *, text: bool | None = None,
                found: str | None = None) -> None:
    """Raise ChecksumError when ``value`` (as read) does not have the ``expected`` digest.

    ``text`` says whether the value is text (None: decided by its type, see :func:`value_digest`);
    ``found``, when given, is ``value``'s digest already computed.
    """
    if manifest is None or expected is None:
        return
    if found is None and text is None:
        found = value_digest(value)
    elif found is None:
        found = text_digest(value) if text else array_digest(np.asarray(value))
    if found != expected:
        raise mismatch_error(manifest, obj, expected, found)


def refuse_sequence_attr(obj, name: str) -> None:
    """Raise FormatError when attribute ``name`` of ``obj`` holds variable-length sequences (not text).

    No writer of the engine stores one, and reading one whose type was damaged
    (a variable-length string turned into a sequence, in an object header
    HDF5 does not checksum) makes libhdf5 follow heap addresses that are not
    ones and crash the process; the error names the attribute instead.
    """
    raw = name if isinstance(name, bytes) else name.encode("utf-8")
    try:
        tid = h5py.h5a.open(obj.id, raw).get_type()
    except (KeyError, OSError, RuntimeError, ValueError):
        return  # missing or unreadable: the read that follows says so
    if tid.get_class() == h5py.h5t.VLEN:  # variable-length strings are class STRING
        raise FormatError("an attribute holds variable-length sequences, which these files never hold",
                          path=obj.file.filename, obj=_attr_at(obj.name, name),
                          expected="a number, a string or an array of them", found="a variable-length sequence type",
                          hint="the file is damaged or was written by another tool")


def read_attr(obj, name: str):
    """The attribute ``name`` of ``obj`` as ``obj.attrs[name]`` gives it, the attribute opened once: its type is
    looked at first, and one holding variable-length sequences is refused as :func:`refuse_sequence_attr` does
    (reading it could crash libhdf5).  KeyError when it is missing, as h5py raises."""
    raw = name if isinstance(name, bytes) else name.encode("utf-8")
    attr = h5py.h5a.open(obj.id, raw)
    if attr.get_type().get_class() == h5py.h5t.VLEN:  # variable-length strings are class STRING
        refuse_sequence_attr(obj, name)
    shape = attr.shape
    if shape is None:  # an empty dataspace
        return h5py.Empty(attr.dtype)
    dtype = attr.dtype
    memtype = h5py.h5t.py_create(dtype)
    if dtype.subdtype is not None:  # an array type: numpy has none at the top level, so its shape goes outside
        dtype, inner = dtype.subdtype
        shape = shape + inner
    out = np.zeros(shape, dtype=dtype, order="C")
    attr.read(out, mtype=memtype)
    string = h5py.check_string_dtype(dtype)
    if string and string.length is None:  # variable-length text: bytes to str, as h5py decodes them
        out = np.array([b.decode("utf-8", "surrogateescape") for b in out.flat], dtype=dtype).reshape(out.shape)
    return out[()] if out.ndim == 0 else out


def attr_name_text(path, where: str, name: str | bytes) -> str:
    """The attribute name ``name`` as text; a FormatError naming the object when it is not UTF-8.

    h5py hands back a name that does not decode as bytes; every name the engine
    writes is UTF-8, so such a name is damage (or another tool's), and every
    digest, sort and message here needs it as text.
    """
    if isinstance(name, str):
        return name
    try:
        return name.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FormatError("an attribute name is not UTF-8 text", path=path,
                          obj=_attr_at(where, name.decode("utf-8", "backslashreplace")),
                          expected="a UTF-8 attribute name",
                          found=f"the bytes {name!r} (byte {exc.start} does not decode)",
                          hint="the file is damaged or was written by another tool") from None


def _attr_at(where: str, name: str) -> str:
    return f"{where.rstrip('/')}/@{name}"


def _missing_attr(manifest: Manifest, where: str, name: str) -> ChecksumError:
    return ChecksumError("an attribute listed in the checksum manifest is missing",
                         path=manifest.path, obj=_attr_at(where, name),
                         expected="the attribute", found="nothing",
                         hint="the file is damaged or was edited by another tool")


def _check_legacy_attrs(manifest: Manifest, obj, where: str, expected: Mapping[str, str],
                        values: Mapping[str, Any] | None) -> None:
    """Version-1 digests: each listed attribute by name."""
    for name, digest in expected.items():
        if where == "/" and name == MANIFEST_ATTR:
            continue
        if values is not None and name in values:
            value = values[name]
        else:
            try:
                value = read_attr(obj, name)
            except KeyError:
                raise _missing_attr(manifest, where, name) from None
            except OSError as exc:
                raise _unreadable_attr(obj, name, exc) from exc
        check_value(manifest, _attr_at(where, name), digest, value)


def _all_attr_values(obj, values: Mapping[str, Any] | None, complete: bool = False) -> Mapping[str, Any]:
    """Every attribute of ``obj`` as h5py reads it, starting from those already read (``values``)."""
    if values is not None and (complete or len(values) == h5py.h5a.get_num_attrs(obj.id)):
        return values  # already all of them
    out = dict(values) if values is not None else {}
    attrs = obj.attrs
    where = obj.name
    root = where == "/"
    path = None  # the file's name, looked up for the first attribute (each lookup makes an h5py File object)
    for name in attrs:
        if path is None:
            path = obj.file.filename
        name = attr_name_text(path, where, name)
        if name not in out and not (root and name == MANIFEST_ATTR):
            try:
                out[name] = read_attr(obj, name)
            except OSError as exc:
                raise _unreadable_attr(obj, name, exc) from exc
    return out


def _unreadable_attr(obj, name: str, exc: OSError) -> FormatError:
    """libhdf5 could not read an attribute's value (e.g. a damaged heap index of its text)."""
    return FormatError("an attribute's value cannot be read", path=obj.file.filename,
                       obj=f"{obj.name.rstrip('/')}/@{name}", expected="a readable value",
                       found=f"libhdf5: {exc}", hint="the file is damaged; restore it from a copy")


def check_attribute_set(manifest: Manifest, where: str, kind: str, packed: str, values: Mapping[str, Any]) -> int:
    """Check the attributes of the object at ``where`` against its ``kind`` set ``packed``; returns their count.

    ``values``: the object's attributes as h5py reads them, all of them (for a
    ``"text"`` set, those that cannot be text may be left out).  An attribute
    whose value differs is a ChecksumError naming it; a covered attribute
    added or removed is a ChecksumError naming the object and the attributes found.
    """
    if kind == TEXT_ATTRS and _h5attrs is not None:  # compiled; anything else is checked below
        found = _h5attrs.text_set_digests(values if type(values) is dict else dict(values),
                                 MANIFEST_ATTR if where == "/" else None)
        if found == packed:
            return len(packed) // 8
    names = [n for n in values if not (n == MANIFEST_ATTR and where == "/")]
    if kind == TEXT_ATTRS:
        names = [n for n in names if _is_text(values[n])]
    names.sort()
    if len(packed) != 8 * len(names):
        what = "text attributes" if kind == TEXT_ATTRS else "attributes"
        raise ChecksumError(f"checksum mismatch: the object's {what} are not those written",
                            path=manifest.path, obj=where,
                            expected=f"{len(packed) / 8:g} {what} (their digests: {packed[:80]})",
                            found=f"{len(names)}: {', '.join(names)[:200] or 'none'}",
                            hint="the file is damaged or was edited by another tool; load with verify=False "
                                 "to read it as stored")
    for i, name in enumerate(names):
        expected = packed[8 * i:8 * i + 8]
        value = values[name]
        found = scalar_text_digest(value) if isinstance(value, str) else value_digest(value)
        if found != expected:
            raise mismatch_error(manifest, _attr_at(where, name), expected, found)
    return len(names)


def refuse_unrecorded_attrs(manifest: Manifest, obj, where: str, values: Mapping[str, Any]) -> None:
    """Refuse covered attributes on an object whose attributes the manifest has no digests for.

    A writer records a set for every object that has attributes of its file's kind (:func:`check_attrs`
    pairs them); an object without one had none when the file was written, so one found now was added by
    another tool.  The kind follows the object's header, as the writer chose it: a version-2 header (which
    HDF5 checksums) covers its text attributes, an older one all of them.  ``values``: all the object's
    attributes as h5py reads them.  Under a manifest whose sets are complete (:data:`SETS_COMPLETE`) the
    object had no attribute of any kind, and every attribute found is refused.  Manifests of version 1
    (digests by name, not every object listed) pass.
    """
    if manifest.version < 2 or manifest.covers_attrs(where):
        return
    names = [n for n in values if not (n == MANIFEST_ATTR and where == "/")]
    if not names:
        return
    if manifest.sets_complete:  # the object had no attribute at all when written: each one found was added
        text_only = all(_is_text(values[n]) for n in names)
    else:
        try:
            text_only = h5py.h5o.get_info(obj.id).hdr.version >= 2
        except (OSError, RuntimeError, ValueError, AttributeError):
            text_only = False  # then every attribute counts, as a writer of older headers records them
        if text_only:
            names = [n for n in names if _is_text(values[n])]
    if names:
        what = "text attributes" if text_only else "attributes"
        raise ChecksumError(f"checksum mismatch: the object has {what} that were not written with it",
                            path=manifest.path, obj=where,
                            expected=f"no {what} (the file's checksum manifest records none for this object)",
                            found=f"{len(names)}: {', '.join(sorted(names))[:200]}",
                            hint="another tool added them after the file was written; remove them, or load "
                                 "with verify=False to read the file as stored")

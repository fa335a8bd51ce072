"""The reader of the typed tree: HDF5 objects to nodes (:func:`node_from_h5`), nodes to values (:func:`decode_node`).

A value read from a staged tree and the same value read from a file decode
through the same :func:`decode_node`, so they are identical.
"""

from __future__ import annotations

import json
import math
import posixpath
from typing import Any, NamedTuple

import h5py
import numpy as np

from h5stream import batch_attrs, checksums, jsonvalues
from h5stream.errors import FormatError, H5StreamError
from h5stream.files.header_checks import plain_storage
from h5stream.tree.filearray import FileArray
from h5stream.tree.nodes import (
    ATTR_TYPES_ATTR,
    DATASET_ATTRS_PREFIX,
    HIDDEN_PREFIX,
    KEYS_ATTR,
    TYPE_ATTR,
    Dataset,
    Group,
    Node,
    decode_attr,
    is_hidden,
    text,
)

__all__ = ["read_attrs", "node_from_h5", "decode_node", "Described", "describe_dataset"]


# Raised by h5py, numpy, json and base64 on damaged content; each becomes a FormatError naming the object.
_DECODE_FAILURES = (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError, RecursionError)
#: What a decode of stored content raises that :func:`_decode_failure` turns into the error naming the object.
_DECODE_RAISES = (FormatError, *_DECODE_FAILURES)
#: Tags of values stored as a 1-element dataset.
_SCALAR_TAGS = frozenset({"int", "float", "bool", "str", "npscalar", "bigint", "json"})
#: Tags whose stored data is text (checked to be valid UTF-8 when read).
_TEXT_TAGS = frozenset({"str", "bigint", "json", "ndarray:U", "ndarray:O", "list:str", "tuple:str"})


def _around(raw: bytes | str, start: int) -> str:
    return repr(raw[max(0, start - 12):start + 12])


def checked_text(value, path, obj: str) -> str:
    """A stored string as ``str``, or :class:`FormatError` when it is not valid UTF-8.

    Every string the tree writes is valid UTF-8 (text that is not, such as lone
    surrogates, is stored as ASCII typed JSON), so invalid bytes read back mean
    damage; h5py would hand them over as lone surrogates.
    """
    if isinstance(value, (bytes, np.bytes_)):
        raw = bytes(value)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FormatError("text is not valid UTF-8", path=path, obj=obj, expected="UTF-8 text",
                              found=f"byte {raw[exc.start]:#04x} at offset {exc.start} in {_around(raw, exc.start)}",
                              hint="the file is damaged") from None
    value = str(value)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise FormatError("text is not valid UTF-8", path=path, obj=obj, expected="UTF-8 text",
                          found=f"an undecodable byte at offset {exc.start} in {_around(value, exc.start)}",
                          hint="the file is damaged") from None
    return value


def _check_texts(values, path, obj: str) -> None:
    """Every string in ``values`` (a string, or an object array of them) is valid UTF-8."""
    if isinstance(values, (bytes, str)):
        checked_text(values, path, obj)
    elif isinstance(values, np.ndarray) and values.dtype.kind == "O":
        for value in values.ravel().tolist():
            if isinstance(value, (bytes, str)):
                checked_text(value, path, obj)


def _json_text(value, path, obj: str) -> str:
    """Typed JSON is written as ASCII (:func:`h5stream.jsonvalues.dumps`); anything else is damage."""
    stored = checked_text(value, path, obj)
    if not stored.isascii():
        i = next(i for i, c in enumerate(stored) if not c.isascii())
        raise FormatError("typed JSON text holds a character it is never written with", path=path, obj=obj,
                          expected="ASCII JSON text", found=f"{stored[i]!r} at offset {i} in {_around(stored, i)}",
                          hint="the file is damaged")
    return stored


def _decoded(decode, path, obj: str, what: str):
    try:
        return decode()
    except _DECODE_RAISES as exc:
        failure = _decode_failure(exc, path, obj, what)
        if failure is exc:
            raise
        raise failure from exc


def _decode_failure(exc: Exception, path, obj: str, what: str) -> Exception:
    """The error a failure ``exc`` to decode ``what`` of ``obj`` raises: a :class:`FormatError` that names the
    file already as it is, any other one naming the file and object."""
    if isinstance(exc, FormatError):
        if exc.path is not None:
            return exc
        return FormatError(str(exc), path=path, obj=obj, hint="the file is damaged")
    return FormatError(f"cannot decode {what} ({type(exc).__name__}: {exc})"[:400], path=path, obj=obj,
                       hint="the file is damaged or was edited by another tool")


_LOOKUP = object()


def read_attrs(obj, *, manifest=_LOOKUP, path: str | None = None,
               where: str | None = None) -> tuple[dict[str, Any], str | None, list | None]:
    """(decoded attributes, node type tag, dict keys) of an HDF5 object; large attributes included.

    Damaged attributes (unreadable, text that is not UTF-8, typed JSON that is
    not ASCII or does not decode) raise :class:`FormatError` naming the attribute;
    an attribute that does not match its digest in the file's checksum manifest
    (``manifest``, by default the one attached to the file) raises
    :class:`~h5stream.errors.ChecksumError`.  ``path``: the file's name, when the caller has it (asking h5py
    for it builds a ``File`` object, which costs more than reading a small object's attributes); ``where``:
    the object's full name, when the caller has it (likewise asked of HDF5 otherwise).
    """
    if manifest is _LOOKUP:
        manifest = checksums.manifest_for(obj)
    path = obj.file.filename if path is None else path
    where = obj.name if where is None else where
    try:
        # Most objects of a tree have no attribute: the count (one call on the header HDF5 has cached since
        # the object was opened) spares them h5py's listing, which first copies the creation properties.
        count = h5py.h5a.get_num_attrs(obj.id)
        raw = _direct_attrs(obj, where, count) if count and where != "/" else None
        stored = obj.attrs if raw is None else None  # (h5py's attribute manager: only where read through h5py)
        names = list(raw) if raw is not None else [name for name in stored] if count else []
    except (OSError, RuntimeError, ValueError, TypeError, KeyError) as exc:
        raise FormatError(f"cannot list the attributes ({exc})", path=path, obj=where,
                          hint="the file is damaged") from exc
    if raw is None:
        raw = {}
        for name in names:
            try:
                raw[name] = stored[name]
            except (OSError, RuntimeError, TypeError, ValueError, KeyError) as exc:
                raise FormatError(f"cannot read attribute {name!r} ({exc})", path=path, obj=where) from exc
    if manifest is not None:
        checksums.check_attrs(obj, raw, manifest, complete=True, where=where)
    at_prefix = f"{where.rstrip('/')}/@"  # an attribute's name in errors: this, then its own
    for name in names:
        value = raw[name]
        if isinstance(value, (bytes, str, np.ndarray)):  # (the values _check_texts looks at)
            _check_texts(value, path, at_prefix + name)
    if where == "/":
        raw.pop(checksums.MANIFEST_ATTR, None)  # the file's digests, not a value
    tags = {}
    if ATTR_TYPES_ATTR in raw:
        at = at_prefix + ATTR_TYPES_ATTR
        stored = _json_text(raw.pop(ATTR_TYPES_ATTR), path, at)
        tags = _decoded(lambda: json.loads(stored), path, at, "the attribute types")
        if not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values()):
            raise FormatError("attribute types are not a mapping of name to tag", path=path, obj=at,
                              expected="a JSON object of strings", found=type(tags).__name__)
    tag = text(raw.pop(TYPE_ATTR)) if TYPE_ATTR in raw else None
    keys = None
    if KEYS_ATTR in raw:
        at = at_prefix + KEYS_ATTR
        stored = _json_text(raw.pop(KEYS_ATTR), path, at)
        keys = _decoded(lambda: jsonvalues.loads(stored), path, at, "the dict keys")
        if not isinstance(keys, list):
            raise FormatError("dict keys are not a list", path=path, obj=at, expected="a JSON list",
                              found=type(keys).__name__)
    attrs = {}
    for name, value in raw.items():
        tag_value = tags.get(name)
        if tag_value == "json":
            value = _json_text(value, path, at_prefix + name)
        try:  # (as _decoded, without a closure per attribute: a tree has tens of thousands)
            attrs[name] = decode_attr(value, tag_value)
        except _DECODE_RAISES as exc:
            failure = _decode_failure(exc, path, at_prefix + name, "the attribute")
            if failure is exc:
                raise
            raise failure from exc
    for name, tag_value in tags.items():
        if tag_value == "dataset":
            attrs[name] = decode_node(node_from_h5(_large_attr_object(obj, name), lazy=False, manifest=manifest))
    return attrs, tag, keys


def _direct_attrs(obj, where: str, count: int) -> dict | None:
    """All ``count`` attributes of ``obj`` as h5py reads them, through the direct calls of
    :func:`h5stream.checksums.read_attr_values` (a few microseconds each instead of tens through h5py's
    objects), in h5py's order (by name; None for several attributes kept in creation order); None too
    when the direct calls are unavailable or fail: the caller then reads through h5py, which names what
    is damaged."""
    if count > 1 and obj.id.get_create_plist().get_attr_creation_order() & h5py.h5p.CRT_ORDER_TRACKED:
        return None
    try:
        return checksums.read_attr_values(obj, where)
    except (H5StreamError, OSError, RuntimeError, ValueError, TypeError, KeyError):
        return None


def _large_attr_object(obj, name: str):
    """The hidden object holding attribute ``name`` of ``obj`` (see :mod:`h5stream.tree.write`)."""
    if isinstance(obj, h5py.Group):
        container, member = obj, HIDDEN_PREFIX + name
    else:
        container = obj.parent
        member = f"{DATASET_ATTRS_PREFIX}{posixpath.basename(obj.name)}/{name}"
    if member not in container:
        raise FormatError(f"attribute {name!r} is stored as an object that is missing", path=obj.file.filename,
                          obj=obj.name, expected=f"{container.name.rstrip('/')}/{member}", found="nothing",
                          hint="the file was damaged or edited by another tool")
    return container[member]


#: Arrays of at most this many bytes are read at once by a lazy :func:`node_from_h5` (and checked against
#: their digests there): a reference costs more to keep, copy and check one by one than the few bytes it
#: stands for (a session's per-trial spike times), and the values then go out with the next save in bulk.
EAGER_LIMIT = 16 * 1024


def _has_attrs(dsid, manifest, name: str) -> bool:
    """Whether dataset ``dsid`` has attributes to read, or digests of attributes to check (then read_attrs
    runs as for any object, and names what is missing or damaged)."""
    if manifest is not None and manifest.covers_attrs(name):
        return True
    try:
        return h5py.h5a.get_num_attrs(dsid) != 0
    except (OSError, RuntimeError, ValueError, TypeError, KeyError):
        return True  # read_attrs lists them, and raises the error naming the object


def _open_child(obj, name: str, full: bytes, opened: dict | None):
    """``obj[name]`` without h5py's per-object ``File`` lookup (its ``readonly`` flag): the object the
    open-time scan kept (``opened``, by full name without the leading slash), else opened here."""
    oid = opened.pop(full, None) if opened else None
    if oid is None:
        oid = h5py.h5o.open(obj.id, name.encode("utf-8"))
    if isinstance(oid, h5py.h5g.GroupID):
        return h5py.Group(oid)
    if isinstance(oid, h5py.h5d.DatasetID):
        return oid  # wrapped by node_from_h5 only when it needs h5py's Dataset (which copies its properties)
    return obj[name]  # a named datatype: h5py's own wrapper (it is refused as a value below)


class Described(NamedTuple):
    """What a lazy :func:`node_from_h5` needs of a dataset of numbers without attributes, asked while the
    open-time scan had it open (:func:`describe_dataset`), so the walk builds its node without opening it."""

    dtype: np.dtype
    shape: tuple | None  # None: a dataset without a dataspace (no values)
    data: np.ndarray | None  # the values (an array of at most EAGER_LIMIT bytes), else None: left on disk
    stored_at: tuple[int, int] | None  # where the values of an array left on disk lie (see _stored_at)


# What h5py and libhdf5 raise for a dataset they cannot describe or read (a SystemError, which can carry a
# stop that landed in compiled code, is not among them: it goes on to the caller).
_DESCRIBE_FAILURES = (OSError, RuntimeError, ValueError, TypeError, KeyError, AttributeError)


def describe_dataset(dsid: h5py.h5d.DatasetID, fact: tuple | None = None) -> Described | None:
    """:class:`Described` of the open dataset ``dsid`` (``fact``: its (type id, shape) where the caller has
    them), or None where a lazy :func:`node_from_h5` has to open it itself: it has attributes (a tag, or
    values of its own), it is not an array of numbers, or the library fails on it (the walk then reads it
    again and names what is wrong).  An array of at most :data:`EAGER_LIMIT` bytes is read here, in its
    stored type; its digest is checked where its node is built."""
    try:
        if h5py.h5a.get_num_attrs(dsid) != 0:
            return None
        tid, shape = fact if fact is not None else (dsid.get_type(), dsid.shape)
        dtype = tid.dtype
        if dtype.kind not in "biufc":
            return None
        if shape is None:
            return Described(dtype, None, None, None)
        nbytes = math.prod(shape) * dtype.itemsize
        if nbytes > EAGER_LIMIT:
            return Described(dtype, shape, None, _stored_at(dsid, nbytes))
        return Described(dtype, shape, _read_numbers(dsid, shape, dtype, tid), None)
    except _DESCRIBE_FAILURES:
        return None


def _file_array(opener, name: str, shape: tuple, dtype: np.dtype, manifest, expected: str | None,
                stored_at: tuple[int, int] | None) -> FileArray:
    """The lazy reference of an array left on disk, checked against its digest ``expected`` when read."""
    return FileArray(opener, name, shape, dtype, digest=expected, verify=manifest if expected is not None else None,
                     stored_at=stored_at if expected else None)


def _described_node(known: Described, name: str, manifest, opener) -> Dataset:
    """The node :func:`node_from_h5` builds, lazily, for the dataset ``known`` describes (a small array's
    values checked against their digest here, as when it reads them)."""
    expected = manifest.datasets.get(name) if manifest is not None else None
    if known.shape is None:
        data = np.empty((0,), dtype=known.dtype)
    elif known.data is None:
        data = _file_array(opener, name, known.shape, known.dtype, manifest, expected, known.stored_at)
    else:
        data = known.data
        if expected is not None:
            checksums.check_value(manifest, name, expected, data, text=False)
    return Dataset(data, {}, None)


def node_from_h5(obj, *, lazy: bool = False, opener=None, manifest=_LOOKUP, path: str | None = None,
                 opened: dict | None = None, name: str | None = None, facts: dict | None = None,
                 key: bytes | None = None, described: dict | None = None,
                 listings: dict | None = None) -> Node:
    """The node of an HDF5 object; datasets become :class:`FileArray` references when ``lazy``.

    Values with a digest in the file's checksum manifest (``manifest``, by
    default the one attached to the file) are checked as they are read; a lazy
    array carries its digest and is checked when it is read (one of at most :data:`EAGER_LIMIT` bytes is
    read and checked here).  ``path``: the file's name, as :func:`read_attrs` takes it (looked up once
    here for every object below).  ``opened``: objects already open (full name without the leading
    slash, as bytes -> low-level id, as the open-time scan's ``visit`` keeps them), used instead of
    opening them again; each one used is taken out.  ``name``: the object's full name, when the caller has
    it (the walk passes each child's).  ``facts``: each dataset's (type id, shape) as the open-time scan
    asked them (keyed as ``opened``), used instead of asking HDF5 again; each one used is taken out.
    ``key``: the object's key in ``opened`` and ``facts`` (the walk passes each child's).  ``described``
    (with ``lazy``): datasets of numbers without attributes as the open-time scan described them (keyed as
    ``opened``, see :func:`describe_dataset`), whose nodes are built without opening them again (but for
    one whose attributes the manifest has digests of: opened, and its attributes read and checked); each
    one used is taken out.  ``listings``: each group's member names as the open-time scan listed them (keyed
    as ``opened``, the root as b"", see :class:`h5stream.files._walk.Descriptions`), used instead of listing
    them again; each one used is taken out.
    """
    dsid = obj if isinstance(obj, h5py.h5d.DatasetID) else None
    if dsid is not None:
        obj = None  # h5py's Dataset, built below where it is needed
    if manifest is _LOOKUP:
        manifest = checksums.manifest_for(obj if dsid is None else dsid)
    if path is None:
        path = (obj if dsid is None else h5py.Dataset(dsid, readonly=True)).file.filename
    if name is None:
        name = (obj if dsid is None else h5py.Dataset(dsid, readonly=True)).name
    if dsid is not None and not _has_attrs(dsid, manifest, name):
        attrs, tag, keys = {}, None, None  # what read_attrs finds for no attribute, with none expected
    else:
        if dsid is not None:  # (h5py's plain object of the id serves the attributes: its Dataset would copy the
            obj = h5py.HLObject(dsid)  # creation properties and make a transfer list, wanted only for a read)
        attrs, tag, keys = read_attrs(obj, manifest=manifest, path=path, where=name)
    if isinstance(obj, h5py.Group):
        children = {}
        base = name.rstrip("/")
        for member in _member_names(obj, listings, key if key is not None else b"" if name == "/" else None):
            if is_hidden(member):
                continue
            where = f"{base}/{member}"
            full = where[1:].encode("utf-8")
            known = described.pop(full, None) if described and lazy else None
            if known is not None and not (manifest is not None and manifest.covers_attrs(where)):
                children[member] = _described_node(known, where, manifest, opener)
                continue
            try:
                child = _open_child(obj, member, full, opened)
            except (OSError, RuntimeError):
                with checksums.checked_read(obj, where):  # a damaged header is named
                    raise
            children[member] = node_from_h5(child, lazy=lazy, opener=opener, manifest=manifest, path=path,
                                            opened=opened, name=where, facts=facts, key=full,
                                            described=described, listings=listings)
        return Group(attrs, children, tag, keys)
    # the dataset's own id answers these (h5py's Dataset asks it, through more layers, on every access)
    if dsid is None:
        dsid = obj.id
    known = facts.pop(key, None) if facts and key is not None else None
    if known is not None:
        tid, shape = known
        dtype = tid.dtype
    else:
        tid, shape, dtype = _shape_and_type(dsid)
    expected = manifest.datasets.get(name) if manifest is not None else None
    if shape is None:
        data = np.empty((0,), dtype=dtype)
    elif (lazy and tag is None and dtype.kind in "biufc"
          and math.prod(shape) * dtype.itemsize > EAGER_LIMIT):
        data = _file_array(opener, name, shape, dtype, manifest, expected,
                           _stored_at(dsid, math.prod(shape) * dtype.itemsize) if expected else None)
    else:
        numbers = lazy and dtype.kind in "biufc"  # (read in its stored type: a tagged value of numbers too)
        try:  # a failure is named by the two guards, entered only then (most reads of a tree are tiny)
            if numbers:
                data = _read_numbers(dsid, shape, dtype, tid)
            else:
                data = _read_variable_text(dsid, shape, tid)
                if data is None:
                    if not isinstance(obj, h5py.Dataset):
                        obj = h5py.Dataset(dsid, readonly=True)
                    data = obj[...] if shape == () else obj[()]  # a 0-d dataset stays an array (text keeps its dtype)
        except Exception:
            from h5stream.files.validated import guard_read  # any other read failure: a FormatError naming obj

            with guard_read(path, name), checksums.checked_read(path, name, dataset=dsid):
                raise
        if expected is not None:
            checksums.check_value(manifest, name, expected, data,
                                  text=False if numbers else checksums.is_text_dataset(dsid))
        if tag in _TEXT_TAGS or (tag is None and np.asarray(data).dtype.kind == "O"):
            _check_texts(data, path, name)
        if tag in _SCALAR_TAGS and np.size(data) != 1:
            raise FormatError("a stored value has the wrong number of items", path=path,
                              obj=name, expected="1", found=str(np.size(data)), hint="the file is damaged")
        if tag in ("json", "bigint"):
            # Decoded once here, where the file and object are known, so damage is named.
            flat = np.asarray(data, dtype=object).ravel()
            if flat.size != 1:
                raise FormatError("a stored value has the wrong number of items", path=path,
                                  obj=name, expected="1", found=str(flat.size), hint="the file is damaged")
            stored = (_json_text if tag == "json" else checked_text)(flat[0], path, name)
            _decoded(lambda: jsonvalues.loads(stored) if tag == "json" else int(stored), path,
                     name, "the stored value")
    return Dataset(data, attrs, tag)


#: h5py's type of each native number dtype (a memory type: the same for every file), made once
_NATIVE_TYPES: dict[np.dtype, h5py.h5t.TypeID] = {}


def _shape_and_type(dsid: h5py.h5d.DatasetID) -> tuple[h5py.h5t.TypeID | None, tuple | None, np.dtype]:
    """(type to read in, shape, dtype) of dataset ``dsid`` as h5py's ``DatasetID.shape`` and ``.dtype`` give them,
    asked by the direct calls of :func:`h5stream.batch_attrs.dataset_shape_and_dtype` where the stored type is
    a native number type (its native memory type to read in then; h5py's type and dataspace objects cost
    several microseconds each), else of h5py (type None: read in the stored type)."""
    lib = batch_attrs.bindings()
    if lib is not None:
        try:
            with batch_attrs.library_lock:
                shape, dtype = batch_attrs.dataset_shape_and_dtype(lib, dsid.id)
        except OSError:
            dtype = None  # h5py asks again, and raises the library's error
        if dtype is not None:
            tid = _NATIVE_TYPES.get(dtype)
            if tid is None:
                tid = _NATIVE_TYPES[dtype] = h5py.h5t.py_create(dtype)
            return tid, shape, dtype
    return None, dsid.shape, dsid.dtype


def _member_names(group: h5py.Group, listings: dict | None, key: bytes | None):
    """The member names of ``group`` as h5py gives them (by name; UTF-8 text, else the stored bytes): from
    ``listings`` (the open-time scan's listing of it, taken out) when it has them, else listed through h5py."""
    listed = listings.pop(key, None) if listings and key is not None else None
    if listed is None:
        return group
    try:
        return [member.decode("utf-8") for member in listed]
    except UnicodeDecodeError:
        return group  # (h5py hands such a name over as bytes)


def _stored_at(dsid: h5py.h5d.DatasetID, nbytes: int) -> tuple[int, int] | None:
    """(byte offset, byte count) of a dataset stored whole and unfiltered in one block of ``nbytes`` bytes
    (its values, in the type it is read in), else None (see :attr:`FileArray.stored_at`)."""
    try:
        if plain_storage(dsid) != h5py.h5d.CONTIGUOUS:
            return None
        offset = dsid.get_offset()
        if offset is None or dsid.get_storage_size() != nbytes:
            return None
    except (OSError, RuntimeError, ValueError, TypeError):
        return None
    return int(offset), nbytes


def _read_numbers(dsid: h5py.h5d.DatasetID, shape: tuple, dtype: np.dtype, tid=None) -> np.ndarray:
    """All of a dataset of numbers (``dsid``: its low-level id; ``tid``: its type id, when the caller has
    it), read in its stored type (whose layout ``dtype``, h5py's view of that type, describes: no
    conversion) straight into the array, without h5py's selection machinery."""
    out = np.empty(shape, dtype=dtype)
    if out.size:
        dsid.read(h5py.h5s.ALL, h5py.h5s.ALL, out, mtype=tid if tid is not None else dsid.get_type())
    return out


#: h5py's memory type of variable-length text by character set (``h5py.string_dtype``'s), made once
_TEXT_TYPES: dict[int, h5py.h5t.TypeID] = {}


def _read_variable_text(dsid: h5py.h5d.DatasetID, shape: tuple, tid=None) -> np.ndarray | None:
    """All of a dataset of variable-length text as h5py's ``Dataset[()]`` (``[...]`` for a 0-d one) gives it:
    an array of ``bytes`` of h5py's text dtype, the given ``shape`` (0-d stays 0-d); read through the
    dataset's low-level id in the memory type h5py reads it in, without building h5py's ``Dataset`` (which
    copies the creation properties and makes a transfer list) or its selection.  None for any other type
    (the caller reads it through h5py).  ``tid``: its stored type, when the caller has it."""
    if tid is None:
        tid = dsid.get_type()
    if not isinstance(tid, h5py.h5t.TypeStringID) or not tid.is_variable_str():
        return None
    dtype = tid.dtype
    cset = tid.get_cset()  # (the key: numpy dtypes of both encodings compare equal, their metadata aside)
    mtype = _TEXT_TYPES.get(cset)
    if mtype is None:
        mtype = _TEXT_TYPES[cset] = h5py.h5t.py_create(dtype)
    out = np.zeros(shape, dtype=dtype)
    if out.size:
        dsid.read(h5py.h5s.ALL, h5py.h5s.ALL, out, mtype=mtype)
    return out


def _text_items(data: np.ndarray) -> list[str]:
    return [text(v) for v in data.tolist()]


#: How a tagged dataset turns back into its Python value (tag -> decoder of the stored array).
_DATASET_DECODERS = {
    # A scalar is one value, stored 1-element or 0-d (the form of a session's file, as the lab's code reads it).
    "int": lambda data: int(data.reshape(-1)[0]),
    "float": lambda data: float(data.reshape(-1)[0]),
    "bool": lambda data: bool(data.reshape(-1)[0]),
    "str": lambda data: text(data.reshape(-1)[0]),
    "none": lambda data: None,
    "bytes": lambda data: data.astype(np.uint8).tobytes(),
    "npscalar": lambda data: data.reshape(-1)[0],
    "bigint": lambda data: int(text(data.reshape(-1)[0])),
    "json": lambda data: jsonvalues.loads(text(data.reshape(-1)[0])),
    "ndarray:U": lambda data: np.array([text(v) for v in data.ravel()]).reshape(data.shape),
    "ndarray:O": lambda data: np.array([text(v) for v in data.ravel()], dtype=object).reshape(data.shape),
    "list:str": _text_items,
    "tuple:str": lambda data: tuple(_text_items(data)),
    **{f"list:{kind}": (lambda data: data.tolist()) for kind in ("bool", "int", "float")},
    **{f"tuple:{kind}": (lambda data: tuple(data.tolist())) for kind in ("bool", "int", "float")},
}


def _dataset_value(node: Dataset):
    data = node.data
    if node.tag is None:
        if isinstance(data, FileArray):
            return data.read()
        if isinstance(data, np.ndarray) and data.dtype.kind == "O":
            return np.array([text(v) for v in data.ravel()], dtype=object).reshape(data.shape)
        return data
    decoder = _DATASET_DECODERS.get(node.tag)
    if decoder is None:
        raise FormatError("unknown dataset type tag", expected="a tag this version writes", found=repr(node.tag),
                          hint="upgrade h5stream")
    return decoder(np.asarray(data))


def decode_node(node: Node):
    """The Python value of a node: arrays for datasets, values for tagged data, dicts for groups."""
    if isinstance(node, Dataset):
        return _dataset_value(node)
    if node.tag in ("list", "tuple"):
        items = [decode_node(node.children[str(i)]) for i in range(len(node.children))]
        return items if node.tag == "list" else tuple(items)
    if node.tag == "dict":
        out = {}
        for index, key in enumerate(node.keys or []):
            name = str(index)
            out[key] = decode_node(node.children[name]) if name in node.children else node.attrs[name]
        return out
    out = dict(node.attrs)
    for name, child in node.children.items():
        out[name] = decode_node(child)
    # Name order, as HDF5 lists a group's members, so a staged group and a saved one agree.
    return {name: out[name] for name in sorted(out)}

"""Equality checks for tests: HDF5 files object by object, and values with their exact types.

``compare_files(a, b, ignore_attrs=...)`` walks both trees and returns a list of
human-readable differences (empty when the files are equal): the same objects
(groups and datasets, by path), the same dataset shapes, dtypes and values
(NaN equal to NaN, strings compared as text), and the same attributes by name,
dtype and value.  Attributes named in ``ignore_attrs`` (timestamps, typically)
are skipped on every object.  Storage layout, chunking, creation order and
compression are deliberately not compared: two writers may lay bytes out
differently and still hold the same content.

A file a session saved and one written by the steps without a session differ by the original
pipeline's session-mode rules (:mod:`hdmea.session.lab_layout`): a scalar is a 0-d dataset instead of a
1-element one, and the root's ``hdmea_version``, ``/pipeline``'s ``stage1_completed``/``stage1_timestamp``
and ``/source_files`` exist.  When exactly one of the two files carries ``hdmea_version`` (a session's
file), those differences are not reported, nor what the original's session mode writes as datasets
where its immediate mode writes attributes or nothing (``stimulus/frame_times``, ``features/<f>/metadata``,
``spike_times_sectioned/<movie>/_attrs`` against that group's attributes), nor the STA's immediate-mode
place ``features/<movie>/sta`` (``session_rules=None``, the default; pass True or False to
decide).

``assert_files_equal(a, b, ...)`` raises ``AssertionError`` listing the first
differences.  ``assert_exact(a, b)`` compares two Python values (what a round
trip returned against what went in) with their types, dtypes and key order.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable

import h5py
import numpy as np

__all__ = ["compare_files", "assert_files_equal", "assert_exact", "TIMESTAMP_ATTRS"]

#: Attributes that record when something happened; they differ between runs by nature.
TIMESTAMP_ATTRS = frozenset({"created_at", "updated_at", "saved_at", "extracted_at", "stage1_timestamp"})


def _as_text_array(values: np.ndarray) -> np.ndarray:
    flat = [v.decode("utf-8", "surrogateescape") if isinstance(v, bytes) else str(v) for v in values.ravel()]
    return np.array(flat, dtype=object).reshape(values.shape)


def _values_equal(a, b) -> bool:
    a_empty = isinstance(a, h5py.Empty)
    b_empty = isinstance(b, h5py.Empty)
    if a_empty or b_empty:
        return a_empty and b_empty and a.dtype == b.dtype
    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape != b.shape:
        return False
    if a.dtype.kind in "OSU" or b.dtype.kind in "OSU":
        return bool(np.array_equal(_as_text_array(a), _as_text_array(b)))
    if a.dtype.names or b.dtype.names:
        return a.dtype == b.dtype and a.tobytes() == b.tobytes()
    if a.dtype.kind in "fc":
        return bool(np.array_equal(a, b, equal_nan=True))
    return bool(np.array_equal(a, b))


def _dtype_label(obj_dtype: np.dtype) -> str:
    string_info = h5py.check_string_dtype(obj_dtype)
    if string_info is not None:
        return f"string[{string_info.encoding}, length={string_info.length}]"
    vlen = h5py.check_vlen_dtype(obj_dtype)
    if vlen is not None:
        return f"vlen[{vlen}]"
    return str(obj_dtype)


def _attr_dtype(obj, name: str) -> str:
    return _dtype_label(obj.attrs.get_id(name).dtype)


def _collect(f: h5py.File) -> dict[str, h5py.HLObject]:
    objects: dict[str, h5py.HLObject] = {"/": f}

    def visit(name, obj):
        objects["/" + name] = obj

    f.visititems(visit)
    return objects


def _compare_attrs(path: str, a, b, ignore: frozenset[str], out: list[str], reshaped: set = frozenset()) -> None:
    names_a = set(a.attrs.keys()) - ignore
    names_b = set(b.attrs.keys()) - ignore
    for name in sorted(names_a - names_b):
        out.append(f"{path}@{name}: only in the first file")
    for name in sorted(names_b - names_a):
        out.append(f"{path}@{name}: only in the second file")
    for name in sorted(names_a & names_b):
        dtype_a, dtype_b = _attr_dtype(a, name), _attr_dtype(b, name)
        if dtype_a != dtype_b:
            out.append(f"{path}@{name}: dtype {dtype_a} != {dtype_b}")
            continue
        if path == "/" and name == _MANIFEST:
            out.extend(_manifest_differences(a, b, ignore, reshaped))
            continue
        if not _values_equal(a.attrs[name], b.attrs[name]):
            out.append(f"{path}@{name}: values differ ({a.attrs[name]!r} != {b.attrs[name]!r})")


_MANIFEST = "h5stream_checksums"


def _manifest_differences(a, b, ignore: frozenset[str], reshaped=frozenset()) -> list[str]:
    """Digests both checksum manifests hold for the same object and differ on (ignored attributes aside).

    A manifest may hold digests the other does not need (data in checksummed
    HDF5 headers are listed only where the header is not checksummed); each
    file's digests are checked against its own content by ``check_file``.
    """
    from h5stream.files.checksum_checks import check_file

    first, second = json.loads(a.attrs[_MANIFEST]), json.loads(b.attrs[_MANIFEST])
    out = [f"/@{_MANIFEST}: dataset {path} has digest {first['datasets'][path]} != {second['datasets'][path]}"
           for path in sorted(set(first["datasets"]) & set(second["datasets"]))
           if first["datasets"][path] != second["datasets"][path] and path not in reshaped]
    for path in sorted(set(first["attributes"]) & set(second["attributes"])):
        names_a, names_b = first["attributes"][path], second["attributes"][path]
        for name in sorted((set(names_a) & set(names_b)) - ignore):
            if names_a[name] != names_b[name]:
                out.append(f"/@{_MANIFEST}: attribute {path}@{name} has digest {names_a[name]} != {names_b[name]}")
    for f in (a.file, b.file):
        check_file(f.filename, f=f)
    return out


#: What only a session's file holds (the original's session mode writes them; see the module docstring).
_SESSION_ONLY_ATTRS = {"/": {"hdmea_version"}, "/pipeline": {"stage1_completed", "stage1_timestamp"}}
_SESSION_ONLY_OBJECTS = re.compile(
    r"^/(source_files|stimulus/frame_times(/default)?|metadata/section_time_(playlist|repeats)"
    r"|units/[^/]+/features/[^/]+/metadata(/.*)?|units/[^/]+/spike_times_sectioned/[^/]+/_attrs(/.*)?"
    r"|units/[^/]+/unit_meta/attr_id\.[^/]+)$")
#: What only an immediate-mode file holds as attributes: the sectioning's records on the movie's group, the
#: unit group's texts on unit_meta.
_IMMEDIATE_ONLY_ATTRS = (
    (re.compile(r"^/units/[^/]+/spike_times_sectioned/[^/]+$"),
     {"n_trials", "trial_repeats", "pad_margin", "pre_samples", "post_samples", "created_at", "h5stream_attr_types"}),
    (re.compile(r"^/units/[^/]+/unit_meta$"),
     {"attr_id.instance", "attr_id.instanceid", "attr_id.type", "attr_id.typeid", "h5stream_attr_types"}),
)
_SCALAR_TAGS = {"int", "float", "bool", "str", "npscalar", "bigint", "json"}


def _session_scalar_pair(a, b) -> bool:
    """Both datasets hold one tagged scalar, one 1-element and the other 0-d."""
    tag = a.attrs.get("h5stream_type")
    tag = tag.decode() if isinstance(tag, bytes) else tag
    return tag in _SCALAR_TAGS and {a.shape, b.shape} == {(1,), ()}


def _without_session_only(objects: dict) -> dict:
    return {p: o for p, o in objects.items() if not _SESSION_ONLY_OBJECTS.match(p)}


_IMMEDIATE_STA = re.compile(r"^(/units/[^/]+/features/)([^/]+)(/sta)?$")


def _without_immediate_only(objects: dict) -> dict:
    """Without the STA's immediate-mode place (``features/<movie>/sta``, beside ``features/sta_<movie>``)."""
    def immediate_only(path: str) -> bool:
        match = _IMMEDIATE_STA.match(path)
        return bool(match) and f"{match.group(1)}sta_{match.group(2)}" in objects
    return {p: o for p, o in objects.items() if not immediate_only(p)}


def compare_files(
    first: str | os.PathLike,
    second: str | os.PathLike,
    *,
    ignore_attrs: Iterable[str] = TIMESTAMP_ATTRS,
    session_rules: bool | None = None,
) -> list[str]:
    """Differences between two HDF5 files, one line each; empty when equal."""
    ignore = frozenset(ignore_attrs)
    out: list[str] = []
    with h5py.File(first, "r") as fa, h5py.File(second, "r") as fb:
        if session_rules is None:
            session_rules = ("hdmea_version" in fa.attrs) != ("hdmea_version" in fb.attrs)
        objects_a = _collect(fa)
        objects_b = _collect(fb)
        reshaped: set[str] = set()
        if session_rules:  # what only the session's file holds is not a difference
            # (a session loaded from an immediate-mode file keeps the STA's immediate-mode place: either side)
            objects_a, objects_b = _without_immediate_only(objects_a), _without_immediate_only(objects_b)
            if "hdmea_version" in fa.attrs:
                objects_a = _without_session_only(objects_a)
            else:
                objects_b = _without_session_only(objects_b)
        for path in sorted(set(objects_a) - set(objects_b)):
            out.append(f"{path}: only in the first file")
        for path in sorted(set(objects_b) - set(objects_a)):
            out.append(f"{path}: only in the second file")
        for path in sorted(set(objects_a) & set(objects_b)):
            a, b = objects_a[path], objects_b[path]
            if type(a) is not type(b):
                out.append(f"{path}: {type(a).__name__} != {type(b).__name__}")
                continue
            if isinstance(a, h5py.Dataset):
                if session_rules and _session_scalar_pair(a, b):
                    reshaped.add(path)
                    if not _values_equal(np.ravel(a[()]), np.ravel(b[()])):
                        out.append(f"{path}: values differ")
                elif a.shape != b.shape:
                    out.append(f"{path}: shape {a.shape} != {b.shape}")
                elif _dtype_label(a.dtype) != _dtype_label(b.dtype):
                    out.append(f"{path}: dtype {_dtype_label(a.dtype)} != {_dtype_label(b.dtype)}")
                elif not _values_equal(a[()], b[()]):
                    out.append(f"{path}: values differ")
            if path != "/":
                _compare_attrs(path, a, b, _ignored(ignore, path, session_rules), out, reshaped)
        # last: the root's checksum manifest is judged knowing which scalars the session rules reshaped
        _compare_attrs("/", fa, fb, _ignored(ignore, "/", session_rules), out, reshaped)
    return out


def _ignored(ignore: frozenset, path: str, session_rules: bool) -> frozenset:
    if not session_rules:
        return ignore
    extra = set(_SESSION_ONLY_ATTRS.get(path, set()))
    for pattern, names in _IMMEDIATE_ONLY_ATTRS:
        if pattern.match(path):
            extra |= names
    return ignore | extra


def assert_files_equal(
    first: str | os.PathLike,
    second: str | os.PathLike,
    *,
    ignore_attrs: Iterable[str] = TIMESTAMP_ATTRS,
    show: int = 20,
    session_rules: bool | None = None,
) -> None:
    """Raise ``AssertionError`` naming the first ``show`` differences, if any."""
    diffs = compare_files(first, second, ignore_attrs=ignore_attrs, session_rules=session_rules)
    if diffs:
        listed = "\n  ".join(diffs[:show])
        more = f"\n  ... and {len(diffs) - show} more" if len(diffs) > show else ""
        raise AssertionError(f"{first} and {second} differ in {len(diffs)} places:\n  {listed}{more}")


def assert_exact(a, b, *, key_order: bool = True) -> None:
    """``a`` and ``b`` are equal with the same types all the way down.

    Arrays: same dtype, shape and values (NaN equal to NaN); dicts: same keys
    with the same key types, in the same order unless ``key_order=False`` (for
    stores that list keys by name); lists and tuples: same length;
    floats: NaN equal to NaN; every item compared the same way.  A round trip
    that turns an int key into a str, a tuple into a list or a float32 array
    into float64 fails here.
    """
    assert type(a) is type(b), (type(a), type(b), a, b)
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape, (a.dtype, b.dtype, a.shape, b.shape)
        assert np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"), (a, b)
    elif isinstance(a, dict):
        if key_order:
            assert [(k, type(k)) for k in a] == [(k, type(k)) for k in b], (list(a), list(b))
        else:
            assert {(k, type(k)) for k in a} == {(k, type(k)) for k in b}, (list(a), list(b))
        for key in a:
            assert_exact(a[key], b[key], key_order=key_order)
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), (a, b)
        for x, y in zip(a, b):
            assert_exact(x, y, key_order=key_order)
    elif isinstance(a, (float, np.floating)) and np.isnan(a):
        assert np.isnan(b), (a, b)
    elif isinstance(a, (complex, np.complexfloating)):
        # real and imaginary parts compared apart, NaN equal to NaN
        same_real = np.array_equal(np.asarray(a.real), np.asarray(b.real), equal_nan=True)
        same_imag = np.array_equal(np.asarray(a.imag), np.asarray(b.imag), equal_nan=True)
        assert same_real and same_imag, (a, b)
    else:
        assert a == b, (a, b)

"""The codec registry: writers keyed by Python type, readers keyed by encoding.

Every element on disk says what it is through two attributes,
``encoding-type`` and ``encoding-version`` (the AnnData on-disk convention).
The registry stamps them itself after a writer returns, so a codec never writes
them by hand.

Two kinds of encodings exist:

* **spec encodings** (``array``, ``dataframe``, ``categorical`` ...) are the
  ones of the AnnData on-disk specification; ``anndata.io.read_elem`` reads them.
* **typed encodings** of our own (``h5stream:datetime`` ...) carry polars and
  Python types the specification lacks.  A *layered* typed encoding stores its
  values in the physical layout of a spec encoding (for example a Datetime
  column is an ``array`` of int64), stamps that spec encoding in
  ``encoding-type`` so that other readers still see plain values, and stamps its
  own name and version in ``h5stream:encoding-type`` /
  ``h5stream:encoding-version``.  Our reader dispatches on the typed attributes
  first.  A non-layered typed encoding stamps its name in ``encoding-type``.

Readers are kept for every version ever written; only the current version of
an encoding has a writer.

The registry refuses silent re-registration: mapping an encoding that already
has a reader, or a (Python type, encoding) writer slot that is already taken,
raises :class:`RegistrationError` naming the key and the entry holding it
(``replace=True`` swaps an entry on purpose).  Every dispatch first makes sure
the codec modules are imported, so reading works whichever module a program
imported first.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
from collections.abc import Callable, Mapping
from typing import Any

import h5py

from h5stream.elements.snapshot import (
    ENCODING_TYPE_ATTR,
    ENCODING_VERSION_ATTR,
    TYPED_TYPE_ATTR,
    TYPED_VERSION_ATTR,
    ElementSpec,
    Node,
    describe,
    file_name,
    read_spec,
    text_of,
)
from h5stream.errors import EncodingError, FormatError, H5StreamError, MissingPluginError, UnknownEncodingError
from h5stream.files import guard_read
from h5stream.names import check_name
from h5stream.writer import set_text_attr

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

__all__ = [
    "ElementSpec",
    "RegistrationError",
    "CODEC_MODULES",
    "load_codecs",
    "register_writer",
    "register_reader",
    "unregister",
    "write_elem",
    "read_elem",
    "write_with",
    "read_spec",
    "read_with",
    "read_spec_layer",
    "stamp",
    "set_text_attr",
    "text_attr",
    "read_node",
    "TYPED_TYPE_ATTR",
    "TYPED_VERSION_ATTR",
    "CONTAINER_ATTR",
]

# Which Python/polars container a value came from, when the encoding alone does
# not say it (a list of str and a numpy string array share ``string-array``).
CONTAINER_ATTR = "h5stream:container"
SERIES_CONTAINER = "polars.Series"
SERIES_NAME_ATTR = "h5stream:series-name"


WriterFunc = Callable[..., Any]
ReaderFunc = Callable[..., Any]


class RegistrationError(H5StreamError, ValueError):
    """A codec registration would silently replace an entry already in the registry."""


# The modules whose import registers the codecs, in registration order (the
# order decides which of two matching writers of one Python type is tried first).
CODEC_MODULES = ("scalars", "arrays", "strings", "mapping", "sparse", "dataframe", "temporal", "nested")
_codecs_loaded = False


def load_codecs() -> None:
    """Import every codec module once, so that the registry is complete before any dispatch."""
    global _codecs_loaded
    if _codecs_loaded:
        return
    for name in CODEC_MODULES:
        importlib.import_module(f"h5stream.elements.{name}")
    _codecs_loaded = True


def _func_name(func: Callable) -> str:
    return f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', repr(func))}"


def _type_name(python_type: type) -> str:
    return f"{python_type.__module__}.{python_type.__qualname__}"


@dataclasses.dataclass(frozen=True)
class _WriterEntry:
    spec: ElementSpec
    func: WriterFunc
    match: Callable[[Any], bool] | None


_WRITERS: dict[type, list[_WriterEntry]] = {}
_READERS: dict[tuple[str, str], ReaderFunc] = {}
#: Readers registered with ``node=True``: they take the element's :class:`~h5stream.elements.snapshot.Node`.
_READS_NODES: set[ReaderFunc] = set()


def _writer_slot(entries: list[_WriterEntry], spec: ElementSpec, match) -> int | None:
    """Index of the entry holding the slot of a new writer, or None.

    A type has one match-less (fallback) writer, and at most one matching
    writer per encoding.
    """
    for i, e in enumerate(entries):
        if (match is None and e.match is None) or (
            match is not None and e.match is not None and e.spec.key == spec.key
        ):
            return i
    return None


def register_writer(
    python_type: type,
    spec: ElementSpec,
    *,
    match: Callable[[Any], bool] | None = None,
    replace: bool = False,
) -> Callable[[WriterFunc], WriterFunc]:
    """Register ``func(parent, key, value, options) -> h5py object`` for ``python_type``.

    ``match(value)`` narrows the entry (e.g. to one dtype); entries with a
    ``match`` are tried before the plain entry of the same type, in the order of
    registration.  A type has one plain writer and one matching writer per
    encoding; registering a second raises :class:`RegistrationError` unless
    ``replace=True``, which puts the new writer in the old one's place.
    """

    def decorate(func: WriterFunc) -> WriterFunc:
        entries = _WRITERS.setdefault(python_type, [])
        entry = _WriterEntry(spec, func, match)
        taken = _writer_slot(entries, spec, match)
        if taken is not None:
            if not replace:
                held = entries[taken]
                slot = "plain writer" if match is None else f"writer of encoding {spec}"
                raise RegistrationError(
                    f"the {slot} of {_type_name(python_type)} is already registered",
                    obj=f"writer ({_type_name(python_type)}, {spec})",
                    expected="a free (type, encoding) slot",
                    found=f"{_func_name(held.func)} writing {held.spec}",
                    hint="pass replace=True to swap it on purpose, or register another type",
                )
            entries[taken] = entry
        elif match is None:
            entries.append(entry)
        else:
            # before the match-less fallback, after earlier specific entries
            fallback = [e for e in entries if e.match is None]
            specific = [e for e in entries if e.match is not None]
            entries[:] = [*specific, entry, *fallback]
        return func

    return decorate


def register_reader(*specs: ElementSpec, replace: bool = False, node: bool = False
                    ) -> Callable[[ReaderFunc], ReaderFunc]:
    """Register ``func(obj, *, series) -> value`` for each encoding in ``specs``.

    ``series=True`` asks for a ``polars.Series`` (the element is a dataframe
    column); readers of non-column elements ignore it.  ``node=True``: the reader is
    called ``func(node, *, series)``, ``node`` the element as :func:`~h5stream.elements.snapshot.describe`
    read it (attributes, encoding, manifest: read once; members through :meth:`Node.members
    <h5stream.elements.snapshot.Node.members>`).  An encoding that has a
    reader already raises :class:`RegistrationError` unless ``replace=True``;
    nothing is registered then.
    """

    def decorate(func: ReaderFunc) -> ReaderFunc:
        if not replace:
            for spec in specs:
                held = _READERS.get(spec.key)
                if held is not None:
                    raise RegistrationError(
                        f"encoding {spec.encoding_type!r} version {spec.encoding_version!r} already has a reader",
                        obj=f"reader ({spec})",
                        expected="an encoding with no reader yet",
                        found=_func_name(held),
                        hint="give the new encoding another name or version, or pass replace=True "
                        "to swap the reader on purpose",
                    )
        for spec in specs:
            _READERS[spec.key] = func
        if node:
            _READS_NODES.add(func)
        return func

    return decorate


def unregister(python_type: type | None = None, spec: ElementSpec | None = None) -> None:
    """Remove the writers of ``python_type`` for ``spec`` (all encodings if None) and the reader of ``spec``.

    For codecs registered temporarily (tests, plugins being unloaded); a missing
    entry is not an error.
    """
    if python_type is not None and python_type in _WRITERS:
        _WRITERS[python_type] = [e for e in _WRITERS[python_type] if spec is not None and e.spec.key != spec.key]
        if not _WRITERS[python_type]:
            del _WRITERS[python_type]
    if spec is not None:
        _READERS.pop(spec.key, None)


def _find_writer(value: Any) -> _WriterEntry | None:
    load_codecs()
    for cls in type(value).__mro__:
        for entry in _WRITERS.get(cls, ()):
            if entry.match is None or entry.match(value):
                return entry
    return None


def _describe(value: Any) -> str:
    dtype = getattr(value, "dtype", None)
    name = f"{type(value).__module__}.{type(value).__qualname__}"
    return f"{name} with dtype {dtype}" if dtype is not None else name


def _object_label(parent: h5py.Group, key: str) -> str:
    base = parent.name if parent.name != "/" else ""
    return f"{base}/{key}"


def stamp(obj, spec: ElementSpec) -> None:
    """Stamp ``spec`` on ``obj`` (codecs use it for the spec layer under a layered encoding)."""
    if spec.layered:
        set_text_attr(obj, TYPED_TYPE_ATTR, spec.encoding_type)
        set_text_attr(obj, TYPED_VERSION_ATTR, spec.encoding_version)
    else:
        set_text_attr(obj, ENCODING_TYPE_ATTR, spec.encoding_type)
        set_text_attr(obj, ENCODING_VERSION_ATTR, spec.encoding_version)


def write_with(parent: h5py.Group, key: str, value: Any, options) -> Any:
    """Write ``value`` as element ``key`` of ``parent`` through the registry (no name check).

    Codecs call this for their members; it returns the created h5py object.
    """
    entry = _find_writer(value)
    if entry is None:
        raise EncodingError(
            "no element codec can store this value exactly",
            path=parent.file.filename,
            obj=_object_label(parent, key),
            found=_describe(value),
            expected="a polars DataFrame/Series, numpy array or scalar, scipy sparse CSR/CSC, "
            "str, bytes, bool, int, float, None, list, tuple or dict of these",
            hint="convert the value to one of these types (values are never pickled)",
        )
    obj = entry.func(parent, key, value, options)
    stamp(obj, entry.spec)
    return obj


def text_attr(obj, name: str, default: Any = None) -> Any:
    """The attribute ``name`` of ``obj`` (``default`` when absent), decoded to ``str`` when it is stored as bytes."""
    return text_of(obj.attrs.get(name, default))


def read_with(obj, *, series: bool = False, values: Mapping[str, Any] | None = None) -> Any:
    """Read one element through the registry.

    ``values``: all of ``obj``'s attributes already read (:func:`h5stream.checksums.read_attr_values`), or None.
    """
    return read_node(describe(obj, values=values), series=series)


def read_node(node: Node, *, series: bool = False) -> Any:
    """Read the element ``node`` describes (:func:`~h5stream.elements.snapshot.describe`) with the reader of its
    encoding; codecs read their members' nodes through it."""
    spec = node.spec
    if node.spec_error is not None:
        raise node.spec_error
    if spec is None:
        raise UnknownEncodingError(
            "object carries no encoding attributes",
            path=node.obj.file.filename,
            obj=node.name,
            expected="attributes encoding-type and encoding-version",
            found="none",
            hint="the object was not written as an element; read it with h5py",
        )
    load_codecs()
    reader = _READERS.get((spec.encoding_type, spec.encoding_version))
    if reader is None:
        known = sorted({f"{t} {v}" for t, v in _READERS if t == spec.encoding_type})
        raise UnknownEncodingError(
            f"no reader for encoding {spec.encoding_type!r} version {spec.encoding_version!r}",
            path=node.obj.file.filename,
            obj=node.name,
            expected="one of: " + (", ".join(known) if known else "a registered encoding"),
            found=f"{spec.encoding_type} {spec.encoding_version}",
            hint="the file may come from a newer h5stream; upgrade to read it",
        )
    source = node if reader in _READS_NODES else node.obj
    if node.attrs.get(CONTAINER_ATTR) == SERIES_CONTAINER:
        return reader(source, series=True).alias(node.attrs.get(SERIES_NAME_ATTR, ""))
    return reader(source, series=series)


def read_spec_layer(obj, spec: ElementSpec, *, series: bool = True) -> Any:
    """Read ``obj`` (an h5py object, or its :class:`~h5stream.elements.snapshot.Node`) with the reader of
    ``spec`` (the spec layer under a layered encoding)."""
    load_codecs()
    reader = _READERS[spec.key]
    if reader in _READS_NODES:
        return reader(obj if isinstance(obj, Node) else describe(obj), series=series)
    return reader(obj.obj if isinstance(obj, Node) else obj, series=series)


def _is_polars_series(value) -> bool:
    module = type(value).__module__
    if not module.startswith("polars"):
        return False
    import polars as pl

    return isinstance(value, pl.Series)


def write_elem(
    parent: h5py.Group,
    key: str,
    value: Any,
    *,
    compression: str | None = None,
    compression_opts: Any = None,
    chunks: Any = None,
    n_threads: int | None = None,
    **options: Any,
) -> None:
    """Write ``value`` as element ``key`` of ``parent``, stamped with its encoding.

    Parameters
    ----------
    parent : h5py.Group
        Group that receives the element (it must not hold ``key`` yet).
    key : str
        Link name; ``/``, NUL, ``.``, ``..`` and the empty name are refused.
    value
        A polars DataFrame or Series, a numpy array or scalar, a scipy sparse
        CSR/CSC matrix or array, a string array or list of str/None, a JSON-like
        mapping, or a Python scalar.  See :mod:`h5stream.elements`.
    compression : {None, "gzip", "lzf", "zstd", "lz4", "blosc", "blosc2", "bitshuffle"}
        Codec of array datasets; the plugin codecs need ``hdf5plugin``.
    compression_opts
        Codec level (gzip 0-9, zstd 1-22 ...).
    chunks : None, "auto" or tuple
        ``None``/``"auto"``: uncompressed arrays are stored contiguously,
        compressed ones in row-block chunks of about 1 MiB spanning whole rows
        (one sample's row is read from one chunk); a tuple is used as given.
    n_threads : int, optional
        Threads compressing gzip chunks in parallel (default: all cores).
    **options
        ``shuffle`` (bool), ``index`` (dataframe column stored as the row
        index), ``block_rows`` (rows per block of streamed writes).
    """
    from h5stream.writer import WriteOptions

    check_name(key, what="element name", path=parent.file.filename)
    if key in parent:
        raise EncodingError(
            "an object of that name already exists",
            path=parent.file.filename,
            obj=_object_label(parent, key),
            hint="delete it first or choose another name",
        )
    opts = WriteOptions.build(
        compression=compression,
        level=compression_opts,
        chunks=chunks,
        n_threads=n_threads,
        **options,
    )
    try:
        obj = write_with(parent, key, value, opts)
        if _is_polars_series(value):
            # A standalone Series comes back as a Series, named as written.
            obj.attrs[CONTAINER_ATTR] = SERIES_CONTAINER
            obj.attrs[SERIES_NAME_ATTR] = value.name
    except BaseException:
        # Leave no half-written element behind.
        if key in parent:
            try:
                del parent[key]
            except Exception:  # pragma: no cover - best effort on a failing file
                logger.debug("could not remove half-written %s", key)
        raise


def read_elem(obj: h5py.Group | h5py.Dataset | Node) -> Any:
    """Read an element written by :func:`write_elem` (or by AnnData).

    ``obj``: the element's h5py object, or its :class:`~h5stream.elements.snapshot.Node` when the caller
    described it already.  Dispatches on the element's encoding attributes, checked against their digests
    first where the file has a manifest.  Raises
    :class:`~h5stream.errors.UnknownEncodingError` naming the object and the
    encoding when no reader is registered, and
    :class:`~h5stream.errors.FormatError` (or ``MissingPluginError``) for
    unreadable content.
    """
    node, obj = (obj, obj.obj) if isinstance(obj, Node) else (None, obj)
    try:
        with guard_read(file_name(obj), obj.name if node is None else node.name):
            # digests of the element's attributes, when the file has them
            return read_node((describe(obj) if node is None else node).checked())
    except FormatError as exc:
        if isinstance(exc, (MissingPluginError, UnknownEncodingError)):
            raise
        # A filter HDF5 could not load shows up as a generic read failure:
        # find out whether a codec is missing; load hdf5plugin once if it helps.
        if not _diagnose_filters(obj):
            raise
        with guard_read(obj.file.filename, obj.name):
            return read_with(obj)
    except H5StreamError:
        raise
    except Exception as exc:
        # Values the file holds but polars refuses (a corrupt offsets array,
        # an impossible cast) are a format problem of the file too.
        if type(exc).__module__.startswith("polars"):
            raise FormatError(
                f"stored values are inconsistent ({type(exc).__name__}: {exc})",
                path=obj.file.filename, obj=obj.name,
                hint="the file may be corrupted or written by an incompatible tool",
            ) from exc
        raise


def _missing_filters(obj) -> list[tuple[str, int]]:
    found: list[tuple[str, int]] = []

    def check(dataset) -> None:
        plist = dataset.id.get_create_plist()
        for i in range(plist.get_nfilters()):
            code = plist.get_filter(i)[0]
            if not h5py.h5z.filter_avail(code):
                found.append((dataset.name, code))

    if isinstance(obj, h5py.Dataset):
        check(obj)
    else:
        obj.visititems(lambda _name, item: check(item) if isinstance(item, h5py.Dataset) else None)
    return found


def _diagnose_filters(obj) -> bool:
    """True when loading hdf5plugin made a missing filter available (retry the read).

    Raises MissingPluginError naming the dataset when a filter stays unavailable.
    """
    missing = _missing_filters(obj)
    if not missing:
        return False
    try:
        import hdf5plugin  # noqa: F401  (registers its filters)
    except ImportError:
        pass
    still = [(name, code) for name, code in missing if not h5py.h5z.filter_avail(code)]
    if not still:
        return True
    from h5stream.files import ALLOWED_FILTERS

    name, code = still[0]
    raise MissingPluginError(
        f"data is compressed with {ALLOWED_FILTERS.get(code, 'an unknown filter')} (filter {code}), "
        "which is not available here",
        path=obj.file.filename,
        obj=name,
        hint="install the plugin: pip install 'h5stream[fast]' (hdf5plugin)",
    )

"""Compression codecs: one table, one object per codec, and the one import of the compiled kernels.

===========  =========  ===================  =======  =======================
name         filter id  plugin (hdf5plugin)  level    parallel kernel
===========  =========  ===================  =======  =======================
gzip         1          built in             4 (0-9)  deflate (``_compress``)
lzf          32000      built in (h5py)      none
zstd         32015      Zstd                 1
lz4          32004      LZ4                  none
blosc        32001      Blosc (lz4)          5        (shuffles inside)
blosc2       32026      Blosc2 (lz4)         5        (shuffles inside)
bitshuffle   32008      Bitshuffle (lz4)     none     (shuffles inside)
===========  =========  ===================  =======  =======================

:func:`get_codec` returns the :class:`Codec` of a name; a codec turns a level
and the shuffle switch into h5py's ``create_dataset`` keywords
(:meth:`Codec.filter_kwargs`).  :func:`deflate_kernel` is the only import of
the compiled zlib kernel ``h5stream._ext._compress``, used by the parallel gzip
writer and the parallel deflate reader; a missing or stale extension raises
:class:`ImportError` with the rebuild command instead of silently falling back
to the slow path.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from h5stream.errors import MissingPluginError
from h5stream.native import REBUILD, compiled

__all__ = ["Codec", "CODECS", "get_codec", "codec_names", "deflate_kernel", "DEFLATE_IMPLEMENTATIONS"]


@dataclasses.dataclass(frozen=True)
class Codec:
    """A compression codec: its HDF5 filter, where it comes from, its level, its parallel kernel.

    Attributes
    ----------
    name : str
        The ``compression=`` name.
    filter_id : int
        The registered HDF5 filter id (what a file records).
    plugin : str or None
        The ``hdf5plugin`` class providing the filter; None when HDF5 or h5py has it built in.
    default_level : int or None
        Level used when none is given; None when the codec takes no level.
    level_range : tuple or None
        Accepted levels (inclusive); None: any integer the codec accepts, or no level.
    takes_level : bool
    shuffles_inside : bool
        The codec shuffles itself; HDF5's shuffle filter is not added.
    parallel_kernel : str or None
        ``"deflate"`` when the compiled kernel compresses and decompresses its chunks in parallel.
    """

    name: str
    filter_id: int
    plugin: str | None = None
    default_level: int | None = None
    level_range: tuple[int, int] | None = None
    takes_level: bool = True
    shuffles_inside: bool = False
    parallel_kernel: str | None = None

    def resolve_level(self, level: Any) -> int | None:
        """The level to use; ValueError names the codec and the accepted levels."""
        if not self.takes_level:
            if level is not None and self.plugin is None:
                raise ValueError(f"{self.name} takes no level")
            return None  # the plugin codecs without a level have always ignored one
        if level is None:
            return self.default_level
        level = int(level)
        if self.level_range is not None and not self.level_range[0] <= level <= self.level_range[1]:
            raise ValueError(f"{self.name} level must be {self.level_range[0]}-{self.level_range[1]}, got {level}")
        return level

    def filter_kwargs(self, level: int | None, shuffle: bool) -> dict[str, Any]:
        """h5py ``create_dataset`` keywords of this codec's filter (HDF5's shuffle excluded)."""
        if self.plugin is None:
            kwargs: dict[str, Any] = {"compression": self.name}
            if self.takes_level:
                kwargs["compression_opts"] = level
            return kwargs
        return dict(_plugin_filter(self, level, shuffle))


def _plugin_filter(codec: Codec, level: int | None, shuffle: bool):
    hdf5plugin = _hdf5plugin(codec.name)
    cls = getattr(hdf5plugin, codec.plugin)
    if codec.name == "zstd":
        return cls(clevel=level)
    if codec.name == "blosc":
        return cls(cname="lz4", clevel=level, shuffle=cls.SHUFFLE if shuffle else cls.NOSHUFFLE)
    if codec.name == "blosc2":
        return cls(cname="lz4", clevel=level, filters=cls.SHUFFLE if shuffle else cls.NOFILTER)
    if codec.name == "bitshuffle":
        return cls(cname="lz4")
    return cls()


def _hdf5plugin(name: str):
    try:
        import hdf5plugin
    except ImportError as exc:
        raise MissingPluginError(
            f"compression {name!r} needs the hdf5plugin package",
            expected="hdf5plugin installed",
            found="not installed",
            hint="pip install 'h5stream[fast]', or use gzip or lzf",
        ) from exc
    return hdf5plugin


CODECS: dict[str, Codec] = {
    codec.name: codec
    for codec in (
        Codec("gzip", 1, default_level=4, level_range=(0, 9), parallel_kernel="deflate"),
        Codec("lzf", 32000, takes_level=False),
        Codec("zstd", 32015, plugin="Zstd", default_level=1),
        Codec("lz4", 32004, plugin="LZ4", takes_level=False),
        Codec("blosc", 32001, plugin="Blosc", default_level=5, shuffles_inside=True),
        Codec("blosc2", 32026, plugin="Blosc2", default_level=5, shuffles_inside=True),
        Codec("bitshuffle", 32008, plugin="Bitshuffle", takes_level=False, shuffles_inside=True),
    )
}


def codec_names() -> tuple[str | None, ...]:
    """Every accepted ``compression=`` value, None (no compression) first."""
    return (None, *CODECS)


def get_codec(name: str) -> Codec:
    """The codec called ``name``; ValueError lists the known ones."""
    codec = CODECS.get(name)
    if codec is None:
        raise ValueError(f"unknown compression {name!r}; expected one of "
                         + ", ".join(repr(c) for c in codec_names()))
    return codec


#: Deflate implementations :func:`deflate_kernel` knows.
DEFLATE_IMPLEMENTATIONS = ("zlib", "libdeflate", "auto")


def deflate_kernel(implementation: str = "zlib"):
    """A kernel that deflates and inflates chunks: ``deflate_bound``, ``_deflate_chunks``, ``_inflate_chunk``.

    ``"zlib"`` (default): the compiled zlib kernel (``h5stream._ext._compress``),
    whose chunks are byte-identical to HDF5's own filter.  ``"libdeflate"``: the
    system's libdeflate (:mod:`h5stream.native.libdeflate`), the same zlib
    format about twice as fast; ImportError when it is not installed.
    ``"auto"``: libdeflate when installed, else zlib.

    Raises ImportError, naming the rebuild command, when the zlib extension is
    missing or older than this code; nothing falls back silently.
    """
    if implementation not in DEFLATE_IMPLEMENTATIONS:
        raise ValueError(f"unknown deflate implementation {implementation!r}; expected one of "
                         + ", ".join(map(repr, DEFLATE_IMPLEMENTATIONS)))
    if implementation != "zlib":
        from h5stream.native.libdeflate import KERNEL

        if KERNEL is not None:
            return KERNEL
        if implementation == "libdeflate":
            raise ImportError("libdeflate is not installed (no libdeflate.so found); "
                              "install it (e.g. apt install libdeflate0) or use deflate='zlib'")
    _compress = compiled("_compress")
    missing = [name for name in ("deflate_bound", "_deflate_chunks", "_inflate_chunk") if not hasattr(_compress, name)]
    if missing:
        raise ImportError(
            f"the compiled compression kernel {_compress.__file__} lacks {', '.join(missing)}: "
            f"it was built from older sources; rebuild it with {REBUILD}"
        )
    return _compress

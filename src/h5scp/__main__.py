"""Command line of h5scp: ``h5scp inspect FILE``, ``verify FILE`` and ``convert IN OUT`` (the ``h5scp``
console script, or ``python -m h5scp``).

``inspect`` prints what a container file, Parquet dataset or AnnData zarr store
holds (format, samples, assays with their layers, masks and storage, history,
links).  ``verify`` reads all of a file and checks every checksum.  ``convert``
reads a container in any format (chosen by content) and writes it in the
format of the output's extension (``.h5``, ``.hdf5``, ``.h5mu``, ``.h5ad``,
``.parquet``, ``.zarr``).  Every error is one line, ``python -m h5scp COMMAND:
...``, saying what to do, with the command line's flags (``--overwrite``), as
``hdmea``'s command line does; a missing optional package (the ``zarr`` extra)
is one line naming what to install.  Exit status: 0 on success, 2 on bad input
(unreadable file, unsupported extension, an output that exists, a file that is
not a container, a usage error, a missing extra), 1 on a failed write.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

from h5stream.cli_parser import OneLineParser
from h5scp.core.exceptions import ScpTensorError
from h5scp.core.structures import ScpContainer
from h5scp.io.exceptions import IOTargetExistsError, IOWriteError
from h5scp.io.formats import format_for
from h5scp.io.formats_parquet import is_parquet_dataset
from h5scp.io.formats_zarr import is_zarr_store
from h5scp.io.importers import detect_format

_FORMAT_NAMES = {"scptensor": "scptensor HDF5", "AnnData": "AnnData", "MuData": "MuData"}
#: What the command line shows in --help (plain text: argparse prints it as it is).
_DESCRIPTION = ("Inspect, verify and convert ScpTensor containers (.h5, .h5ad, .h5mu, .parquet, .zarr). "
                "Exit status: 0 on success, 2 on bad input or usage, 1 on a failed write.")
#: The library's keyword arguments in its messages, and the flags that set them here.
_FLAGS = {"overwrite=True": "--overwrite", "assay=": "--assay", "layer=": "--layer"}

__all__ = ["main", "describe"]


def _human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def _counted(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _storage(values) -> str:
    fmt = getattr(values, "format", None)
    kind = f"sparse {fmt.upper()} ({values.nnz} stored)" if fmt else "dense"
    return f"{kind} {values.dtype}"


def describe(container: ScpContainer, path: str | os.PathLike | None = None) -> str:
    """A human-readable tree of what ``container`` holds."""
    lines = []
    if path is not None:
        p = Path(path)
        if is_parquet_dataset(p) or is_zarr_store(p):
            size = sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
            kind = "scptensor Parquet" if is_parquet_dataset(p) else "AnnData zarr"
            lines.append(f"{p}  ({kind}, {_human_bytes(size)})")
        else:
            lines.append(f"{p}  ({_FORMAT_NAMES[detect_format(p)]}, {_human_bytes(p.stat().st_size)})")
    obs = container.obs
    lines.append(
        f"samples: {container.n_samples} (id column {container.sample_id_col!r}); "
        f"obs columns: {', '.join(f'{c} [{t}]' for c, t in obs.schema.items())}"
    )
    lines.append(f"assays: {len(container.assays)}")
    for name, assay in container.assays.items():
        lines.append(
            f"  {name}: {assay.n_features} features (id column {assay.feature_id_col!r}), "
            f"{_counted(len(assay.layers), 'layer')}; var columns: {', '.join(assay.var.columns)}"
        )
        for layer, matrix in assay.layers.items():
            mask = "no mask" if matrix.M is None else f"mask {_storage(matrix.M)}"
            meta = f", metadata {sorted(matrix.metadata)}" if matrix.metadata else ""
            lines.append(
                f"    {layer}: {matrix.shape[0]} x {matrix.shape[1]} {_storage(matrix.X)}, {mask}{meta}"
            )
    lines.append(f"links: {len(container.links)}")
    for link in container.links:
        lines.append(f"  {link.source_assay} -> {link.target_assay}: {_counted(link.linkage.height, 'pair')}")
    lines.append(f"history: {len(container.history)} entries")
    for entry in container.history:
        text = f"  {entry.timestamp}  {entry.action}"
        if entry.description:
            text += f"  ({entry.description})"
        lines.append(text)
    return "\n".join(lines)


def _inspect(args: argparse.Namespace) -> int:
    container = ScpContainer.load(args.file)
    print(describe(container, args.file))
    return 0


def _verify(args: argparse.Namespace) -> int:
    import time

    from h5stream.files.checksum_checks import carries_no_checksum, check_file, check_summary
    from h5stream.errors import H5StreamError
    from h5scp.io.exceptions import translate_engine_error

    start = time.perf_counter()
    if is_zarr_store(args.file):
        raise ValueError(f"{args.file} is an AnnData zarr store, which carries no checksums (zarr has none of "
                         "HDF5's); give an .h5, .h5ad or .h5mu file or a .parquet dataset, or read the store with "
                         "inspect")
    if Path(args.file).is_dir():  # a scptensor Parquet dataset: every file against the manifest's digests
        from h5scp.io.formats_parquet import verify_parquet, verify_summary

        stats = verify_parquet(args.file)
        print(verify_summary(args.file, stats, time.perf_counter() - start))
        return 0
    try:
        stats = check_file(args.file)
    except H5StreamError as exc:
        raise translate_engine_error(exc) from exc
    if carries_no_checksum(stats) and _container_kind(args.file) is None:
        raise ValueError(f"{args.file} is an HDF5 file but not a container (scptensor, AnnData or MuData): it carries "
                         "no checksums, so nothing could be verified; verify checks the files h5scp, ScpTensor's "
                         "save_hdf5, anndata and mudata write")
    print(check_summary(args.file, stats, time.perf_counter() - start))
    return 0


def _container_kind(path) -> str | None:
    """"scptensor", "AnnData" or "MuData" for a container file, None for any other HDF5 file."""
    from h5scp.io.importers import checked_format

    try:
        return checked_format(path)
    except (ScpTensorError, ValueError, OSError):
        return None


def _convert(args: argparse.Namespace) -> int:
    source, target = Path(args.input), Path(args.output)
    writer_format = format_for(target)  # a bad extension fails before any reading
    container = ScpContainer.load(source)
    options = {"overwrite": args.overwrite}
    if args.compression is not None:  # else the output format's default (auto for HDF5, zstd for Parquet)
        options["compression"] = None if args.compression == "none" else args.compression
    if args.level is not None:
        options["compression_level"] = args.level
    if writer_format.name in ("AnnData", "AnnData zarr"):  # one assay per file or store
        options["assay"] = args.assay
        options["layer"] = args.layer
    elif args.assay is not None or args.layer is not None:
        raise ValueError("--assay and --layer apply only to .h5ad and .zarr output")
    if writer_format.name == "scptensor Parquet":
        options["layout"] = args.layout or "long"
        options["dense_cells"] = args.dense_cells or "all"
    elif args.layout is not None or args.dense_cells is not None:
        raise ValueError("--layout and --dense-cells apply only to .parquet output")
    writer_format.save(container, target, **options)
    print(f"wrote {target} ({writer_format.name}) from {source}")
    return 0


def _prog() -> str:
    """How the command was started: ``h5scp`` (the console script) or ``python -m h5scp``."""
    started = sys.argv[0] if sys.argv and isinstance(sys.argv[0], str) else ""  # runpy may leave None there
    return "h5scp" if Path(started).name == "h5scp" else "python -m h5scp"


def _parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog=_prog(), description=_DESCRIPTION)
    parser.add_argument("--log-level", default="WARNING", help="logging level (default WARNING)")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("inspect", help="print what a container file, .parquet dataset or .zarr store holds")
    p.add_argument("file")
    p.set_defaults(run=_inspect)
    p = sub.add_parser("verify", help="check every checksum of a .h5, .h5ad or .h5mu file or a .parquet "
                       "dataset by reading all of it")
    p.add_argument("file")
    p.set_defaults(run=_verify)
    p = sub.add_parser("convert", help="convert between .h5, .hdf5, .h5mu, .h5ad, .parquet and .zarr")
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument("--assay", help="assay written to an .h5ad file or .zarr store (needed when there are several)")
    p.add_argument("--layer", help="layer stored as X in an .h5ad file or .zarr store (default: the first)")
    p.add_argument("--compression",
                   help="HDF5: auto (default: gzip level 1 where an array shrinks to a quarter, else none), gzip, lzf, "
                   "none or an hdf5plugin codec; "
                   "Parquet: zstd (default), lz4, snappy, gzip, brotli or none")
    p.add_argument("--level", type=int, help="compression level (HDF5 gzip default 4, 1 with auto)")
    p.add_argument("--layout", choices=("long", "wide"), help="form of dense layers in .parquet output (default long)")
    p.add_argument("--dense-cells", choices=("all", "observed"),
                   help="cells of dense layers in .parquet output: all (default), or only those not NaN "
                   "with the layer's most common NaN mask code")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.set_defaults(run=_convert)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _configure_logging(args.log_level.upper())
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except IOWriteError as exc:
        _error(args.command, exc)
        # an output that exists is an input error (nothing was started); any other failed write is a failure
        return 2 if isinstance(exc, IOTargetExistsError) else 1
    except (ScpTensorError, ValueError, OSError, ImportError) as exc:
        # (an ImportError is an optional package not installed: its message names what to install)
        _error(args.command, exc)
        return 2


class _StderrHandler(logging.StreamHandler):
    """Writes to the ``sys.stderr`` of the moment (a caller may have replaced it since the last command)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def _configure_logging(level: str) -> None:
    """The log lines of h5scp and its engine on stderr at ``level``; a second call replaces the first's."""
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    for name in ("h5scp", "h5stream"):
        log = logging.getLogger(name)
        for old in [h for h in log.handlers if isinstance(h, _StderrHandler)]:
            log.removeHandler(old)
        log.addHandler(handler)
        log.setLevel(level)


def _error(command: str, exc: BaseException) -> None:
    """One line: the command, then the message with the library's keyword arguments named as flags."""
    text = str(exc)
    for keyword, flag in _FLAGS.items():
        text = text.replace(keyword, flag)
    print(f"{_prog()} {command}: {text}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())

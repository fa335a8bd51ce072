"""Command line of h5scp: ``python -m h5scp inspect FILE`` and ``convert IN OUT``.

``inspect`` prints what a container file or Parquet dataset holds (format,
samples, assays with their layers, masks and storage, history, links).
``convert`` reads a container in any format (chosen by content) and writes it
in the format of the output's extension (``.h5``, ``.hdf5``, ``.h5mu``,
``.h5ad``, ``.parquet``).  Exit status: 0 on success, 2 on bad input
(unreadable file, unsupported extension), 1 on a failed write.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

from h5scp.core.exceptions import ScpTensorError
from h5scp.core.structures import ScpContainer
from h5scp.io.exceptions import IOWriteError
from h5scp.io.formats import format_for
from h5scp.io.formats_parquet import is_parquet_dataset
from h5scp.io.importers import detect_format

_FORMAT_NAMES = {"scptensor": "scptensor HDF5", "AnnData": "AnnData", "MuData": "MuData"}

__all__ = ["main", "describe"]


def _human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def _storage(values) -> str:
    fmt = getattr(values, "format", None)
    kind = f"sparse {fmt.upper()} ({values.nnz} stored)" if fmt else "dense"
    return f"{kind} {values.dtype}"


def describe(container: ScpContainer, path: str | os.PathLike | None = None) -> str:
    """A human-readable tree of what ``container`` holds."""
    lines = []
    if path is not None:
        p = Path(path)
        if is_parquet_dataset(p):
            size = sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
            lines.append(f"{p}  (scptensor Parquet, {_human_bytes(size)})")
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
            f"{len(assay.layers)} layers; var columns: {', '.join(assay.var.columns)}"
        )
        for layer, matrix in assay.layers.items():
            mask = "no mask" if matrix.M is None else f"mask {_storage(matrix.M)}"
            meta = f", metadata {sorted(matrix.metadata)}" if matrix.metadata else ""
            lines.append(
                f"    {layer}: {matrix.shape[0]} x {matrix.shape[1]} {_storage(matrix.X)}, {mask}{meta}"
            )
    lines.append(f"links: {len(container.links)}")
    for link in container.links:
        lines.append(f"  {link.source_assay} -> {link.target_assay}: {link.linkage.height} pairs")
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

    from h5stream.checksums.wholefile import check_file, check_summary
    from h5stream.errors import H5StreamError
    from h5scp.io.exceptions import translate_engine_error

    start = time.perf_counter()
    if Path(args.file).is_dir():  # a scptensor Parquet dataset: every file against the manifest's digests
        from h5scp.io.formats_parquet import verify_parquet, verify_summary

        stats = verify_parquet(args.file)
        print(verify_summary(args.file, stats, time.perf_counter() - start))
        return 0
    try:
        stats = check_file(args.file)
    except H5StreamError as exc:
        raise translate_engine_error(exc) from exc
    print(check_summary(args.file, stats, time.perf_counter() - start))
    return 0


def _convert(args: argparse.Namespace) -> int:
    source, target = Path(args.input), Path(args.output)
    writer_format = format_for(target)  # a bad extension fails before any reading
    container = ScpContainer.load(source)
    options = {"overwrite": args.overwrite}
    if args.compression is not None:  # else the output format's default (auto for HDF5, zstd for Parquet)
        options["compression"] = None if args.compression == "none" else args.compression
    if args.level is not None:
        options["compression_level"] = args.level
    if writer_format.name == "AnnData":
        options["assay"] = args.assay
        options["layer"] = args.layer
    elif args.assay is not None or args.layer is not None:
        raise ValueError("--assay and --layer apply only to .h5ad output")
    if writer_format.name == "scptensor Parquet":
        options["layout"] = args.layout or "long"
        options["dense_cells"] = args.dense_cells or "all"
    elif args.layout is not None or args.dense_cells is not None:
        raise ValueError("--layout and --dense-cells apply only to .parquet output")
    writer_format.save(container, target, **options)
    print(f"wrote {target} ({writer_format.name}) from {source}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m h5scp", description=__doc__.split("\n\n")[0])
    parser.add_argument("--log-level", default="WARNING", help="logging level (default WARNING)")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("inspect", help="print what a container file holds")
    p.add_argument("file")
    p.set_defaults(run=_inspect)
    p = sub.add_parser("verify", help="check every checksum of a .h5, .h5ad or .h5mu file or a .parquet "
                       "dataset by reading all of it")
    p.add_argument("file")
    p.set_defaults(run=_verify)
    p = sub.add_parser("convert", help="convert between .h5, .hdf5, .h5mu, .h5ad and .parquet")
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument("--assay", help="assay written to an .h5ad file (needed when there are several)")
    p.add_argument("--layer", help="layer stored as X in an .h5ad file (default: the first)")
    p.add_argument("--compression",
                   help="HDF5: auto (default: gzip level 1 where an array shrinks to half, else none), gzip, lzf, "
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
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except IOWriteError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (ScpTensorError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

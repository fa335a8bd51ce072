"""Every file extension h5scp knows, in one table: the formats it writes and reads, and the formats of other
tools whose names ``save_hdf5`` refuses.

:data:`h5scp.io.formats.FORMATS` (the format ``save`` picks by extension) is built from the rows with a
writer; :func:`h5scp.io.exporters.save_hdf5` refuses a name whose extension names another format, saying
which function writes it; the table of ``docs/formats.md`` ("Extensions") is this one, and
``tests/unit/test_format_table.py`` fails when they differ.  A new format is one row per extension here.
"""

from __future__ import annotations

import dataclasses

__all__ = ["FormatRow", "FORMAT_TABLE", "writer_of"]


@dataclasses.dataclass(frozen=True)
class FormatRow:
    """One extension: the format's name, and the functions of ``h5scp.io`` that write and read it (None for
    both: another tool's format, which h5scp neither writes nor reads)."""

    name: str
    writer: str | None
    reader: str | None


_HDF5 = FormatRow("scptensor HDF5", "save_hdf5", "load_hdf5")

#: extension (lower case, with its dot) -> its format
FORMAT_TABLE: dict[str, FormatRow] = {
    ".h5": _HDF5,
    ".hdf5": _HDF5,
    ".h5mu": FormatRow("MuData", "save_h5mu", "load_h5mu"),
    ".h5ad": FormatRow("AnnData", "save_h5ad", "load_h5ad"),
    ".parquet": FormatRow("scptensor Parquet", "save_parquet", "load_parquet"),
    ".zarr": FormatRow("AnnData zarr", "save_anndata_zarr", "load_anndata_zarr"),
    ".loom": FormatRow("Loom", None, None),
    ".csv": FormatRow("CSV text", None, None),
    ".tsv": FormatRow("TSV text", None, None),
}


def writer_of(row: FormatRow) -> str:
    """What writes ``row``'s format, as an error message says it."""
    return f"{row.writer} or container.save(path)" if row.writer is not None else "another tool"

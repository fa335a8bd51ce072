"""One table of extensions (``h5scp.io.format_table.FORMAT_TABLE``): the formats ``save`` picks, the names
``save_hdf5`` refuses, and the table of docs/formats.md all come from it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from h5scp.io.format_table import FORMAT_TABLE
from h5scp.io.formats import FORMATS, format_for
from h5scp.testing import example_container

DOCS = Path(__file__).resolve().parents[2] / "docs" / "formats.md"


def test_the_formats_save_picks_are_the_rows_with_a_writer_and_name_the_functions_of_the_row():
    written = {extension for extension, row in FORMAT_TABLE.items() if row.writer is not None}
    assert set(FORMATS) == written
    assert {".h5", ".h5mu", ".h5ad", ".parquet", ".zarr"} <= written
    for extension, fmt in FORMATS.items():
        row = FORMAT_TABLE[extension]
        assert (fmt.name, fmt.save.__name__, fmt.load.__name__) == (row.name, row.writer, row.reader)
        assert format_for(f"cells{extension.upper()}") is fmt  # the extension in any case


@pytest.mark.parametrize("extension", [e for e, row in FORMAT_TABLE.items() if row.writer != "save_hdf5"])
def test_save_hdf5_refuses_every_other_formats_extension_naming_it_and_writes_nothing(tmp_path, extension):
    from h5scp.io import save_hdf5

    row = FORMAT_TABLE[extension]
    target = tmp_path / f"cells{extension}"
    with pytest.raises(ValueError) as info:
        save_hdf5(example_container(), target)
    message = str(info.value)
    assert str(target) in message and row.name in message
    assert (row.writer if row.writer is not None else "another tool") in message
    assert not target.exists() and list(tmp_path.iterdir()) == []


def _docs_table() -> dict[str, tuple[str, str | None, str | None]]:
    text = DOCS.read_text(encoding="utf-8")
    section = re.search(r"^## Extensions\n(.*?)(?=^## |\Z)", text, flags=re.S | re.M)
    assert section, "docs/formats.md has no '## Extensions' section"
    rows = {}
    for line in section.group(1).splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0].startswith("`."):
            def function(cell: str) -> str | None:
                return None if cell == "another tool" else cell.strip("`")

            rows[cells[0].strip("`")] = (cells[1], function(cells[2]), function(cells[3]))
    return rows


def test_the_documented_extensions_are_the_table():
    assert _docs_table() == {e: (row.name, row.writer, row.reader) for e, row in FORMAT_TABLE.items()}

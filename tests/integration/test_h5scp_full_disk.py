"""A save that fills the disk, for real, in every format: a typed error that names the file, the free space
and what the save needed; the dataset saved before is intact and nothing is left beside it.

The disk is a small tmpfs (mounted where this process may mount one; skipped elsewhere): a small container
fits, a large one does not.  Before, a ``.parquet`` save raised polars' own ``ComputeError``.
"""

from __future__ import annotations

import pytest

from pathlib import Path

from h5scp.io import save
from h5scp.io.exceptions import IOWriteError
from h5scp.testing import example_container
from tests.conftest import tmpfs_mount

SUFFIXES = [".h5", ".h5mu", ".h5ad", ".parquet", ".zarr"]


def _bytes(path: Path) -> dict:
    """Every file's bytes under ``path`` (a file, or a folder's files by relative name)."""
    if path.is_file():
        return {".": path.read_bytes()}
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_a_save_that_fills_the_disk_is_refused_by_name_and_keeps_the_old_one(tmp_path, suffix):
    if suffix == ".zarr":
        pytest.importorskip("zarr")
    small = example_container(n_samples=4, seed=1)
    large = example_container(n_samples=3000, n_proteins=300, peptides_per_protein=3, density=1.0, seed=2)
    one = {"assay": "proteins"} if suffix in (".h5ad", ".zarr") else {}  # these hold one assay
    with tmpfs_mount(tmp_path / "disk", "size=2m") as disk:
        path = save(small, disk / f"c{suffix}", **one)
        before = _bytes(path)
        with pytest.raises(IOWriteError) as info:
            save(large, path, overwrite=True, **one)
        message = str(info.value)
        assert str(path) in message and "the disk is full" in message, message
        assert "partial" not in message.split(":")[0], message  # the target is named, not the partial file
        assert "free in" in message and "the save needs more than" in message, message
        assert "free disk space" in message, message
        assert _bytes(path) == before
        assert sorted(p.name for p in disk.iterdir()) == [path.name]

"""Write the golden files of the format versions that came after the first golden set (see README.md).

One file per format version, each written by the code that introduced the version and read back by
``tests/unit/test_golden_versions.py`` with today's code; ``VERSIONS`` (in ``golden_cases``) maps each
version constant of the source to its file, and a test fails when a constant has none:

* ``scptensor_parquet_1.0.parquet/``: scptensor's Parquet format 1.0 (``FORMAT_VERSION`` of
  ``h5scp.io._parquet_manifest``), ``example_container(seed=3)`` saved with ``save_parquet``: a folder
  with its CRC manifest (every file's size and CRC-32, per row group for the layers).
* ``hdmea_recording_checksummed.h5``: a recording (format 1) written with end-to-end checksums, the
  manifest version 2 of ``h5stream.checksums`` (``MANIFEST_VERSION``): the short synthetic recording of
  ``make_golden.py`` through the whole pipeline; ``.expected.{json,npz}`` hold what
  ``PipelineSession.load`` returned.
* ``scptensor_2.0_checksums_v2.h5`` and ``scptensor_2.0_checksums_v3.h5``: ``example_container(seed=3)``
  saved with ``save_hdf5`` (format 2.0) with the checksum manifest of the running code's
  ``MANIFEST_VERSION`` in the file's name: version 2 written by commit f634517 (the last code writing it, run
  as ``PYTHONPATH=<that commit's src>:. python tests/data/golden/make_versions.py``), version 3 (the names
  digests of :mod:`h5stream.checksums._names`) by the commit that introduced it.
* ``hdmea_migrated.h5``: a recording migrated from an archive of the previous zarr store
  (``hdmea.interop.zarr_migrate``), holding ``/pipeline/migration``; the archive is the one the
  migration tests write (``write_old_archive(seed=5)``); ``.expected.{json,npz}`` as above, plus the
  migration record's attributes.

* ``scptensor_2.0_records.h5mu`` and ``scptensor_2.0_records_peptides.h5ad``: scptensor's AnnData and
  MuData files as written while ``uns/scptensor/frames`` held a record of each whole frame (Arrow IPC
  bytes), before frame schemas (format version 2.0 throughout: the reader tells them apart by the keys
  present); ``example_container(seed=3)`` as in ``make_golden.py``.  Written with commit ``8eb353c``
  (the last that wrote whole-frame records): ``PYTHONPATH=<that checkout>/src:. python
  tests/data/golden/make_versions.py``.

* ``scptensor_zarr_1.0_peptides.zarr/``: scptensor's AnnData zarr store (zarr format 2) sealed with its
  checksum manifest 1.0 (``FORMAT_VERSION`` of ``h5scp.io._zarr_store``: the size and CRC-32 of every
  file in the root group's ``scptensor-checksums`` attribute, and the digest of the root ``.zattrs``
  itself), ``example_container(seed=3)`` saved with ``save_anndata_zarr(..., assay="peptides",
  layer="norm")``; written with commit ``3205fd2`` (the one that introduced the manifest):
  ``PYTHONPATH=<that checkout>/src:. python tests/data/golden/make_versions.py``.

Made from the repository root, with the commit that added this script (the first with checksums and
Parquet already in place), by::

    PYTHONPATH=src:. python tests/data/golden/make_versions.py

Never rewrite a file that exists: a new version gets a new file (and an entry in ``VERSIONS``).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import warnings
from pathlib import Path

from tests.data.golden import golden_cases as cases
from tests.data.golden.make_golden import _small_config

OUT = cases.HERE


def _snapshot(path: Path) -> dict:
    from hdmea.pipeline import PipelineSession

    loaded = PipelineSession.load(path)
    try:
        return {"dataset_id": loaded.dataset_id, "completed_steps": list(loaded.completed_steps),
                "warnings": list(loaded.warnings), "tree": loaded.get("")}
    finally:
        loaded.close()


def _migration_record(path: Path) -> dict:
    from h5stream.tree import decode_node, node_from_h5
    from hdmea.io.hdf5_store import open_recording_hdf5

    with open_recording_hdf5(path, "r") as f:
        return decode_node(node_from_h5(f["pipeline/migration"]))


def make_parquet(folder: Path) -> None:
    from h5scp.io.formats_parquet import load_parquet, save_parquet
    from h5scp.testing import assert_container_equal, example_container

    container = cases.fix_history_times(example_container(seed=cases.CONTAINER_SEED))
    target = folder / cases.PARQUET_GOLDEN
    save_parquet(container, target)
    assert_container_equal(load_parquet(target), container)


def make_checksummed_recording(folder: Path) -> None:
    from hdmea.config import parse_config
    from hdmea.pipeline.batch import run_pipeline
    from hdmea.synthetic import generate_recording

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        rec = generate_recording(tmp, "golden", config=_small_config(), seed=cases.RECORDING_SEED)
        config = parse_config({"stimulus": {"file": "{dir}/{name}.stimulus.json"}}, base_dir=tmp)
        out = tmp / "golden_recording.h5"
        run_pipeline(rec.cmcr_path, rec.cmtr_path, out, config, dataset_id="golden")
        shutil.copyfile(out, folder / cases.CHECKSUMMED_GOLDEN)
    stem = folder / Path(cases.CHECKSUMMED_GOLDEN).stem
    cases.save_snapshot(_snapshot(folder / cases.CHECKSUMMED_GOLDEN), Path(f"{stem}.expected"))


def make_checksummed_container(folder: Path) -> None:
    from h5stream.checksums import MANIFEST_VERSION
    from h5scp.io import load_hdf5, save_hdf5
    from h5scp.testing import assert_container_equal, example_container

    container = cases.fix_history_times(example_container(seed=cases.CONTAINER_SEED))
    target = folder / cases.CHECKSUMMED_CONTAINER_GOLDEN.format(version=MANIFEST_VERSION)
    save_hdf5(container, target)
    assert_container_equal(load_hdf5(target), container)


def make_migrated(folder: Path) -> None:
    from hdmea.interop.zarr_migrate import migrate
    from tests.integration.test_interop_zarr_migrate import write_old_archive

    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "JIANG009_2024-01-15.zarr"
        write_old_archive(archive, seed=5)
        migrate(archive, folder / cases.MIGRATED_GOLDEN)
    stem = folder / Path(cases.MIGRATED_GOLDEN).stem
    snapshot = _snapshot(folder / cases.MIGRATED_GOLDEN)
    snapshot["migration"] = _migration_record(folder / cases.MIGRATED_GOLDEN)
    cases.save_snapshot(snapshot, Path(f"{stem}.expected"))


def make_records(folder: Path) -> None:
    from h5scp import ScpContainer
    from h5scp.testing import assert_container_equal, example_container

    c = cases.fix_history_times(example_container(seed=cases.CONTAINER_SEED))
    c.save(folder / cases.RECORDS_H5MU_GOLDEN)
    c.save(folder / cases.RECORDS_H5AD_GOLDEN, assay="peptides", layer="norm")
    assert_container_equal(ScpContainer.load(folder / cases.RECORDS_H5MU_GOLDEN), c)
    import h5py

    with h5py.File(folder / cases.RECORDS_H5MU_GOLDEN, "r") as f:
        if "schemas" in f["uns/scptensor"]:  # today's code writes schemas: these files come from 8eb353c
            raise RuntimeError("this code writes frame schemas; write the records files with commit 8eb353c")


def make_zarr(folder: Path) -> None:
    from h5scp import ScpContainer
    from h5scp.io.formats_zarr import load_anndata_zarr, save_anndata_zarr
    from h5scp.testing import assert_container_equal, example_container

    c = cases.fix_history_times(example_container(seed=cases.CONTAINER_SEED))
    save_anndata_zarr(c, folder / cases.ZARR_GOLDEN, assay="peptides", layer="norm")
    expected = ScpContainer(c.obs, {"peptides": c.assays["peptides"]}, history=c.history)
    assert_container_equal(load_anndata_zarr(folder / cases.ZARR_GOLDEN), expected)


def main() -> int:
    import h5stream

    warnings.simplefilter("error")
    print(f"writing golden files with h5stream from {Path(h5stream.__file__).parent}", file=sys.stderr)
    from h5stream.checksums import MANIFEST_VERSION

    makers = {cases.PARQUET_GOLDEN: make_parquet, cases.CHECKSUMMED_GOLDEN: make_checksummed_recording,
              cases.MIGRATED_GOLDEN: make_migrated,
              cases.CHECKSUMMED_CONTAINER_GOLDEN.format(version=MANIFEST_VERSION): make_checksummed_container,
              cases.RECORDS_H5MU_GOLDEN: make_records, cases.ZARR_GOLDEN: make_zarr}
    for name, make in makers.items():
        if (OUT / name).exists():
            print(f"{name} exists; kept", file=sys.stderr)
            continue
        make(OUT)
        print(f"wrote {name}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

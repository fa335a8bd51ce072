"""The ``hdmea`` subcommands that connect to other tools: ``export-nwb`` and ``migrate``.

:func:`add_commands` adds them to the parser of :mod:`hdmea.cli`; errors leave
through the same handler as every other subcommand (a typed error names the file
and the object; a missing optional extra names the ``pip install`` to run).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from hdmea.errors import ConfigError

__all__ = ["add_commands"]

EXIT_OK = 0
EXIT_FAILED = 1


def _cmd_export_nwb(args: argparse.Namespace) -> int:
    from hdmea.interop.nwb import export

    subject = {k: v for k, v in (("subject_id", args.subject_id), ("species", args.species), ("age", args.age),
                                 ("sex", args.sex)) if v is not None}
    start = None
    if args.session_start_time:
        import datetime as dt

        try:
            start = dt.datetime.fromisoformat(args.session_start_time)
        except ValueError:
            raise ConfigError("--session-start-time is not an ISO 8601 time", found=args.session_start_time,
                              expected="e.g. 2024-03-01T12:00:00+01:00") from None
    result = export(
        args.recording, args.out, overwrite=args.overwrite, session_description=args.description,
        identifier=args.identifier, session_start_time=start, experimenter=args.experimenter or None,
        lab=args.lab, institution=args.institution, experiment_description=args.experiment_description,
        keywords=args.keyword or None, subject=subject or None, pitch_um=args.pitch_um,
        compression=None if args.no_compression else "gzip", compression_level=args.compression_level,
        verify=not args.no_verify,
    )
    print(result.describe())
    return EXIT_OK


def _cmd_migrate(args: argparse.Namespace) -> int:
    from hdmea.interop.zarr_migrate import migrate, migrate_folder

    source = Path(args.source)
    if source.suffix in (".h5", ".hdf5") and source.is_file():
        from hdmea.interop.layout_upgrade import upgrade_h5_recording

        for line in upgrade_h5_recording(source, args.out, overwrite=args.overwrite, cmcr_path=args.cmcr,
                                         cmtr_path=args.cmtr):
            print(line)
        return EXIT_OK
    if source.suffix == ".zarr" or (source / ".zgroup").exists():
        result = migrate(source, args.out, overwrite=args.overwrite,
                         keep_eimage_orientation=args.keep_eimage_orientation)
        print(result.describe())
        return EXIT_OK
    summary = migrate_folder(source, args.out, keep_eimage_orientation=args.keep_eimage_orientation)
    print(summary.table())
    if args.summary:
        Path(args.summary).write_text(json.dumps(summary.as_dict(), indent=2))
    return EXIT_OK if summary.ok else EXIT_FAILED


def add_commands(add_parser: Callable[..., argparse.ArgumentParser]) -> None:
    """Add ``export-nwb`` and ``migrate`` through ``add_parser`` (``subparsers.add_parser``)."""
    p = add_parser("export-nwb", help="write a recording file as NWB (needs h5stream[nwb])",
                   description="Write an analysed recording (.h5) as an NWB file: units with spike times, "
                   "waveforms and features, the chip as electrodes, stimulus sections and trials, the light "
                   "reference, electrical images and receptive fields. The file appears only when complete.")
    p.add_argument("recording", help="recording file (.h5)")
    p.add_argument("out", help="NWB file to write (.nwb)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    p.add_argument("--identifier", help="NWB identifier (default: dataset id and a hash of the path)")
    p.add_argument("--description", help="session description")
    p.add_argument("--session-start-time", metavar="ISO", help="default: the acquisition's DateTime")
    p.add_argument("--experimenter", action="append", metavar="NAME", help="repeat for several")
    p.add_argument("--lab")
    p.add_argument("--institution")
    p.add_argument("--experiment-description")
    p.add_argument("--keyword", action="append", metavar="WORD", help="repeat for several")
    p.add_argument("--subject-id", help="default: the dataset id")
    p.add_argument("--species", help="e.g. 'Mus musculus' (NWB validators require it)")
    p.add_argument("--age", help="ISO 8601 duration, e.g. P90D (NWB validators require it)")
    p.add_argument("--sex", choices=["M", "F", "U", "O"], help="default U (unknown)")
    p.add_argument("--pitch-um", type=float, help="sensor pitch in micrometres (default 16)")
    p.add_argument("--no-compression", action="store_true", help="store the large arrays without gzip")
    p.add_argument("--compression-level", type=int, default=1, metavar="N", help="gzip level (default 1)")
    p.add_argument("--no-verify", action="store_true",
                   help="do not check the values read against the recording's checksums (export them as stored)")
    p.set_defaults(func=_cmd_export_nwb)

    p = add_parser("migrate", help="convert archives of the previous zarr store to recording files "
                   "(needs h5stream[zarr])",
                   description="Convert OLD.zarr (a directory store of the previous pipeline) to NEW.h5, or "
                   "every *.zarr in a folder to OUT_DIR/<name>.h5 (resumable: finished archives are skipped). "
                   "Given OLD.h5, a recording file written with positional unit names (unit_000, ...), write "
                   "NEW.h5 with the units named by their .cmtr UnitID (unit_012, ...), the mapping recorded "
                   "in /pipeline/unit_renames; a recording of an earlier version is written in the original "
                   "pipeline's layout (sectioned trials, unit_meta, vendor metadata, 0-d scalars, ...), what was "
                   "mapped recorded in /pipeline/layout_upgrade.")
    p.add_argument("source", metavar="OLD.zarr|DIR|OLD.h5")
    p.add_argument("out", metavar="NEW.h5|OUT_DIR")
    p.add_argument("--overwrite", action="store_true", help="replace an existing NEW.h5 (single archive)")
    p.add_argument("--summary", metavar="FILE", help="write the folder summary as JSON")
    p.add_argument("--cmcr", metavar="FILE", help="OLD.h5's .cmcr, where the file's own record does not find it")
    p.add_argument("--cmtr", metavar="FILE", help="OLD.h5's .cmtr, where the file's own record does not find it")
    p.add_argument("--keep-eimage-orientation", action="store_true",
                   help="store electrical images as they were even where the footprint test finds them "
                        "transposed (by default such images are stored the right way round, with a record in "
                        "/pipeline/migration/eimage_orientation)")
    p.set_defaults(func=_cmd_migrate)


if __name__ == "__main__":  # pragma: no cover
    sys.exit("run: hdmea export-nwb ... or hdmea migrate ...")

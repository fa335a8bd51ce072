"""``hdmea slurm-script``: the SLURM job-array script that ships with the package, printed or written.

The script (``hdmea/data/slurm/slurm_array.sh``) runs ``hdmea run-one`` for one task of an array over a
folder of recordings, passes SIGTERM on so the task checkpoints, and requeues a stopped task.  It is part
of the package's data, so an installed wheel has it as a clone does.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from importlib import resources
from pathlib import Path

EXIT_OK = 0

#: where the script lies inside the package (``hdmea``'s data)
SCRIPT = ("data", "slurm", "slurm_array.sh")


def array_script() -> str:
    """The text of the job-array script shipped with the package."""
    return resources.files("hdmea").joinpath(*SCRIPT).read_text(encoding="utf-8")


def _cmd_slurm_script(args: argparse.Namespace) -> int:
    text = array_script()
    if args.out is None:
        sys.stdout.write(text)
        return EXIT_OK
    out = Path(args.out)
    if out.exists() and not args.overwrite:
        print(f"hdmea slurm-script: {out} exists already: give another path, or --overwrite to replace it",
              file=sys.stderr)
        return 2
    out.write_text(text, encoding="utf-8")
    os.chmod(out, 0o755)
    print(f"wrote {out}; submit it with: sbatch --array=0-$((N - 1)) {out} RECORDINGS_DIR OUT_DIR [CONFIG.toml]")
    return EXIT_OK


def add_command(add_parser: Callable[..., argparse.ArgumentParser]) -> None:
    """Add ``slurm-script`` through ``add_parser`` (``subparsers.add_parser``)."""
    p = add_parser("slurm-script", help="print (or write) the SLURM job-array script that runs hdmea run-one",
                   description="Print the job-array script shipped with the package: task k of `sbatch "
                   "--array=0-(N-1) slurm_array.sh RECORDINGS_DIR OUT_DIR [CONFIG.toml]` processes the k-th "
                   "recording (name order, as hdmea batch), checkpoints on SIGTERM and requeues itself.")
    p.add_argument("--out", metavar="FILE", help="write it to FILE (executable) instead of printing it")
    p.add_argument("--overwrite", action="store_true", help="replace an existing FILE")
    p.set_defaults(func=_cmd_slurm_script)

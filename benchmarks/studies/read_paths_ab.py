"""Electrical images and raw reads over a cached and an uncached raw file, two source trees interleaved.

``python -m benchmarks.studies.read_paths_ab --base OLD_TREE [--frames N] [--rounds R] [--threads T] [--dir DIR]``
from the repository root, as root (the page cache is dropped with ``sync; echo 3 >
/proc/sys/vm/drop_caches``).  ``OLD_TREE`` is a source checkout with its compiled extensions
in place (``git worktree add DIR COMMIT``, then build there or copy ``src/h5stream/_ext``).

The raw file has the vendor layout of :mod:`benchmarks.suite.bench_eimage` (uint16 frames of 65 x 65,
chunks of 256 frames, 135 units at 10 Hz; 250,000 frames: 2.1 GB), written once into ``--dir``
and reused.  Each round, for each state of the file (``cached``: read whole first, and its
residency checked; ``dropped``: the page cache dropped), runs in a fresh process, in an order
rotated round by round (each variant first in turn: the first run after the file is read back
into the cache ran slower):

* ``new``: the electrical images with this tree (the path of each piece chosen by the page cache's
  answer; the bytes each path read are printed);
* ``old``: the same with ``OLD_TREE`` (reads directly whatever the page cache holds);
* ``old portable``: ``OLD_TREE`` with ``H5STREAM_PORTABLE=1`` (reads through h5py: the page cache);
* ``read new``: this tree's row reader alone, every row of the file in chunks of 32768 rows into two
  buffers touched before (pieces the page cache holds copied from it, ``--threads`` at a time, the
  others read directly); ``read new, held direct``: every piece read directly;
* ``dd``: ``dd if=FILE of=/dev/null bs=16M`` (through the page cache) and, uncached,
  ``dd iflag=direct`` too.

Every electrical-image run uses ``--threads`` kernel threads and must give the same images (bit for
bit, checked).  Prints one Markdown table of wall seconds (min / median over the rounds), GB/s of
the raw bytes, and the paths taken.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
from pathlib import Path

from benchmarks.suite._raw_reads import EIMAGE, READ, REPO, child, dd, make_resident, write_file


def drop_caches() -> None:
    subprocess.run(["sync"], check=True)
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, required=True)
    parser.add_argument("--frames", type=int, default=250_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/read-paths-ab"))
    parser.add_argument("--states", nargs="+", default=["cached", "dropped"], choices=["cached", "dropped"])
    parser.add_argument("--variants", nargs="+", default=None, help="a subset of the variants (default: all)")
    opts = parser.parse_args(argv)
    from benchmarks.suite.bench_eimage import DATASET

    opts.dir.mkdir(parents=True, exist_ok=True)
    path, spikes_path = write_file(opts.dir, opts.frames)
    nbytes = path.stat().st_size
    base = {"path": str(path), "spikes": str(spikes_path), "dataset": DATASET, "threads": opts.threads}
    variants = {
        "new": lambda a: child(REPO, EIMAGE, a),
        "old": lambda a: child(opts.base, EIMAGE, a),
        "old portable": lambda a: child(opts.base, EIMAGE, a, portable=True),
        "read new": lambda a: child(REPO, READ, dict(a, held="cached")),
        "read new, held direct": lambda a: child(REPO, READ, dict(a, held="direct")),
        "dd": lambda a: dd(path, False),
        "dd iflag=direct": lambda a: dd(path, True),
    }
    if opts.variants:
        variants = {name: variants[name] for name in opts.variants}
    results: dict = {}
    reference = None
    for r in range(opts.rounds):
        for state in opts.states:
            names = list(variants)
            names = names[r % len(names):] + names[: r % len(names)]  # each variant first in turn
            for name in names:
                if state == "cached" and name == "dd iflag=direct":
                    continue
                if state == "cached":
                    held = make_resident(path)
                else:
                    drop_caches()
                    held = None
                got = variants[name](dict(base))
                got["held"] = held
                results.setdefault((state, name), []).append(got)
                digest = got.pop("digest", None)
                if digest is not None:
                    if reference is None:
                        reference = digest
                    elif digest != reference:
                        raise SystemExit(f"{name} ({state}) gave other images than the first run")
                print(state, name, json.dumps(got), flush=True)
    print(f"\nraw file {nbytes / 1e9:.2f} GB, {opts.rounds} rounds, {opts.threads} kernel threads, "
          f"{os.cpu_count()} cores, load average {os.getloadavg()}")
    print("| state | variant | wall s min / median | GB/s (median) | CPU s median | paths (GB) |")
    print("|---|---|---|---|---|---|")
    for (state, name), runs in results.items():
        secs = [x["seconds"] for x in runs]
        med = statistics.median(secs)
        cpu = [x["cpu"] for x in runs if "cpu" in x]
        prof = runs[-1].get("profile", runs[-1])
        paths = ", ".join(f"{k} {prof[k + '_bytes' if k + '_bytes' in prof else k] / 1e9:.2f}"
                          for k in ("cached", "direct", "sliced") if (k + "_bytes") in prof or k in prof)
        if not paths:
            paths = {"old": "direct (always)", "old portable": "h5py (page cache)"}.get(name, "-")
        print(f"| {state} | {name} | {min(secs):.2f} / {med:.2f} | {nbytes / med / 1e9:.2f} | "
              f"{statistics.median(cpu) if cpu else float('nan'):.2f} | {paths} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

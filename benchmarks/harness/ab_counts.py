"""Instruction counts of the benchmarks' operations in two source trees: the CPU work of each, exactly.

``python -m benchmarks.harness.ab_counts OLD_TREE NEW_TREE [--json PATH]`` from the repository root (Valgrind's
callgrind, a C compiler and ``valgrind/callgrind.h`` needed; see :mod:`benchmarks.harness.instructions`).

The rows of ``python -m benchmarks`` at small size last tens of milliseconds, and on a shared 2-core
machine their times move by 10-40% from one process to the next, so a 5% change of the code's cost
needs many rounds to show (:mod:`benchmarks.harness.ab`).  The instructions an operation executes do not
depend on the machine's load: this runs the operations behind those rows (built from the benchmarks'
own generators, at their small sizes) in each tree under callgrind, each twice in one process, and
compares the second repetition (the first also pays first-use costs: imports, caches).  Each tree is a
source checkout with its extensions built in place (see :mod:`benchmarks.harness.ab`); the scripts run with
``PYTHONPATH=TREE/src`` and this repository's ``benchmarks`` package, and inputs are written by the
tree that reads them (a file format may have changed between the trees).  Prints a Markdown table of
old, new and new / old per operation, and exits 1 when an operation costs more than 5% more.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import sys
from pathlib import Path

from benchmarks.harness import instructions as _instructions
from benchmarks.harness.ab import check_tree
from benchmarks.harness.table import results_dir

#: the operations, as a script run under callgrind: each region is one labelled operation
SCRIPT = r'''
import tempfile
from pathlib import Path

import h5py

from benchmarks.suite import bench_nwb, bench_store
from benchmarks.suite._scptensor_containers import build_container, make_arrays, make_float64_container, make_obs
from benchmarks.suite._store_writers import make_recording, stage_session
from benchmarks.harness.instructions import region
from benchmarks.suite.bench_elements import SIZES as ELEMENT_SIZES, _write_tree_ours, proteomics_frame, unit_tree
from benchmarks.suite.bench_readers import SIZES as READER_SIZES, make_cmtr
from benchmarks.suite.bench_scptensor import SIZES
from benchmarks.suite.bench_sectioning import SIZES as SECTION_SIZES, _ours as section, make_inputs
from h5stream.elements import write_elem
from hdmea.io.cmtr import read_units
from hdmea.pipeline import PipelineSession
from h5scp.io import load_hdf5, load_parquet, save_hdf5, save_parquet

tmp = Path(tempfile.mkdtemp(dir=WORKDIR))
n_samples, n_proteins, n_peptides, density, _ = SIZES["small"]
container = build_container(make_arrays(n_samples, n_proteins, n_peptides, density), make_obs(n_samples))
f64 = make_float64_container(300, 120)
n_units, rates, *_ = READER_SIZES["small"]
cmtr = make_cmtr(tmp / "cmtr", n_units, rates, lab_stimulus=False).cmtr_path
section_rows, bounds = make_inputs(*SECTION_SIZES["small"][:4])
recordings = {n: make_recording(n, bench_store.SPIKES_TOTAL["small"]) for n in (20, 100)}
objects, attrs = unit_tree(300)
frame = proteomics_frame(ELEMENT_SIZES["small"]["frame_rows"])
nwb_units, nwb_spikes = bench_nwb.SIZES_UNITS["small"]
nwb_source = tmp / "nwb-source.h5"
bench_nwb.make_recording(nwb_source, nwb_units, nwb_spikes)
for rep in range(2):
    a, b, c = tmp / f"a{rep}.h5", tmp / f"b{rep}.h5", tmp / f"c{rep}.h5"
    with region("scptensor save, gzip 4 container"):
        save_hdf5(container, a, compression="gzip", compression_level=4)
    with region("scptensor load, gzip 4 container"):
        load_hdf5(a)
    with region("scptensor save, 300x120 float64 defaults"):
        save_hdf5(f64, b)
    with region("scptensor load, 300x120 float64 (verify)"):
        load_hdf5(b)
    with region("scptensor load, 300x120 float64 (verify=False)"):
        load_hdf5(b, verify=False)
    with region("scptensor save, 300x120 float64 gzip level 1"):
        save_hdf5(f64, c, compression="gzip", compression_level=1)
    with region("scptensor save_parquet"):
        save_parquet(container, tmp / f"p{rep}", overwrite=True)
    with region("scptensor load_parquet"):
        load_parquet(tmp / f"p{rep}")
    with region(f"load units from .cmtr ({n_units} units)"):
        read_units(cmtr, 20_000.0)
    with region("spike sectioning"):
        section(section_rows, bounds)
    for n, rec in recordings.items():
        path = tmp / f"store{n}-{rep}.h5"
        staged = stage_session(rec, path)
        with region(f"save recording, {n} units"):
            staged.save()
        with region(f"load recording, {n} units (verify)"):
            session = PipelineSession.load(path, verify=True)
            sum(len(unit) for unit in session.units.values())
            session.close()
        staged = stage_session(rec, tmp / f"trains{n}-{rep}.h5", spikes_only=True)
        with region(f"spike trains, {n} units"):
            staged.save()
    with region("write_many: 300 unit groups"):
        _write_tree_ours(tmp / f"many{rep}.h5", objects, attrs)
    with region("write polars frame"):
        with h5py.File(tmp / f"frame{rep}.h5", "w") as f:
            write_elem(f, "obs", frame)
    with region("nwb export, gzip 1 + shuffle"):
        bench_nwb.write_ours(nwb_source, tmp / f"g{rep}.nwb", "gzip")
    with region("nwb export, uncompressed"):
        bench_nwb.write_ours(nwb_source, tmp / f"n{rep}.nwb", None)
'''

#: a new / old above this is a regression
MARGIN = 0.05


def count_tree(tree: Path, workdir: Path) -> dict[str, list[int]]:
    """Every operation's instruction counts (both repetitions) in ``tree``."""
    workdir.mkdir(parents=True, exist_ok=True)
    script = f"WORKDIR = {str(workdir)!r}\n" + SCRIPT
    return _instructions.count(script, timeout=3600.0, paths=(str(tree / "src"),))


def compare(old: dict[str, list[int]], new: dict[str, list[int]]) -> list[tuple[str, int, int, float]]:
    """(operation, old, new, new / old) of the last repetition of every operation both trees ran."""
    return [(label, old[label][-1], new[label][-1], new[label][-1] / old[label][-1])
            for label in new if label in old and old[label] and new[label] and old[label][-1] > 0]


def markdown(rows: list[tuple[str, int, int, float]]) -> str:
    lines = ["| operation | old (instructions) | new | new / old |", "|---|---|---|---|"]
    for label, o, n, ratio in rows:
        flag = f" **> {1 + MARGIN:.2f}**" if ratio > 1 + MARGIN else ""
        lines.append(f"| {label} | {o / 1e6:.1f} M | {n / 1e6:.1f} M | {ratio:.3f}{flag} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.harness.ab_counts", description=__doc__.split("\n\n")[0])
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("--json", type=Path, help="write both trees' counts here")
    parser.add_argument("--workdir", type=Path, default=results_dir() / "ab_counts")
    args = parser.parse_args(argv)
    if not _instructions.available():
        print("instruction counts need valgrind, a C compiler and valgrind/callgrind.h", file=sys.stderr)
        return 2
    try:
        trees = {"old": check_tree(args.old), "new": check_tree(args.new)}
    except ValueError as exc:
        print(f"python -m benchmarks.harness.ab_counts: {exc}", file=sys.stderr)
        return 2
    with concurrent.futures.ThreadPoolExecutor(2) as pool:  # counts do not depend on the load: both at once
        jobs = {side: pool.submit(count_tree, tree, args.workdir.resolve() / side) for side, tree in trees.items()}
        counts = {side: job.result() for side, job in jobs.items()}
    if args.json is not None:
        args.json.write_text(json.dumps({"trees": {k: str(v) for k, v in trees.items()}, "counts": counts}, indent=1))
    rows = compare(counts["old"], counts["new"])
    print(f"instructions: old {trees['old']} against new {trees['new']} (second repetition of each operation)")
    print(markdown(rows))
    return 1 if any(ratio > 1 + MARGIN for *_, ratio in rows) else 0


if __name__ == "__main__":
    sys.exit(main())

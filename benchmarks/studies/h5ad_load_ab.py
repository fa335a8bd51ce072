"""Warm ``.h5ad``/``.h5mu`` loads of the issue-79 container in two source trees, alternated: is the new read
path slower?

The container of :mod:`benchmarks.suite.bench_h5scp_disk` (5,000 x 2,000 log-normal with 30% NaN, and a
CSR assay at 10% density) is written as ``.h5ad`` files, one per assay, by anndata (the foreign import) and
by h5scp (our own ``.h5ad``), and as one ``.h5mu`` of both assays by mudata and by h5scp, with the current
tree.  ``--partial`` loads :data:`PARTIAL` instead of the whole file (every fifth sample, in reverse order,
and the ``batch`` obs column).  Then, round by round, each tree loads every file in a
fresh process (``PYTHONPATH=TREE/src``): one untimed load of each (imports, page cache), then ``--reps``
timed loads, wall and CPU (``time.process_time``) seconds; the trees' order alternates by round.  Printed per
file: min and median of each tree, and new / old of the medians and of the minima.  On a busy machine the
CPU minima are the steadier figure.  Run from the repository root::

    python -m benchmarks.studies.h5ad_load_ab OLD_TREE NEW_TREE [--rounds 8] [--reps 3] [--partial]

A tree is a source checkout with its compiled extensions in ``src/h5stream/_ext`` (for example
``git archive COMMIT src | tar -x -C OLD_TREE`` and the ``.so`` files copied there).
"""

from __future__ import annotations

import argparse
import ast
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_ONE = """
import ast, sys, time
from h5scp.io import load
files, reps, options = sys.argv[1].split(","), int(sys.argv[2]), ast.literal_eval(sys.argv[3])
for p in files:
    load(p, **options)
out = {}
for p in files:
    wall, cpu = [], []
    for _ in range(reps):
        t, u = time.perf_counter(), time.process_time()
        load(p, **options)
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - u)
    out[p] = (wall, cpu)
print(repr(out))
"""


#: The partial load of ``--partial``: every fifth sample (of the container's S00000 ... S04999), in reverse
#: order, and one obs column.
PARTIAL = {"samples": [f"S{i:05d}" for i in range(4_995, -1, -5)], "obs_columns": ["batch"]}


def write_files(folder: Path) -> list[Path]:
    import warnings

    import mudata as md

    from benchmarks.suite.bench_h5scp_disk import _anndatas, make_container
    from h5scp.io import save

    container = make_container(5_000, 2_000, 0.30, 0.10, seed=0)
    paths = []
    adatas = _anndatas(container)
    for name, adata in adatas.items():
        adata.write_h5ad(folder / f"anndata_{name}.h5ad")
        paths.append(folder / f"anndata_{name}.h5ad")
    for name in container.assays:
        save(container, folder / f"ours_{name}.h5ad", assay=name)
        paths.append(folder / f"ours_{name}.h5ad")
    md.set_options(pull_on_update=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (mudata's notes about its own defaults)
        mdata = md.MuData(adatas)
        mdata.obs["batch"] = container.obs.get_column("batch").to_list()  # (the root's own obs column)
        mdata.write_h5mu(folder / "mudata.h5mu")
    save(container, folder / "ours.h5mu")
    return [*paths, folder / "mudata.h5mu", folder / "ours.h5mu"]


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--partial", action="store_true", help="load PARTIAL instead of whole files")
    args = parser.parse_args(argv)
    options = repr(PARTIAL if args.partial else {})
    trees = {"old": args.old, "new": args.new}
    with tempfile.TemporaryDirectory() as folder:
        paths = write_files(Path(folder))
        got: dict[str, dict[str, tuple[list, list]]] = {side: {} for side in trees}
        started = time.perf_counter()
        for round_ in range(args.rounds):
            for side in (list(trees) if round_ % 2 == 0 else list(trees)[::-1]):
                env = dict(os.environ, PYTHONPATH=str(trees[side] / "src"))
                done = subprocess.run([sys.executable, "-c", _ONE, ",".join(map(str, paths)), str(args.reps), options],
                                      env=env, capture_output=True, text=True, check=True)
                for path, (wall, cpu) in ast.literal_eval(done.stdout.strip().splitlines()[-1]).items():
                    entry = got[side].setdefault(Path(path).name, ([], []))
                    entry[0].extend(wall)
                    entry[1].extend(cpu)
            print(f"round {round_ + 1}/{args.rounds}: load average {os.getloadavg()[0]:.1f}", flush=True)
    print(f"{time.perf_counter() - started:.0f} s; per file and tree: min / median ms; new / old of median, min")
    for name in got["old"]:
        for k, what in ((0, "wall"), (1, "cpu")):
            old, new = got["old"][name][k], got["new"][name][k]
            print(f"{name:24s} {what:4s} old {min(old) * 1e3:7.1f} / {statistics.median(old) * 1e3:7.1f}  "
                  f"new {min(new) * 1e3:7.1f} / {statistics.median(new) * 1e3:7.1f}  "
                  f"{statistics.median(new) / statistics.median(old):.3f}  {min(new) / min(old):.3f}  (n={len(old)})")


if __name__ == "__main__":
    main(sys.argv[1:])

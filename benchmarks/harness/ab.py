"""Interleaved A/B of two source trees: is any benchmark row slower in the new tree than in the old?

``python -m benchmarks.harness.ab OLD_TREE NEW_TREE --only MODULE [--only ...] [--rounds N] [--size small]
[--out DIR] [--margin 0.05]`` from the repository root.  A tree is a source checkout with its
compiled extensions built in place (``git worktree add DIR COMMIT`` and ``python setup.py build_ext
--inplace`` there).  Each round runs the benchmark runner once per tree (``python -m benchmarks
--size SIZE --only ... --rounds 1 --json OUT``, ``PYTHONPATH=TREE/src:TREE``, a fresh process),
the trees' order alternating round by round so that drift of the machine falls on both sides alike.

Two figures per row (matched by benchmark and peer; rows only one tree has are listed apart):

* ``time``: new / old of the median over the rounds of ours' seconds (rates: old / new);
* ``vs peer``: new / old of the median over the rounds of ours / peer, each measured in the same
  process a few milliseconds apart.  The peer (h5py, anndata, numpy, ...) is the same code in both
  trees, so this ratio cancels what the machine did between the two processes; it is the figure a
  verdict rests on.

Each figure comes with a 90% interval from resampling the rounds (2,000 bootstrap draws of the
rounds of each side).  A row is ``slower`` when the lower end of the ``vs peer`` interval is above
``1 + margin``, ``within`` when its upper end is at most ``1 + margin``, and ``undecided``
otherwise (more rounds decide it).  Rows with no peer seconds (memory, counts) compare ours only.
Writes each round's tables into ``--out`` and prints a Markdown table; exits 1 when a row is slower.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.harness.table import results_dir


def check_tree(tree: Path) -> Path:
    """``tree`` resolved, when it is a source checkout with its compiled extensions built in place; else a
    ValueError naming it and the command that builds it (checked before the first round, not after it)."""
    tree = tree.resolve()
    package = tree / "src" / "h5stream"
    if not (package / "__init__.py").is_file():
        raise ValueError(f"{tree}: expected a source checkout of this project (src/h5stream/__init__.py), found none")
    # each ext/NAME.pyx of the tree (an older commit has fewer) built into src/h5stream/_ext/NAME.*.so or .pyd
    built = {p.name.split(".")[0] for p in (package / "_ext").glob("_*.*") if p.suffix in (".so", ".pyd")}
    missing = sorted(p.stem for p in (tree / "ext").glob("*.pyx") if p.stem not in built)
    if missing or not built:
        raise ValueError(f"{tree}: its compiled extensions are not built ({', '.join(missing) or 'none'} missing): "
                         "run `python setup.py build_ext --inplace` there first")
    return tree


def run_tree(tree: Path, modules: list[str], size: str, out: Path) -> float:
    """One runner process in ``tree``; returns its wall seconds."""
    args = [sys.executable, "-m", "benchmarks", "--size", size, "--rounds", "1", "--json", str(out)]
    for module in modules:
        args += ["--only", module]
    env = {**os.environ, "PYTHONPATH": f"{tree / 'src'}{os.pathsep}{tree}"}
    t0 = time.perf_counter()
    done = subprocess.run(args, cwd=tree, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0 and not out.exists():
        raise RuntimeError(f"{tree}: the runner failed (exit code {done.returncode}): {done.stderr[-2000:]}")
    return time.perf_counter() - t0


def _rows(path: Path) -> dict[tuple[str, str], dict]:
    table = json.loads(path.read_text())
    return {(r["benchmark"], r.get("peer", "")): r for r in table.get("rows", []) if "ours" in r}


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def _interval(old: list[float], new: list[float], draws: int = 2000, seed: int = 0) -> tuple[float, float]:
    """90% bootstrap interval of median(new) / median(old), resampling each side's rounds."""
    rng = np.random.default_rng(seed)
    a, b = np.asarray(old), np.asarray(new)
    ratios = (np.median(b[rng.integers(0, b.size, (draws, b.size))], axis=1)
              / np.median(a[rng.integers(0, a.size, (draws, a.size))], axis=1))
    return float(np.quantile(ratios, 0.05)), float(np.quantile(ratios, 0.95))


def compare(old_tables: list[Path], new_tables: list[Path], margin: float = 0.05) -> list[dict]:
    """Per row: the medians, both figures with their intervals, and the verdict."""
    old = [_rows(p) for p in old_tables]
    new = [_rows(p) for p in new_tables]
    keys = [k for k in dict.fromkeys(k for t in new for k in t) if any(k in t for t in old)]
    result = []
    for key in keys:
        o = [t[key] for t in old if key in t]
        n = [t[key] for t in new if key in t]
        # ours is a time, a size or a count (lower is better) or a rate (a unit "per second": higher is)
        lower = not str(n[0].get("unit", "")).endswith("/s")
        ours_o = [float(r["ours"]) for r in o if _finite(r["ours"])]
        ours_n = [float(r["ours"]) for r in n if _finite(r["ours"])]
        if not ours_o or not ours_n:
            continue
        flip = (lambda x: x) if lower else (lambda x: 1.0 / x)
        time_ratio = flip(statistics.median(ours_n) / statistics.median(ours_o))
        lo, hi = _interval(ours_o, ours_n)
        time_iv = (flip(lo), flip(hi)) if lower else (flip(hi), flip(lo))
        rel_o = [float(r["ours"]) / float(r["peer_value"]) for r in o
                 if _finite(r["ours"]) and _finite(r.get("peer_value")) and r.get("unit") == n[0].get("unit")]
        rel_n = [float(r["ours"]) / float(r["peer_value"]) for r in n
                 if _finite(r["ours"]) and _finite(r.get("peer_value"))]
        if rel_o and rel_n and n[0].get("unit") in ("s", "s CPU", "ms"):
            peer_ratio = flip(statistics.median(rel_n) / statistics.median(rel_o))
            lo, hi = _interval(rel_o, rel_n)
            peer_iv = (flip(lo), flip(hi)) if lower else (flip(hi), flip(lo))
        else:
            peer_ratio, peer_iv = time_ratio, time_iv
        if peer_iv[0] > 1 + margin:
            verdict = "slower"
        elif peer_iv[1] <= 1 + margin:
            verdict = "within"
        else:
            verdict = "undecided"
        result.append({
            "benchmark": key[0], "peer": key[1], "unit": n[0].get("unit", ""),
            "old_median": statistics.median(ours_o), "new_median": statistics.median(ours_n),
            "time": time_ratio, "time_interval": time_iv, "vs_peer": peer_ratio, "vs_peer_interval": peer_iv,
            "rounds": (len(ours_o), len(ours_n)), "verdict": verdict,
        })
    return result


def markdown(rows: list[dict]) -> str:
    lines = ["| row | peer | unit | old (median) | new (median) | time new/old [90%] | vs peer new/old [90%] "
             "| rounds | verdict |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        t0, t1 = r["time_interval"]
        p0, p1 = r["vs_peer_interval"]
        lines.append(f"| {r['benchmark']} | {r['peer']} | {r['unit']} | {r['old_median']:.4g} | {r['new_median']:.4g} "
                     f"| {r['time']:.3f} [{t0:.3f}, {t1:.3f}] | {r['vs_peer']:.3f} [{p0:.3f}, {p1:.3f}] "
                     f"| {r['rounds'][0]}/{r['rounds'][1]} | {r['verdict']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.harness.ab", description=__doc__.split("\n\n")[0])
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("--only", action="append", required=True, help="benchmark module (e.g. scptensor)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--size", default="small", choices=["small", "full"])
    parser.add_argument("--out", type=Path, default=results_dir() / "ab",
                        help="where the tables go (default: the results folder outside the source tree, "
                             "benchmarks.harness.results_dir)")
    parser.add_argument("--margin", type=float, default=0.05)
    parser.add_argument("--compare-only", action="store_true", help="compare the tables already in --out")
    args = parser.parse_args(argv)
    try:
        trees = {"old": check_tree(args.old), "new": check_tree(args.new)}
    except ValueError as exc:
        print(f"python -m benchmarks.harness.ab: {exc}", file=sys.stderr)
        return 2
    args.out = args.out.resolve()  # each runner works in its own tree
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.compare_only:
        for r in range(args.rounds):
            order = ["old", "new"] if r % 2 == 0 else ["new", "old"]
            for side in order:
                seconds = run_tree(trees[side], args.only, args.size, args.out / f"{side}-{r}.json")
                load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
                print(f"round {r + 1} {side} {seconds:.1f} s, load {load:.2f}", file=sys.stderr, flush=True)
    old = sorted(args.out.glob("old-*.json"))
    new = sorted(args.out.glob("new-*.json"))
    rows = compare(old, new, args.margin)
    print(f"A/B: old {trees['old']} against new {trees['new']}, modules {', '.join(args.only)}, "
          f"{len(old)}/{len(new)} rounds, margin {args.margin:.0%}")
    print(markdown(rows))
    return 1 if any(r["verdict"] == "slower" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())

"""Compare the verdicts of two benchmark runs: a quiet one and one with a core kept busy.

``python -m benchmarks.harness.compare --quiet Q.json [Q2.json ...] --busy B.json [B2.json ...]
[--markdown]`` from the repository root.  Each side may be one table of the runner
(``python -m benchmarks --json``) or several (a run split with ``--only``); a row measured
in more than one table of a side is taken from the last one named.  Rows are matched by
benchmark and peer.  Prints every row that has a goal on either side: its ratio, the
goal it was judged by and the verdict in each run, and whether the verdicts agree; then
the rows measured on one side only, and a summary.  Exits 0 when every row with a goal
was measured on both sides with the same verdict, 1 otherwise.

The tables name the commit they were measured on (``meta.commit``, from ``git describe``
when the runner had a git checkout); a pair measured on different commits is reported as such.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Measured:
    """What one table says of one row."""

    benchmark: str
    peer: str
    ratio: float
    goal: float | None
    holds: bool | None
    lower_is_better: bool
    noisy: bool
    load: tuple[float | None, float | None]
    source: str
    #: share of CPU time the host stole during the row (tables written since it was recorded)
    stolen: float | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.benchmark, self.peer)

    def verdict(self) -> str:
        if self.goal is None:
            return "no goal"
        if self.holds is None:
            return "not measured"
        return "holds" if self.holds else "misses"

    def cell(self) -> str:
        if self.goal is None:
            return "-"
        ratio = "nan" if not math.isfinite(self.ratio) else f"{self.ratio:.3g}"
        relation = "<=" if self.lower_is_better else ">="
        noisy = ", noisy" if self.noisy else ""
        before, after = self.load
        state = [] if before is None or after is None else [f"L {before:.1f}>{after:.1f}"]
        if self.stolen is not None:
            state.append(f"stolen {self.stolen:.0%}")
        load = f" ({', '.join(state)})" if state else ""
        return f"{ratio} {relation} {self.goal:.3g}: {self.verdict()}{noisy}{load}"


def _load_average(state: dict | None) -> float | None:
    if not state:
        return None
    value = state.get("load_1min")
    return float(value) if isinstance(value, (int, float)) else None


def _stolen(state: dict | None) -> float | None:
    value = (state or {}).get("cpu_steal")
    return float(value) if isinstance(value, (int, float)) else None


def read_tables(paths: Sequence[Path]) -> tuple[dict[tuple[str, str], Measured], list[dict]]:
    """The rows of ``paths`` by (benchmark, peer), later tables overriding earlier ones, and each table's meta."""
    rows: dict[tuple[str, str], Measured] = {}
    metas = []
    for path in paths:
        try:
            table = json.loads(Path(path).read_text(encoding="utf-8"))
            meta, raw_rows = table["meta"], table["rows"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise SystemExit(f"{path}: not a benchmark table of `python -m benchmarks --json` ({exc})") from exc
        metas.append(dict(meta, path=str(path)))
        for raw in raw_rows:
            if raw["benchmark"].endswith("FAILED"):
                continue
            goal = raw.get("applied_goal", raw.get("goal"))
            ratio = raw.get("ratio")
            m = Measured(
                benchmark=raw["benchmark"], peer=raw.get("peer", ""),
                ratio=float(ratio) if isinstance(ratio, (int, float)) else math.nan,
                goal=float(goal) if goal is not None else None, holds=raw.get("holds"),
                lower_is_better=bool(raw.get("lower_is_better")), noisy=bool(raw.get("noisy")),
                load=(_load_average(raw.get("before")), _load_average(raw.get("after"))), source=str(path),
                stolen=_stolen(raw.get("after")),
            )
            rows[m.key] = m
    return rows, metas


@dataclass(frozen=True)
class Comparison:
    same: list[tuple[Measured, Measured]]
    differ: list[tuple[Measured, Measured]]
    only_quiet: list[Measured]
    only_busy: list[Measured]

    @property
    def agrees(self) -> bool:
        return not (self.differ or self.only_quiet or self.only_busy)


def compare(quiet: dict[tuple[str, str], Measured], busy: dict[tuple[str, str], Measured]) -> Comparison:
    """Rows with a goal on either side, sorted into agreeing, differing and one-sided."""
    same, differ, only_quiet = [], [], []
    for key, q in quiet.items():
        b = busy.get(key)
        if b is None:
            if q.goal is not None:
                only_quiet.append(q)
            continue
        if q.goal is None and b.goal is None:
            continue
        (same if q.verdict() == b.verdict() else differ).append((q, b))
    only_busy = [b for key, b in busy.items() if key not in quiet and b.goal is not None]
    return Comparison(same, differ, only_quiet, only_busy)


def _commits(metas: Iterable[dict]) -> set[str]:
    return {str(m.get("commit") or "unknown") for m in metas}


def format_comparison(result: Comparison, quiet_metas: list[dict], busy_metas: list[dict],
                      markdown: bool = False) -> str:
    lines = []
    qc, bc = _commits(quiet_metas), _commits(busy_metas)
    lines.append(f"quiet: {', '.join(m['path'] for m in quiet_metas)} (commit {', '.join(sorted(qc))})")
    lines.append(f"busy:  {', '.join(m['path'] for m in busy_metas)} (commit {', '.join(sorted(bc))})")
    if any(not m.get("busy_core") for m in busy_metas):
        lines.append("WARNING: a busy-side table was not measured with --busy-core")
    if any(m.get("busy_core") for m in quiet_metas):
        lines.append("WARNING: a quiet-side table was measured with --busy-core")
    if len(qc | bc) > 1 or "unknown" in qc | bc:
        lines.append("WARNING: the tables were not all measured on one known commit")
    pairs = [(q, b, False) for q, b in result.differ] + [(q, b, True) for q, b in result.same]
    if markdown:
        lines += ["", "| row | against | quiet | one core busy | same verdict |", "|---|---|---|---|---|"]
        for q, b, same in pairs:
            lines.append(f"| {q.benchmark} | {q.peer} | {q.cell()} | {b.cell()} | {'yes' if same else '**no**'} |")
    else:
        lines.append("")
        for q, b, same in pairs:
            lines.append(f"{'same' if same else 'DIFFER':6}  {q.benchmark}  [against {q.peer}]")
            lines.append(f"        quiet: {q.cell()}")
            lines.append(f"        busy:  {b.cell()}")
    for label, missing in (("measured in the quiet run only", result.only_quiet),
                           ("measured in the busy run only", result.only_busy)):
        if missing:
            lines += ["", f"rows with a goal {label}:"] + [f"  {m.benchmark} [against {m.peer}]" for m in missing]
    total = len(result.same) + len(result.differ)
    lines += ["", f"verdicts: the same on {len(result.same)} of {total} rows with a goal measured in both runs; "
                  f"{len(result.differ)} differ; "
                  f"{len(result.only_quiet) + len(result.only_busy)} measured in one run only"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.harness.compare", description=__doc__.splitlines()[0])
    parser.add_argument("--quiet", nargs="+", type=Path, required=True, metavar="JSON",
                        help="table(s) of the run with no core kept busy")
    parser.add_argument("--busy", nargs="+", type=Path, required=True, metavar="JSON",
                        help="table(s) of the run with --busy-core")
    parser.add_argument("--markdown", action="store_true", help="print the rows as a Markdown table")
    args = parser.parse_args(argv)
    quiet, quiet_metas = read_tables(args.quiet)
    busy, busy_metas = read_tables(args.busy)
    result = compare(quiet, busy)
    print(format_comparison(result, quiet_metas, busy_metas, markdown=args.markdown))
    return 0 if result.agrees else 1


if __name__ == "__main__":
    sys.exit(main())

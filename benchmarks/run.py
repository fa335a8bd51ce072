"""Run every benchmark module of the project and print one table.

``python -m benchmarks --size small|full [--only NAME ...] [--json PATH]`` from the
repository root.  Each ``benchmarks/bench_*.py`` exposes ``run(size) -> list[Row]``.
A module whose import or run fails is reported as a failed row with its error; the
runner goes on with the others and exits non-zero at the end.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib
import math
import os
import platform
import sys
import time
import traceback
from pathlib import Path

from benchmarks._harness import SIZES, Row, format_table, write_json

BENCH_DIR = Path(__file__).resolve().parent


def discover() -> list[str]:
    """Stems of every ``bench_*.py`` module, sorted."""
    return sorted(p.stem for p in BENCH_DIR.glob("bench_*.py"))


def select(modules: list[str], only: list[str] | None) -> list[str]:
    """Modules named by ``only`` (``files`` or ``bench_files``); all when ``only`` is empty."""
    if not only:
        return modules
    wanted = {name if name.startswith("bench_") else f"bench_{name}" for name in only}
    unknown = wanted - set(modules)
    if unknown:
        raise SystemExit(
            f"unknown benchmark module(s): {', '.join(sorted(unknown))}; "
            f"available: {', '.join(m[6:] for m in modules)}"
        )
    return [m for m in modules if m in wanted]


def failed_row(module: str, stage: str, exc: BaseException) -> Row:
    reason = f"{stage} failed: {type(exc).__name__}: {exc}".replace("\n", " ")
    return Row(
        benchmark=f"{module} FAILED",
        peer=reason[:80],
        peer_value=math.nan,
        ours=math.nan,
        unit="",
        ratio=math.nan,
        goal=None,
        details="".join(traceback.format_exception(exc)),
    )


def run_module(module: str, size: str) -> tuple[list[Row], bool]:
    """Rows of one module and whether it ran without error."""
    try:
        mod = importlib.import_module(f"benchmarks.{module}")
    except Exception as exc:  # noqa: BLE001 - any import failure becomes a failed row
        return [failed_row(module, "import", exc)], False
    if not callable(getattr(mod, "run", None)):
        return [failed_row(module, "import", AttributeError(f"{module} has no run(size)"))], False
    try:
        rows = list(mod.run(size))
    except Exception as exc:  # noqa: BLE001 - any benchmark failure becomes a failed row
        return [failed_row(module, "run", exc)], False
    bad = [r for r in rows if not isinstance(r, Row)]
    if bad:
        return [failed_row(module, "run", TypeError(f"run() returned {type(bad[0]).__name__}, not Row"))], False
    return rows, True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=SIZES, default="small",
                        help="small: seconds, for CI; full: the real figures (default small)")
    parser.add_argument("--only", action="append", metavar="NAME",
                        help="run only this module (e.g. files); repeatable")
    parser.add_argument("--json", type=Path, metavar="PATH",
                        help="where to write the table as JSON (default benchmarks/results/<size>.json)")
    args = parser.parse_args(argv)
    modules = select(discover(), args.only)
    json_path = args.json or BENCH_DIR / "results" / f"{args.size}.json"

    rows: list[Row] = []
    failed: list[str] = []
    seconds: dict[str, float] = {}
    for module in modules:
        print(f"[{module}] running at size {args.size} ...", file=sys.stderr, flush=True)
        start = time.perf_counter()
        module_rows, ok = run_module(module, args.size)
        seconds[module] = round(time.perf_counter() - start, 3)
        rows += module_rows
        if not ok:
            failed.append(module)
            print(module_rows[0].details, file=sys.stderr)

    print(format_table(rows))
    for row in rows:
        if row.details and not row.benchmark.endswith("FAILED"):
            print(f"  {row.benchmark}: {row.details}")
    write_json(
        rows,
        json_path,
        size=args.size,
        modules=modules,
        failed=failed,
        seconds=seconds,
        date=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        host=platform.node(),
        cpus=os.cpu_count(),
        python=platform.python_version(),
        load_average=list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    )
    print(f"table written to {json_path}")
    if failed:
        print(f"FAILED benchmark modules: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

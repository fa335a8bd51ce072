"""Run every benchmark module of the project and print one table.

``python -m benchmarks --size small|full [--only NAME ...] [--rounds N] [--check]
[--busy-core] [--json PATH]`` from the repository root.  Each ``benchmarks/bench_*.py`` exposes
``run(size) -> list[Row]``.  Comparisons run as interleaved rounds of ours and the
peer, at least 3 rounds when a side's round lasts under a minute and 2 otherwise
(``--rounds N`` sets the count); see :mod:`benchmarks._harness`.  A module whose
import or run fails is reported as a failed row with its error; the runner goes on
with the others and exits non-zero at the end.  ``--check`` prints only the rows
that miss their goal (and failed modules) and exits non-zero when there is any.
``--busy-core`` runs the whole suite while a process the runner starts keeps one core
busy (:class:`benchmarks._harness.busy_core`; rows that make their own one-core-busy
variant share it); the table's header and the JSON's ``meta.busy_core`` say so, and
rows whose work needs both cores are judged by their one-core goal (``Row.busy_goal``).
The JSON is written after every module (``meta.complete`` false and ``meta.done``
naming the modules finished until the last one), so a run stopped part-way keeps
what it measured; ``meta.commit`` names the code measured (``git describe --dirty``).
Two tables, quiet and busy, are compared row by row by :mod:`benchmarks.compare`.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import importlib
import math
import os
import platform
import subprocess
import sys
import time
import traceback
from pathlib import Path

from benchmarks._harness import (
    NOISE_MARGIN,
    POLICY,
    SIZES,
    MachineState,
    Row,
    busy_core,
    format_table,
    set_round_policy,
    write_json,
)

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


def run_module_observed(module: str, size: str) -> tuple[list[Row], bool]:
    """:func:`run_module`, with the machine's state before and after the module given to every
    row that did not record its own (rows not made of interleaved rounds)."""
    before = MachineState.now()
    rows, ok = run_module(module, size)
    after = MachineState.now(since=before)
    for row in rows:
        if row.before is None:
            row.before = before
        if row.after is None:
            row.after = after
    return rows, ok


def source_commit() -> str | None:
    """The commit the benchmarks run from (``git describe --always --dirty``), None outside a git checkout."""
    try:
        done = subprocess.run(["git", "-C", str(BENCH_DIR.parent), "describe", "--always", "--dirty", "--abbrev=12"],
                              capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.strip() or None


def missed(rows: list[Row]) -> list[Row]:
    """Rows that miss their goal, and failed modules' rows."""
    return [r for r in rows if r.holds is False or r.benchmark.endswith("FAILED")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=SIZES, default="small",
                        help="small: seconds, for CI; full: the real figures (default small)")
    parser.add_argument("--only", action="append", metavar="NAME",
                        help="run only this module (e.g. files); repeatable")
    parser.add_argument("--json", type=Path, metavar="PATH",
                        help="where to write the table as JSON (default benchmarks/results/<size>.json)")
    parser.add_argument("--rounds", type=int, metavar="N",
                        help="interleaved rounds per comparison (default: at least 3, 2 for rounds over a minute)")
    parser.add_argument("--check", action="store_true",
                        help="print only the rows that miss their goal; exit non-zero when any does")
    parser.add_argument("--busy-core", action="store_true",
                        help="keep one core busy with a spinning process (started by the runner) for the whole run")
    args = parser.parse_args(argv)
    if args.rounds is not None and args.rounds < 1:
        parser.error(f"--rounds must be at least 1, got {args.rounds}")
    saved = (POLICY.rounds, POLICY.enforce_minimum)
    set_round_policy(args.rounds, enforce_minimum=True)
    try:
        return _run(args)
    finally:  # the policy is the runner's: a caller in the same process (pytest) keeps its own
        set_round_policy(*saved)


def _run(args: argparse.Namespace) -> int:
    modules = select(discover(), args.only)
    json_path = args.json or BENCH_DIR / "results" / f"{args.size}.json"

    rows: list[Row] = []
    failed: list[str] = []
    seconds: dict[str, float] = {}
    commit = source_commit()

    def save(complete: bool) -> None:
        # after every module, so that a run stopped part-way keeps the rows of the modules it finished
        write_json(
            rows,
            json_path,
            size=args.size,
            modules=modules,
            complete=complete,
            done=list(seconds),
            failed=failed,
            seconds=seconds,
            commit=commit,
            date=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            host=platform.node(),
            cpus=os.cpu_count(),
            python=platform.python_version(),
            load_average=list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
            rounds=args.rounds,
            noise_margin=NOISE_MARGIN,
            busy_core=args.busy_core,
        )

    with busy_core() if args.busy_core else contextlib.nullcontext() as spinner:
        if spinner is not None:
            print(f"one core kept busy by a spinning process (pid {spinner.proc.pid}) for the whole run",
                  file=sys.stderr, flush=True)
        for module in modules:
            print(f"[{module}] running at size {args.size} ...", file=sys.stderr, flush=True)
            start = time.perf_counter()
            module_rows, ok = run_module_observed(module, args.size)
            for row in module_rows:  # judged by its one-core goal, where it has one
                row.one_core_busy = row.one_core_busy or args.busy_core
            seconds[module] = round(time.perf_counter() - start, 3)
            rows += module_rows
            if not ok:
                failed.append(module)
                print(module_rows[0].details, file=sys.stderr)
            if module != modules[-1]:
                save(complete=False)

    title = (f"size {args.size}, "
             + ("ONE CORE BUSY: a spinning process started by the runner ran for the whole suite"
                if args.busy_core else "no core kept busy by the runner")
             + f", {os.cpu_count()} cores")
    misses = missed(rows)
    if args.check:
        if misses:
            print(format_table(misses, title))
            for row in misses:
                print(f"  {row.benchmark}: {row.details}")
    else:
        print(format_table(rows, title))
        for row in rows:
            if row.details and not row.benchmark.endswith("FAILED"):
                print(f"  {row.benchmark}: {row.details}")
    save(complete=True)
    print(f"table written to {json_path}", file=sys.stderr if args.check else sys.stdout)
    if failed:
        print(f"FAILED benchmark modules: {', '.join(failed)}", file=sys.stderr)
    if args.check:
        return 1 if misses else 0
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())

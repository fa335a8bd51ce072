"""Run every benchmark module of the project and print one table.

``python -m benchmarks --size small|full [--only NAME ...] [--rounds N] [--check]
[--busy-core | --pair] [--json PATH] [--cores NOTE]`` from the repository root.  Each ``benchmarks/suite/bench_*.py`` exposes
``run(size) -> list[Row]``.  Comparisons run as interleaved rounds of ours and the
peer, at least 3 rounds when a side's round lasts under a minute and 2 otherwise
(``--rounds N`` sets the count); see :mod:`benchmarks.harness`.  A module whose
import or run fails is reported as a failed row with its error; the runner goes on
with the others and exits non-zero at the end.  A row's goal applies at the sizes it names
(:attr:`benchmarks.harness.Row.goal_sizes`, full size unless the row measures a fixed cost that the
small size measures too); at another size the row prints its ratio without a verdict.  ``--check``
prints only the rows that miss a goal that applies at the run's size (and failed modules) and exits
non-zero when there is any.
``--busy-core`` runs the whole suite while a process the runner starts keeps one core
busy (:class:`benchmarks.harness.busy_core`; rows that make their own one-core-busy
variant share it); the table's header and the JSON's ``meta.busy_core`` say so, and
rows whose work needs both cores are judged by their one-core goal (``Row.busy_goal``).
The JSON is written after every module (``meta.complete`` false and ``meta.done``
naming the modules finished until the last one), so a run stopped part-way keeps
what it measured; ``meta.commit`` names the code measured (``git describe --dirty``).
Two tables, quiet and busy, are compared row by row by :mod:`benchmarks.harness.compare`.
``--pair`` measures both in one run: each module quiet and then at once with one core
busy, so that the machine's drift over the hours of a full run (the host's other
virtual machines, the disk) moves both tables alike; it writes the two tables (the
JSON path's name with ``-quiet`` and ``-busy``, ``meta.paired`` true), prints the
comparison and exits non-zero when a verdict differs.
Every table's ``meta.cores`` gives the machine's core count (``count``, and ``usable``: the cores this
process may run on), its processor and host, and ``note``: where it was measured, from ``--cores NOTE``
(e.g. ``"16-core node, x86-64, one local disk"``; default: the host's name), also handed to the modules
(``H5STREAM_BENCH_CORES_NOTE``) for their rows' details.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
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

from benchmarks.harness import (
    NOISE_MARGIN,
    POLICY,
    SIZES,
    MachineState,
    Row,
    busy_core,
    format_details,
    format_table,
    results_dir,
    set_round_policy,
    write_json,
)

#: the suite's benchmarks (``benchmarks/suite/bench_*.py``)
BENCH_DIR = Path(__file__).resolve().parent.parent / "suite"
SUITE = "benchmarks.suite"


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
        mod = importlib.import_module(f"{SUITE}.{module}")
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
    for row in rows:  # each goal is judged only at the sizes it names
        row.size = size
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
        done = subprocess.run(["git", "-C", str(BENCH_DIR.parents[1]), "describe", "--always", "--dirty", "--abbrev=12"],
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
                        help="where to write the table as JSON (default <results>/<size>.json, <results> being "
                             "$H5STREAM_BENCH_RESULTS or ~/.cache/h5stream-benchmarks: outside the source tree)")
    parser.add_argument("--rounds", type=int, metavar="N",
                        help="interleaved rounds per comparison (default: at least 3, 2 for rounds over a minute)")
    parser.add_argument("--check", action="store_true",
                        help="print only the rows that miss their goal; exit non-zero when any does")
    parser.add_argument("--busy-core", action="store_true",
                        help="keep one core busy with a spinning process (started by the runner) for the whole run")
    parser.add_argument("--cores", metavar="NOTE",
                        help="where the run is measured (the machine, its cores, its disk), written with the core "
                             "count into each table's meta.cores (default: the host's name)")
    parser.add_argument("--pair", action="store_true",
                        help="run each module twice back to back, quiet and then with one core busy, into two "
                             "tables (the JSON path's name with -quiet and -busy), and compare their verdicts")
    args = parser.parse_args(argv)
    if args.pair and args.busy_core:
        parser.error("--pair makes the busy run itself; leave out --busy-core")
    if args.rounds is not None and args.rounds < 1:
        parser.error(f"--rounds must be at least 1, got {args.rounds}")
    saved = (POLICY.rounds, POLICY.enforce_minimum)
    saved_note = os.environ.get(CORES_NOTE_ENV)
    set_round_policy(args.rounds, enforce_minimum=True)
    if args.cores:
        os.environ[CORES_NOTE_ENV] = args.cores
    try:
        return _run(args)
    finally:  # the policy and the note are the runner's: a caller in the same process (pytest) keeps its own
        set_round_policy(*saved)
        if saved_note is None:
            os.environ.pop(CORES_NOTE_ENV, None)
        else:
            os.environ[CORES_NOTE_ENV] = saved_note


#: the environment variable handing ``--cores NOTE`` to the benchmark modules
CORES_NOTE_ENV = "H5STREAM_BENCH_CORES_NOTE"


def cores_meta(note: str | None) -> dict:
    """The machine's cores and where the run was measured, for a table's ``meta.cores``."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    model = None
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            model = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), None)
    return {"count": os.cpu_count(), "usable": usable, "processor": model or platform.processor() or None,
            "machine": platform.machine(), "host": platform.node(), "note": note or f"host {platform.node()}"}


@dataclasses.dataclass
class _Table:
    """One table the runner writes: its rows, failed modules and module times."""

    path: Path
    busy: bool
    rows: list[Row] = dataclasses.field(default_factory=list)
    failed: list[str] = dataclasses.field(default_factory=list)
    seconds: dict[str, float] = dataclasses.field(default_factory=dict)

    def title(self, size: str, pair: bool) -> str:
        if self.busy:
            whole = "each module right after its quiet run" if pair else "the whole suite"
            how = f"ONE CORE BUSY: a spinning process started by the runner ran for {whole}"
        else:
            how = "no core kept busy by the runner"
        return f"size {size}, {how}, {os.cpu_count()} cores"

    def add(self, module: str, size: str) -> None:
        print(f"[{module}] running at size {size}{' with one core busy' if self.busy else ''} ...",
              file=sys.stderr, flush=True)
        start = time.perf_counter()
        module_rows, ok = run_module_observed(module, size)
        for row in module_rows:  # judged by its one-core goal, where it has one
            row.one_core_busy = row.one_core_busy or self.busy
        self.seconds[module] = round(time.perf_counter() - start, 3)
        self.rows += module_rows
        if not ok:
            self.failed.append(module)
            print(module_rows[0].details, file=sys.stderr)


def paired_paths(path: Path) -> tuple[Path, Path]:
    """The quiet and the busy table of ``--pair``: ``path``'s name with ``-quiet`` and ``-busy``."""
    return (path.with_name(f"{path.stem}-quiet{path.suffix}"), path.with_name(f"{path.stem}-busy{path.suffix}"))


def _run(args: argparse.Namespace) -> int:
    modules = select(discover(), args.only)
    json_path = args.json or results_dir() / f"{args.size}.json"
    if args.pair:
        quiet_path, busy_path = paired_paths(json_path)
        tables = [_Table(quiet_path, busy=False), _Table(busy_path, busy=True)]
    else:
        tables = [_Table(json_path, busy=args.busy_core)]
    commit = source_commit()

    def save(table: _Table, complete: bool) -> None:
        # after every module, so that a run stopped part-way keeps the rows of the modules it finished
        write_json(
            table.rows,
            table.path,
            size=args.size,
            modules=modules,
            complete=complete,
            done=list(table.seconds),
            failed=table.failed,
            seconds=table.seconds,
            commit=commit,
            date=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            host=platform.node(),
            cpus=os.cpu_count(),
            cores=cores_meta(args.cores),
            python=platform.python_version(),
            load_average=list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
            rounds=args.rounds,
            noise_margin=NOISE_MARGIN,
            busy_core=table.busy,
            paired=args.pair,
        )

    for table in tables:  # an unwritable table path fails now, not after the first module's hours
        save(table, complete=False)

    @contextlib.contextmanager
    def spinning(what: str):
        with busy_core() as spinner:
            print(f"one core kept busy by a spinning process (pid {spinner.proc.pid}) for {what}",
                  file=sys.stderr, flush=True)
            yield spinner

    if args.pair:
        # Each module quiet and then with one core busy, back to back: the machine's drift over the
        # hours a full run takes (other virtual machines, the disk) then moves both tables alike.
        quiet, busy = tables
        for module in modules:
            quiet.add(module, args.size)
            save(quiet, complete=False)  # before the busy run: a run stopped during it keeps the quiet rows
            with spinning(f"the busy run of {module}"):
                busy.add(module, args.size)
            if module != modules[-1]:
                save(busy, complete=False)
    else:
        (table,) = tables
        with spinning("the whole run") if table.busy else contextlib.nullcontext():
            for module in modules:
                table.add(module, args.size)
                if module != modules[-1]:
                    save(table, complete=False)

    misses = []
    for table in tables:
        title = table.title(args.size, args.pair)
        table_misses = missed(table.rows)
        misses += table_misses
        if args.check:
            if table_misses:
                print(format_table(table_misses, title))
                print(format_details(table_misses))
        else:
            print(format_table(table.rows, title))
            print(format_details(table.rows))
        save(table, complete=True)
        print(f"table written to {table.path}", file=sys.stderr if args.check else sys.stdout)
    failed = sorted({m for table in tables for m in table.failed})
    agrees = True
    if args.pair:
        from benchmarks.harness import compare

        quiet_rows, quiet_metas = compare.read_tables([tables[0].path])
        busy_rows, busy_metas = compare.read_tables([tables[1].path])
        result = compare.compare(quiet_rows, busy_rows)
        agrees = result.agrees
        print()
        print(compare.format_comparison(result, quiet_metas, busy_metas))
    if failed:
        print(f"FAILED benchmark modules: {', '.join(failed)}", file=sys.stderr)
    if args.check:
        return 1 if misses or not agrees else 0
    return 1 if failed or not agrees else 0


if __name__ == "__main__":
    raise SystemExit(main())

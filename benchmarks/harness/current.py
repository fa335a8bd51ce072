"""The current table: every row of the recorded tables (``benchmarks/records/*.json``) as its newest record
gives it, printed as the suite prints a table (:func:`benchmarks.harness.format_table`, 120 columns).

``python -m benchmarks.harness.current [--records DIR]``.  A row is one comparison (its benchmark and its
peer) on one kind of machine (its core count) in one state (quiet, or one core kept busy); of the records
holding it, the one of the latest ``meta.date`` gives it; a record is left out whole when a later one
on the same kind of machine, in the same state, measured all its modules again (its rows renamed since
are not current).  Rows are grouped by that record, whose name,
commit, date, state and machine head each group.  ``docs/benchmarks.md`` shows this output as it is, and
``benchmarks/harness/test_current.py`` fails when the page and the records disagree: a new record shows on
the page by running this command and pasting its output.

Records written before :attr:`benchmarks.harness.Row.ratio_of` existed do not say which statistic a ratio
is of; it is read from the row's figures: one measurement where the row has no medians, the minima (or the
medians, where the row's figures are its medians) where the ratio is the quotient of the two figures, the
median of the rounds' own ratios where it is not and the details say so, else one measurement.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import textwrap
from pathlib import Path

from benchmarks.harness.machine import MachineState
from benchmarks.harness.table import RATIO_STATISTICS, TABLE_WIDTH, Row, format_table, table_legend

RECORDS = Path(__file__).resolve().parents[1] / "records"
_FIELDS = {f.name for f in dataclasses.fields(Row)}


def _close(a, b) -> bool:
    return a is not None and b not in (None, 0) and abs(a - b) <= 1e-6 * abs(b)


def _statistic(row: dict) -> str:
    if row.get("ratio_of"):
        return row["ratio_of"]
    ratio, peer, ours = row["ratio"], row["peer_value"], row["ours"]
    peer_med, ours_med = row.get("peer_median"), row.get("ours_median")
    if peer_med is None and ours_med is None:
        return "one"
    if ours and peer and (_close(ratio, peer / ours) or _close(ratio, ours / peer)):
        return "median" if (peer, ours) == (peer_med, ours_med) else "min"
    if "rounds' own" in (row.get("details") or ""):
        return "rounds"
    return "one"


def row_of(saved: dict) -> Row:
    """A :class:`Row` from its JSON form (:meth:`Row.as_dict`)."""
    fields = {k: v for k, v in saved.items() if k in _FIELDS and k not in ("before", "after")}
    fields["ratio_of"] = _statistic(saved)
    fields["goal_sizes"] = tuple(saved.get("goal_sizes") or ("full",))
    for key in ("before", "after"):
        state = saved.get(key)
        fields[key] = None if state is None else MachineState(
            **{k: state.get(k) for k in ("load_1min", "disk_busy", "cpu_steal") if k in state})
    return Row(**fields)


@dataclasses.dataclass
class Record:
    name: str
    meta: dict
    rows: list[dict]

    @property
    def cores(self) -> int | None:
        cores = self.meta.get("cores") or {}
        return cores.get("count") or self.meta.get("cpus")

    def title(self) -> str:
        state = "one core kept busy" if self.meta.get("busy_core") else "no core kept busy"
        return (f"{self.name}: {self.meta.get('commit', '?')[:7]}, {self.meta.get('date', '?')}, {state}, "
                f"{self.cores or '?'} cores, size {self.meta.get('size', '?')}")


def read_records(folder: Path = RECORDS) -> list[Record]:
    records = []
    for path in sorted(folder.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"), parse_constant=float)
        records.append(Record(path.name, data.get("meta") or {}, data.get("rows") or []))
    return records


def _state(record: Record) -> tuple[bool, int | None]:
    return bool(record.meta.get("busy_core")), record.cores


def current(records: list[Record]) -> list[tuple[Record, list[Row]]]:
    """The newest row of each comparison, machine and state, grouped by the record giving it (newest first)."""
    newest: dict[tuple, tuple[Record, dict]] = {}
    ordered = sorted(records, key=lambda r: (r.meta.get("date") or "", r.name))
    # a record whose every module a later one on the same machine, in the same state, measured again is
    # superseded whole (rows renamed since then included)
    kept = [r for i, r in enumerate(ordered) if not any(
        set(r.meta.get("modules") or ()) <= set(later.meta.get("modules") or ()) and _state(later) == _state(r)
        for later in ordered[i + 1:])]
    for record in kept:
        for row in record.rows:
            if row["benchmark"].endswith("FAILED"):
                continue
            key = (row["benchmark"], row["peer"], *_state(record))
            newest[key] = (record, row)
    groups: dict[str, tuple[Record, list[Row]]] = {}
    for record, row in newest.values():
        groups.setdefault(record.name, (record, []))[1].append(row_of(row))
    return sorted(groups.values(), key=lambda group: (group[0].meta.get("date") or "", group[0].name), reverse=True)


def summary(groups: list[tuple[Record, list[Row]]]) -> str:
    """How many rows hold their goal, and each one that misses it (with its record), in 120 columns."""
    judged = [(record, r) for record, rows in groups for r in rows if r.holds is not None]
    misses = [(record, r) for record, r in judged if not r.holds]
    total = sum(len(rows) for _, rows in groups)
    lines = textwrap.wrap(f"{total} rows from {len(groups)} records; {len(judged)} with a goal at their size: "
                          f"{len(judged) - len(misses)} hold it, {len(misses)} miss it:", width=TABLE_WIDTH)
    for record, r in misses:
        goal = f"{'<=' if r.lower_is_better else '>='} {r.applied_goal:.3g}"
        lines.extend(textwrap.wrap(f"- {r.benchmark}  vs  {r.peer}: {r.ratio:.3g} ({RATIO_STATISTICS[r.statistic]}), "
                                   f"goal {goal}{', NOISY' if r.noisy else ''} [{record.name}]", width=TABLE_WIDTH,
                                   subsequent_indent="  ", break_on_hyphens=False, break_long_words=False))
    return "\n".join(lines)


def format_current(records: list[Record]) -> str:
    groups = current(records)
    tables = [format_table(rows, record.title(), legend=False) for record, rows in groups]
    return "\n\n".join([summary(groups), *tables, table_legend()])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.harness.current", description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=Path, default=RECORDS, help="the folder of recorded tables")
    args = parser.parse_args(argv)
    print(format_current(read_records(args.records)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

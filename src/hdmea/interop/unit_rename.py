"""Rename the units of recording files written with positional unit names to the lab's names.

Earlier versions of this package named units by position (``unit_000`` for the
unit of the smallest ``.cmtr`` UnitID, ``unit_001`` for the next, ...) and stored
the UnitID as ``global_id`` and the sorter's sensor as ``sensor_id``.  The lab
names a unit after its UnitID (``unit_012``, :mod:`hdmea.io.unit_names`) and keys
its labels and selections by that name, so such a file attaches them to other
units.  :func:`rename_positional_units` writes a copy in which

* each unit is named ``unit_<UnitID>``, with ``unit_num`` (the UnitID),
  ``original_name`` (``Unit_<UnitID>``) and ``global_id`` (the sensor id) as the
  pipeline stores them today; nothing else of the unit changes (its arrays are
  copied as they are, with their checksums);
* ``/pipeline/unit_renames`` records the mapping: datasets ``old_name`` and
  ``new_name`` (text, one row per unit) and ``unit_num``, attributes ``renamed_at``
  and ``rule``.

It refuses (:class:`UnitRenameError`) rather than guess: a unit without an
integer ``global_id``, two units with the same one, or a name that is not the
position of its UnitID among the file's UnitIDs (then the names are not the
positional names this package wrote, and renaming could attach a unit's data to
another).  A file whose units already carry ``unit_num`` and the matching name is
reported as already named and not rewritten.  The copy is written atomically; the
source is never changed.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from hdmea.errors import HdmeaError
from hdmea.io import hdf5_store as store
from hdmea.io.hdf5_store import Group
from hdmea.io.unit_names import original_name, unit_name

__all__ = ["rename_positional_units", "UnitRenameResult", "UnitRenameError", "RENAME_RULE"]

RENAME_RULE = ("positional unit_<index> (index of the UnitID in ascending order, UnitID in global_id) -> "
               "unit_<UnitID, 3 digits>; unit_num = UnitID, global_id = sensor_id")


class UnitRenameError(HdmeaError):
    """A file's unit names cannot be mapped to UnitIDs without guessing."""


@dataclasses.dataclass
class UnitRenameResult:
    source: Path
    output: Path | None
    renamed: dict[str, str]
    already_named: bool = False

    def describe(self) -> str:
        if self.already_named:
            return f"{self.source}: units are already named by UnitID; nothing written"
        pairs = ", ".join(f"{a} -> {b}" for a, b in list(self.renamed.items())[:6])
        more = ", ..." if len(self.renamed) > 6 else ""
        return f"{self.output}: {len(self.renamed)} units renamed ({pairs}{more}); mapping in /pipeline/unit_renames"


def _int_attr(attrs: dict, name: str) -> int | None:
    value = attrs.get(name)
    if isinstance(value, (bool, np.bool_)) or value is None:
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if number == value else None


def plan_renames(units: Group, path: Path) -> dict[str, str] | None:
    """{old name: new name} for a file with positional names; None when the units are named by UnitID already."""
    names = sorted(units.children)
    if all(_int_attr(units.children[n].attrs, "unit_num") is not None
           and unit_name(_int_attr(units.children[n].attrs, "unit_num")) == n for n in names):
        return None
    ids = {}
    for name in names:
        gid = _int_attr(units.children[name].attrs, "global_id")
        if gid is None or gid < 0:
            raise UnitRenameError("a unit has no integer global_id (the UnitID of a positionally named unit)",
                                  path=path, obj=f"/units/{name}", expected="an integer global_id attribute",
                                  found=repr(units.children[name].attrs.get("global_id")),
                                  hint="this file was not written with positional names; it is left as it is")
        ids[name] = gid
    if len(set(ids.values())) != len(ids):
        raise UnitRenameError("two units share a global_id", path=path, obj="/units",
                              found=", ".join(f"{n}={g}" for n, g in ids.items()),
                              hint="the names cannot be mapped to UnitIDs; the file is left as it is")
    width = max(3, len(str(max(len(names) - 1, 0))))
    by_rank = sorted(ids, key=ids.get)
    for rank, name in enumerate(by_rank):
        expected = f"unit_{rank:0{width}d}"
        if name != expected:
            raise UnitRenameError(
                "unit names are not the positions of their UnitIDs", path=path, obj=f"/units/{name}",
                expected=f"{expected} (UnitID {ids[name]} is number {rank} in ascending order)", found=name,
                hint="the file was not written with positional names; renaming could attach data to another unit",
            )
    return {name: unit_name(ids[name]) for name in by_rank}


def rename_positional_units(source: str | os.PathLike, output: str | os.PathLike, *,
                            overwrite: bool = False) -> UnitRenameResult:
    """Write ``output``: ``source`` with its units renamed by UnitID (see the module docstring)."""
    from hdmea.session.session import PipelineSession

    source, output = Path(source), Path(output)
    if output.resolve() == source.resolve():
        raise UnitRenameError("the renamed copy cannot replace its source", path=output,
                              hint="name another output file")
    session = PipelineSession.load(source)
    try:
        units = session.tree.node(["units"])
        plan = plan_renames(units, source) if isinstance(units, Group) else None
        if plan is None:
            return UnitRenameResult(source, None, {}, already_named=True)
        renamed = {}
        for old, new in plan.items():
            node = units.children[old]
            uid = int(node.attrs["global_id"])
            sensor = _int_attr(node.attrs, "sensor_id")
            node.attrs["unit_num"] = uid
            node.attrs["original_name"] = original_name(f"Unit {uid}")
            if sensor is not None:
                node.attrs["global_id"] = sensor
            renamed[new] = node
        units.children = {name: renamed[name] for name in sorted(renamed)}
        session.put("pipeline/unit_renames", {
            "old_name": np.array(list(plan), dtype=object),
            "new_name": np.array(list(plan.values()), dtype=object),
            "unit_num": np.array([int(v[len("unit_"):]) for v in plan.values()], dtype=np.int64),
            "renamed_at": store.now_iso(),
            "rule": RENAME_RULE,
            "source": os.fspath(source),
        })
        session.save(output, overwrite=overwrite)
        return UnitRenameResult(source, output, plan)
    finally:
        session.close()

"""Units are named as the lab names them: after the spike sorter's UnitID.

The original pipeline names the unit of ``Spike Sorter/Unit 12`` ``unit_012``
(``unit_<UnitID, at least 3 digits>``), stores ``unit_num`` = 12 and
``original_name`` = ``"Unit_12"`` (the vendor reader's attribute name), and the
lab keys everything by these names: manual cell-type labels (files named
``<recording>_unit12.png``), unit selections, ``unit_ids=`` arguments.  A name by
position (``unit_000`` for the first unit) would attach those to another unit.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["unit_name", "original_name", "unit_number", "resolve_unit_refs"]

_NAME = re.compile(r"unit_(\d+)\Z")


def unit_name(unit_id: int) -> str:
    """``unit_004`` for UnitID 4, ``unit_1234`` for UnitID 1234 (the original's ``f"unit_{n:03d}"``)."""
    return f"unit_{int(unit_id):03d}"


def original_name(group_name: str) -> str:
    """The vendor reader's attribute name of a ``.cmtr`` unit group: ``"Unit 12"`` -> ``"Unit_12"``."""
    return str(group_name).replace(" ", "_")


def unit_number(name: str) -> int | None:
    """12 for ``"unit_012"``; None for a name not of that form."""
    match = _NAME.match(str(name))
    return int(match.group(1)) if match else None


def resolve_unit_refs(refs: Iterable, names: Iterable[str]) -> tuple[list[str], list]:
    """(unit names selected, references that name no unit) for ``unit_ids=`` arguments.

    A reference is a unit name (``"unit_012"``) or a UnitID (``12``, ``"12"``,
    ``"Unit 12"``, ``"Unit_12"``), as the original's ``unit_ids`` take them.
    Names keep the order of ``names``.
    """
    by_number = {}
    known = list(names)
    for name in known:
        number = unit_number(name)
        if number is not None:
            by_number[number] = name
    chosen, missing = set(), []
    for ref in ([refs] if isinstance(refs, (str, int)) else refs):
        text = str(ref).strip()
        if text in known:
            chosen.add(text)
            continue
        digits = re.sub(r"^(?:unit[ _]?)", "", text, flags=re.IGNORECASE)
        if digits.isdigit() and int(digits) in by_number:
            chosen.add(by_number[int(digits)])
        else:
            missing.append(ref)
    return [n for n in known if n in chosen], missing

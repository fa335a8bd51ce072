"""When the session may let go of a value the caller assigned: the one decision, and how it is made safe.

A session keeps every value the caller assigned and may still change (a dict, a list, an array it
stores as a copy) until the caller holds no part of it any more; only then can no later change
happen, so the value is brought into the staged tree a last time and let go (its arrays then count
against the memory budget, and spill).  "The caller holds no part of it" is read from reference
counts: every object of the value is referred to only from inside the value, from the node staged
from it, and from the session's one reference to the value.

CPython does not promise how many references its own machinery adds while a function looks at an
object (the argument of ``sys.getrefcount``, a loop variable, a value on the evaluation stack); the
numbers differ between versions and may change again.  So they are not written here: at import,
:class:`ReleaseDecision` measures them on a probe value, with the very function that later decides,
and checks that one reference added from outside, to the value or to any part of it, is seen.  If
any of that fails (another interpreter, counts that do not add up) the decision is "held" for every
value, always: the session then never lets go of an assigned value before it is replaced, deleted
or the session closed.  It costs memory, never a change.
"""

from __future__ import annotations

import sys
from collections import Counter

import numpy as np

__all__ = ["Holder", "ReleaseDecision", "RELEASE"]

_CONTAINERS = (dict, list, tuple)


class Holder:
    """What the session keeps of a value: exactly one reference to it (``value``), and the ids of the
    arrays its staged node holds itself (each one more reference from inside the session)."""

    __slots__ = ("value", "node_arrays")

    def __init__(self, value, node_arrays=()) -> None:
        self.value = value
        self.node_arrays = list(node_arrays)


def _members(item) -> list:
    """The objects ``item`` refers to through which its content can change."""
    if isinstance(item, dict):
        return [v for v in item.values() if isinstance(v, (*_CONTAINERS, np.ndarray))]
    if isinstance(item, (list, tuple)):
        return [v for v in item if isinstance(v, (*_CONTAINERS, np.ndarray))]
    if isinstance(item, np.ndarray) and item.base is not None:
        return [item.base]  # the memory a view shares: its holder can change the array
    return []


def _excess_counts(holder: Holder) -> tuple[int, list[int]]:
    """Reference counts beyond those from inside the value, its node and ``holder``: the root's, and every
    other part's (in one list).  What this function's own frame adds is measured by :class:`ReleaseDecision`
    at import, with this very function, and subtracted there."""
    inside: Counter = Counter()
    seen = {id(holder.value): holder.value}
    todo = [holder.value]
    while todo:
        for part in _members(todo.pop()):
            inside[id(part)] += 1
            if id(part) not in seen:
                seen[id(part)] = part
                todo.append(part)
    part = None
    for key in holder.node_arrays:
        if key in seen:
            inside[key] += 1
    root = id(holder.value)
    counts = [sys.getrefcount(seen[key]) - inside[key] for key in seen]
    keys = list(seen)
    root_index = keys.index(root)
    return counts[root_index], [c for i, c in enumerate(counts) if i != root_index]


class ReleaseDecision:
    """Whether anything outside the session may still change a value (see the module's text)."""

    def __init__(self) -> None:
        self.root_overhead = 0
        self.part_overhead = 0
        self.calibrated = False
        self.reason = ""
        try:
            self._calibrate()
        except Exception as exc:  # any surprise: the safe fallback
            self.reason = f"calibration failed ({type(exc).__name__}: {exc})"
        if not self.calibrated and not self.reason:
            self.reason = "calibration failed"

    @staticmethod
    def probe(value) -> Holder:
        """A holder of ``value`` as the session keeps one (its node holding no array itself)."""
        return Holder(value)

    def held_elsewhere(self, holder: Holder, *, whole: bool = True) -> bool:
        """True unless the session holds the only references to every part of ``holder.value`` (``whole``;
        else to the value itself)."""
        if not self.calibrated:
            return True
        root, parts = _excess_counts(holder)
        return root > self.root_overhead or (whole and any(count > self.part_overhead for count in parts))

    # ------------------------------------------------------------------ calibration
    def _calibrate(self) -> None:
        if not hasattr(sys, "getrefcount"):
            self.reason = "this interpreter has no sys.getrefcount"
            return
        holder = Holder(_probe_value())
        root, parts = _excess_counts(holder)
        if len(parts) < 6 or len(set(parts)) != 1:
            self.reason = f"the parts of one value show different counts ({parts})"
            return
        self.root_overhead, self.part_overhead = root, parts[0]
        self.calibrated = True
        if self.held_elsewhere(holder):
            self.calibrated, self.reason = False, "a probe nobody else holds reads as held"
            return
        # One reference from outside, to the value or to any one of its parts, must read as held; and
        # once it is gone, as free again.
        for index in range(len(_parts_of(holder.value))):
            outside = _parts_of(holder.value)[index]  # (the list goes at once: one reference stays)
            if not self.held_elsewhere(holder):
                self.calibrated, self.reason = False, "a reference from outside was not seen"
                return
            del outside
            if self.held_elsewhere(holder):
                self.calibrated, self.reason = False, "a reference let go was still counted"
                return
        # The node's own arrays count as the session's.
        array = holder.value["arrays"][0]
        holder.node_arrays = [id(array)]
        node = [array]
        del array
        if self.held_elsewhere(holder):
            self.calibrated, self.reason = False, "an array the node holds read as held by the caller"
            return
        del node


def _probe_value():
    """A value with every kind of part the session follows: nested dicts, lists, a tuple, arrays, a view."""
    base = np.zeros(8)
    return {"inner": {"deeper": {"x": 1}}, "items": [{"y": 2}, [3, 4]], "pair": ({"z": 3}, 5),
            "arrays": [np.ones(3), base[2:5]]}


def _parts_of(value) -> list:
    seen = {id(value): value}
    todo = [value]
    while todo:
        for part in _members(todo.pop()):
            if id(part) not in seen:
                seen[id(part)] = part
                todo.append(part)
    return list(seen.values())


#: The decision every session uses (calibrated once, at import).
RELEASE = ReleaseDecision()

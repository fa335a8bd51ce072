"""Walking a session's staged tree: its datasets, the slot a key has in a group, staging and releasing
the arrays of a subtree, and the bytes everything staged takes."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from h5stream.tree import PiecesGroup
from hdmea.io.hdf5_store import Dataset, Group, Node

__all__ = ["walk_datasets", "datasets_of", "node_nbytes", "slot_of", "as_dict_group", "admit_datasets",
           "release_datasets"]


def walk_datasets(node: Node, prefix: str = "") -> Iterator[tuple[str, Dataset]]:
    """``(path, dataset)`` of every dataset of ``node``'s subtree in depth-first order, as it walks (one
    generator with a stack of groups, not one generator per group each item passes up through)."""
    if isinstance(node, Dataset):
        yield prefix, node
        return
    stack = [(prefix, iter(node.children.items()))]
    while stack:
        base, items = stack[-1]
        for name, child in items:
            path = f"{base}/{name}" if base else name
            if isinstance(child, Dataset):
                yield path, child
            else:
                stack.append((path, iter(child.children.items())))
                break
        else:
            stack.pop()


def datasets_of(node: Node) -> list[Dataset]:
    """The datasets of ``node``'s subtree in depth-first order (:func:`walk_datasets`' without their paths,
    in one loop)."""
    return _datasets_outside(node, None)


def _datasets_outside(node: Node, kept, tables: list | None = None) -> list[Dataset]:
    """The datasets of ``node``'s subtree in depth-first order, leaving out the subtrees whose root's id is
    in ``kept`` (one loop, no generator per group: a group of thousands of trials is walked at the speed
    of a list).  With ``tables`` (a list), a group of pieces not built yet
    (:class:`~h5stream.tree.PiecesGroup`) goes there instead of its datasets; without, it is built."""
    found: list[Dataset] = []
    stack = [node]
    while stack:
        item = stack.pop()
        if kept and id(item) in kept:
            continue
        if isinstance(item, Dataset):
            found.append(item)
        elif tables is not None and type(item) is PiecesGroup and item.pieces is not None:
            tables.append(item)
        else:
            stack.extend(reversed(item.children.values()))
    return found


def admit_datasets(staging, node: Node, kept=()) -> None:
    """Stage the arrays of ``node`` (untagged datasets) in ``staging``: counted in memory, or spilled.

    The pieces of a group of pieces not built yet are counted as one array when everything fits the
    budget together; else the group is built and its pieces are staged one by one, as any dataset (a
    piece past the budget spills, so nothing is held beyond it and nothing is lost)."""
    tables: list[PiecesGroup] = []
    datasets = [d for d in _datasets_outside(node, kept, tables) if d.tag is None]
    if tables:
        table_bytes = sum(t.pieces.values.nbytes for t in tables)
        if staging.fits(table_bytes + sum(d.data.nbytes for d in datasets if isinstance(d.data, np.ndarray))):
            staging.admit_many([t.pieces.values for t in tables])  # counted, as the pieces would be
        else:
            datasets += [d for t in tables for d in t.children.values()]  # built: staged one by one
    for dataset, staged in zip(datasets, staging.admit_many([d.data for d in datasets])):
        dataset.data = staged


def release_datasets(staging, node: Node, kept=()) -> None:
    """Take the arrays of ``node`` out of ``staging``'s count (a spilled one leaves the spill file; a group
    of pieces not built yet leaves as the one array it was counted as)."""
    tables: list[PiecesGroup] = []
    for dataset in _datasets_outside(node, kept, tables):
        if dataset.tag is None:  # as admitted (a tagged value's bytes were never counted)
            staging.release(dataset.data)
    for table in tables:
        staging.release(table.pieces.values)


def slot_of(group: Group, key) -> tuple[str, str] | None:
    """("child" | "attr", stored name) of ``key`` in ``group``, or None when absent."""
    if group.tag == "dict":
        try:
            index = (group.keys or []).index(key)
        except ValueError:
            return None
        name = str(index)
    elif isinstance(key, str):
        name = key
    else:
        return None
    if name in group.children:
        return "child", name
    if name in group.attrs:
        return "attr", name
    return None


def as_dict_group(group: Group) -> None:
    """Re-key a plain group in place so that it can hold keys that are not names (tag ``dict``)."""
    names = sorted(set(group.children) | set(group.attrs))
    children, attrs = {}, {}
    for index, name in enumerate(names):
        if name in group.children:
            children[str(index)] = group.children[name]
        else:
            attrs[str(index)] = group.attrs[name]
    group.children, group.attrs, group.tag, group.keys = children, attrs, "dict", names


def _attrs_nbytes(attrs: Mapping[str, Any]) -> int:
    total = 0
    for name, value in attrs.items():
        total += len(name)
        if isinstance(value, str):
            total += len(value.encode("utf-8", "surrogatepass"))
        elif isinstance(value, np.ndarray):
            total += value.nbytes
        elif isinstance(value, (list, tuple)):
            total += 8 * len(value) + sum(len(v) for v in value if isinstance(v, str))
        else:
            total += 8
    return total


def node_nbytes(node: Node) -> int:
    total = _attrs_nbytes(node.attrs)
    if type(node) is PiecesGroup and node.pieces is not None:  # not built: its names and its one array
        return total + sum(map(len, map(str, range(len(node.pieces))))) + node.pieces.values.nbytes
    if isinstance(node, Dataset):
        data = node.data
        if isinstance(data, np.ndarray) and data.dtype.kind == "O":
            total += sum(len(str(v)) + 16 for v in data.ravel())
        else:
            total += int(getattr(data, "nbytes", 0))
        return total
    for name, child in node.children.items():
        total += len(name) + node_nbytes(child)
    return total

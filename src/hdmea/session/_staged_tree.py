"""Walking a session's staged tree: its datasets and the bytes everything staged takes."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from hdmea.io.hdf5_store import Dataset, Node

__all__ = ["walk_datasets", "node_nbytes"]


def walk_datasets(node: Node, prefix: str = "") -> Iterator[tuple[str, Dataset]]:
    if isinstance(node, Dataset):
        yield prefix, node
        return
    for name, child in node.children.items():
        yield from walk_datasets(child, f"{prefix}/{name}" if prefix else name)


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

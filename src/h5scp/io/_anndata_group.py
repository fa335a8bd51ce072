"""One AnnData group (an ``.h5ad`` root, a MuData root or one of its modalities) looked at once.

:func:`scan` reads what a group holds in one place: its members, which of them is the ``X``
that holds values, the layers under ``layers`` by the names our codecs recorded (else the
members' own), whether scptensor's annotations are there, and the elements a container has
no place for (``obsm``, ``varm``, ``obsp``, ``varp`` members and ``raw``, each with its shape).
The columns of ``obs`` and their members (:attr:`GroupView.obs_members`) are read from its
attributes once, where a reader first needs them (a whole load of another tool's .h5ad never does).
The layers a load asks for are described in one pass (:meth:`GroupView.describe_layers`), and their
matrices read from those descriptions.  Only member lists, attributes and shapes are read here, never
values.  The AnnData and MuData readers (:mod:`h5scp.io.formats_h5ad`, :mod:`h5scp.io.formats_h5mu`,
:mod:`h5scp.io.foreign`) take their elements from the :class:`GroupView` it gives instead of asking the
file again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property

import h5py

from h5stream.elements.mapping import KEYS_ATTR, member_name
from h5stream.elements.snapshot import Node, describe, describe_each, describe_members
from h5stream import checksums
from h5scp.io.partial_hdf5 import column_members

__all__ = ["GroupView", "scan", "element_shape", "mod_order", "SCPTENSOR_KEY", "X_LAYER"]

#: The member of ``uns`` that holds scptensor's annotations.
SCPTENSOR_KEY = "scptensor"
#: The layer name of ``X`` in a file scptensor did not write.
X_LAYER = "X"
_UNMAPPED_GROUPS = ("obsm", "varm", "obsp", "varp", "raw")


@dataclass(frozen=True)
class GroupView:
    """What an AnnData group holds (see :func:`scan`)."""

    group: h5py.Group
    #: ``X`` when it holds values (anndata stores a missing ``X`` as an HDF5 null dataspace: None then).
    x: h5py.Dataset | h5py.Group | None
    #: Member name -> element of ``layers`` (empty when there is none).
    members: dict
    #: Layer name -> element of ``layers``: the names our codecs recorded, else the member names.
    layers: dict
    #: The layers of a group scptensor did not write, by name: ``X`` first, then those of ``layers``
    #: (a ``layers/X`` beside a real ``X`` left out: the name is taken).
    foreign_layers: dict
    #: ``uns/scptensor``: scptensor's annotations (None in a group another tool wrote).
    annotations: h5py.Group | h5py.Dataset | None
    #: True when scptensor wrote the group: its annotations are there (anndata and mudata keep them when
    #: they re-save one of our files, though not the root mark, so they decide).
    ours: bool
    #: ``obsm``, ``varm``, ``obsp``, ``varp`` members and ``raw``, each as ``"<prefix>name (shape)"``.
    unmapped: tuple[str, ...]
    #: The group's path without a trailing ``/`` (``""`` for the root).
    where: str
    #: What starts the names in ``unmapped`` (``"mod/rna/"`` for a modality).
    prefix: str = ""

    @cached_property
    def obs_node(self) -> Node | None:
        """``obs`` described (its attributes read once, checked where the file has a manifest); None: no group."""
        obs = self.group.get("obs")
        if not isinstance(obs, h5py.Group):
            return None
        return describe(obs, f"{self.where}/obs").checked(complete=False)

    @cached_property
    def obs_members(self) -> dict[str, str] | None:
        """Column name -> member of ``obs`` (first the row labels of a foreign frame); None: not readable by column."""
        node = self.obs_node
        return None if node is None else column_members(node)

    def describe_layers(self, elements: dict) -> dict[str, Node]:
        """Layer name -> description of each element of ``elements`` (layer name -> an element of this group, as
        :attr:`foreign_layers` or :func:`h5scp.io._anndata_layout.present_layers` give them): the attributes of
        all of them read in one pass, the file's manifest looked up once, and only those asked for (no
        attribute of an unrequested layer is read).  The matrix reads take these nodes
        (:func:`h5scp.io.partial_hdf5.read_part`) instead of describing each element again."""
        objs = list(elements.values())
        nodes = describe_each(objs, [obj.name for obj in objs], checksums.manifest_for(self.group)) if objs else []
        return dict(zip(elements, nodes))


def _holds_values(obj) -> bool:
    """False for anndata's missing ``X``: anndata and mudata store the ``X`` of an object without one (a modality
    with no layers) as a dataset with an HDF5 null dataspace (stamped ``encoding-type: null``), which anndata reads
    as no ``X``.  Only the dataspace is looked at, so no attribute of an unrequested part is read."""
    return not (isinstance(obj, h5py.Dataset) and obj.shape is None)


def element_shape(node: Node) -> str:
    """A short description of the shape and type of the element ``node`` describes, for the history
    ("4 x 2 float32")."""
    obj, attrs = node.obj, node.attrs
    if isinstance(obj, h5py.Dataset):
        dims = " x ".join(str(n) for n in obj.shape) or "scalar"
        if obj.dtype.names:
            return f"{dims} records with fields {list(obj.dtype.names)}"
        kind = "text" if h5py.check_string_dtype(obj.dtype) is not None or obj.dtype.kind in "OSU" else str(obj.dtype)
        return f"{dims} {kind}"
    etype = attrs.get("encoding-type")
    if etype == "awkward-array":
        return f"awkward array of {attrs.get('length', '?')} rows"
    if etype in ("csr_matrix", "csc_matrix"):
        shape = attrs.get("shape")
        dims = " x ".join(str(int(n)) for n in shape) if shape is not None else "?"
        dtype = obj["data"].dtype if "data" in obj else "?"
        return f"{dims} {dtype} {etype}"
    if etype == "dataframe":
        order = attrs.get("column-order")
        index = attrs.get("_index")
        rows = obj[index].shape[0] if index is not None and index in obj else "?"
        return f"dataframe {rows} rows x {0 if order is None else len(order)} columns"
    return f"{etype or 'group'} of {len(obj)} members"


def _unmapped(nodes: dict[str, Node], prefix: str) -> tuple[str, ...]:
    out = []
    for name in _UNMAPPED_GROUPS:
        member = nodes.get(name)
        if member is None or member.attrs.get("encoding-type") == "null":  # a None (anndata's zarr stores write raw=None so)
            continue
        if isinstance(member.obj, h5py.Group) and name != "raw":
            keys = list(member.obj)
            out.extend(f"{prefix}{name}/{m} ({element_shape(n)})" for m, n in zip(keys, member.members(keys)))
        else:
            out.append(f"{prefix}{name} ({element_shape(member)})")
    return tuple(out)


def _described(group: h5py.Group, where: str) -> dict[str, Node]:
    """The members of ``group`` that :func:`scan` looks at (``layers`` and those a container has no place for),
    described in one pass, their attributes checked where the file has a manifest."""
    present = [name for name in ("layers", *_UNMAPPED_GROUPS) if name in group]
    nodes = dict(zip(present, describe_members(group, present, where or "/", checksums.manifest_for(group))))
    for node in nodes.values():
        node.checked(complete=False)
    return nodes


def scan(group: h5py.Group, prefix: str = "") -> GroupView:
    """The :class:`GroupView` of an AnnData group; ``prefix`` starts the names in ``unmapped`` (``"mod/rna/"``)."""
    x = group.get("X")
    x = x if x is not None and _holds_values(x) else None
    where = group.name.rstrip("/")
    nodes = _described(group, where)
    stored = group.get("layers")
    members = {m: stored[m] for m in stored} if isinstance(stored, h5py.Group) else {}
    keys = nodes["layers"].attrs.get(KEYS_ATTR) if members else None
    layers = dict(members) if keys is None else {str(k): members[member_name(k)] for k in json.loads(keys)}
    foreign_layers = {} if x is None else {X_LAYER: x}
    foreign_layers.update((name, element) for name, element in layers.items() if name not in foreign_layers)
    uns = group.get("uns")
    annotations = uns.get(SCPTENSOR_KEY) if isinstance(uns, h5py.Group) else None
    return GroupView(
        group=group, x=x, members=members, layers=layers, foreign_layers=foreign_layers, annotations=annotations,
        ours=annotations is not None, unmapped=_unmapped(nodes, prefix), where=where,
        prefix=prefix,
    )


def mod_order(f: h5py.File) -> list[str]:
    """The modality names of a MuData root in ``mod-order`` (all of ``/mod`` when the attribute is absent)."""
    mods = f["mod"]
    order = [m.decode() if isinstance(m, bytes) else str(m) for m in checksums.attr_value(mods, "mod-order", [])]
    return order or list(mods)

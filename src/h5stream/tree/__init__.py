"""The typed node tree: values to nodes, nodes to HDF5 objects and back.

* :mod:`~h5stream.tree.filearray` - :class:`FileArray`, an array that stays on disk.
* :mod:`~h5stream.tree.nodes` - :class:`Group`, :class:`Dataset`, type tags and
  the builders (:func:`value_node`, :func:`put_node`, attribute encoding).
* :mod:`~h5stream.tree.write` - the one writer (:func:`write_node`, :func:`replace_child`).
* :mod:`~h5stream.tree.edit` - in-place edits (:func:`set_h5_attrs`, :func:`require_h5_group`).
* :mod:`~h5stream.tree.read` - :func:`node_from_h5` and :func:`decode_node`.

Typed JSON values inside the tree use :mod:`h5stream.jsonvalues`; the HDF5 objects are made through
:mod:`h5stream.lowlevel` (property lists, type and dataspace caches, the direct libhdf5 bindings: the one
module below h5py's high-level API), a layer below the checksums that the tree's writer records.
"""

from h5stream.tree.filearray import FileArray
from h5stream.tree.nodes import (
    ATTR_LIMIT,
    ATTR_TYPES_ATTR,
    DATASET_ATTRS_PREFIX,
    HIDDEN_PREFIX,
    HIDDEN_PREFIXES,
    INTERNAL_ATTRS,
    KEYS_ATTR,
    STAGING_PREFIX,
    TYPE_ATTR,
    Dataset,
    Group,
    Node,
    Pieces,
    PiecesGroup,
    array_node,
    check_attr_name,
    check_member_name,
    check_name,
    decode_attr,
    encode_attr,
    is_hidden,
    is_safe_key,
    mapping_node,
    normalize_attr,
    plain_text,
    put_node,
    text,
    value_node,
)
from h5stream.tree.read import decode_node, node_from_h5, read_attrs
from h5stream.tree.edit import require_h5_group, set_h5_attrs
from h5stream.tree.write import (
    WriteContext,
    remove_child,
    replace_child,
    write_attrs,
    write_children,
    write_node,
    write_root,
)

__all__ = [
    "FileArray", "Group", "Dataset", "Node", "Pieces", "PiecesGroup", "WriteContext",
    "value_node", "array_node", "put_node", "mapping_node",
    "encode_attr", "decode_attr", "normalize_attr",
    "check_name", "check_member_name", "check_attr_name", "is_hidden", "is_safe_key", "plain_text", "text",
    "write_node", "write_children", "write_root", "write_attrs", "remove_child", "replace_child",
    "require_h5_group", "set_h5_attrs", "read_attrs", "node_from_h5", "decode_node",
    "TYPE_ATTR", "KEYS_ATTR", "ATTR_TYPES_ATTR", "INTERNAL_ATTRS", "HIDDEN_PREFIX", "DATASET_ATTRS_PREFIX",
    "STAGING_PREFIX", "HIDDEN_PREFIXES", "ATTR_LIMIT",
]

"""The compiled group walk (``h5stream._ext._h5dsets.GroupWalk``) against the writer through h5py's wrappers.

The same tree is written twice into a checksummed file: once with the direct library bindings (groups by
the compiled walk, their runs of datasets by the compiled dataset writer), once through h5py's low-level
wrappers alone (the bindings turned off).  Every object of the two files is compared as plain h5py reads it
(path, kind, shape, dtype, values, attribute names in order and their values), and so are the checksum
manifests (entries and their order).
"""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from h5stream import checksums, lowlevel
from h5stream.errors import WriteError
from h5stream.files import create_atomic
from h5stream.tree import write as tree_write
from h5stream.tree.nodes import ATTR_LIMIT, Dataset, Group, Pieces, value_node

native = lowlevel.native_hdf5()
pytestmark = pytest.mark.skipif(native is None, reason="h5py's libhdf5 could not be located")


def _tree() -> Group:
    rng = np.random.default_rng(11)
    units = {}
    for u in range(3):
        spikes = np.sort(rng.integers(0, 10**6, 300))
        trials = {str(t): Dataset(spikes[t * 10:(t + 1) * 10].astype(np.uint64)) for t in range(30)}
        units[f"unit_{u}"] = Group(attrs={"row": u, "name": f"u{u}", "window": [-10, 40], "rate": 2e4,
                                          "flag": True, "none": None, "nested": {"a": [1, 2]}}, children={
            "trials": Group(attrs={"n": 30}, children=trials),
            "pieces": Pieces(spikes, np.linspace(0, 300, 11).astype(np.int64)).node(),
            "features": Group(children={
                "empty": Group(),
                "only_attrs": Group(attrs={"x": 1.5, "labels": ["a", "b"], "big": rng.random(ATTR_LIMIT // 8 + 10)}),
                "nested": Group(children={"deeper": Group(children={"v": Dataset(np.arange(4))})}),
            }),
            "waveform": Dataset(rng.random(40, "f4")), "cutout": Dataset(rng.random(9000, "f4")),
            "count": value_node(300), "margins": value_node([float(x) for x in rng.random(3000)]),
            "label": Dataset(np.array("x", dtype=object), tag="str"), "blank": Dataset(np.zeros(0)),
            "meta": Dataset(np.arange(2), attrs={"unit": "s", "big": "y" * (ATTR_LIMIT + 5)}),
            "text": Dataset(np.array(["a", "bc"], dtype=object)),
        })
    return Group(attrs={"dataset_id": "rec"}, children={"units": Group(children=units), "top": Group(),
                                                       "values": Dataset(np.arange(3.0))})


def _write(path, tree: Group, monkeypatch, *, wrapped: bool) -> dict:
    with monkeypatch.context() as patch:
        if wrapped:
            patch.setattr(lowlevel, "native_hdf5", lambda: None)
        atomic = create_atomic(path, libver=lowlevel.LIBVER, checksums=True)
        f = atomic.open()
        written = {}
        tree_write.write_root(f, tree, tree_write.WriteContext(f, written=written, raw_writes=not wrapped))
        atomic.commit()
    return written


def _objects(path) -> list:
    """Every object of the file as plain h5py reads it, in the library's order of links."""
    out = []
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            attrs = [(k, _value(obj.attrs[k])) for k in obj.attrs if k != checksums.MANIFEST_ATTR]
            if isinstance(obj, h5py.Group):
                out.append((name, "group", attrs))
            else:
                layout = obj.id.get_create_plist().get_layout()
                out.append((name, "dataset", obj.shape, obj.dtype.str, layout, _value(obj[()]), attrs))
        out.append(("/", "group", [(k, _value(v)) for k, v in f.attrs.items() if k != checksums.MANIFEST_ATTR]))
        f.visititems(visit)
        manifest = json.loads(f.attrs[checksums.MANIFEST_ATTR])
    return out, manifest


def _value(value):
    if isinstance(value, np.ndarray):
        return (value.dtype.str, value.shape, value.tolist())
    return (type(value).__name__, value)


def test_the_walk_writes_every_object_as_the_wrapped_writer_does(tmp_path, monkeypatch):
    tree = _tree()
    walked = _write(tmp_path / "walked.h5", tree, monkeypatch, wrapped=False)
    wrapped = _write(tmp_path / "wrapped.h5", tree, monkeypatch, wrapped=True)
    (objects, manifest), (reference, reference_manifest) = _objects(tmp_path / "walked.h5"), _objects(tmp_path / "wrapped.h5")
    assert len(objects) == len(reference) > 150
    for got, want in zip(objects, reference):
        assert got == want
    assert list(manifest) == list(reference_manifest)
    for key in manifest:
        got, want = manifest[key], reference_manifest[key]
        assert (list(got.items()) if isinstance(got, dict) else got) == \
               (list(want.items()) if isinstance(want, dict) else want), key
    ids = set(_node_ids(tree))  # (a large attribute's value is written from a node made for the write)
    assert {k: v for k, v in walked.items() if k in ids} == {k: v for k, v in wrapped.items() if k in ids}
    assert len(set(walked) & ids) > 100  # the digests of what was written, node by node


def _node_ids(node):
    yield id(node)
    for child in getattr(node, "children", {}).values():
        yield from _node_ids(child)


def test_the_walk_names_a_group_it_could_not_create(tmp_path):
    # a name through a group that does not exist: the library refuses it (no intermediate groups)
    tree = Group(children={"a": Group(children={"x": Dataset(np.arange(2))}), "missing/b": Group(), "c": Group()})
    with h5py.File(tmp_path / "f.h5", "w", libver=lowlevel.LIBVER) as f:
        with pytest.raises(WriteError, match="creating the group") as caught:
            tree_write.write_node(f, "g", tree)
        assert "/g/missing/b" in str(caught.value)
        np.testing.assert_array_equal(f["g/a/x"][()], np.arange(2))
        assert "c" not in f["g"]

"""A load of an ``.h5ad`` that anndata wrote reads each attribute and each categorical's datasets once.

Format detection, its checks and the reader ask for the root's attributes; they are read once, in one
batched pass (:func:`h5stream.checksums.read_attr_values`), and handed on.  Each element's attributes,
and its members', are read once by :func:`h5stream.elements.snapshot.describe` (a group's members in one
pass) and handed to its reader (arrays, sparse matrices, text arrays, frames, categoricals), which does
not ask the file again.  Counted here: the batched passes per
object, and every attribute libhdf5 opens by name through h5py (inside a batched pass: the array,
enum and fixed-length values it leaves to h5py; outside it: a reader asking again).  A categorical
column's ``codes`` and ``categories`` are opened once: the categories no row uses (named in the history,
as a polars column keeps only those in use) come from the frame's own read.
"""

from __future__ import annotations

import collections

import h5py
import numpy as np
import pytest
from scipy import sparse

ad = pytest.importorskip("anndata")
pd = pytest.importorskip("pandas")

from h5scp.io import load_hdf5  # noqa: E402
from h5stream import batch_attrs  # noqa: E402
from h5stream.files import validated  # noqa: E402


def _write(path) -> "ad.AnnData":
    rng = np.random.default_rng(7)
    a = ad.AnnData(
        X=rng.random((6, 4)),
        obs=pd.DataFrame({"cluster": pd.Categorical(["a", "b"] * 3, categories=["a", "b", "unused"]),
                          "n": np.arange(6)},
                         index=[f"c{i}" for i in range(6)]),
        var=pd.DataFrame({"g": ["x", "y", "z", "w"]}, index=[f"g{i}" for i in range(4)]),
    )
    a.layers["counts"] = sparse.csr_matrix(rng.random((6, 4)))
    a.write_h5ad(path)
    return a


def _all_attrs(path) -> dict[str, set[str]]:
    """Object path -> its attribute names, listed by plain h5py (the reference)."""
    out = {}
    with h5py.File(path, "r") as f:
        out["/"] = set(f.attrs)
        f.visititems(lambda name, obj: out.__setitem__("/" + name, set(obj.attrs)))
    return out


def test_each_attribute_of_an_anndata_file_is_read_once(tmp_path, monkeypatch):
    path = tmp_path / "small.h5ad"
    written = _write(path)
    listed = _all_attrs(path)
    batched = collections.Counter()
    opened_in_batch = collections.Counter()
    opened_alone = collections.Counter()
    inside = []
    opened_objects = collections.Counter()
    scanning = []
    real_open, real_values, real_object_open = h5py.h5a.open, batch_attrs.read_values, h5py.h5o.open
    real_scan = validated.scan_unsafe_objects

    def counting_open(loc, name=None, *args, **kwargs):
        key = (h5py.h5i.get_name(loc).decode(), name.decode() if isinstance(name, bytes) else name)
        (opened_in_batch if inside else opened_alone)[key] += 1
        return real_open(loc, name, *args, **kwargs)

    def counting_values(objs, read_left):
        for obj in objs:
            batched[obj.name] += 1
        inside.append(True)
        try:
            return real_values(objs, read_left)
        finally:
            inside.pop()

    def counting_object_open(loc, name, *args, **kwargs):
        obj = real_object_open(loc, name, *args, **kwargs)
        if not scanning:  # (the open's safety scan visits every object once, reading no values)
            opened_objects[h5py.h5i.get_name(obj).decode()] += 1
        return obj

    def marked_scan(*args, **kwargs):
        scanning.append(True)
        try:
            return real_scan(*args, **kwargs)
        finally:
            scanning.pop()

    monkeypatch.setattr(h5py.h5a, "open", counting_open)
    monkeypatch.setattr(h5py.h5o, "open", counting_object_open)
    monkeypatch.setattr(validated, "scan_unsafe_objects", marked_scan)
    monkeypatch.setattr(batch_attrs, "read_values", counting_values)
    loaded = load_hdf5(path)

    # the load is real: its values are anndata's
    np.testing.assert_array_equal(loaded.assays["main"].layers["X"].X, written.X)
    np.testing.assert_array_equal(loaded.assays["main"].layers["counts"].X.toarray(), written.layers["counts"].toarray())
    assert loaded.obs.get_column("n").to_list() == list(range(6))

    # the root's attributes: one batched pass, none asked for again by name
    assert batched["/"] == 1
    assert not [key for key in opened_alone if key[0] == "/"]
    assert not [key for key in opened_in_batch if key[0] == "/" and opened_in_batch[key] > 1]
    # every object read in a batched pass once; an attribute it left to h5py opened once inside it
    assert max(batched.values()) == 1, batched
    assert all(n == 1 for n in opened_in_batch.values()), opened_in_batch
    # outside a batched pass no attribute of a batched object is asked for again
    again = {key: n for key, n in opened_alone.items() if key[0] in batched and key[1] in listed.get(key[0], ())}
    assert not again, again
    assert all(n == 1 for n in opened_alone.values()), opened_alone
    # the categorical's datasets are opened once after the scan, and its unused category is still named
    assert opened_objects["/obs/cluster/codes"] == 1, opened_objects
    assert opened_objects["/obs/cluster/categories"] == 1, opened_objects
    assert opened_objects["/obs/n"] == 1, opened_objects  # (another column alike: the scan is not counted)
    assert loaded.history[0].params["not_imported"] == ["obs/cluster unused categories ['unused']"]
    # what was counted is the file's own: every batched object and opened attribute exists there
    assert set(batched) <= set(listed)
    assert {"/", "/obs", "/var", "/X", "/layers/counts"} <= set(batched)

"""Numpy scalars in recording metadata keep their types (``hdmea.io.hdf5_store.write_metadata``).

``numpy.float64`` is a subclass of ``float``; the kind table looks types up exactly first, so a
float64 in a mixed list or a dict is stored and read back as a numpy float64, not a Python float.
The file is checked with plain h5py too: the stored datasets have the scalars' own dtypes.
"""

from __future__ import annotations

import h5py
import numpy as np

from h5stream.tree import decode_node, node_from_h5
from hdmea.io import hdf5_store


def test_numpy_scalars_in_a_mixed_list_and_a_dict_keep_their_types(tmp_path):
    mixed = [np.float64(1.5), "a", np.int16(-7), np.float32(0.25)]
    mapping = {"f64": np.float64(2.5), "i16": np.int16(300), "f32": np.float32(-1.0), "py": 1.5}
    path = tmp_path / "meta.h5"
    with h5py.File(path, "w") as f:
        hdf5_store.write_metadata(f, {"mixed": mixed, "mapping": mapping})

    with h5py.File(path, "r") as f:  # what is on disk, read without our reader
        assert f["metadata/mixed/0"].dtype == np.float64
        assert f["metadata/mixed/2"].dtype == np.int16
        assert f["metadata/mixed/3"].dtype == np.float32
        assert f["metadata/mapping/i16"].dtype == np.int16
        assert f["metadata/mapping/f32"][0] == np.float32(-1.0)
        back = decode_node(node_from_h5(f["metadata"]))

    assert [type(v) for v in back["mixed"]] == [np.float64, str, np.int16, np.float32]
    assert back["mixed"] == mixed
    assert {k: type(v) for k, v in back["mapping"].items()} == {
        "f64": np.float64, "i16": np.int16, "f32": np.float32, "py": float}
    assert back["mapping"] == mapping

"""Write the typed-JSON golden files ``hdmea_json_v1.h5`` and ``scptensor_json_v1.h5``.

They freeze the typed JSON text as the two faces wrote it before they shared one
codec (commit 13946ca): the recording store's tags (``__np__``, ``__ndarray__``
with a ``v`` list, dicts always as ``__dict__`` pairs) and the scptensor history
parameters' tags (``__numpy_scalar__``, ``__ndarray__`` with base64 ``b64``).
Run it against a checkout of that commit, never against the current code::

    git worktree add /tmp/base-c 13946ca
    cp src/h5stream/_ext/*.so /tmp/base-c/src/h5stream/_ext/
    PYTHONPATH=/tmp/base-c/src python tests/data/golden/make_json_v1.py tests/data/golden

``tests/unit/test_golden_json.py`` reads both files with the current code and
compares every value with a literal written out in that test.
"""

from __future__ import annotations

import sys
from pathlib import Path

import h5py
import numpy as np

# Values the recording store encodes as typed JSON: attributes that HDF5 cannot
# hold exactly (tag "json") and the keys of a dict with non-name keys.
HDMEA_ATTRS = {
    "mixed_list": [1, "a", None, 2.5, True],
    "numpy_float64_in_list": [np.float64(1.5), "a"],
    "numpy_scalars_in_list": [np.int8(-3), np.uint16(7), np.int64(-9), np.uint64(2**64 - 1), np.float16(0.5),
                              np.float32(0.25), np.bool_(True), "x"],
    "tuple_mixed": (1, "b", (2.5, None)),
    "big_int": 2**70,
    "text_with_nul": "a\x00b",
    "raw_bytes": b"\x00\xff",
    "dict_mixed_keys": {"k": [1, "x"], 3: (None,), (1, 2): "pair"},
    "array_0d": np.array(2.5),
    "array_in_list": [np.arange(6, dtype=np.int32).reshape(2, 3), "x"],
    "float64_in_dict": {"a": np.float64(2.0), "b": np.float32(0.5)},
}
HDMEA_METADATA = {
    "text_with_nul": "x\x00y",
    "unsafe_keys": {1: "one", "a/b": 2, (3, 4): [None, "z"]},
}

# Values of scptensor history parameters (one JSON text each).
SCPTENSOR_VALUES = {
    "scalars": [np.bool_(False), np.int8(-8), np.int16(-16), np.int32(-32), np.int64(-64), np.uint8(8),
                np.uint16(16), np.uint32(32), np.uint64(2**64 - 1), np.float16(1.5), np.float32(-0.125),
                np.float64(1e300), np.complex64(1 - 2j), np.complex128(3 + 4j), np.str_("txt"),
                np.bytes_(b"by"), np.datetime64("2024-03-01T12:00:00", "s"), np.timedelta64(90, "ms")],
    "arrays": {"f4": np.array([[1.5, -2.0]], dtype=np.float32), "u8": np.arange(3, dtype=np.uint8),
               "c16": np.array([1 + 1j]), "S3": np.array([b"abc", b"d"]), "M8": np.array(["2024-01-01"], "M8[D]")},
    "nested": {"t": (1, "x"), "b": b"\x01\x02", "n": None, "f": float("nan"), "i": float("-inf"),
               "__dunder": 1, 5: "int key"},
    "plain": {"a": [1, 2.5, "s", True]},
}


def write_hdmea(path: Path) -> None:
    from hdmea.io import hdf5_store as store

    with h5py.File(path, "w", libver=("v110", "latest")) as f:
        store.write_node(f, "attrs", store.Group(attrs=dict(HDMEA_ATTRS)))
        store.write_node(f, "metadata", store.Group(children=store.metadata_nodes(HDMEA_METADATA)))


def write_scptensor(path: Path) -> None:
    from h5scp.io import json_values

    with h5py.File(path, "w") as f:
        group = f.create_group("params")
        for name, value in SCPTENSOR_VALUES.items():
            group.attrs[name] = json_values.dumps(value, obj=f"params/{name}")


def main(folder: str) -> None:
    out = Path(folder)
    write_hdmea(out / "hdmea_json_v1.h5")
    write_scptensor(out / "scptensor_json_v1.h5")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else str(Path(__file__).parent))

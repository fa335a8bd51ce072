"""Any JSON-like value survives the store exactly: file round trip, session staging and checkpoint resume."""

from __future__ import annotations

import math

import h5py
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hdmea.io import hdf5_store as store
from hdmea.pipeline import PipelineSession, create_session

text = st.text(max_size=12)  # includes NUL, lone surrogates, '/', '.', empty
scalars = (
    st.none() | st.booleans() | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False) | text | st.binary(max_size=8)
)
keys = text | st.integers(min_value=-5, max_value=10**12)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner)
    | st.dictionaries(keys, inner, max_size=4),
    max_leaves=12,
)
safe_top_keys = st.text(alphabet="abcdefghij_", min_size=1, max_size=6)


def _same(a, b) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, dict):  # plain groups list their members in name order, so order is not compared
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@SETTINGS
@given(value=values)
def test_value_round_trips_through_a_file(tmp_path, value):
    path = tmp_path / "v.h5"
    with h5py.File(path, "w") as f:
        store.write_node(f, "metadata_value", store.value_node(value))
        store.write_node(f, "feature", store.put_node({"v": value}))
    with h5py.File(path, "r") as f:
        back = store.decode_node(store.node_from_h5(f["metadata_value"]))
        feature = store.decode_node(store.node_from_h5(f["feature"]))
    assert _same(back, value), (back, value)
    assert _same(feature["v"], value), (feature["v"], value)


@SETTINGS
@given(value=values)
def test_attribute_round_trips(tmp_path, value):
    assert _same(store.normalize_attr(value), value)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(metadata=st.dictionaries(safe_top_keys, values, min_size=1, max_size=4))
def test_session_metadata_resumes_exactly(tmp_path, metadata):
    s = create_session("rec", hdf5_path=tmp_path / "final.h5")
    s.add_metadata(metadata)
    s.add_units({"unit_000": {"spike_times": np.arange(3), "row": 0, "col": 0, "global_id": 0}})
    s.set_attrs("units/unit_000", {"extra": metadata})
    assert _same(s.metadata.to_dict(), metadata)  # staged values read back as the file would give them
    path = tmp_path / "ckpt.h5"
    s.checkpoint(path, overwrite=True)
    resumed = PipelineSession.load(path)
    assert _same(resumed.metadata.to_dict(), metadata)
    assert _same(resumed.attrs("units/unit_000")["extra"], metadata)
    resumed.close()

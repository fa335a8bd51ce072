"""Random containers round-trip exactly through scptensor Parquet datasets, in every layout."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from h5scp import ScpContainer
from h5scp.io import load_parquet, save_parquet
from h5scp.testing import assert_container_equal
from tests.property.test_scptensor_roundtrip import SETTINGS, containers


@SETTINGS
@given(containers(), st.sampled_from(["long", "wide"]), st.sampled_from(["all", "observed"]))
def test_parquet_round_trip_is_exact(container: ScpContainer, layout: str, dense_cells: str):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.parquet"
        save_parquet(container, path, compression=None, layout=layout, dense_cells=dense_cells)
        assert_container_equal(load_parquet(path), container)

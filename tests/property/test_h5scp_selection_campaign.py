"""The campaign of the one rule for a selection: many more drawn containers and selections than the default
run of :mod:`tests.property.test_h5scp_partial_metadata` (kept apart from it, which the polars versions of
``.ci/polars-versions`` run three times)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.property.test_h5scp_partial_metadata import _check_drawn


@pytest.mark.campaign
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), n=st.integers(1, 6), n_pep=st.integers(1, 6), n_prot=st.integers(1, 6),
       seed=st.integers(0, 2**16))
def test_partial_loads_and_filters_agree_on_many_selections(tmp_path, data, n, n_pep, n_prot, seed):
    _check_drawn(tmp_path, data, n, n_pep, n_prot, seed)

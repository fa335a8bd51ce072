"""The ``slurm`` fixture: one single-node SLURM for the session (:mod:`tests.slurm.cluster`)."""

from __future__ import annotations

import pytest

from tests.slurm.cluster import SingleNodeSlurm, missing_reason


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "tests/slurm/" in item.nodeid.replace("\\", "/"):
            item.add_marker(pytest.mark.slurm)


@pytest.fixture(scope="session")
def slurm(tmp_path_factory):
    """A running single-node SLURM; skipped, with the install command, where the packages are missing."""
    reason = missing_reason()
    if reason is not None:
        pytest.skip(reason)
    cluster = SingleNodeSlurm(tmp_path_factory.mktemp("slurm"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()

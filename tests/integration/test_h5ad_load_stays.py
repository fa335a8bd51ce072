"""A ``.h5ad`` that anndata wrote loads downhill: each element described once, then read, with few returns
to a module already left (measured by :mod:`benchmarks.studies.h5ad_load_stays`).

Before one description per element (``h5stream.elements.snapshot``), following the file handle through a
load of the study's file gave 214 stays with 196 returns (``elements/registry.py`` entered 50 times,
``checksums/__init__.py`` 47), and every call of ``h5scp``/``h5stream`` 327 stays with 302 returns; with it,
57 stays with 43 returns, and 272 with 247.  The bounds below keep that from growing back.
"""

from __future__ import annotations

import collections

import pytest

pytest.importorskip("anndata")

from benchmarks.studies.h5ad_load_stays import stays, trace, write_file  # noqa: E402

#: Returns to a module already left, following the file handle (measured: 43; before: 196).
MAX_RETURNS_FOLLOWING_THE_FILE = 50
#: Returns, following every call of h5scp and h5stream (measured: 247; before: 302).
MAX_RETURNS_OF_ALL_CALLS = 265


@pytest.fixture(scope="module")
def traced(tmp_path_factory):
    path = tmp_path_factory.mktemp("stays") / "anndata.h5ad"
    write_file(path)
    return trace(path)


def _walk(calls):
    walk = stays(calls)
    entered = collections.Counter(module for module, _ in walk)
    return walk, entered


def test_the_trace_follows_the_load(traced):
    walk, entered = _walk(traced["h5"])
    # the load went through the element readers: the bounds below measure a real walk
    for module in ("h5scp/io/formats_h5ad.py", "h5stream/elements/snapshot.py", "h5stream/elements/dataframe.py",
                   "h5stream/elements/arrays.py", "h5stream/elements/strings.py", "h5stream/elements/sparse.py"):
        assert entered[module] >= 1, (module, entered)


def test_a_load_following_the_file_makes_few_returns(traced):
    walk, entered = _walk(traced["h5"])
    returns = len(walk) - len(entered)
    assert returns <= MAX_RETURNS_FOLLOWING_THE_FILE, (returns, entered.most_common())
    # the registry dispatches each read element once; the checksum module is asked once per element read
    # (its manifest), not once per member
    assert entered["h5stream/elements/registry.py"] <= 5, entered
    assert entered["h5stream/checksums/__init__.py"] <= 8, entered


def test_a_load_of_all_calls_makes_fewer_returns(traced):
    walk, entered = _walk(traced["all"])
    returns = len(walk) - len(entered)
    assert returns <= MAX_RETURNS_OF_ALL_CALLS, (returns, entered.most_common())

"""A ``.h5ad`` that anndata wrote loads downhill: each element described once, then read, with few returns
to a module already left (measured by :mod:`benchmarks.studies.h5ad_load_stays`).

Before one description per element (``h5stream.elements.snapshot``), following the file handle through a
load of the study's file gave 214 stays with 196 returns (``elements/registry.py`` entered 50 times,
``checksums/__init__.py`` 47), and every call of ``h5scp``/``h5stream`` 327 stays with 302 returns; with it,
57 stays with 43 returns, and 272 with 247; with the layer matrices read from the descriptions the group's
scan makes (one pass for all of them, not one per matrix read), 48 with 35, and 269 with 244.  The bounds below
keep that from growing back.

A partial load (some samples, features, one layer, two obs columns) described each element of its part as
it read it (the obs frame's columns one by one, a matrix's attributes, then its members' digests each
alone): 65 stays with 52 returns along the file handle; from one description of the frame and of each
matrix, 43 with 30 (41 with 28 from the scan's).  A ``.h5mu`` mudata wrote read ``/obs/_index`` twice (alone
for the samples' ids, then with the frame), 136 stays with 119 returns; once, 101 with 84 (partially: 124 with
110, then 84 with 70); with the layers described in one pass per modality, 87 with 71 (partially: 80 with 66).
"""

from __future__ import annotations

import collections

import pytest

pytest.importorskip("anndata")

from benchmarks.studies.h5ad_load_stays import (  # noqa: E402
    PARTIAL, PARTIAL_H5MU, stays, trace, write_file, write_layers_file, write_mudata,
)

#: Returns to a module already left, following the file handle (measured: 35; before: 196, then 43).
MAX_RETURNS_FOLLOWING_THE_FILE = 42
#: Returns, following every call of h5scp and h5stream (measured: 244; before: 302, then 247).
MAX_RETURNS_OF_ALL_CALLS = 262
#: Returns following the file handle in a partial .h5ad load (measured: 28; before: 52, then 30).
MAX_RETURNS_PARTIAL = 35
#: Returns following the file handle in a .h5mu load, whole and partial (measured: 71 and 66; before: 119, 110,
#: then 84, 70).
MAX_RETURNS_H5MU = {"whole": 82, "partial": 78}


@pytest.fixture(scope="module")
def h5ad(tmp_path_factory):
    path = tmp_path_factory.mktemp("stays") / "anndata.h5ad"
    write_file(path)
    return path


@pytest.fixture(scope="module")
def traced(h5ad):
    return trace(h5ad)


@pytest.fixture(scope="module")
def traced_part(h5ad):
    return trace(h5ad, PARTIAL)


@pytest.fixture(scope="module", params=["whole", "partial"])
def traced_h5mu(request, tmp_path_factory):
    pytest.importorskip("mudata")
    path = tmp_path_factory.mktemp("stays") / "mudata.h5mu"
    write_mudata(path)
    return request.param, trace(path, PARTIAL_H5MU if request.param == "partial" else None)


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


def _read_twice(calls):
    return {name: n for name, n in collections.Counter(calls["reads"]).items() if n > 1}


def test_a_load_reads_each_element_once(traced, traced_part):
    for calls in (traced, traced_part):
        assert calls["reads"] and not _read_twice(calls), _read_twice(calls)


def test_a_partial_load_takes_the_descriptions(traced_part):
    walk, entered = _walk(traced_part["h5"])
    # the part went through the partial readers and the column reads: the bound measures a real walk
    assert entered["h5scp/io/partial_hdf5.py"] >= 1 and entered["h5stream/elements/snapshot.py"] >= 1, entered
    assert {"/obs/cluster", "/obs/qc", "/var/_index"} <= set(traced_part["reads"]), traced_part["reads"]
    returns = len(walk) - len(entered)
    assert returns <= MAX_RETURNS_PARTIAL, (returns, entered.most_common())


def test_a_h5mu_load_reads_the_sample_ids_once(traced_h5mu):
    kind, calls = traced_h5mu
    assert "/obs/_index" in calls["reads"] and "/mod/prot/var/_index" in calls["reads"], calls["reads"]
    assert not _read_twice(calls), _read_twice(calls)
    walk, entered = _walk(calls["h5"])
    returns = len(walk) - len(entered)
    assert returns <= MAX_RETURNS_H5MU[kind], (kind, returns, entered.most_common())


#: The layer elements of the file ``write_layers_file`` writes: a dense ``X``, a CSR and a dense layer.
LAYER_ELEMENTS = ("/X", "/layers/counts", "/layers/scaled")


@pytest.fixture(scope="module", params=["whole", "partial"])
def traced_layers(request, tmp_path_factory):
    path = tmp_path_factory.mktemp("stays") / "layers.h5ad"
    write_layers_file(path)
    part = None if request.param == "whole" else {**PARTIAL, "layers": None}  # every layer, some cells
    return request.param, path, trace(path, part)


def test_a_load_describes_each_layer_element_once_in_one_pass(traced_layers):
    kind, path, calls = traced_layers
    import anndata as ad

    assert set(ad.read_h5ad(path).layers) == {"counts", "scaled"}  # (the file holds what the test counts)
    passes = [p for p in calls["described"] if set(p) & set(LAYER_ELEMENTS)]
    described = [name for p in passes for name in p if name in LAYER_ELEMENTS]
    # each layer element's attributes are read once, by the scan of its group, and the matrix reads take
    # those descriptions (before: one description per matrix read, in a pass of its own)
    assert sorted(described) == sorted(LAYER_ELEMENTS), (kind, passes)
    assert len(passes) == 1, (kind, passes)
    # the members of the CSR layer are described once too, when it is read
    members = [name for p in calls["described"] for name in p if name.startswith("/layers/counts/")]
    assert sorted(members) == ["/layers/counts/data", "/layers/counts/indices", "/layers/counts/indptr"], members

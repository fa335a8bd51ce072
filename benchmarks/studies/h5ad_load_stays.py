"""How often a ``.h5ad`` or ``.h5mu`` load moves between modules: stays and returns along the file handle.

An AnnData file is written by anndata itself (200 x 50 dense ``X``, a 10%-dense CSR layer, text, integer
and boolean obs columns, two categoricals, one with a category no row uses, ``uns`` and ``obsm``), opened
as a load opens it, and :func:`h5scp.io.formats_h5ad.container_from_h5ad` is traced with
:func:`sys.setprofile`, whole and partially (:data:`PARTIAL`: some samples, features, one layer and two obs
columns); a MuData file mudata wrote (two modalities of such groups, the second lacking every fourth
sample) likewise through :func:`h5scp.io.formats_h5mu.container_from_h5mu`.  Followed calls are those of functions in ``h5scp`` and ``h5stream`` (``src/``)
made inside it; three ways of choosing them:

* ``h5``: calls given an h5py object (the file, a group, a dataset, an attribute manager) as an argument:
  the file handle and what it opens;
* ``file``: calls given the ``h5py.File`` itself;
* ``all``: every call.

Besides, how often each element was read: the calls of the registry's dispatcher
(:func:`h5stream.elements.registry.read_node`), counted by the element's path; and each pass that read
elements' attributes (:func:`h5stream.elements.snapshot.describe_each`), as the paths it described.

A *stay* is a run of consecutive followed calls in one module; a *return* is a stay in a module the walk
had already left (returns = stays - modules).  Printed per way: calls, stays, modules, returns, then how
often each module was entered.  Run from the repository root (``PYTHONPATH`` picks the tree)::

    PYTHONPATH=src python -m benchmarks.studies.h5ad_load_stays [-v] [--partial | --h5mu]

``-v`` also lists every stay with the functions called in it.
"""

from __future__ import annotations

import collections
import sys
import tempfile
from pathlib import Path

import h5py
import numpy as np

_ROOTS = ("/h5scp/", "/h5stream/")


def _module(code) -> str | None:
    name = code.co_filename
    if "/src/" not in name:
        return None
    for root in _ROOTS:
        at = name.find(root)
        if at >= 0:
            return name[at + 1 :]
    return None


def _arguments(frame) -> list:
    code = frame.f_code
    names = code.co_varnames[: code.co_argcount + code.co_kwonlyargcount]
    return [frame.f_locals.get(n) for n in names]


_CHOOSE = {
    "h5": lambda args: any(isinstance(v, (h5py.HLObject, h5py.AttributeManager)) for v in args),
    "file": lambda args: any(isinstance(v, h5py.File) for v in args),
    "all": lambda args: True,
}


#: The partial load traced: some samples (out of order), some features, one layer, two obs columns.
PARTIAL = {"samples": ["c7", "c3", "c150", "c4", "c5", "c6"], "features": ["g9", "g2", "g30"],
           "layers": ["counts"], "obs_columns": ["cluster", "qc"]}
#: The partial load of the MuData file traced: those samples, the features of its first modality, one layer.
PARTIAL_H5MU = {"samples": PARTIAL["samples"], "features": {"rna": PARTIAL["features"]}, "layers": ["counts"]}


def write_file(path: Path) -> None:
    _anndata(np.random.default_rng(3)).write_h5ad(path)


def write_layers_file(path: Path) -> None:
    """:func:`write_file`'s kind of AnnData (dense ``X``, CSR ``counts``) with a second, dense layer ``scaled``."""
    adata = _anndata(np.random.default_rng(5))
    adata.layers["scaled"] = np.asarray(adata.X) * 2.0
    adata.write_h5ad(path)


def write_mudata(path: Path) -> None:
    """Two modalities of :func:`write_file`'s kind; the second lacks every fourth sample."""
    import warnings

    import mudata as md

    md.set_options(pull_on_update=False)  # (the root obs holds no modality's columns)
    rng = np.random.default_rng(4)
    first, second = _anndata(rng), _anndata(rng)
    second = second[[i % 4 != 0 for i in range(second.n_obs)]].copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (mudata's notes about its own defaults)
        md.MuData({"rna": first, "prot": second}).write_h5mu(path)


def _anndata(rng):
    import anndata as ad
    import pandas as pd
    from scipy import sparse

    n, g = 200, 50
    obs = pd.DataFrame({
        "cluster": pd.Categorical(rng.choice(["a", "b", "c"], n), categories=["a", "b", "c", "d"]),
        "batch": pd.Categorical(rng.integers(0, 3, n)), "n_genes": rng.integers(0, 100, n),
        "qc": rng.random(n) > 0.5, "label": [f"l{i}" for i in range(n)],
    }, index=[f"c{i}" for i in range(n)])
    var = pd.DataFrame({"gene": [f"G{i}" for i in range(g)], "hv": rng.random(g) > 0.5},
                       index=[f"g{i}" for i in range(g)])
    adata = ad.AnnData(X=rng.random((n, g)), obs=obs, var=var)
    adata.layers["counts"] = sparse.csr_matrix(rng.random((n, g)) * (rng.random((n, g)) < 0.1))
    adata.uns["params"] = {"k": 3, "name": "x"}
    adata.obsm["X_pca"] = rng.random((n, 5))
    return adata


def trace(path: Path, request: dict | None = None) -> dict[str, list]:
    """Per way of choosing: the followed calls of one load (``request``: its partial options), in order, as
    (module, function); under ``"reads"``, the path of each element the registry's dispatcher read; under
    ``"described"``, the paths of each pass of :func:`~h5stream.elements.snapshot.describe_each`, as a tuple."""
    from h5scp.io import formats_h5ad, formats_h5mu
    from h5scp.io._files import reading
    from h5stream.elements import registry, snapshot

    fmt = formats_h5mu if Path(path).suffix == ".h5mu" else formats_h5ad
    load = fmt.container_from_h5mu if fmt is formats_h5mu else fmt.container_from_h5ad
    target, dispatch, describe_each = load.__code__, registry.read_node.__code__, snapshot.describe_each.__code__
    calls: dict[str, list] = {way: [] for way in _CHOOSE}
    calls["reads"], calls["described"] = [], []
    depth = [0]

    def profile(frame, event, _arg):
        if event == "return" and frame.f_code is target:
            depth[0] -= 1
        if event != "call":
            return
        if frame.f_code is target:
            depth[0] += 1
        module = _module(frame.f_code) if depth[0] else None
        if module is None:
            return
        if frame.f_code is dispatch:
            calls["reads"].append(frame.f_locals["node"].name)
        if frame.f_code is describe_each:  # (its callers pass the paths as a list or tuple)
            calls["described"].append(tuple(frame.f_locals["names"]))
        args = _arguments(frame)
        for way, choose in _CHOOSE.items():
            if choose(args):
                calls[way].append((module, frame.f_code.co_name))

    check = fmt.check_h5mu if fmt is formats_h5mu else fmt.check_h5ad
    with reading(path, check(path)) as f:
        sys.setprofile(profile)
        try:
            load(f, path, request=request)
        finally:
            sys.setprofile(None)
    return calls


def stays(calls: list[tuple[str, str]]) -> list[tuple[str, list[str]]]:
    out: list[tuple[str, list[str]]] = []
    for module, function in calls:
        if out and out[-1][0] == module:
            out[-1][1].append(function)
        else:
            out.append((module, [function]))
    return out


def main(argv: list[str]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        if "--h5mu" in argv:
            path = Path(folder) / "mudata.h5mu"
            write_mudata(path)
        else:
            path = Path(folder) / "anndata.h5ad"
            write_file(path)
        partial = PARTIAL_H5MU if "--h5mu" in argv else PARTIAL
        traced = trace(path, partial if "--partial" in argv else None)
    reads = collections.Counter(traced.pop("reads"))
    traced.pop("described")
    print(f"elements read: {sum(reads.values())}, read more than once: "
          f"{ {name: n for name, n in reads.items() if n > 1} }")
    for way, calls in traced.items():
        walk = stays(calls)
        entered = collections.Counter(m for m, _ in walk)
        print(f"{way}: calls {len(calls)}  stays {len(walk)}  modules {len(entered)}  "
              f"returns {len(walk) - len(entered)}")
        for module, n in entered.most_common():
            print(f"  {n:4d}  {module}")
        if "-v" in argv:
            for module, functions in walk:
                print(f"    {module}: {', '.join(functions)}")


if __name__ == "__main__":
    main(sys.argv[1:])

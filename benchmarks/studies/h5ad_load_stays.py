"""How often a ``.h5ad`` load moves between modules: stays and returns along the file handle.

An AnnData file is written by anndata itself (200 x 50 dense ``X``, a 10%-dense CSR layer, text, integer
and boolean obs columns, two categoricals, one with a category no row uses, ``uns`` and ``obsm``), opened
as a load opens it, and :func:`h5scp.io.formats_h5ad.container_from_h5ad` is traced with
:func:`sys.setprofile`.  Followed calls are those of functions in ``h5scp`` and ``h5stream`` (``src/``)
made inside it; three ways of choosing them:

* ``h5``: calls given an h5py object (the file, a group, a dataset, an attribute manager) as an argument:
  the file handle and what it opens;
* ``file``: calls given the ``h5py.File`` itself;
* ``all``: every call.

A *stay* is a run of consecutive followed calls in one module; a *return* is a stay in a module the walk
had already left (returns = stays - modules).  Printed per way: calls, stays, modules, returns, then how
often each module was entered.  Run from the repository root (``PYTHONPATH`` picks the tree)::

    PYTHONPATH=src python -m benchmarks.studies.h5ad_load_stays [-v]

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


def write_file(path: Path) -> None:
    import anndata as ad
    import pandas as pd
    from scipy import sparse

    rng = np.random.default_rng(3)
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
    adata.write_h5ad(path)


def trace(path: Path) -> dict[str, list[tuple[str, str]]]:
    """Per way of choosing: the followed calls of one load, in order, as (module, function)."""
    from h5scp.io import formats_h5ad
    from h5scp.io._files import reading

    target = formats_h5ad.container_from_h5ad.__code__
    calls: dict[str, list[tuple[str, str]]] = {way: [] for way in _CHOOSE}
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
        args = _arguments(frame)
        for way, choose in _CHOOSE.items():
            if choose(args):
                calls[way].append((module, frame.f_code.co_name))

    with reading(path, formats_h5ad.check_h5ad(path)) as f:
        sys.setprofile(profile)
        try:
            formats_h5ad.container_from_h5ad(f, path)
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
        path = Path(folder) / "anndata.h5ad"
        write_file(path)
        traced = trace(path)
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

"""The plans' ``from scptensor.io import save_hdf5, load_hdf5`` for today's ScpTensor, by one explicit call.

ScpTensor (since March 2026) saves no container; scripts written against the
plans' API import its save and load functions from ``scptensor.io``.  With
upstream installed, one line before those imports makes them work::

    import h5scp; h5scp.enable_scptensor_io()
    from scptensor.io import save_hdf5, load_hdf5

:func:`enable_scptensor_io` sets the names of :data:`SCPTENSOR_IO_NAMES` as
attributes of the imported ``scptensor.io`` module, in this interpreter only:
no file of the installed package is written, and a name the module already has
is left as it is (and said).  The functions take upstream's containers and
load into upstream's classes (:mod:`h5scp.io.classes`).  They raise h5scp's
errors (:class:`~h5scp.io.exceptions.IOWriteError` ...), not ``scptensor.io``'s
own classes of the same names.  :func:`disable_scptensor_io` takes them away.
"""

from __future__ import annotations

import importlib
import sys
import types

from h5scp.core.exceptions import MissingDependencyError

__all__ = ["SCPTENSOR_IO_NAMES", "enable_scptensor_io", "disable_scptensor_io"]

#: Name in ``scptensor.io`` -> the ``h5scp.io`` function it is given (the plans' names).
SCPTENSOR_IO_NAMES = {
    "save_hdf5": "save_hdf5",
    "load_hdf5": "load_hdf5",
    "save_h5mu": "save_h5mu",
    "load_h5mu": "load_h5mu",
    "save_h5ad": "save_h5ad",
    "load_h5ad": "load_h5ad",
    "save_parquet": "save_parquet",
    "load_parquet": "load_parquet",
    "save": "save",
    "load": "load",
}

_MARK = "_h5scp_added"


def _scptensor_io() -> types.ModuleType:
    try:
        return importlib.import_module("scptensor.io")
    except ImportError as exc:
        raise MissingDependencyError("scptensor") from exc


def enable_scptensor_io(*, quiet: bool = False) -> list[str]:
    """Give the imported ``scptensor.io`` the functions of :data:`SCPTENSOR_IO_NAMES`; return the names added.

    Names ``scptensor.io`` already has are not replaced (the list leaves them
    out, and the line on stderr names them).  Calling it again adds nothing and
    returns an empty list (the names an earlier call added stay).
    ``quiet=True`` leaves out the line on stderr.
    """
    import h5scp.io

    target = _scptensor_io()
    earlier = getattr(target, _MARK, [])
    added, kept = [], []
    for name, source in SCPTENSOR_IO_NAMES.items():
        if name in earlier:
            continue
        if hasattr(target, name):
            kept.append(name)
            continue
        setattr(target, name, getattr(h5scp.io, source))
        added.append(name)
    setattr(target, _MARK, [*earlier, *added])
    if not quiet:
        line = f"h5scp: scptensor.io ({target.__file__}) has {', '.join(added) or 'nothing new'} from h5scp"
        if earlier:
            line += f"; {', '.join(earlier)} from an earlier call"
        if kept:
            line += f"; its own {', '.join(kept)} kept"
        print(line + " (h5scp.disable_scptensor_io() takes them away)", file=sys.stderr)
    return added


def disable_scptensor_io() -> list[str]:
    """Take back the names :func:`enable_scptensor_io` added; return them."""
    target = sys.modules.get("scptensor.io")
    added = getattr(target, _MARK, []) if target is not None else []
    for name in added:
        if hasattr(target, name):
            delattr(target, name)
    if target is not None and hasattr(target, _MARK):
        delattr(target, _MARK)
    return list(added)

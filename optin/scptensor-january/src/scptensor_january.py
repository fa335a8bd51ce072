"""The import name ``scptensor`` for ScpTensor's January 2026 API (7f8a443), served by ``h5scp``.

This module is the whole of the opt-in distribution ``scptensor-january``.  Its
``.pth`` file calls :func:`install` at interpreter start; from then on ``import
scptensor`` (and every January path ``scptensor.<module>``) is served as h5scp's
table of the January API says (:mod:`h5scp._january_table`, read on the first
import of ``scptensor``, never at interpreter start): a path the table serves
whole *is* that module of h5scp (``scptensor`` is ``h5scp``,
``scptensor.core.structures`` is ``h5scp.core.structures``, so the classes are one
set, whichever name imported them); any other path of the table is a module whose
names come from their homes in h5scp on first use (``scptensor.core.io``).  A path
the January API did not have is not served, whatever h5scp's own modules are.

It never installs over another ScpTensor: no file of this distribution lies in a
``scptensor`` folder, so pip never merges it into another's files or removes
theirs; and while any other importer on the interpreter (a ``scptensor`` folder on
``sys.path``, an editable install's finder) can import a ``scptensor``, that one is
imported and this alias stands aside.  :func:`serving` says which it is.
"""

from __future__ import annotations

# Only what interpreter start has imported already: the .pth file imports this module in every start
# (importlib.abc and importlib.util would add their imports to each: 20 ms at the least, measured).
import importlib
import importlib.machinery
import sys

__all__ = ["ALIAS", "TARGET", "install", "uninstall", "serving"]

#: The import name served, the package that serves it, and its table of the January API's paths.
ALIAS, TARGET, TABLE = "scptensor", "h5scp", "h5scp._january_table"


def _find_spec(name: str):
    import importlib.util  # on the first import of scptensor, not at interpreter start

    return importlib.util.find_spec(name)


def _table():
    """h5scp's table of the January API (imported with h5scp, on the first import of scptensor)."""
    return importlib.import_module(TABLE)


class _Redirect:
    """Loads a January path the table serves whole as the already existing module of h5scp (no second copy).

    The import system returns whatever ``sys.modules[name]`` holds after
    ``exec_module``, so the module put there is ``h5scp``'s own, with its own spec.
    """

    def __init__(self, target: str) -> None:
        self.target = target

    def create_module(self, spec):
        return None

    def exec_module(self, module) -> None:
        sys.modules[module.__name__] = importlib.import_module(self.target)

    def get_code(self, fullname: str):  # ``python -m scptensor``: runpy asks the loader for the code
        spec = _find_spec(self.target)
        return spec.loader.get_code(spec.name)


class _FromTable:
    """Makes a January path whose names live in several modules of h5scp: each name from its home on first use."""

    def create_module(self, spec):
        return None

    def exec_module(self, module) -> None:
        _table().serve(module)


class _AliasFinder:
    """First on ``sys.meta_path``; answers only for ``scptensor`` while no other finder does."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != ALIAS and not fullname.startswith(ALIAS + "."):
            return None
        if fullname == ALIAS:
            if _other_scptensor() is not None or _find_spec(TARGET) is None:
                return None
        elif getattr(sys.modules.get(ALIAS), "__name__", None) != TARGET:
            return None  # another scptensor is imported: its submodules are its own
        table = _table()
        if fullname not in table.JANUARY_API:
            # no second copy of an h5scp module under another name: the January API had no such path
            raise ModuleNotFoundError(
                f"No module named {fullname!r}: ScpTensor's January API (served by h5scp through the opt-in "
                f"scptensor-january) has no such module; its paths are {', '.join(table.JANUARY_API)}",
                name=fullname)
        whole = table.SERVED_WHOLE.get(fullname)
        if whole is None:
            return importlib.machinery.ModuleSpec(fullname, _FromTable(), is_package=table.is_package(fullname))
        real = _find_spec(whole)
        # a package's spec says so, so that ``python -m scptensor`` runs ``scptensor.__main__``
        return importlib.machinery.ModuleSpec(fullname, _Redirect(whole),
                                              is_package=real.submodule_search_locations is not None)


def _other_scptensor():
    """The spec of a ``scptensor`` another finder would import, or None."""
    for finder in sys.meta_path:
        if isinstance(finder, _AliasFinder) or not hasattr(finder, "find_spec"):
            continue
        spec = finder.find_spec(ALIAS, None)
        if spec is not None:
            return spec
    return None


def install() -> None:
    """Serve ``scptensor`` from ``h5scp`` in this interpreter (idempotent; the ``.pth`` file calls it)."""
    if not any(isinstance(f, _AliasFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _AliasFinder())


def uninstall() -> None:
    """Stop serving ``scptensor`` (modules already imported stay imported)."""
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _AliasFinder)]


def serving() -> str:
    """One line: which ``scptensor`` ``import scptensor`` gives in this interpreter."""
    other = _other_scptensor()
    if other is not None:
        where = other.origin or ", ".join(other.submodule_search_locations or []) or "?"
        return f"scptensor is another distribution's ({where}); the January API alias stands aside"
    if not any(isinstance(f, _AliasFinder) for f in sys.meta_path):
        return "scptensor: the January API alias is not installed in this interpreter"
    target = _find_spec(TARGET)
    if target is None:
        return (f"scptensor: the January API alias is installed but {TARGET} is not, so `import scptensor` "
                "fails; install it: pip install h5stream (the distribution that holds h5scp)")
    return f"scptensor is h5scp's January API ({target.origin})"


if __name__ == "__main__":  # python -m scptensor_january: ask the module the .pth imported
    import scptensor_january

    print(scptensor_january.serving())

"""The import name ``scptensor`` for ScpTensor's January 2026 API (7f8a443), served by ``h5scp``.

This module is the whole of the opt-in distribution ``scptensor-january``.  Its
``.pth`` file calls :func:`install` at interpreter start; from then on ``import
scptensor`` (and every ``scptensor.<module>``) gives the module of ``h5scp`` of the
same path: ``scptensor.core.structures`` *is* ``h5scp.core.structures``, so the
classes are one set, whichever name imported them.

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

#: The import name served, and the package that serves it.
ALIAS, TARGET = "scptensor", "h5scp"


def _target_name(fullname: str) -> str:
    return TARGET + fullname[len(ALIAS):]


def _find_spec(name: str):
    import importlib.util  # on the first import of scptensor, not at interpreter start

    return importlib.util.find_spec(name)


class _Redirect:
    """Loads ``scptensor.<path>`` as the already existing ``h5scp.<path>`` module (no second copy).

    The import system returns whatever ``sys.modules[name]`` holds after
    ``exec_module``, so the module put there is ``h5scp``'s own, with its own spec.
    """

    def create_module(self, spec):
        return None

    def exec_module(self, module) -> None:
        sys.modules[module.__name__] = importlib.import_module(_target_name(module.__name__))

    def get_code(self, fullname: str):  # ``python -m scptensor``: runpy asks the loader for the code
        spec = _find_spec(_target_name(fullname))
        return spec.loader.get_code(spec.name)


class _AliasFinder:
    """First on ``sys.meta_path``; answers only for ``scptensor`` while no other finder does."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != ALIAS and not fullname.startswith(ALIAS + "."):
            return None
        if fullname == ALIAS:
            if _other_scptensor() is not None:
                return None
        elif getattr(sys.modules.get(ALIAS), "__name__", None) != TARGET:
            return None  # another scptensor is imported: its submodules are its own
        real = _find_spec(_target_name(fullname))
        if real is None:
            return None
        # a package's spec says so, so that ``python -m scptensor`` runs ``scptensor.__main__``
        return importlib.machinery.ModuleSpec(fullname, _Redirect(),
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

"""Native code has one home (``h5stream.native``), and the faces hold none of it.

Read from the source text (imports and calls), so a new module that loads a C library itself, imports
h5py's private modules or a compiled kernel directly, or brings compression code into a face fails here.
"""

from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path

import numpy as np
import pytest

SRC = Path(__file__).resolve().parents[2] / "src"


def _modules(package: str) -> dict[str, ast.Module]:
    return {path.relative_to(SRC).as_posix(): ast.parse(path.read_text(encoding="utf-8"))
            for path in sorted((SRC / package).rglob("*.py"))}


def _imports(tree: ast.Module) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _calls(tree: ast.Module, function: str) -> int:
    """Calls of ``function`` (``x.function(...)`` or ``function(...)``) in the module."""
    return sum(1 for node in ast.walk(tree) if isinstance(node, ast.Call) and (
        (isinstance(node.func, ast.Attribute) and node.func.attr == function)
        or (isinstance(node.func, ast.Name) and node.func.id == function)))


@pytest.mark.parametrize("face", ["hdmea", "h5scp"])
def test_faces_hold_no_native_code_no_h5py_privates_and_no_compression(face):
    offenders = []
    for path, tree in _modules(face).items():
        for name in sorted(_imports(tree)):
            top = name.split(".")
            if (top[0] in ("ctypes", "zlib", "gzip", "mmap") or name.startswith("h5py._")
                    or name.startswith(("h5stream.native", "h5stream._ext", "h5stream.lowlevel"))):
                offenders.append(f"{path} imports {name}")
        if _calls(tree, "CDLL"):
            offenders.append(f"{path} loads a C library")
    assert not offenders, "\n".join(offenders)


def test_every_c_library_and_compiled_kernel_is_loaded_in_one_place():
    offenders = []
    for path, tree in _modules("h5stream").items():
        if path.startswith("h5stream/native/"):
            continue
        if _calls(tree, "CDLL") or _calls(tree, "find_library"):
            offenders.append(f"{path} loads a C library (use h5stream.native.load_library)")
        for name in _imports(tree):
            if name.startswith("h5py._"):
                offenders.append(f"{path} imports {name} (h5stream.native.libhdf5 holds h5py's lock)")
            if name.startswith("h5stream._ext"):
                offenders.append(f"{path} imports {name} (use h5stream.native.compiled)")
    assert not offenders, "\n".join(offenders)


def test_a_missing_compiled_kernel_names_the_rebuild_command(monkeypatch):
    from h5stream.native import REBUILD, compiled

    monkeypatch.setitem(sys.modules, "h5stream._ext._section", None)  # the import fails
    with pytest.raises(ImportError, match="h5stream._ext._section") as info:
        compiled("_section")
    assert REBUILD in str(info.value) and "build_ext --inplace" in str(info.value)
    kernels = importlib.import_module("h5stream.kernels.sectioning")
    with pytest.raises(ImportError, match="rebuild it with"):  # a kernel's caller gets the same error
        kernels.section_sorted(np.arange(4), np.array([0, 4]), np.array([[0, 2]]))

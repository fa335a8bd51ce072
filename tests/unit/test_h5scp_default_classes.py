"""The classes a load builds by default: the installed ScpTensor's when ``scptensor.core.structures`` imports,
else ours; a failed import is tried again once ``sys.path`` changed (a package written into a temporary
directory put on the path plays an ScpTensor installed after a first load)."""

from __future__ import annotations

import sys
from h5scp.io import classes


def test_a_failed_import_is_retried_once_the_path_changes(monkeypatch, tmp_path):
    # a module name no test serves, installed (onto the path) only after a first load looked for it
    monkeypatch.setattr(classes, "_UPSTREAM", "upstream_standin_later.structures")
    monkeypatch.setattr(classes, "_MISSING_ON", None)
    assert classes.default_classes() is classes.OURS
    assert classes._MISSING_ON == tuple(sys.path)  # remembered: the next load does not search again
    assert classes.default_classes() is classes.OURS
    package = tmp_path / "upstream_standin_later"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "structures.py").write_text("".join(
        f"class {name}:\n    pass\n" for name in
        ("ScpContainer", "Assay", "ScpMatrix", "MatrixMetadata", "ProvenanceLog", "AggregationLink")))
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        found = classes.default_classes()
        assert found is not classes.OURS
        assert found.container.__module__ == "upstream_standin_later.structures"
        assert found.link.__name__ == "AggregationLink"
    finally:
        for name in ("upstream_standin_later.structures", "upstream_standin_later"):
            sys.modules.pop(name, None)


def test_an_imported_module_is_taken_without_searching(monkeypatch):
    class Module:
        __name__ = "scptensor.core.structures"

    for role, name in (("container", "ScpContainer"), ("assay", "Assay"), ("matrix", "ScpMatrix"),
                       ("metadata", "MatrixMetadata"), ("provenance", "ProvenanceLog"), ("link", "AggregationLink")):
        setattr(Module, name, type(name, (), {}))
    monkeypatch.setitem(sys.modules, "scptensor.core.structures", Module)
    monkeypatch.setattr(classes, "_MISSING_ON", tuple(sys.path))  # a failure remembered for this very path
    found = classes.default_classes()
    assert found.container is Module.ScpContainer and found.link is Module.AggregationLink

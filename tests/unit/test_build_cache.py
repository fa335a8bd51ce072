"""The build cache of ``setup.py``: one compile per machine, and never a partial or damaged entry used.

``setup.py`` is imported as a module (its ``setup()`` call runs only as ``__main__``),
and its cache functions are driven with stand-in "compiled" files: what matters here is
which bytes end up at the install paths, compared with the bytes stored.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def build():
    spec = importlib.util.spec_from_file_location("h5stream_setup_under_test", ROOT / "setup.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def compiled(tmp_path):
    """Two stand-in extension files, as a build leaves them."""
    out = tmp_path / "build"
    out.mkdir()
    files = {}
    for i, name in enumerate(("h5stream._ext._a", "h5stream._ext._b")):
        path = out / f"{name.rsplit('.', 1)[1]}.cpython-311-x86_64-linux-gnu.so"
        path.write_bytes(os.urandom(4096 + i))
        files[name] = path
    return files


def _targets(tmp_path, compiled):
    return {name: tmp_path / "site" / path.name for name, path in compiled.items()}


def test_a_stored_entry_is_restored_byte_for_byte(build, tmp_path, compiled):
    root = tmp_path / "cache"
    entry = build.store_in_cache(root, "k1", compiled)
    assert entry == root / "k1"
    manifest = json.loads((entry / build.MANIFEST).read_text())
    assert sorted(manifest["files"]) == sorted(compiled)
    assert not [p for p in root.iterdir() if p.name.startswith(".")]  # no temporary folder left
    targets = _targets(tmp_path, compiled)
    assert build.restore_from_cache(root, "k1", targets)
    for name, path in compiled.items():
        assert targets[name].read_bytes() == path.read_bytes()
    assert not build.restore_from_cache(root, "other-key", targets)  # a miss


@pytest.mark.parametrize("damage", ["no manifest", "flipped byte", "truncated", "file missing",
                                    "extension missing", "manifest not json"])
def test_a_partial_or_damaged_entry_is_never_used(build, tmp_path, compiled, damage, capsys):
    root = tmp_path / "cache"
    entry = build.store_in_cache(root, "k1", compiled)
    victim = entry / compiled["h5stream._ext._b"].name
    manifest_path = entry / build.MANIFEST
    if damage == "no manifest":  # what an interrupted store would look like under the final name
        manifest_path.unlink()
    elif damage == "flipped byte":
        data = bytearray(victim.read_bytes())
        data[100] ^= 0xFF
        victim.write_bytes(bytes(data))
    elif damage == "truncated":
        victim.write_bytes(victim.read_bytes()[:1000])
    elif damage == "file missing":
        victim.unlink()
    elif damage == "extension missing":
        manifest = json.loads(manifest_path.read_text())
        del manifest["files"]["h5stream._ext._b"]
        manifest_path.write_text(json.dumps(manifest))
    else:
        manifest_path.write_text('{"files": ')
    targets = _targets(tmp_path, compiled)
    assert not build.restore_from_cache(root, "k1", targets)
    assert not any(t.exists() for t in targets.values())  # nothing copied from a bad entry
    assert not entry.exists()  # set aside, so that the compile that follows can store a good one
    assert "damaged or partial cache entry" in capsys.readouterr().err
    assert build.store_in_cache(root, "k1", compiled) == entry
    assert build.restore_from_cache(root, "k1", targets)


def test_a_failed_store_leaves_no_entry(build, tmp_path, compiled, capsys):
    root = tmp_path / "cache"
    broken = dict(compiled)
    broken["h5stream._ext._c"] = tmp_path / "never-built.so"
    assert build.store_in_cache(root, "k1", broken) is None
    assert list(root.iterdir()) == []
    assert "the next install compiles again" in capsys.readouterr().err


def test_the_key_follows_sources_flags_and_numpy(build, tmp_path, monkeypatch):
    here = tmp_path / "src"
    shutil.copytree(ROOT / "ext", here / "ext", ignore=shutil.ignore_patterns("*.c", "*.so"))
    shutil.copy(ROOT / "setup.py", here / "setup.py")
    monkeypatch.setattr(build, "HERE", here)
    exts = build._extensions()
    assert [e.name.rsplit(".", 1)[1] for e in exts] == sorted(p.stem for p in (here / "ext").glob("*.pyx"))
    build._set_flags(exts)
    key = build.build_key(exts)
    assert build.build_key(exts) == key
    with open(here / "ext" / "_bins.pyx", "a") as f:
        f.write("\n# a changed kernel\n")
    changed_source = build.build_key(exts)
    assert changed_source != key
    exts[0].extra_compile_args = [*exts[0].extra_compile_args, "-O0"]
    changed_flags = build.build_key(exts)
    assert changed_flags not in (key, changed_source)
    import numpy as np

    monkeypatch.setattr(np, "__version__", "0.0.0")
    assert build.build_key(exts) not in (key, changed_source, changed_flags)


@pytest.mark.parametrize("setting", ["off", "0", "false"])
def test_the_cache_can_be_switched_off(build, monkeypatch, setting):
    monkeypatch.setenv("H5STREAM_BUILD_CACHE", setting)
    assert build._cache_root() is None


def test_the_cache_is_per_user(build, monkeypatch, tmp_path):
    monkeypatch.delenv("H5STREAM_BUILD_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert build._cache_root() == tmp_path / "h5stream" / "ext"
    monkeypatch.setenv("H5STREAM_BUILD_CACHE", str(tmp_path / "mine"))
    assert build._cache_root() == tmp_path / "mine"


def test_every_extension_depends_on_the_headers_beside_it(build):
    """A header or an include edited alone makes the compiler run again (setuptools compares the times of
    ``depends`` with the object's), so the cache never stores an object built from the old header."""
    shared = {p.name for p in (ROOT / "ext").iterdir() if p.suffix in (".h", ".pxi", ".pxd")}
    assert {"_windows_rows.h", "_crc32_fold.h"} <= shared
    for ext in build._extensions():
        assert {Path(d).name for d in ext.depends} == shared, ext.name
        assert all((ROOT / d).is_file() for d in ext.depends), ext.name

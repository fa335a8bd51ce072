"""List, nested-list, binary and struct obs/var columns load in every format as polars' own columns.

Each load is used in a child interpreter (``to_list``, ``explode``, ``==``, struct fields) so that a
polars that crashes on a column it was handed (polars 1.0 to 1.36 on a 64-bit-offset list of
``large_string``: a segmentation fault) fails one test instead of ending the run. One child serves the
module's tests in turn (its imports of polars and h5scp took most of each test's time); one that ended
fails the test it was checking and is started again for the next. The same tests run under the oldest
polars the package allows, upstream ScpTensor's pin and the newest (``.ci/run``).
"""

from __future__ import annotations

import json
import selectors
import subprocess
import sys
import textwrap

import numpy as np
import polars as pl
import pytest

import h5scp
from h5scp import Assay, ScpContainer, ScpMatrix
from h5stream.elements.awkward_layout import list_series

FORMATS = [".h5", ".h5mu", ".h5ad", ".parquet", ".zarr"]

# the columns, as Python source: the child builds them again to compare with what it loaded
COLUMNS = {
    "tags": 'pl.Series([["a", "b"], [], None, ["é", None]], dtype=pl.List(pl.String))',
    "blobs": 'pl.Series([[b"a", b"\\x00"], [], None, [None]], dtype=pl.List(pl.Binary))',
    "nested": 'pl.Series([[["a"], ["b", "c"]], [[]], None, [None, ["d"]]], dtype=pl.List(pl.List(pl.String)))',
    "record": ('pl.Series([{"x": ["a"], "y": 1}, {"x": [], "y": 2}, None, {"x": None, "y": None}],'
               ' dtype=pl.Struct({"x": pl.List(pl.String), "y": pl.Int64}))'),
    "records": ('pl.Series([[{"x": ["a"], "y": 1}], [None], None, []],'
                ' dtype=pl.List(pl.Struct({"x": pl.List(pl.Binary), "y": pl.Int64})))'),
    "raw": 'pl.Series([b"a", b"", None, b"\\xff"], dtype=pl.Binary)',
    "pairs": 'pl.Series([["a", "b"], ["c", None], None, ["d", "e"]], dtype=pl.Array(pl.String, 2))',
    "levels": 'pl.Series([["x", "y"], [], None, ["x"]], dtype=pl.List(pl.Categorical))',
}

CHILD = textwrap.dedent("""
    import json
    import sys
    import traceback
    import polars as pl
    import h5scp
    from h5scp.io.classes import OURS

    def check(path, name, source):
        expected = eval(source).alias(name)
        for frame in (h5scp.load(path, classes=OURS).obs, h5scp.load(path, classes=OURS).assays["p"].var):
            got = frame[name]
            assert got.dtype == expected.dtype, (got.dtype, expected.dtype)
            assert got.to_list() == expected.to_list(), got.to_list()
            assert got.is_null().to_list() == expected.is_null().to_list()
            if isinstance(got.dtype, pl.List):
                assert got.explode().to_list() == expected.explode().to_list()
                assert got.list.len().to_list() == expected.list.len().to_list()
            if isinstance(got.dtype, pl.Struct):
                for field in got.dtype.fields:
                    assert got.struct.field(field.name).to_list() == expected.struct.field(field.name).to_list()
            assert (got == expected).to_list() == (expected == expected).to_list()
            assert frame.filter(pl.col(name).is_not_null()).height == expected.is_not_null().sum()

    print("ready", flush=True)
    for line in sys.stdin:  # one check a line: [path, name, source]
        try:
            check(*json.loads(line))
        except Exception:  # noqa: BLE001 - the test prints it
            print(json.dumps(traceback.format_exc()), flush=True)
        else:
            print(json.dumps("ok"), flush=True)
""")


class Child:
    """A child interpreter that checks loads one at a time; started again after one that ended."""

    TIMEOUT = 120  # seconds for the start and for each check

    def __init__(self, folder):
        self.folder = folder
        self.proc = None
        self.starts = 0

    def _start(self):
        self.starts += 1
        self.stderr = open(self.folder / f"stderr-{self.starts}.txt", "w+")  # noqa: SIM115 (closed in _end)
        self.proc = subprocess.Popen([sys.executable, "-c", CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.stderr, text=True)
        first = self._reply()
        assert first == "ready", first

    def _reply(self):
        """The child's next line, or what became of it: an exit code and its standard error."""
        with selectors.DefaultSelector() as selector:
            selector.register(self.proc.stdout, selectors.EVENT_READ)
            if not selector.select(self.TIMEOUT):
                self._end()
                return f"no answer in {self.TIMEOUT} s"
        line = self.proc.stdout.readline()
        if not line:
            code = self.proc.wait(timeout=self.TIMEOUT)
            self.stderr.seek(0)
            error = self.stderr.read()[-3000:]
            self._end()
            return f"exit {code}: {error}"
        return line.strip() if line.strip() == "ready" else json.loads(line)

    def _end(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc.stdin.close()
            self.proc.stdout.close()
            self.stderr.close()
            self.proc = None

    def check(self, path, name, source):
        if self.proc is None:
            self._start()
        self.proc.stdin.write(json.dumps([str(path), name, source]) + "\n")
        self.proc.stdin.flush()
        return self._reply()


@pytest.fixture(scope="module")
def child(tmp_path_factory):
    checker = Child(tmp_path_factory.mktemp("nested-columns-child"))
    yield checker
    checker._end()


def _container(name: str, column: pl.Series) -> ScpContainer:
    obs = pl.DataFrame({"_index": [f"s{i}" for i in range(4)]}).with_columns(column.alias(name))
    var = pl.DataFrame({"_index": [f"P{i}" for i in range(4)]}).with_columns(column.alias(name))
    return ScpContainer(obs, {"p": Assay(var, {"raw": ScpMatrix(np.arange(16.0).reshape(4, 4))})})


@pytest.mark.parametrize("suffix", FORMATS)
@pytest.mark.parametrize("name", sorted(COLUMNS))
def test_nested_columns_load_as_polars_own_columns(tmp_path, suffix, name, child):
    column = eval(COLUMNS[name], {"pl": pl})  # noqa: S307 (our own table above)
    path = tmp_path / f"c{suffix}"
    h5scp.save(_container(name, column), path, **({"assay": "p"} if suffix == ".h5ad" else {}))
    outcome = child.check(path, name, COLUMNS[name])
    assert outcome == "ok", f"polars {pl.__version__}: {outcome}"


def test_list_series_splits_lists_past_32_bit_offsets(monkeypatch):
    """Lists are handed over with 32-bit offsets, in chunks when the values pass what one chunk holds."""
    import h5stream.elements.awkward_layout as layout

    monkeypatch.setattr(layout, "_LIST32_SPAN", 3)
    values = pl.Series(["a", "b", "c", "d", "e", "f", "g"])
    offsets = np.array([0, 2, 2, 5, 6, 7])
    valid = np.array([True, True, False, True, True])
    got = list_series(offsets, values, valid)
    assert got.to_list() == [["a", "b"], [], None, ["f"], ["g"]]
    with pytest.raises(layout.LayoutError, match="more than one Arrow list holds"):
        list_series(np.array([0, 4]), values.head(4))
    assert list_series(np.array([0]), values.head(0)).to_list() == []


def test_a_child_that_ended_fails_its_check_and_the_next_check_gets_a_new_one(tmp_path, child):
    path = tmp_path / "c.h5"
    h5scp.save(_container("raw", eval(COLUMNS["raw"], {"pl": pl})), path)  # noqa: S307 (our own table above)
    assert child.check(path, "raw", COLUMNS["raw"]) == "ok"
    starts = child.starts
    ended = child.check(path, "raw", "__import__('os')._exit(3)")
    assert ended.startswith("exit 3: "), ended
    failed = child.check(path, "raw", COLUMNS["tags"])
    assert "AssertionError" in failed and "Traceback" in failed, failed
    assert child.check(path, "raw", COLUMNS["raw"]) == "ok"
    assert child.starts == starts + 1

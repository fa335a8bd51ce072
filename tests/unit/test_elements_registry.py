"""Registry behaviour: stamping, dispatch, unknown encodings, unrepresentable values."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest

from h5stream.elements import ElementSpec, read_elem, read_spec, register_reader, register_writer, write_elem
from h5stream.errors import EncodingError, FormatError, MissingPluginError, UnknownEncodingError, UnsafeNameError


def test_writer_stamps_encoding_attributes(h5):
    write_elem(h5, "x", np.arange(3))
    assert h5["x"].attrs["encoding-type"] == "array"
    assert h5["x"].attrs["encoding-version"] == "0.2.0"


def test_layered_encoding_keeps_spec_attributes_underneath(h5):
    import polars as pl

    write_elem(h5, "d", pl.Series("d", [1, 2]).cast(pl.Datetime("ms", "UTC")))
    attrs = h5["d"].attrs
    assert (attrs["encoding-type"], attrs["encoding-version"]) == ("array", "0.2.0")
    assert (attrs["h5stream:encoding-type"], attrs["h5stream:encoding-version"]) == ("h5stream:datetime", "0.1.0")
    assert read_spec(h5["d"]) == ElementSpec("h5stream:datetime", "0.1.0", layered=True)


def test_unknown_encoding_names_object_and_encoding(h5):
    ds = h5.create_dataset("odd/thing", data=[1, 2])
    ds.attrs["encoding-type"] = "awkward-array"
    ds.attrs["encoding-version"] = "9.9.9"
    with pytest.raises(UnknownEncodingError) as info:
        read_elem(ds)
    text = str(info.value)
    assert "/odd/thing" in text and "awkward-array" in text and "9.9.9" in text
    assert h5.filename in text


def test_unknown_version_of_known_type_lists_known_versions(h5):
    ds = h5.create_dataset("x", data=[1])
    ds.attrs["encoding-type"] = "array"
    ds.attrs["encoding-version"] = "7.0.0"
    with pytest.raises(UnknownEncodingError, match=r"array 0\.2\.0"):
        read_elem(ds)


def test_missing_attributes_raise_unknown_encoding(h5):
    h5.create_dataset("bare", data=[1])
    with pytest.raises(UnknownEncodingError, match="no encoding attributes"):
        read_elem(h5["bare"])


@pytest.mark.parametrize(
    "value",
    [
        {1, 2},
        object(),
        np.array([object(), 1], dtype=object),
        {"a": {"b": lambda x: x}},
        {(1, 2): 3},
        {True: 1},
        [1, object()],
        2**70,
    ],
)
def test_unrepresentable_values_raise_encoding_error(h5, value):
    with pytest.raises(EncodingError):
        write_elem(h5, "bad", value)
    assert "bad" not in h5  # nothing half-written stays behind


def test_bad_names_are_refused(h5):
    for name in ["", "a/b", ".", ".."]:
        with pytest.raises(UnsafeNameError):
            write_elem(h5, name, 1)


def test_existing_name_is_not_overwritten(h5):
    write_elem(h5, "x", 1)
    with pytest.raises(EncodingError, match="already exists"):
        write_elem(h5, "x", 2)
    assert read_elem(h5["x"]) == 1


def test_custom_codec_registration(h5):
    class Point:
        def __init__(self, x, y):
            self.x, self.y = x, y

    spec = ElementSpec("test:point", "0.1.0")

    @register_writer(Point, spec)
    def _write(parent, key, value, options):
        return parent.create_dataset(key, data=np.array([value.x, value.y]))

    @register_reader(spec)
    def _read(ds, *, series=False):
        x, y = ds[()]
        return Point(x, y)

    try:
        write_elem(h5, "p", Point(3.0, 4.0))
        p = read_elem(h5["p"])
        assert (p.x, p.y) == (3.0, 4.0)
    finally:
        from h5stream.elements.registry import unregister

        unregister(Point, spec)  # the encoding can be registered again in this process


def test_a_reader_registered_with_node_gets_the_attributes_read_once(h5):
    class Tagged:
        def __init__(self, tag):
            self.tag = tag

    spec = ElementSpec("test:tagged", "0.1.0")
    seen = []

    @register_writer(Tagged, spec)
    def _write(parent, key, value, options):
        ds = parent.create_dataset(key, data=np.zeros(1))
        ds.attrs["tag"] = value.tag
        ds.attrs["count"] = np.int32(7)
        return ds

    @register_reader(spec, node=True)
    def _read(node, *, series=False):
        seen.append(node.values)
        assert node.obj == h5["t"] and node.name == "/t" and node.spec == spec
        return Tagged(node.attrs["tag"])

    try:
        write_elem(h5, "t", Tagged("alpha"))
        assert read_elem(h5["t"]).tag == "alpha"
        # every attribute, as plain h5py reads them
        expected = {name: h5["t"].attrs[name] for name in h5["t"].attrs}
        assert seen[0].keys() == expected.keys() and seen[0]["count"] == 7 and seen[0]["tag"] == "alpha"
    finally:
        from h5stream.elements.registry import unregister

        unregister(Tagged, spec)


def test_a_frame_read_takes_its_group_attributes_from_one_pass(h5, monkeypatch):
    import polars as pl

    frame = pl.DataFrame({"id": ["a", "b"], "x": [1.0, 2.0]})
    write_elem(h5, "f", frame, index="id")
    reads = []
    original = h5py.AttributeManager.__getitem__

    def counting(self, name):
        reads.append((h5py.h5i.get_name(self._id), name))
        return original(self, name)

    monkeypatch.setattr(h5py.AttributeManager, "__getitem__", counting)
    assert read_elem(h5["f"]).equals(frame)
    # the group's own attributes (column names, members, index) come from the one batched read
    assert not [r for r in reads if r[0] == b"/f" and r[1] != "column-order"], reads


def test_corrupt_member_becomes_format_error(h5):
    write_elem(h5, "m", {"a": [1, 2, 3]})
    del h5["m/a"]
    h5["m"].attrs["h5stream:keys"] = '["a"]'
    with pytest.raises(FormatError, match="/m"):
        read_elem(h5["m"])


def test_plugin_codec_read_without_plugin_says_so(tmp_path):
    pytest.importorskip("hdf5plugin")
    path = tmp_path / "z.h5"
    with h5py.File(path, "w") as f:
        write_elem(f, "x", np.arange(100_000, dtype=np.float64), compression="zstd")
    code = textwrap.dedent(
        f"""
        import sys
        sys.modules["hdf5plugin"] = None  # as if the extra were not installed
        import h5py
        from h5stream.elements import read_elem
        from h5stream.errors import MissingPluginError
        with h5py.File({str(path)!r}, "r") as f:
            try:
                read_elem(f["x"])
            except MissingPluginError as exc:
                print("MISSING", exc)
            else:
                print("READ")
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("MISSING"), done.stdout
    assert "/x" in done.stdout and "hdf5plugin" in done.stdout
    # With the plugin installed, read_elem loads it by itself.
    code_loaded = code.replace('sys.modules["hdf5plugin"] = None', "pass")
    done = subprocess.run([sys.executable, "-c", code_loaded], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "READ"
    with h5py.File(path, "r") as f:
        assert np.array_equal(read_elem(f["x"]), np.arange(100_000, dtype=np.float64))
    assert issubclass(MissingPluginError, FormatError)


def test_unknown_encoding_inside_a_frame_names_the_column(h5):
    import polars as pl

    write_elem(h5, "df", pl.DataFrame({"a": [1, 2], "b": ["x", "y"]}))
    h5["df/b"].attrs["encoding-type"] = "future-strings"
    with pytest.raises(UnknownEncodingError) as info:
        read_elem(h5["df"])
    assert "/df/b" in str(info.value) and "future-strings" in str(info.value)


def test_inconsistent_values_become_format_errors(h5):
    import polars as pl

    write_elem(h5, "l", pl.Series("l", [[1, 2], [3]]))
    offsets = h5["l/node0-offsets"]  # the list's offsets in its awkward-array buffers
    offsets[...] = np.array([0, 5, 1])  # offsets beyond the values and decreasing
    with pytest.raises(FormatError, match="/l.*offsets of node0"):
        read_elem(h5["l"])
    offsets[...] = np.array([0, 2, 5])  # past the 3 values held
    with pytest.raises(FormatError, match="/l.*node1-data holds 3 values where 5 are needed"):
        read_elem(h5["l"])
    del h5["l/node1-data"]
    with pytest.raises(FormatError, match="/l.*buffer 'node1-data' is missing"):
        read_elem(h5["l"])


def test_inconsistent_sparse_arrays_are_refused(h5):
    import scipy.sparse as sp

    write_elem(h5, "m", sp.csr_matrix(np.eye(4)))
    h5["m/indices"][0] = 99
    with pytest.raises(FormatError, match="indices outside"):
        read_elem(h5["m"])


# ----------------------------------------------------------------------------- re-registration


def test_second_reader_for_an_encoding_is_refused_and_names_the_holder(h5):
    from h5stream.elements import RegistrationError

    with pytest.raises(RegistrationError) as info:
        register_reader(ElementSpec("array", "0.2.0"))(lambda obj, *, series=False: None)
    text = str(info.value)
    assert "'array'" in text and "'0.2.0'" in text
    assert "h5stream.elements.arrays." in text  # the reader holding the key
    assert isinstance(info.value, ValueError)
    write_elem(h5, "x", np.arange(3))  # the registry is unchanged
    assert np.array_equal(read_elem(h5["x"]), np.arange(3))


def test_reader_registration_is_all_or_nothing():
    from h5stream.elements import RegistrationError
    from h5stream.elements.registry import _READERS

    fresh = ElementSpec("test:fresh", "0.1.0")
    with pytest.raises(RegistrationError, match="string"):
        register_reader(fresh, ElementSpec("string", "0.2.0"))(lambda obj, *, series=False: None)
    assert fresh.key not in _READERS


def test_second_plain_writer_of_a_type_is_refused():
    from h5stream.elements import RegistrationError

    with pytest.raises(RegistrationError) as info:
        register_writer(int, ElementSpec("test:int", "0.1.0"))(lambda parent, key, value, options: None)
    text = str(info.value)
    assert "builtins.int" in text and "h5stream.elements.scalars._write_python_number" in text
    assert "numeric-scalar 0.2.0" in text


def test_second_matching_writer_of_an_encoding_is_refused(h5):
    from h5stream.elements import RegistrationError

    with pytest.raises(RegistrationError, match="numpy.ndarray"):
        register_writer(np.ndarray, ElementSpec("array", "0.2.0"), match=lambda v: True)(
            lambda parent, key, value, options: None
        )
    write_elem(h5, "x", np.arange(4.0))
    assert h5["x"].attrs["encoding-type"] == "array"


def test_replace_swaps_an_entry_on_purpose(h5):
    from h5stream.elements import RegistrationError
    from h5stream.elements.registry import unregister

    class Box:
        def __init__(self, v):
            self.v = v

    spec = ElementSpec("test:box", "0.1.0")
    try:
        register_writer(Box, spec)(lambda parent, key, value, options: parent.create_dataset(key, data=value.v))
        register_reader(spec)(lambda obj, *, series=False: Box(obj[()]))
        with pytest.raises(RegistrationError):
            register_writer(Box, spec)(lambda parent, key, value, options: None)
        register_writer(Box, spec, replace=True)(
            lambda parent, key, value, options: parent.create_dataset(key, data=value.v * 2)
        )
        register_reader(spec, replace=True)(lambda obj, *, series=False: Box(obj[()] + 1))
        write_elem(h5, "b", Box(5))
        assert h5["b"][()] == 10 and read_elem(h5["b"]).v == 11
    finally:
        unregister(Box, spec)
    with pytest.raises(EncodingError):
        write_elem(h5, "c", Box(1))
    with pytest.raises(UnknownEncodingError):
        read_elem(h5["b"])

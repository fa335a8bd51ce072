"""The compiled attribute writer (``h5stream._ext._h5attrs``) against plain h5py and zlib."""

from __future__ import annotations

import zlib

import h5py
import numpy as np
import pytest

from h5stream import checksums
from h5stream._ext import _h5attrs
from h5stream import lowlevel

native = lowlevel.native_hdf5()
pytestmark = pytest.mark.skipif(native is None, reason="h5py's libhdf5 could not be located")


def _crc_digest(text: str) -> str:
    """The scalar-text digest, computed here with zlib alone."""
    raw = text.encode("utf-8")
    return f"{zlib.crc32(raw, zlib.crc32(len(raw).to_bytes(8, 'little'), zlib.crc32(b'text|()'))):08x}"


def _write(group: h5py.Group, names, values, start=0, digests=None, numbers=False, limit=1 << 20):
    with lowlevel.library_lock:
        return native.write_attrs(group.id.id, list(names), list(values), start, digests, numbers, limit)


@pytest.fixture
def group(tmp_path):
    with h5py.File(tmp_path / "attrs.h5", "w", libver=lowlevel.LIBVER) as f:
        yield f.create_group("g")


def test_strings_and_numpy_scalars_read_back_and_digest_like_zlib(group):
    texts = {"plain": "x", "empty": "", "accents": "h\u00e9llo", "emoji": "\U0001f600 ok", "long": "z" * 5000,
             "é name": "value of a non-ASCII name"}
    numbers = {"f64": np.float64(1.5), "f32": np.float32(-2.25), "f16": np.float16(0.5), "i8": np.int8(-7),
               "i64": np.int64(-(2**62)), "u64": np.uint64(2**64 - 1), "u16": np.uint16(65535),
               "bool": np.bool_(True), "c128": np.complex128(1 + 2j), "c64": np.complex64(-3 - 0.5j)}
    names, values = [*texts, *numbers], [*texts.values(), *numbers.values()]
    pairs: list[str] = []
    assert _write(group, names, values, digests=pairs) == (len(names), _h5attrs.DONE)
    assert pairs[0::2] == list(texts)  # in the order written, name then digest
    digests = dict(zip(pairs[0::2], pairs[1::2]))
    stored = dict(group.attrs)
    for name, text in texts.items():
        assert stored[name] == text and isinstance(stored[name], str)
        assert digests[name] == _crc_digest(text) == checksums.scalar_text_digest(text)
    for name, number in numbers.items():
        assert stored[name] == number and stored[name].dtype == number.dtype, name
    assert set(digests) == set(texts)  # numbers are not digested (they sit in checksummed headers)
    assert h5py.h5a.open(group.id, b"plain").get_type().get_cset() == h5py.h5t.CSET_UTF8


def test_values_it_does_not_take_are_handed_back_in_order(group):
    names = ["a", "big", "b", "array", "c", "py_int", "d", "big_array", "swapped", "texts", "zero_d", "strided", "e"]
    values = ["1", "y" * 101, np.float64(2.0), np.arange(3), "3", 7, np.int64(4), np.arange(13), np.arange(3, dtype=">i8"),
              np.array(["x"], dtype=object), np.array(5), np.arange(6)[::2], "5"]
    handed = []
    i = 0
    while True:
        i, status = _write(group, names, values, start=i, limit=100)
        if status == _h5attrs.DONE:
            break
        assert status == _h5attrs.YOURS
        handed.append(names[i])
        i += 1
    assert handed == ["big", "py_int", "big_array", "swapped", "texts", "zero_d", "strided"]
    assert sorted(group.attrs) == ["a", "array", "b", "c", "d", "e"]
    # with numbers digested by the caller, every number is handed back too
    assert _write(group, ["n", "t"], [np.int64(1), "t"], numbers=True) == (0, _h5attrs.YOURS)
    assert "n" not in group.attrs


def test_arrays_read_back_with_their_type_shape_and_values_as_h5py_writes_them(group, tmp_path):
    rng = np.random.default_rng(5)
    arrays = {"i64": np.array([-10, 40]), "u8": np.arange(7, dtype=np.uint8), "f32_2d": rng.random((3, 4), "f4"),
              "f16": rng.random(5).astype(np.float16), "bool": np.array([True, False]), "c128": np.array([1 + 2j]),
              "empty": np.zeros(0), "u64_3d": np.arange(24, dtype=np.uint64).reshape(2, 3, 4)}
    assert _write(group, list(arrays), list(arrays.values())) == (len(arrays), _h5attrs.DONE)
    with h5py.File(tmp_path / "reference.h5", "w", libver=lowlevel.LIBVER) as f:
        for name, array in arrays.items():
            f.attrs[name] = array
        reference = {name: f.attrs[name] for name in arrays}
        types = {name: h5py.h5a.open(f.id, name.encode()).get_type() for name in arrays}
        for name, array in arrays.items():
            stored = group.attrs[name]
            assert stored.dtype == reference[name].dtype == array.dtype and stored.shape == array.shape, name
            np.testing.assert_array_equal(stored, array)
            assert h5py.h5a.open(group.id, name.encode()).get_type() == types[name], name


def test_an_existing_name_is_a_create_failure_and_nothing_is_replaced(group):
    group.attrs["taken"] = "before"
    assert _write(group, ["new", "taken", "after"], ["1", "2", "3"]) == (1, _h5attrs.CREATE_FAILED)
    assert dict(group.attrs) == {"new": "1", "taken": "before"}


def test_strings_that_are_not_utf8_raise_and_write_nothing(group):
    with pytest.raises(UnicodeEncodeError):
        _write(group, ["bad"], ["lone \udc80 surrogate"])
    assert "bad" not in group.attrs


@pytest.mark.parametrize("seed", range(5))
def test_pack_digests_orders_by_code_point(seed):
    rng = np.random.default_rng(seed)
    alphabet = list("abcXYZ_09") + ["\u00e9", "\u00e0", "\U0001f600", "\uffff", "\u0100"]
    names = {"".join(rng.choice(alphabet, size=int(rng.integers(1, 5)))) for _ in range(int(rng.integers(0, 12)))}
    digests = {name: f"{int(rng.integers(0, 2**32)):08x}" for name in names}
    expected = "".join(digests[n] for n in sorted(names, key=lambda n: [ord(c) for c in n]))
    assert _h5attrs.pack_digests(digests) == expected
    assert _h5attrs.pack_digests([x for item in digests.items() for x in item]) == expected


def test_queued_sets_are_recorded_in_order_with_removals():
    recorder = checksums.Recorder(headers_checksummed=True)
    recorder.pending += ["/a", 2, "y", "00000002", "x", "00000001", "/n", 0]
    recorder.removed("/a")  # queued before the removal: gone with it
    recorder.pending += ["/a", 1, "z", "00000003", "/b", 1, "k", "0000000b"]
    recorder.attribute_set("/b", {"k": "000000bb"})  # a later direct set wins over the queued one
    _datasets, sets, _legacy = recorder.current()
    assert sets == {"text": {"/a": "00000003", "/b": "000000bb"}, "all": {}}
    assert recorder.pending == [] and "/n" not in recorder.attribute_sets


def test_text_set_digests_match_an_independent_packing():
    values = {"b": "beta", "a": "alpha", "n": np.float64(1.0), "raw": np.bytes_(b"fixed"), "é": "\u00e9t\u00e9",
              "h5stream_checksums": "{}", "empty": ""}
    text = sorted((n for n, v in values.items() if isinstance(v, str) and n != "h5stream_checksums"),
                  key=lambda n: [ord(c) for c in n])
    assert _h5attrs.text_set_digests(values, "h5stream_checksums") == "".join(_crc_digest(values[n]) for n in text)
    with_root = sorted([*text, "h5stream_checksums"], key=lambda n: [ord(c) for c in n])
    assert _h5attrs.text_set_digests(values) == "".join(_crc_digest(values[n]) for n in with_root)
    assert _h5attrs.text_set_digests({"n": np.int64(3)}) == ""
    # other forms of text, and strings that are not UTF-8, are left to the exact check
    assert _h5attrs.text_set_digests({"s": np.str_("numpy string")}) is None
    assert _h5attrs.text_set_digests({"s": np.array(["a", "b"], dtype=object)}) is None
    assert _h5attrs.text_set_digests({"s": "lone \udc80"}) is None
    assert _h5attrs.text_set_digests({"a": np.arange(3)}) == ""


def test_pack_digests_joins_values_of_other_lengths_as_they_are():
    assert _h5attrs.pack_digests({"b": "22", "a": "1", "c": "0000000c"}) == "1220000000c"
    assert _h5attrs.pack_digests({"b": "0000000b", "a": "é000000a"}) == "é000000a0000000b"
    assert _h5attrs.pack_digests({}) == ""
    many = {f"n{i:03d}": f"{i:08x}" for i in range(200, 0, -1)}  # over the C array: sorted and joined
    assert _h5attrs.pack_digests(many) == "".join(f"{i:08x}" for i in range(1, 201))


@pytest.mark.parametrize("seed", range(3))
def test_plain_map_json_is_json_dumps_text(seed):
    import json

    rng = np.random.default_rng(seed)
    plain = [chr(c) for c in range(0x20, 0x7F) if chr(c) not in '"\\']
    for _ in range(300):
        mapping = {"".join(rng.choice(plain, size=int(rng.integers(0, 30)))): "".join(rng.choice(plain, size=8))
                   for _ in range(int(rng.integers(0, 20)))}
        assert _h5attrs.plain_map_json(mapping) == json.dumps(mapping, separators=(",", ":"), ensure_ascii=True)


@pytest.mark.parametrize("mapping", [
    {"/a": 'quote "'}, {'/"a': "x"}, {"/a\\": "x"}, {"/a": "tab\t"}, {"/a": "del\x7f"}, {"/a": "\x00"},
    {"/é": "x"}, {"/a": "\U0001f600"}, {"/a": 1}, {1: "x"}, {"/a": {"b": "c"}}, {"/a": None},
])
def test_plain_map_json_leaves_anything_json_would_escape_to_the_caller(mapping):
    assert _h5attrs.plain_map_json(mapping) is None


def test_plain_map_json_takes_only_exact_strings():
    class Text(str):
        pass

    assert _h5attrs.plain_map_json({Text("/a"): "x"}) is None
    assert _h5attrs.plain_map_json({"/a": Text("x")}) is None
    assert _h5attrs.plain_map_json({}) == "{}"


def test_datasets_and_sets_recorded_before_and_after_a_removal():
    recorder = checksums.Recorder(headers_checksummed=True)
    recorder.dataset("/g/d", "0000000d")
    recorder.pending += ["/g/d", 1, "t", "00000001", "/k", 1, "t", "00000002"]
    recorder.removed("/g")
    recorder.dataset("/g/e", "0000000e")
    recorder.pending += ["/g/e", 1, "t", "00000003"]
    datasets, sets, _legacy = recorder.current()
    assert datasets == {"/g/e": "0000000e"}
    assert sets["text"] == {"/k": "00000002", "/g/e": "00000003"}
    recorder.dataset("/g/d", "000000dd")  # written again after the removal: present again
    recorder.removed("/g/e")
    datasets, sets, _legacy = recorder.current()
    assert datasets == {"/g/d": "000000dd"} and sets["text"] == {"/k": "00000002"}


def test_a_save_without_the_compiled_kernel_records_the_same_manifest(tmp_path, monkeypatch):
    """The Python fallbacks (values handed back, sets packed in Python, the general JSON encoder) record
    what the compiled kernel records: a session saved both ways has the same manifest."""
    import json

    from h5stream.checksums import _manifest, _recording
    from hdmea.pipeline import create_session

    rng = np.random.default_rng(7)
    units = {f"unit_{i:03d}": {"spike_times": np.sort(rng.integers(0, 10**9, 9000 + i)).astype(np.uint64),
                               "row": i % 65 + 1, "col": 3, "global_id": i, "label": f"cell {i} é"}
             for i in range(12)}

    def save(path):
        session = create_session("both_ways", hdf5_path=path)
        session.add_units(units)
        session.save()
        with h5py.File(path, "r") as f:
            return json.loads(f.attrs[checksums.MANIFEST_ATTR])

    compiled = save(tmp_path / "compiled.h5")
    monkeypatch.setattr(native, "write_attrs", lowlevel._hand_back)
    monkeypatch.setattr(_recording, "record_sets", _recording._record_sets)
    monkeypatch.setattr(_manifest, "_h5attrs", None)
    fallback = save(tmp_path / "fallback.h5")
    assert compiled["datasets"] == fallback["datasets"] and len(compiled["datasets"]) >= 12
    sets_c, sets_f = compiled["attribute_digests"]["text"], fallback["attribute_digests"]["text"]
    assert sets_c.keys() == sets_f.keys() and len(sets_c) >= 12 + 1
    differ = [path for path in sets_c if sets_c[path] != sets_f[path]]
    # only the objects holding save times (/pipeline: stage1_timestamp, the original's session layout)
    assert set(differ) <= {"/", "/pipeline", "/pipeline/session_info"}, differ
    assert all(len(sets_c[path]) == len(sets_f[path]) for path in differ)


def test_record_sets_refuses_a_queue_that_ends_inside_a_set():
    with pytest.raises(ValueError, match="runs past the queue"):
        _h5attrs.record_sets(["/a", 2, "x", "00000001"], {}, {}, 1, {}, None, {})
    with pytest.raises(ValueError, match="ends inside an entry"):
        _h5attrs.record_sets(["/a", 1, "x", "00000001", "/b"], {}, {}, 1, {}, None, {})


def test_a_large_attribute_written_between_others_keeps_every_set(tmp_path):
    """A large attribute goes to a hidden dataset, written (with its own attributes) in the middle of
    its owner's attributes: both objects' sets are recorded whole, and the file checks out."""
    import json

    from h5stream.files import checksum_checks as checksum_file
    from h5stream.files import create_atomic
    from h5stream.tree.nodes import Dataset, Group
    from h5stream.tree.write import write_node

    path = tmp_path / "large.h5"
    big = "x" * 200_000
    node = Group(attrs={"a": "first", "big": big, "c": "last"},
                 children={"d": Dataset(np.arange(5000.0), attrs={"u": "unit", "big2": big, "w": "after"})})
    with create_atomic(path, checksums=True) as f:
        write_node(f, "g", node)
    assert checksum_file.check_file(path)["attributes"] >= 6
    with h5py.File(path, "r") as f:
        digests = json.loads(f.attrs[checksums.MANIFEST_ATTR])["attribute_digests"]
        sets = {**digests["text"], **digests["all"]}
        # every object's set against its attributes as plain h5py reads them (all text here)
        for where in ("/g", "/g/d", "/g/__attr__big", "/g/__dsattr__d/big2"):
            attrs = f[where].attrs
            assert sets[where] == "".join(_crc_digest(attrs[n]) for n in sorted(attrs)), where
        assert {"a", "c"} <= set(f["g"].attrs) and {"u", "w"} <= set(f["g/d"].attrs)

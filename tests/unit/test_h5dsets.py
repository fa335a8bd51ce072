"""The compiled dataset writer (``h5stream._ext._h5dsets``) against plain h5py, zlib and the one-by-one writer."""

from __future__ import annotations

import hashlib
import zlib

import h5py
import numpy as np
import pytest

from h5stream import lowlevel
from h5stream._ext import _h5dsets
from h5stream.digests import scalar_text_digest
from h5stream.errors import WriteError
from h5stream.files import create_atomic
from h5stream.tree import write as tree_write
from h5stream.tree.nodes import Dataset, Group, Pieces, value_node

native = lowlevel.native_hdf5()
pytestmark = pytest.mark.skipif(native is None or native.write_datasets is None,
                                reason="h5py's libhdf5 could not be located")


#: the seed of one string's digest: the CRC-32 of its header ``"text|()"``
_SCALAR_TEXT = zlib.crc32(b"text|()")


def _zlib_digest(array: np.ndarray) -> str:
    """The array digest, computed here with zlib alone: ``"<dtype.str>|<shape>"`` then the C-order bytes."""
    header = f"{array.dtype.str}|{tuple(int(s) for s in array.shape)}".encode("ascii")
    return f"{zlib.crc32(np.ascontiguousarray(array).tobytes(), zlib.crc32(header)):08x}"


def _write(group: h5py.Group, children: dict, start=0, written=None, recorded=None, record_compact=False,
           tagged=None, text=False):
    lists = lowlevel.plists()
    with lowlevel.library_lock:
        if not text:
            return native.write_datasets(group.id.id, list(children), list(children.values()), start, lists.link.id,
                                         lists.compact.id, lists.contiguous.id, written, recorded, record_compact,
                                         tagged)
        return native.write_datasets(group.id.id, list(children), list(children.values()), start, lists.link.id,
                                     lists.compact.id, lists.contiguous.id, written, recorded, record_compact,
                                     tagged, None, -1, None, lists.text.id, scalar_text_digest)


@pytest.fixture
def group(tmp_path):
    with h5py.File(tmp_path / "datasets.h5", "w", libver=lowlevel.LIBVER) as f:
        yield f.create_group("g")


def test_arrays_read_back_with_their_type_shape_layout_and_digest(group):
    rng = np.random.default_rng(3)
    arrays = {
        "i64": rng.integers(-(2**62), 2**62, 26), "u8": np.arange(7, dtype=np.uint8), "f32_2d": rng.random((3, 4), "f4"),
        "f16": rng.random(5).astype(np.float16), "bool": np.array([True, False, True]), "c128": np.array([1 + 2j, -3j]),
        "scalar": np.array(np.float64(2.5)), "empty": np.zeros((0, 3)), "u64_3d": np.arange(24, dtype=np.uint64).reshape(2, 3, 4),
        "large": rng.random(5000),  # 40,000 bytes: contiguous, and past libdeflate's threshold
        "int_c": np.arange(5, dtype=np.intc), "longlong": np.arange(4, dtype=np.longlong), "é name": np.arange(2),
    }
    nodes = {name: Dataset(a) for name, a in arrays.items()}
    written, recorded = {}, []
    assert _write(group, nodes, written=written, recorded=recorded) == (len(nodes), _h5dsets.DONE)
    for name, array in arrays.items():
        stored = group[name]
        assert stored.dtype == array.dtype and stored.shape == array.shape, name
        np.testing.assert_array_equal(stored[()], array)
        layout = stored.id.get_create_plist().get_layout()
        expected = h5py.h5d.COMPACT if 0 < array.nbytes <= lowlevel.COMPACT_LIMIT else h5py.h5d.CONTIGUOUS
        assert layout == expected, name
        assert written[id(nodes[name])] == _zlib_digest(array), name
        assert not stored.attrs.keys()
    # without record_compact only the datasets outside checksummed headers are recorded, in order
    assert recorded[0::2] == ["empty", "large"]
    assert recorded[1::2] == [_zlib_digest(arrays["empty"]), _zlib_digest(arrays["large"])]


def test_compact_datasets_are_recorded_when_headers_are_not_checksummed(group):
    nodes = {"a": Dataset(np.arange(3)), "b": Dataset(np.ones(2, "f4"))}
    recorded = []
    assert _write(group, nodes, recorded=recorded, record_compact=True) == (2, _h5dsets.DONE)
    assert recorded == ["a", _zlib_digest(np.arange(3)), "b", _zlib_digest(np.ones(2, "f4"))]


def test_nodes_it_does_not_take_are_handed_back_in_order(group):
    children = {
        "a": Dataset(np.arange(2)), "attrs": Dataset(np.arange(2), attrs={"x": "y"}), "b": Dataset(np.arange(3)),
        "tag": Dataset(np.arange(2), tag="list:int"), "text": Dataset(np.array(["x"], dtype=object)),
        "strided": Dataset(np.arange(10)[::2]), "swapped": Dataset(np.arange(3, dtype=">i4")),
        "bytes": Dataset(np.array([b"ab"])), "record": Dataset(np.zeros(2, [("x", "i4")])), "group": Group(),
        "listed": Dataset([1, 2]), "huge": Dataset(np.zeros(lowlevel.SNAPSHOT_BLOCK // 8 + 1)), "c": Dataset(np.arange(4)),
    }
    names = list(children)
    stops, i = [], 0
    while True:
        i, status = _write(group, children, start=i)
        if status == _h5dsets.DONE:
            break
        assert status == _h5dsets.YOURS
        stops.append(names[i])
        i += 1
    assert stops == ["attrs", "tag", "text", "strided", "swapped", "bytes", "record", "group", "listed", "huge"]
    assert sorted(group) == ["a", "b", "c"]  # nothing created for what was handed back
    np.testing.assert_array_equal(group["c"][()], np.arange(4))


def test_an_array_with_its_type_tag_alone_is_taken_with_a_tagged_list(group):
    arrays = {"int": np.array(np.int64(7)), "float": np.array(2.5), "list:int": np.arange(3),
              "bool": np.array(True), "list:float": np.linspace(0, 1, 3000)}  # the last one contiguous
    children = {f"v_{tag}": Dataset(a, tag=tag) for tag, a in arrays.items()}
    children.update({"plain": Dataset(np.arange(2)), "tag_and_attrs": Dataset(np.arange(2), tag="int", attrs={"u": "s"}),
                     "not_ascii": Dataset(np.arange(2), tag="liste:é"), "after": Dataset(np.ones(2), tag="float")})
    names, tagged, written, stops, i = list(children), [], {}, [], 0
    while True:
        i, status = _write(group, children, start=i, written=written, tagged=tagged)
        if status == _h5dsets.DONE:
            break
        assert status == _h5dsets.YOURS
        stops.append(names[i])
        i += 1
    assert stops == ["tag_and_attrs", "not_ascii"]  # handed back: other attributes, a tag not in ASCII
    expected = {f"v_{tag}": tag for tag in arrays} | {"after": "float"}
    assert tagged[0::2] == list(expected) and tagged[1::2] == list(expected.values())
    # read back by plain h5py: the values, and the tag as the scalar string attribute the one-by-one writer writes
    for name, tag in expected.items():
        stored, node = group[name], children[name]
        np.testing.assert_array_equal(stored[()], node.data)
        assert stored.dtype == node.data.dtype and stored.shape == node.data.shape
        assert dict(stored.attrs) == {"h5stream_type": tag}
        assert h5py.check_string_dtype(stored.attrs.get_id("h5stream_type").dtype).encoding == "utf-8"
        assert written[id(node)] == _zlib_digest(node.data)
    assert not group["plain"].attrs.keys()
    # without a list, or before configure_tags named the attribute, a tagged node is handed back as before
    assert _write(group, {"later": Dataset(np.arange(2), tag="int")}) == (0, _h5dsets.YOURS)


def test_scalar_text_is_taken_with_the_text_creation_list_and_digested_as_one_string(group):
    children = {
        "obj": Dataset(np.array("spike", dtype=object)), "uni": Dataset(np.array("é ünï")), "empty": Dataset(np.array("", dtype=object)),
        "tagged": Dataset(np.array("x", dtype=object), tag="str"), "bytes": Dataset(np.array(b"ab", dtype=object)),
        "np_str": Dataset(np.array(np.str_("y"), dtype=object)), "row": Dataset(np.array(["a"], dtype=object)),
        "after": Dataset(np.array("z", dtype=object)),
    }
    names, written, recorded, tagged, stops, i = list(children), {}, [], [], [], 0
    while True:
        i, status = _write(group, children, start=i, written=written, recorded=recorded, tagged=tagged, text=True)
        if status == _h5dsets.DONE:
            break
        assert status == _h5dsets.YOURS
        stops.append(names[i])
        i += 1
    assert stops == ["bytes", "np_str", "row"]  # handed back: not a str, not exactly a str, not scalar
    texts = {"obj": "spike", "uni": "é ünï", "empty": "", "tagged": "x", "after": "z"}
    # read back by plain h5py: a scalar variable-length UTF-8 string (the tree writer's test below: the same bytes
    # as the one-by-one writer's), its digest that of one string computed here with zlib
    for name, value in texts.items():
        stored = group[name]
        assert stored.shape == () and stored.asstr()[()] == value, name
        assert h5py.check_string_dtype(stored.dtype) == h5py.h5t.string_info("utf-8", None)
        assert stored.id.get_create_plist().get_layout() == h5py.h5d.CONTIGUOUS
        digest = f"{zlib.crc32(value.encode(), zlib.crc32(len(value.encode()).to_bytes(8, 'little'), _SCALAR_TEXT)):08x}"
        assert written[id(children[name])] == digest, name
    assert recorded == [x for name in texts for x in (name, written[id(children[name])])]
    assert tagged == ["tagged", "str"] and dict(group["tagged"].attrs) == {"h5stream_type": "str"}
    assert not group["obj"].attrs.keys()


def test_a_name_that_exists_stops_with_its_index(group):
    group.create_dataset("taken", data=np.arange(3))
    children = {"first": Dataset(np.arange(2)), "taken": Dataset(np.arange(5)), "after": Dataset(np.arange(1))}
    assert _write(group, children) == (1, _h5dsets.CREATE_FAILED)
    np.testing.assert_array_equal(group["taken"][()], np.arange(3))  # the existing one is untouched
    assert "after" not in group


def _tree() -> Group:
    rng = np.random.default_rng(7)
    units = {}
    for u in range(4):
        spikes = np.sort(rng.integers(0, 10**6, 400))
        units[f"unit_{u}"] = Group(attrs={"row": u}, children={
            "trials": Pieces(spikes, np.linspace(0, 400, 21).astype(np.int64)).node(),
            "spike_times": Dataset(spikes.astype(np.uint64)), "waveform": Dataset(rng.random(40, "f4")),
            "cutout": Dataset(rng.random(11553, "f4")), "n": Dataset(np.int64(3), tag="int"),
            "window": value_node([-10, 40]), "rate": value_node(2e4), "count": value_node(400), "skip": value_node(True),
            "margins": value_node([float(x) for x in rng.random(5000)]),
            "name": Dataset(np.array("x", dtype=object), tag="str"), "empty": Dataset(np.zeros(0)),
            "meta": Dataset(np.arange(2), attrs={"unit": "s"}), "flags": Dataset(np.array([True, False])),
        })
    return Group(attrs={"dataset_id": "rec"}, children={"units": Group(children=units)})


def _write_file(path, tree: Group, batch) -> tuple[str, dict]:
    saved = native.write_datasets
    native.write_datasets = batch
    try:
        atomic = create_atomic(path, libver=lowlevel.LIBVER, checksums=True)
        f = atomic.open()
        written = {}
        tree_write.write_root(f, tree, tree_write.WriteContext(f, written=written))
        atomic.commit()
    finally:
        native.write_datasets = saved
    return hashlib.sha256(path.read_bytes()).hexdigest(), written


def test_the_tree_writer_writes_the_same_bytes_and_digests_as_one_by_one(tmp_path):
    tree = _tree()
    taken = []

    def watched(*args):  # the compiled writer, noting the tagged datasets it wrote
        done = native_batch(*args)
        taken.extend(args[10][0::2])
        return done

    native_batch = native.write_datasets
    compiled = _write_file(tmp_path / "compiled.h5", tree, watched)
    one_by_one = _write_file(tmp_path / "one_by_one.h5", tree, lowlevel._hand_back_datasets)
    assert sorted(set(taken)) == ["count", "margins", "name", "rate", "skip", "window"] and len(taken) == 24
    assert compiled == one_by_one
    # and the file reads back through plain h5py as the arrays it was given
    with h5py.File(tmp_path / "compiled.h5", "r") as f:
        trials = f["units/unit_2/trials"]
        assert sorted(trials, key=int) == [str(k) for k in range(20)]
        node = tree.children["units"].children["unit_2"].children["trials"].children["7"]
        np.testing.assert_array_equal(trials["7"][()], node.data)
        assert trials["7"].dtype == np.int64


def test_the_tree_writer_names_a_dataset_it_could_not_create(tmp_path):
    # a name through a group that does not exist: the library refuses it (no intermediate groups)
    group = Group(children={"ok": Dataset(np.arange(3)), "missing/x": Dataset(np.arange(3)), "c": Dataset(np.arange(1))})
    with h5py.File(tmp_path / "f.h5", "w", libver=lowlevel.LIBVER) as f:
        with pytest.raises(WriteError, match="creating the dataset") as caught:
            tree_write.write_node(f, "g", group)
        assert "/g/missing/x" in str(caught.value)
        np.testing.assert_array_equal(f["g/ok"][()], np.arange(3))
        assert "c" not in f["g"]


def test_first_changed_finds_the_first_array_whose_digest_differs_as_zlib_computes_it():
    from h5stream.digests import first_changed

    rng = np.random.default_rng(3)
    arrays = [np.arange(10), np.zeros((0, 3)), np.array(2.5), rng.random((3, 4)).astype(np.float16),
              rng.random(40000) + 1j, np.array([True, False, True]), np.arange(20).reshape(4, 5)[:, 1],
              np.arange(5, dtype=">i4"), np.zeros(3, dtype=[("a", "<i4"), ("b", "<f8")]),
              rng.integers(0, 255, 70000).astype(np.uint8), np.arange(7, dtype=np.longlong)]
    digests = [_zlib_digest(a) for a in arrays]
    assert first_changed(arrays, digests) == -1
    for k in range(len(arrays)):
        wrong = list(digests)
        wrong[k] = f"{(int(wrong[k], 16) ^ 1):08x}"
        assert first_changed(arrays, wrong) == k
    changed = [a.copy() for a in arrays]
    changed[9][-1] ^= 1  # the last byte of a long array (libdeflate's CRC there)
    assert first_changed(changed, digests) == 9
    assert first_changed(arrays[:2], [digests[0], digests[1].upper()]) == 1  # the text as written, lowercase
    with pytest.raises(ValueError, match="differ in length"):
        first_changed(arrays, digests[:-1])


def test_array_digests_are_each_arrays_digest_as_zlib_computes_it():
    from h5stream.digests import array_digests

    rng = np.random.default_rng(5)
    arrays = [np.arange(10), np.zeros((0, 3)), np.array(2.5), rng.random((3, 4)).astype(np.float16),
              rng.random(40000) + 1j, np.array([True, False, True]), np.arange(20).reshape(4, 5)[:, 1],
              np.arange(5, dtype=">i4"), np.zeros(3, dtype=[("a", "<i4"), ("b", "<f8")]),
              rng.integers(0, 255, 70000).astype(np.uint8), np.arange(7, dtype=np.longlong)]
    assert array_digests(arrays) == [_zlib_digest(a) for a in arrays]
    assert array_digests([]) == []

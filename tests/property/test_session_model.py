"""A model of the rule for values the caller assigns into a session, checked by a state machine.

Hypothesis drives one session through random sequences of: assigning a dict, a list, an array, a text
array or a nested dict; changing a value through the caller's own reference or through what the session
gives back; dropping the caller's references; saving, checkpointing, ``ensure_saved``, ``is_saved``;
reloading; and saving while a thread changes an array.  Memory budgets are tiny, so most arrays spill.
The model is plain Python: after every save the file is read with plain h5py and compared with it, and
a file written while a thread raced is loaded with every value checked against the file's own digests.
"""

from __future__ import annotations

import gc
import itertools
import shutil
import tempfile
import threading
from pathlib import Path

import h5py
import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from hdmea.pipeline import PipelineSession, create_session

UNITS = ("unit_000", "unit_001")
KEYS = ("a", "b", "c")
KINDS = ("dict", "list", "array", "text", "nested")
SLOTS = st.tuples(st.sampled_from(UNITS), st.sampled_from(KEYS))
_TYPE = "h5stream_type"


# --------------------------------------------------------------------------- values and their model


def _make(kind: str, n: int):
    """A new value of ``kind`` (what the caller assigns) and its model (plain Python, never shared)."""
    if kind == "dict":
        value = {"x": n, "y": np.full(40, float(n))}
    elif kind == "list":
        value = [n, n + 1]
    elif kind == "array":
        value = np.full(300, float(n))
    elif kind == "text":
        value = np.array([f"t{n}", "u"], dtype=object)
    else:
        value = {"inner": {"arr": np.full((20, 3), float(n)), "z": n}, "w": [n]}
    return value, _model_of(value)


def _model_of(value):
    if isinstance(value, dict):
        return {k: _model_of(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_model_of(v) for v in value]
    if isinstance(value, np.ndarray):
        return [str(v) for v in value.ravel()] if value.dtype.kind == "O" else value.copy()
    return value


def _change(kind: str, target, n: int) -> None:
    """Change ``target`` (a value of ``kind`` as the caller or the session gives it) in place."""
    if kind == "dict":
        target["y"][n % 40] = -float(n)  # first: a read-only copy refuses before anything changed
        target["x"] = n
    elif kind == "list":
        target.append(n)
    elif kind == "array":
        target[n % 300] = -float(n)
    elif kind == "text":
        target[0] = f"c{n}"
    else:
        target["inner"]["arr"][n % 20, 1] = -float(n)
        target["inner"]["z"] = n


def _change_model(kind: str, model, n: int) -> None:
    if kind == "text":
        model[0] = f"c{n}"
    elif kind == "nested":
        model["inner"]["arr"][n % 20, 1] = -float(n)
        model["inner"]["z"] = n
    else:
        _change(kind, model, n)


# --------------------------------------------------------------------------- the file, read with plain h5py


def _plain(obj):
    """An object of a saved file as plain Python, read with h5py (the type tags read by name)."""
    tag = obj.attrs.get(_TYPE)
    tag = tag.decode() if isinstance(tag, bytes) else tag
    if isinstance(obj, h5py.Group):
        children = {name: _plain(obj[name]) for name in obj if not name.startswith("__")}
        if tag in ("list", "tuple"):
            return [children[str(i)] for i in range(len(children))]
        return children
    value = obj[()]
    if tag and tag.startswith(("ndarray:O", "ndarray:U")):
        return [v.decode() if isinstance(v, bytes) else str(v) for v in np.asarray(value).ravel()]
    if tag and tag.startswith(("list:", "tuple:")):
        return np.asarray(value).tolist()
    if tag in ("int", "float", "bool"):
        return np.asarray(value).reshape(-1)[0].item()
    return np.asarray(value)


def _same(model, found) -> bool:
    if isinstance(model, dict):
        return isinstance(found, dict) and model.keys() == found.keys() and all(
            _same(model[k], found[k]) for k in model)
    if isinstance(model, list):
        found = found.tolist() if isinstance(found, np.ndarray) else found
        return isinstance(found, list) and len(model) == len(found) and all(
            _same(m, f) for m, f in zip(model, found))
    if isinstance(model, np.ndarray):
        return isinstance(found, np.ndarray) and np.array_equal(model, found)
    return model == found


_MISSING = object()


def _stored(f: h5py.File, unit: str, key: str):
    """The value a file holds for ``(unit, key)`` as plain Python: a child of the unit, or its attribute (a
    flat list directly under a unit is the unit's attribute, as in the lab's files); ``_MISSING`` if none."""
    name = f"units/{unit}/{key}"
    if name in f:
        return _plain(f[name])
    if key in f[f"units/{unit}"].attrs:
        return np.asarray(f[f"units/{unit}"].attrs[key]).tolist()
    return _MISSING


def _file_matches(path: Path, model: dict) -> bool:
    with h5py.File(path, "r", locking=False) as f:
        for (unit, key), value in model.items():
            found = _stored(f, unit, key)
            if found is _MISSING or not _same(value, found):
                return False
        # nothing the model no longer holds is left in the file
        for unit in UNITS:
            group = f[f"units/{unit}"]
            stored = {k for k in group if k in KEYS} | {k for k in group.attrs if k in KEYS}
            if stored != {k for (u, k) in model if u == unit}:
                return False
    return True


# --------------------------------------------------------------------------- the machine


class SessionModel(RuleBasedStateMachine):
    """The session under test, the caller's references to what it assigned, and the model."""

    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="h5stream-model-"))
        self.counter = itertools.count(1)
        self.model: dict = {}  # (unit, key) -> plain Python
        self.kinds: dict = {}  # (unit, key) -> kind
        self.refs: dict = {}  # (unit, key) -> the caller's own reference (absent once dropped)
        self.session = None

    @initialize(limit=st.sampled_from([None, 1, 2_000]))
    def start(self, limit) -> None:
        self.limit = limit
        self.session = create_session("model", hdf5_path=self.tmp / "rec.h5", memory_limit=limit)
        self.session.add_units({u: {"spike_times": np.arange(4, dtype=np.uint64)} for u in UNITS})

    def teardown(self) -> None:
        if self.session is not None:
            self.session.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # ------------------------------------------------------------------ the caller
    @rule(slot=SLOTS, kind=st.sampled_from(KINDS))
    def assign(self, slot, kind) -> None:
        value, model = _make(kind, next(self.counter))
        self.session.units[slot[0]][slot[1]] = value
        self.refs[slot], self.model[slot], self.kinds[slot] = value, model, kind

    @precondition(lambda self: self.refs)
    @rule(data=st.data())
    def change_through_own_reference(self, data) -> None:
        slot = data.draw(st.sampled_from(sorted(self.refs)))
        n = next(self.counter)
        _change(self.kinds[slot], self.refs[slot], n)
        _change_model(self.kinds[slot], self.model[slot], n)

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def change_through_the_session(self, data) -> None:
        slot = data.draw(st.sampled_from(sorted(self.model)))
        n = next(self.counter)
        given = self.session.units[slot[0]][slot[1]]
        try:
            _change(self.kinds[slot], given, n)
        except ValueError as exc:  # a read-only copy (on disk, or converted): refused before anything changed
            assert "read-only" in str(exc)
            return
        _change_model(self.kinds[slot], self.model[slot], n)

    @precondition(lambda self: self.refs)
    @rule(data=st.data())
    def drop(self, data) -> None:
        slot = data.draw(st.sampled_from(sorted(self.refs)))
        del self.refs[slot]
        gc.collect()

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def delete(self, data) -> None:
        slot = data.draw(st.sampled_from(sorted(self.model)))
        del self.session.units[slot[0]][slot[1]]
        self.refs.pop(slot, None)
        del self.model[slot], self.kinds[slot]

    # ------------------------------------------------------------------ saving
    @rule()
    def save(self) -> None:
        path = self.session.save(overwrite=True)
        assert _file_matches(path, self.model)
        assert self.session.is_saved

    @rule()
    def checkpoint(self) -> None:
        path = self.session.checkpoint(self.tmp / "ck.h5")
        assert _file_matches(path, self.model)

    @rule()
    def ensure_saved(self) -> None:
        path = self.session.ensure_saved()
        assert path == self.tmp / "rec.h5" and _file_matches(path, self.model)

    @rule()
    def is_saved(self) -> None:
        if self.session.is_saved:  # true only when the file holds what the caller sees
            assert _file_matches(self.tmp / "rec.h5", self.model)

    @rule()
    def reload(self) -> None:
        path = self.session.save(overwrite=True)
        self.session.close()
        self.session = PipelineSession.load(path, memory_limit=self.limit, hdf5_path=path)
        self.refs.clear()  # the caller's objects belong to the old session; the loaded one has copies
        gc.collect()
        assert _file_matches(path, self.model)

    @precondition(lambda self: any(self.kinds[s] == "array" for s in self.refs))
    @rule(data=st.data())
    def save_while_a_thread_changes_an_array(self, data) -> None:
        slot = data.draw(st.sampled_from(sorted(s for s in self.refs if self.kinds[s] == "array")))
        array = self.refs[slot]
        stop = threading.Event()

        def churn() -> None:
            k = 0
            while not stop.is_set():
                array[:150] = k
                k += 1

        thread = threading.Thread(target=churn)
        thread.start()
        try:
            path = self.session.save(overwrite=True)
        finally:
            stop.set()
            thread.join()
        self.model[slot] = array.copy()
        loaded = PipelineSession.load(path)  # every value checked against the file's own digests
        try:
            written = np.asarray(loaded.units[slot[0]][slot[1]])
        finally:
            loaded.close()
        assert np.array_equal(written[150:], array[150:])
        others = {s: v for s, v in self.model.items() if s != slot}
        assert _file_matches_some(path, others)
        if self.session.is_saved:
            assert _file_matches(path, self.model)

    @invariant()
    def within_budget(self) -> None:
        if self.session is not None and self.limit is not None:
            assert self.session.resident_bytes <= self.limit


def _file_matches_some(path: Path, model: dict) -> bool:
    with h5py.File(path, "r", locking=False) as f:
        return all(_same(v, _stored(f, u, k)) for (u, k), v in model.items())


SessionModel.TestCase.settings = settings(
    max_examples=50, stateful_step_count=25, deadline=None, derandomize=True, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
test_session_model = SessionModel.TestCase


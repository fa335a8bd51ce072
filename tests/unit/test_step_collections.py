"""A step staging into a session runs with the objects tracked at its start frozen for the cyclic collector.

Checked from the collector's side (``gc.callbacks``, ``gc.get_objects``, ``gc.get_freeze_count``): the
session's staged nodes are not in any generation a collection walks while a step runs, they are back in the
oldest one afterwards, garbage among them is reclaimed once the step ends, a freeze the process made itself
is left alone, and steps inside steps and in several threads share one freeze.  A resume reads its tree with
the collector off and leaves it in the oldest generation; a save and a checkpoint run with it off.
"""

from __future__ import annotations

import gc
import threading
import weakref

import numpy as np
import pytest

from h5stream.tree import Dataset
from hdmea.pipeline import create_session
from hdmea.session._collector import step_collections
from hdmea.session.target import open_target


@pytest.fixture(autouse=True)
def _thawed():
    """Each test starts and ends with nothing frozen (and fails loudly if a test left a freeze)."""
    gc.unfreeze()
    yield
    assert gc.get_freeze_count() == 0
    gc.unfreeze()


def _session(n_units=30, trials=50):
    session = create_session("rec")
    rng = np.random.default_rng(0)
    session.add_units({f"unit_{u:03d}": {"spike_times": np.sort(rng.integers(0, 10**6, 200)).astype(np.uint64),
                                         "trials": {str(t): np.arange(t % 5, dtype=np.float64)
                                                    for t in range(trials)}}
                       for u in range(n_units)})
    return session


def _staged_datasets(session) -> set[int]:
    found, todo = set(), [session.tree.root]
    while todo:
        node = todo.pop()
        if isinstance(node, Dataset):
            found.add(id(node))
        else:
            todo.extend(node.children.values())
    return found


def _walked() -> set[int]:
    return {id(o) for generation in range(3) for o in gc.get_objects(generation=generation)}


def test_a_steps_collections_walk_none_of_the_staged_nodes():
    session = _session()
    staged = _staged_datasets(session)
    assert len(staged) >= 30 * 50 and staged <= _walked()
    seen = []

    def watch(phase, info):
        if phase == "start":
            seen.append((info["generation"], gc.get_freeze_count()))

    gc.callbacks.append(watch)
    try:
        with open_target(session=session, step="a_step") as target:
            assert not staged & _walked()  # frozen: in no generation
            frozen = gc.get_freeze_count()
            assert frozen >= len(staged)
            target.put("units/unit_000/extra", np.arange(5))
            gc.collect()  # a full collection inside the step
    finally:
        gc.callbacks.remove(watch)
    # the full collection started with the staged nodes frozen (the count may have moved by a few objects that
    # other code froze or freed since it was read)
    assert any(generation == 2 and count >= len(staged) for generation, count in seen), (seen, frozen)
    assert gc.get_freeze_count() == 0 and staged <= _walked()  # back in the generations after the step
    assert staged <= {id(o) for o in gc.get_objects(generation=2)}
    np.testing.assert_array_equal(session.get("units/unit_000/extra"), np.arange(5))


def test_garbage_made_before_or_during_a_step_is_reclaimed():
    session = _session(3, 3)

    class Cycle:
        pass

    def cycle():
        a, b = Cycle(), Cycle()
        a.other, b.other = b, a
        return a

    before = cycle()
    old = weakref.ref(before)
    with open_target(session=session, step="a_step"):
        del before  # garbage made of frozen objects: reclaimed after the step, not during it
        gc.collect()
        assert old() is not None
        made = cycle()
        young = weakref.ref(made)
        del made
        gc.collect()  # the step's own garbage: reclaimed during the step
        assert young() is None
    gc.collect()
    assert old() is None


def _in_a_generation(obj) -> bool:
    """Whether the collector would walk ``obj``: it is in generation 0, 1 or 2, not frozen."""
    return any(o is obj for o in gc.get_objects())


def test_a_freeze_the_process_made_is_left_alone():
    """An object the process froze itself stays frozen through a step and after it (the freeze count is no
    witness: frozen objects freed meanwhile leave it)."""
    session = _session(3, 3)
    marker = [object()]  # a container: tracked by the collector
    assert _in_a_generation(marker)
    gc.freeze()
    try:
        assert not _in_a_generation(marker)
        with open_target(session=session, step="a_step"):
            assert not _in_a_generation(marker)
        assert not _in_a_generation(marker)  # not thawed by the step
    finally:
        gc.unfreeze()
    assert _in_a_generation(marker)


def test_a_collector_turned_off_is_left_alone():
    session = _session(3, 3)
    gc.disable()
    try:
        with open_target(session=session, step="a_step"):
            assert gc.get_freeze_count() == 0
    finally:
        gc.enable()


def test_steps_inside_steps_and_in_threads_share_one_freeze():
    session = _session(3, 3)
    inside, go, done = threading.Event(), threading.Event(), []

    def other_step():
        with open_target(session=session, step="b_step"):
            inside.set()
            go.wait(60)
        done.append(gc.get_freeze_count())

    worker = threading.Thread(target=other_step)
    try:
        with open_target(session=session, step="a_step"):
            assert gc.get_freeze_count() > 0
            with step_collections():  # a step inside a step
                assert gc.get_freeze_count() > 0
            assert gc.get_freeze_count() > 0  # still frozen: the outer step runs
            worker.start()
            assert inside.wait(60)
        assert gc.get_freeze_count() > 0  # the first step ended while the other still runs: still frozen
    finally:
        go.set()
        if worker.is_alive():
            worker.join(60)
    assert not worker.is_alive() and done == [0]  # thawed when the last step ended
    assert gc.get_freeze_count() == 0


def test_a_step_that_raises_thaws():
    session = _session(3, 3)
    with pytest.raises(RuntimeError):
        with open_target(session=session, step="a_step"):
            assert gc.get_freeze_count() > 0
            raise RuntimeError("the step failed")
    assert gc.get_freeze_count() == 0


def test_a_thaw_cut_short_is_done_when_the_next_step_starts(monkeypatch):
    import hdmea.session._collector as collector

    session = _session(3, 3)
    gc.freeze()  # as a step's freeze whose thaw an exception raised into the thread cut short
    monkeypatch.setattr(collector, "_frozen", True)
    with open_target(session=session, step="a_step"):
        assert gc.get_freeze_count() > 0 and collector._frozen  # thawed, then frozen again for this step
    assert gc.get_freeze_count() == 0 and not collector._frozen


def test_a_resume_runs_without_collections_and_leaves_what_it_read_in_the_oldest_generation(tmp_path):
    from hdmea.pipeline import PipelineSession

    session = _session()
    session.checkpoint(tmp_path / "k.h5")
    gc.collect()
    collections = []

    def seen(phase, info):
        if phase == "start":
            collections.append(info["generation"])

    gc.callbacks.append(seen)
    try:
        resumed = PipelineSession.load(tmp_path / "k.h5")
    finally:
        gc.callbacks.remove(seen)
    assert collections == [] and gc.isenabled()
    node = resumed._tree._root  # the tree read: unwalked, in the oldest generation
    young = {id(o) for o in gc.get_objects(generation=0)} | {id(o) for o in gc.get_objects(generation=1)}
    assert id(node) not in young and any(o is node for o in gc.get_objects(generation=2))
    resumed.close()


def test_a_failed_resume_turns_the_collector_back_on(tmp_path):
    from hdmea.errors import CheckpointError
    from hdmea.pipeline import PipelineSession

    (tmp_path / "bad.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 100)
    with pytest.raises(CheckpointError):
        PipelineSession.load(tmp_path / "bad.h5")
    assert gc.isenabled()
    gc.disable()
    try:
        with pytest.raises(CheckpointError):
            PipelineSession.load(tmp_path / "bad.h5")
        assert not gc.isenabled()  # a process that turned it off keeps it off
    finally:
        gc.enable()


def _collections_during(call) -> list[int]:
    """The generations of the collections that started while ``call()`` ran."""
    collections = []

    def seen(phase, info):
        if phase == "start":
            collections.append(info["generation"])

    gc.callbacks.append(seen)
    try:
        call()
    finally:
        gc.callbacks.remove(seen)
    return collections


def test_a_save_and_a_checkpoint_run_without_collections(tmp_path):
    """The first save after a step cut every unit's spikes into trials builds a node for each trial and keeps
    them (thousands of objects: collections, full ones among them, at the lab's size): a save and a checkpoint
    run with the collector off, turn it back on, and write the values staged."""
    import h5py

    from h5stream.tree import Pieces

    session = create_session("rec")
    values, offsets = np.arange(2000, dtype=np.int64), np.arange(0, 2001, 10)
    with open_target(session=session, step="a_step") as target:
        target.put_many([(f"units/unit_{u:03d}/cut", {"trials": Pieces(values + u, offsets)}) for u in range(20)])
    assert _collections_during(lambda: session.save(tmp_path / "s.h5")) == [] and gc.isenabled()
    assert _collections_during(lambda: session.checkpoint(tmp_path / "k.h5")) == [] and gc.isenabled()
    assert gc.get_freeze_count() == 0
    for name in ("s.h5", "k.h5"):
        with h5py.File(tmp_path / name, "r") as f:
            for u in (0, 19):
                trials = f[f"units/unit_{u:03d}/cut/trials"]
                assert len(trials) == 200
                for k in (0, 7, 199):
                    np.testing.assert_array_equal(trials[str(k)][()], np.arange(10 * k, 10 * k + 10) + u)


def test_a_failed_save_turns_the_collector_back_on(tmp_path):
    from hdmea.errors import RecordingExistsError

    session = _session(3, 3)
    (tmp_path / "there.h5").write_bytes(b"kept")
    with pytest.raises(RecordingExistsError):
        session.save(tmp_path / "there.h5")
    assert gc.isenabled() and gc.get_freeze_count() == 0
    assert (tmp_path / "there.h5").read_bytes() == b"kept"
    gc.disable()
    try:
        session.save(tmp_path / "new.h5")
        assert not gc.isenabled()  # a process that turned it off keeps it off
    finally:
        gc.enable()

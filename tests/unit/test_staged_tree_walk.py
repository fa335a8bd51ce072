"""walk_datasets: every dataset of a session's staged tree with its path, in depth-first order, as it walks."""

from __future__ import annotations

import types

import numpy as np

from hdmea.io.hdf5_store import Dataset, Group
from hdmea.session._staged_tree import walk_datasets


def _tree() -> Group:
    def d() -> Dataset:
        return Dataset(np.arange(2))

    return Group(children={
        "a": d(),
        "units": Group(children={
            "unit_1": Group(children={"spike_times": d(), "sectioned": Group(children={
                "m": Group(children={"trials": Group(children={"0": d(), "1": d()}), "bounds": d()})})}),
            "empty": Group(),
            "unit_2": Group(children={"spike_times": d()}),
        }),
        "z": d(),
    })


def test_paths_and_nodes_in_depth_first_order():
    tree = _tree()
    units = tree.children["units"].children
    trials = units["unit_1"].children["sectioned"].children["m"].children["trials"].children
    expected = [
        ("a", tree.children["a"]),
        ("units/unit_1/spike_times", units["unit_1"].children["spike_times"]),
        ("units/unit_1/sectioned/m/trials/0", trials["0"]),
        ("units/unit_1/sectioned/m/trials/1", trials["1"]),
        ("units/unit_1/sectioned/m/bounds", units["unit_1"].children["sectioned"].children["m"].children["bounds"]),
        ("units/unit_2/spike_times", units["unit_2"].children["spike_times"]),
        ("z", tree.children["z"]),
    ]
    found = list(walk_datasets(tree))
    assert [p for p, _ in found] == [p for p, _ in expected]
    assert all(node is want for (_, node), (_, want) in zip(found, expected))
    # under a prefix, and a dataset alone
    assert [p for p, _ in walk_datasets(units["unit_2"], "units/unit_2")] == ["units/unit_2/spike_times"]
    alone = Dataset(np.arange(1))
    assert list(walk_datasets(alone, "x/y")) == [("x/y", alone)]
    assert list(walk_datasets(Group())) == []


def test_it_walks_as_it_is_read():
    tree = _tree()
    walk = walk_datasets(tree)
    assert isinstance(walk, types.GeneratorType)
    assert next(walk)[0] == "a"
    # a value replaced in place before the walk reaches it is the one it yields (a save's bookkeeping does so)
    later = Dataset(np.arange(5))
    tree.children["units"].children["unit_2"].children["spike_times"] = later
    assert dict(walk)["units/unit_2/spike_times"] is later

"""Instruction counts under callgrind: regions are counted apart, in proportion to their work."""

from __future__ import annotations

import pytest

from benchmarks.harness import instructions as _instructions

needs_valgrind = pytest.mark.skipif(not _instructions.available(),
                                    reason="needs valgrind, a C compiler and valgrind/callgrind.h")


@needs_valgrind
def test_regions_are_counted_apart_and_in_proportion_to_their_work():
    counts = _instructions.count(
        "from benchmarks.harness.instructions import region\n"
        "import math\n"
        "[math.sqrt(i) for i in range(300_000)]  # outside any region: not counted\n"
        "for _ in range(2):\n"
        "    with region('small'):\n"
        "        sum(range(100_000))\n"
        "    with region('twice'):\n"
        "        sum(range(200_000))\n")
    assert set(counts) == {"small", "twice"}
    assert len(counts["small"]) == len(counts["twice"]) == 2
    # the loop is most of each region: twice the work, about twice the instructions
    assert 1.8 < min(counts["twice"]) / min(counts["small"]) < 2.1
    # the same work counts the same in every round (well under the 5% a cost row decides on)
    assert _instructions.spread(counts["small"]) < 0.01
    assert _instructions.cost(counts["twice"], counts["small"]) == pytest.approx(
        min(counts["twice"]) / min(counts["small"]) - 1)


@needs_valgrind
def test_a_failing_script_is_an_error_naming_its_exit():
    with pytest.raises(_instructions.InstructionCountError, match="exited with 3"):
        _instructions.count("import sys; sys.exit(3)")


def test_regions_outside_valgrind_just_run_their_block():
    ran = []
    with _instructions.region("anything"):
        ran.append(1)
    assert ran == [1]


@needs_valgrind
@pytest.mark.slow
def test_the_store_checksum_counts_cover_the_four_sides(tmp_path):
    from benchmarks.suite.bench_store import checksum_instructions

    counts = checksum_instructions(6, 3_000, tmp_path, save_rounds=1, load_rounds=1)
    assert set(counts) == {"save on", "save off", "load on", "load off"}
    # digests and the manifest are work the save without checksums does not do
    assert min(counts["save on"]) > min(counts["save off"]) > 0
    assert min(counts["load on"]) > 0 and min(counts["load off"]) > 0
    assert list(tmp_path.iterdir()) == []  # the counted files are removed

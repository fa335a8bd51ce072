"""The tiers of the tests (tests/tiers.py): every entry names a test that exists, and the commands agree.

The README's second Quick start command runs the default tier; .ci/run runs the campaigns after it with
the command the README gives for them, and the stop tests again beside busy processes.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.tiers import CAMPAIGN, STOPS, listed

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("entry", sorted({*CAMPAIGN, *STOPS}))
def test_every_entry_names_a_test_that_exists(entry):
    path, _, rest = entry.partition("::")
    source = ROOT / path
    assert source.is_file(), f"tests/tiers.py lists {entry}, but {path} does not exist"
    if rest:
        name = re.split(r"[\[:]", rest)[0]
        assert re.search(rf"^\s*(async\s+)?def {re.escape(name)}\(|^class {re.escape(name)}\b",
                         source.read_text(encoding="utf-8"), re.M), \
            f"tests/tiers.py lists {entry}, but {path} has no test {name}"


@pytest.mark.parametrize("nodeid,expected", [
    ("tests/unit/test_interrupts.py::test_x", True),
    ("tests/unit/test_interrupts.py", True),
    ("tests/unit/test_interrupts_more.py::test_x", False),
    ("tests/integration/test_cli.py::test_slurm_array_script_treats_hdmea_killed_by_its_signal_as_preempted", True),
    ("tests/integration/test_cli.py::test_slurm_array_script_treats_hdmea_killed_by_its_signal_as_preempted_too",
     False),
    ("tests/integration/test_cli.py::test_run_one_is_a_slurm_array_task", False),
])
def test_an_entry_takes_its_file_or_test_and_nothing_beside_it(nodeid, expected):
    assert listed(nodeid, STOPS) is expected


def _ci_command(name: str) -> str:
    match = re.search(rf"^{name}='([^']*)'$", (ROOT / ".ci" / "run").read_text(encoding="utf-8"), re.M)
    assert match, f".ci/run defines no {name}"
    return match.group(1)


def test_ci_runs_the_campaigns_as_the_readme_says():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert _ci_command("CAMPAIGN_COMMAND") in readme
    assert _ci_command("ALONE_COMMAND") in readme
    # the two parts together are `pytest -m campaign`
    assert _ci_command("CAMPAIGN_COMMAND").endswith(' -m "campaign and not alone" -n 2 --dist loadfile')
    assert _ci_command("ALONE_COMMAND").endswith(' -m "campaign and alone"')
    assert "python -m tests.busy -- python -m pytest -q -m stops" in _ci_command("STOPS_COMMAND")


def test_the_default_tier_leaves_the_campaigns_out_and_runs_the_rest(tmp_path):
    """A real pytest run of this repository's configuration over a folder of three tests, one per tier."""
    (tmp_path / "test_three.py").write_text(
        "import pytest\n"
        "def test_plain():\n    pass\n"
        "@pytest.mark.campaign\ndef test_long():\n    pass\n"
        "@pytest.mark.stops\ndef test_stop():\n    pass\n")

    def run(*options: str) -> set[str]:
        done = subprocess.run([sys.executable, "-m", "pytest", "-c", str(ROOT / "pyproject.toml"),
                               "--rootdir", str(tmp_path), "-q", "-p", "no:randomly", "--co", *options,
                               str(tmp_path)], capture_output=True, text=True, cwd=tmp_path, timeout=300)
        return {line.split("::")[1] for line in done.stdout.splitlines() if "::" in line}

    assert run() == {"test_plain", "test_stop"}
    assert run("-m", "campaign") == {"test_long"}
    assert run("-m", "stops") == {"test_stop"}
    assert run("-m", "") == {"test_plain", "test_long", "test_stop"}


def test_the_benchmarks_and_the_stop_tests_are_the_campaigns_ci_runs_alone():
    """A real collection of this repository: a benchmark, a stop test and a plain campaign, in their parts."""
    files = ["benchmarks/suite/bench_sta.py", "tests/unit/test_interrupts.py", "tests/unit/test_import_circles.py"]

    def run(marks: str) -> set[str]:
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "--co", "-m", marks, *files],
                              capture_output=True, text=True, cwd=ROOT, timeout=300)
        return {line.split("::")[0] for line in done.stdout.splitlines() if "::" in line}

    assert run("campaign and alone") == set(files[:2])
    assert run("campaign and not alone") == {files[2]}

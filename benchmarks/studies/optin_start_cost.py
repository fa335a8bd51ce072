"""What the opt-in ``scptensor-january`` adds to every interpreter start (its ``.pth`` file imports it).

``python -m benchmarks.studies.optin_start_cost [--rounds N] [--former PATH]`` from the repository root.  It makes
a throwaway virtual environment and times ``python -c pass`` in it (three starts per state and round,
the states interleaved; minimum and median):

* ``without``: the environment as made (the peer);
* ``opt-in``: with ``scptensor_january.py`` (compiled, as pip installs it) and ``scptensor-january.pth``
  of ``optin/scptensor-january`` in its site-packages;
* ``former``: the same with the module at ``PATH`` instead (e.g. an earlier version taken with
  ``git show REV:optin/scptensor-january/src/scptensor_january.py``), when ``--former`` is given.

It prints each state's figures and what each adds to ``without``, and ``-X importtime``'s cumulative
microseconds for the module (minimum and median).  The goal is under 5 ms added.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

OPTIN = Path(__file__).resolve().parents[2] / "optin" / "scptensor-january"


def _site(python: Path) -> Path:
    code = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    return Path(subprocess.run([python, "-c", code], check=True, capture_output=True, text=True).stdout.strip())


def _install(python: Path, site: Path, module: Path | None) -> None:
    for name in ("scptensor_january.py", "scptensor-january.pth"):
        (site / name).unlink(missing_ok=True)
    shutil.rmtree(site / "__pycache__", ignore_errors=True)
    if module is not None:
        shutil.copy(module, site / "scptensor_january.py")
        shutil.copy(OPTIN / "scptensor-january.pth", site / "scptensor-january.pth")
        subprocess.run([python, "-m", "compileall", "-q", str(site / "scptensor_january.py")], check=True)


def _start(python: Path) -> float:
    t = time.perf_counter()
    subprocess.run([python, "-c", "pass"], check=True)
    return time.perf_counter() - t


def _importtime(python: Path) -> int:
    err = subprocess.run([python, "-X", "importtime", "-c", "pass"], check=True, capture_output=True,
                         text=True).stderr
    return next(int(line.split("|")[1]) for line in err.splitlines() if line.rstrip().endswith("scptensor_january"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--former", type=Path, help="an earlier scptensor_january.py to time beside")
    args = parser.parse_args()
    states = {"without": None, "opt-in": OPTIN / "src" / "scptensor_january.py"}
    if args.former is not None:
        states["former"] = args.former.resolve()
    with tempfile.TemporaryDirectory(prefix="optin-start-") as tmp:
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", f"{tmp}/venv"], check=True)
        python = Path(tmp) / "venv" / "bin" / "python"
        site = _site(python)
        times: dict[str, list[float]] = {name: [] for name in states}
        imports: dict[str, list[int]] = {name: [] for name in states if states[name] is not None}
        for _ in range(args.rounds):
            for name, module in states.items():
                _install(python, site, module)
                times[name].extend(_start(python) for _ in range(3))
                if module is not None:
                    imports[name].append(_importtime(python))
    base_min, base_median = min(times["without"]), statistics.median(times["without"])
    for name, values in times.items():
        line = f"{name:8s} python -c pass: min {min(values) * 1e3:.1f} ms, median {statistics.median(values) * 1e3:.1f} ms"
        if name != "without":
            line += (f"; adds min {(min(values) - base_min) * 1e3:.1f} ms, median "
                     f"{(statistics.median(values) - base_median) * 1e3:.1f} ms; -X importtime of the module: "
                     f"min {min(imports[name])} us, median {statistics.median(imports[name]):.0f} us")
        print(line)


if __name__ == "__main__":
    main()

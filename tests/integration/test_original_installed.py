"""``import hdmea`` warns, naming the other distribution, when the lab pipeline's ``hdmea`` is installed beside us.

A stand-in for the original (a distribution named ``hdmea``, version 0.1.0, with a package ``hdmea``) is built
here as a wheel and installed with pip into a fresh virtual environment that sees this one's packages; the
switch back (``pip uninstall hdmea``) silences the warning.  An editable install of the original is recognised
by its ``direct_url.json``, as pip writes it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

PROBE = (
    "import warnings, json\n"
    "with warnings.catch_warnings(record=True) as caught:\n"
    "    warnings.simplefilter('always')\n"
    "    import hdmea\n"
    "print(json.dumps({'file': hdmea.__file__, 'warnings': [[type(w.message).__name__, str(w.message)] "
    "for w in caught]}))\n"
)


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def build_standin_wheel(folder: Path) -> Path:
    """A wheel of a distribution named hdmea 0.1.0 holding hdmea/__init__.py (as the original's wheel does)."""
    files = {
        "hdmea/__init__.py": b"STANDIN_OF_THE_ORIGINAL = True\n",
        "hdmea-0.1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: hdmea\nVersion: 0.1.0\n",
        "hdmea-0.1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = [_record_line(n, d) for n, d in files.items()] + ["hdmea-0.1.0.dist-info/RECORD,,"]
    files["hdmea-0.1.0.dist-info/RECORD"] = ("\n".join(record) + "\n").encode()
    wheel = folder / "hdmea-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return wheel


def _probe(python: str, env: dict) -> dict:
    done = subprocess.run([python, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def _ours() -> Path:
    """The folder this run imports our ``hdmea`` from: the checkout's ``src`` when built in place, the
    environment's site-packages when installed."""
    import hdmea

    return Path(hdmea.__file__).parents[1]


def _ours_first_env() -> dict:
    ours = str(_ours())
    return {**os.environ, "PYTHONPATH": os.pathsep.join([ours] + [p for p in sys.path if p and p != ours])}


@pytest.mark.slow
def test_a_wheel_install_of_the_original_is_named_and_the_switch_back_silences_it(tmp_path):
    wheel = build_standin_wheel(tmp_path)
    env_dir = tmp_path / "env"
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(env_dir)
    python = str(env_dir / "bin" / "python")
    env = _ours_first_env()
    before = _probe(python, env)
    assert not [w for w in before["warnings"] if w[0] == "OriginalPipelineInstalledWarning"]
    # install the stand-in with pip (this interpreter's pip, aimed at the new environment's interpreter)
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    subprocess.run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index",
                    str(wheel)], check=True, capture_output=True, timeout=120)
    assert (Path(site) / "hdmea-0.1.0.dist-info").is_dir()
    after = _probe(python, env)
    assert after["file"] == str(_ours() / "hdmea" / "__init__.py")
    named = [m for kind, m in after["warnings"] if kind == "OriginalPipelineInstalledWarning"]
    assert len(named) == 1
    assert "'hdmea' 0.1.0" in named[0] and "wheel install" in named[0] and site in named[0]
    assert "pip uninstall hdmea" in named[0] and "from-hdmea-processing.md" in named[0]
    # switching back: uninstall the original
    subprocess.run([sys.executable, "-m", "pip", "--python", python, "uninstall", "-y", "hdmea"], check=True,
                   capture_output=True, timeout=120)
    assert not (Path(site) / "hdmea").exists()
    again = _probe(python, env)
    assert not [w for w in again["warnings"] if w[0] == "OriginalPipelineInstalledWarning"]


def test_an_editable_install_of_the_original_is_named(tmp_path):
    checkout = tmp_path / "hdmea_processing"
    (checkout / "src" / "hdmea").mkdir(parents=True)
    (checkout / "src" / "hdmea" / "__init__.py").write_text("STANDIN_OF_THE_ORIGINAL = True\n")
    site = tmp_path / "site"
    info = site / "hdmea-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: hdmea\nVersion: 0.1.0\n")
    (info / "direct_url.json").write_text(json.dumps({"url": checkout.as_uri(), "dir_info": {"editable": True}}))
    env = _ours_first_env()
    env["PYTHONPATH"] += os.pathsep + str(site)
    result = _probe(sys.executable, env)
    named = [m for kind, m in result["warnings"] if kind == "OriginalPipelineInstalledWarning"]
    assert len(named) == 1 and "editable install from" in named[0] and str(checkout) in named[0]
    assert result["file"] == str(_ours() / "hdmea" / "__init__.py")

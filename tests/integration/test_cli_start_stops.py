"""A stop while the ``hdmea`` command's start imports: the one line of a stop, its exit status, no traceback.

Each case runs the console script's start (``hdmea.__main__.main``) in a fresh interpreter whose import system
sends the process a real signal at a chosen moment: while the stop's words load (``hdmea.cli_stops``, the
first import after the start took the signals) and while the command line loads (``hdmea.cli``).  The
start must end the process with the line every later stop prints and 130 (Ctrl-C) or 75 (SIGTERM), before
the command line runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

#: every test here stops a job by a signal or from another thread (CI runs them again on a busy machine)
pytestmark = pytest.mark.stops

CODE = textwrap.dedent(
    """
    import importlib.abc, os, signal, sys

    class StopWhileImporting(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == {module!r}:
                sys.meta_path.remove(self)
                os.kill(os.getpid(), signal.{signal})
            return None

    sys.meta_path.insert(0, StopWhileImporting())
    sys.argv = ["hdmea", "run", "a.cmcr", "a.cmtr"]
    from hdmea.__main__ import main

    main()
    print("the command line ran", flush=True)
    """
)


@pytest.mark.parametrize(("module", "signal_name", "status"), [
    ("h5stream", "SIGINT", 130),  # while the package itself imports (hdmea/__init__.py, hdmea._early_stops)
    ("h5stream", "SIGTERM", 75),
    ("hdmea.cli_stops", "SIGINT", 130),  # before the words are there: the start ends once they are
    ("hdmea.cli_stops", "SIGTERM", 75),
    ("hdmea.cli", "SIGINT", 130),  # the words are there: the start ends at once
    ("hdmea.cli", "SIGTERM", 75),
])
def test_a_stop_while_the_start_imports_ends_with_the_stop_line(module, signal_name, status):
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}  # this checkout's
    done = subprocess.run([sys.executable, "-c", CODE.format(module=module, signal=signal_name)],
                          capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == status, done.stderr
    assert done.stderr == "hdmea run: stopped; run the same command again to resume\n", done.stderr
    assert "the command line ran" not in done.stdout


AFTER = textwrap.dedent(
    """
    import os, signal, sys, time

    sys.argv = ["hdmea", "inspect", {missing!r}]
    from hdmea.__main__ import main

    code = main()
    print("returned", code, flush=True)
    os.kill(os.getpid(), signal.{signal})  # a stop while the interpreter tears down, the command done
    time.sleep(0.2)
    sys.exit(code)
    """
)


@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGTERM"])
def test_a_stop_after_the_command_returned_leaves_its_status(signal_name, tmp_path):
    """Ctrl-C or SIGTERM after the command's work is done: the process ends with the command's own status, not
    by the signal (status -2 or -15, and nothing said), which told a finished run from a stopped one wrongly."""
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": ""}
    code = AFTER.format(missing=str(tmp_path / "absent.h5"), signal=signal_name)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    said = done.stdout.split()
    assert said[:1] == ["returned"], done.stderr
    assert done.returncode == int(said[1]) > 0, done.stderr  # inspect's status for a file that is not there
    assert "stopped" not in done.stderr and "Traceback" not in done.stderr, done.stderr


CUT_SHORT = textwrap.dedent(
    """
    import importlib.abc, os, signal, sys

    class StopCutsTheImportShort(importlib.abc.MetaPathFinder):
        '''The stop arrives while numpy is imported, and the import fails with another error than the stop's: as
        an extension module's initialisation fails when a call it makes is cut short (numpy's own checks raise
        RuntimeError or AttributeError of a module left half-initialized, h5py's ValueError).'''

        def find_spec(self, name, path=None, target=None):
            if name == "numpy":
                sys.meta_path.remove(self)
                try:
                    signal.raise_signal(signal.{signal})  # its handler has run when this returns
                except KeyboardInterrupt as stop:
                    raise {error}("numpy's initialisation was cut short") from stop
            return None

    sys.meta_path.insert(0, StopCutsTheImportShort())
    sys.argv = ["hdmea", "run", "a.cmcr", "a.cmtr", "--out", "a.h5"]
    from {entry} import main

    main()
    print("the command ran on", flush=True)
    """
)


@pytest.mark.parametrize("entry", ["hdmea.__main__", "hdmea.cli"])
@pytest.mark.parametrize(("signal_name", "status"), [("SIGINT", 130), ("SIGTERM", 75)])
@pytest.mark.parametrize("error", ["RuntimeError", "AttributeError", "ValueError"])
def test_a_stop_that_surfaces_as_another_error_of_an_import_ends_with_the_stop_line(entry, signal_name, status,
                                                                                     error, tmp_path):
    """A stop during numpy's import whose exception an import turned into another error: the stop was recorded,
    so the command ends with the stop's one line and status (before: that error's traceback)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    code = CUT_SHORT.format(signal=signal_name, error=error, entry=entry)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env,
                          cwd=tmp_path)
    assert done.returncode == status, done.stderr
    assert done.stderr == "hdmea run: stopped; run the same command again to resume\n", done.stderr
    assert "the command ran on" not in done.stdout

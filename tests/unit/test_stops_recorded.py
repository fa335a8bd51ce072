"""A Ctrl-C that a library takes outside any import and any :class:`~h5stream.stops.kept_stops` block is recorded
(:func:`h5stream.stops.recorded`) and raised again where the work next asks; one the program's own code
catches is handled for good.

Each test runs a fresh interpreter that sends itself a real SIGINT with ``signal.raise_signal`` (the handler runs
before that call returns, in the frame that called it: no sleeps, no races).  The library is a module in a folder
the program names as a library's (:data:`h5stream.stops.LIBRARY_PATHS`, which holds the standard library, the
installed packages and this project's packages); its ``except BaseException: pass`` takes the stop, as a
third-party package's would while a job's configuration loads.  The reference each test compares with: the same
program under Python's own Ctrl-C handler, which loses the stop.
"""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

LIBRARY = """
import signal

def load_settings():  # a library call that takes everything, outside any import
    try:
        signal.raise_signal(signal.SIGINT)  # the handler runs here, before raise_signal returns
    except BaseException:
        pass
    return {"ok": True}

_TAKE_ALL = '''
def {name}():
    try:
        signal.raise_signal(signal.SIGINT)
    except BaseException:
        pass
    return {{"ok": True}}
'''
_made = {}
# code a library makes at run time has the file name "<string>", as python -c has: a dataclass's methods run in
# their module's globals; a namedtuple's in a namespace of their own
exec(_TAKE_ALL.format(name="generated_in_module"), globals(), _made)
generated_in_module = _made["generated_in_module"]
_own = {"signal": signal, "__name__": "namedtuple_Settings", "__builtins__": __builtins__}
exec(_TAKE_ALL.format(name="generated_in_own_namespace"), _own)
generated_in_own_namespace = _own["generated_in_own_namespace"]

def convert():  # a library that turns the stop into another error (CPython's warnings do, inside numpy's import)
    try:
        signal.raise_signal(signal.SIGINT)
    except KeyboardInterrupt:
        raise TypeError("expected a message argument")
"""

PROGRAM = """
import os, signal, sys
sys.path.insert(0, {folder!r})
import h5stream
from h5stream import stops

if {python_own}:  # Python's own Ctrl-C handler: the reference, which loses the stop
    signal.signal(signal.SIGINT, signal.default_int_handler)
getattr(stops, "LIBRARY_PATHS", []).append(os.path.join({folder!r}, ""))  # (a build before the rule: none)
import library

folder = {folder!r}
what = {what!r}
try:
    if what == "own":  # the program's own except takes it: handled, also while the except runs
        try:
            signal.raise_signal(signal.SIGINT)
        except KeyboardInterrupt:
            stops.check_point()
            print("the program took it", flush=True)
    elif what.startswith("generated"):
        getattr(library, what)()
    else:
        library.load_settings()
    stops.check_point()
    if what == "run_pipeline":
        from hdmea.pipeline import run_pipeline

        run_pipeline(folder + "/r.cmcr", folder + "/r.cmtr", folder + "/out/r.h5", show_progress=False)
    elif what == "run_batch":
        from hdmea.pipeline import run_batch

        run_batch(folder + "/recordings", None, folder + "/out", show_progress=False)
    elif what == "save":
        from hdmea.session.session import create_session

        create_session("r", output_dir=None, hdf5_path=folder + "/out/r.h5").save()
    print("ran on", flush=True)
except KeyboardInterrupt as exc:
    print("stopped", type(exc).__name__, flush=True)
"""


def _run(tmp_path, what: str, python_own: bool, child_env, check_point: bool = True) -> subprocess.CompletedProcess:
    (tmp_path / "library.py").write_text(LIBRARY)
    program = PROGRAM.format(folder=str(tmp_path), what=what, python_own=python_own)
    if not check_point:
        program = program.replace("    stops.check_point()\n    if what", "    if what")
    return subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=300,
                          env=child_env)


@pytest.mark.stops
def test_a_ctrl_c_a_library_takes_is_raised_at_the_next_check_point(tmp_path, child_env):
    lost = _run(tmp_path, "check_point", True, child_env)
    assert lost.stdout.splitlines() == ["ran on"], lost
    taken = _run(tmp_path, "check_point", False, child_env)
    assert taken.stdout.splitlines() == ["stopped KeyboardInterrupt"], taken
    assert taken.stderr == "", taken.stderr


@pytest.mark.stops
@pytest.mark.parametrize("what", ["generated_in_module", "generated_in_own_namespace"])
def test_a_ctrl_c_taken_by_code_a_library_made_at_run_time_is_raised_again(tmp_path, child_env, what):
    """Code a library generates (``exec``: a dataclass's methods, a namedtuple's) is named ``<string>`` as
    ``python -c`` is; its ``except BaseException`` is still a library's, so the next check point raises the
    stop.  The reference: Python's own handler loses it."""
    lost = _run(tmp_path, what, True, child_env)
    assert lost.stdout.splitlines() == ["ran on"], lost
    taken = _run(tmp_path, what, False, child_env)
    assert taken.stdout.splitlines() == ["stopped KeyboardInterrupt"], taken
    assert taken.stderr == "", taken.stderr


@pytest.mark.stops
def test_a_ctrl_c_the_programs_own_exec_code_takes_is_handled(tmp_path, child_env):
    """``exec`` in the program's own globals (``python -c``'s ``__main__``) is the program's code: its catch
    handles the stop."""
    (tmp_path / "library.py").write_text(LIBRARY)
    program = PROGRAM.format(folder=str(tmp_path), what="own", python_own=False).replace(
        """        try:
            signal.raise_signal(signal.SIGINT)
        except KeyboardInterrupt:
            stops.check_point()
            print("the program took it", flush=True)""",
        """        exec("try:\\n    signal.raise_signal(signal.SIGINT)\\nexcept KeyboardInterrupt:\\n"
             "    stops.check_point()\\n    print('the program took it', flush=True)\\n")""")
    assert "exec(" in program
    took = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=300,
                          env=child_env)
    assert took.stdout.splitlines() == ["the program took it", "ran on"], took
    assert took.stderr == "", took.stderr


@pytest.mark.stops
@pytest.mark.parametrize("what", ["run_pipeline", "run_batch", "save"])
def test_a_ctrl_c_a_library_took_before_a_job_ends_the_job_at_its_start(tmp_path, child_env, what):
    """The configuration's loading took the stop; the job (a run, a batch, a session's save) raises it before
    it reads or writes anything: no output folder is made."""
    (tmp_path / "recordings").mkdir()
    taken = _run(tmp_path, what, False, child_env, check_point=False)
    assert taken.stdout.splitlines() == ["stopped KeyboardInterrupt"], taken
    assert taken.stderr == "", taken.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.stops
@pytest.mark.parametrize("python_own", [True, False])
def test_a_ctrl_c_the_programs_own_except_takes_is_handled(tmp_path, child_env, python_own):
    """The program's ``except KeyboardInterrupt`` handles the stop: nothing raises it again, neither inside that
    ``except`` (which may save what it has) nor later."""
    took = _run(tmp_path, "own", python_own, child_env)
    assert took.stdout.splitlines() == ["the program took it", "ran on"], took
    assert took.stderr == "", took.stderr


UNCAUGHT = """
import sys
sys.path.insert(0, {folder!r})
import os
from h5stream import stops

getattr(stops, "LIBRARY_PATHS", []).append(os.path.join({folder!r}, ""))  # (a build before the rule: none)
import library

print("before", flush=True)
library.convert()
print("ran on", flush=True)
"""


@pytest.mark.stops
def test_an_error_a_stop_caused_ends_the_program_as_the_stop(tmp_path, child_env):
    """A stop that comes out of a library as another error, which the program does not catch, ends the program
    as the stop: one line naming the error, then by SIGINT (as an uncaught ``KeyboardInterrupt`` does), no
    traceback."""
    (tmp_path / "library.py").write_text(LIBRARY)
    done = subprocess.run([sys.executable, "-c", UNCAUGHT.format(folder=str(tmp_path))], capture_output=True,
                          text=True, timeout=120, env=child_env)
    assert done.stdout.splitlines() == ["before"], done
    assert done.returncode == -signal.SIGINT, done
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and "stopped by Ctrl-C" in lines[0], done.stderr
    assert "TypeError: expected a message argument" in lines[0], done.stderr


def test_the_program_and_the_libraries_are_told_apart():
    import json

    import pytest as installed

    from h5stream import stops

    assert not stops.is_program_code(json.__file__)  # the standard library
    assert not stops.is_program_code(installed.__file__)  # an installed package
    assert not stops.is_program_code(stops.__file__)  # this project's own packages
    assert not stops.is_program_code("<frozen importlib._bootstrap>")
    assert stops.is_program_code(__file__)  # the program's own code (here: its tests)
    assert stops.is_program_code("<string>")  # python -c
    main_globals = {"__name__": "__main__"}  # python -c, standard input
    assert stops.is_program_frame(eval("sys._getframe()", {**main_globals, "sys": sys}))
    in_stdlib = eval("sys._getframe()", {"__name__": "json", "__file__": json.__file__, "sys": sys})
    assert not stops.is_program_frame(in_stdlib)  # a dataclass's method of a library's class
    assert not stops.is_program_frame(eval("sys._getframe()", {"__name__": "namedtuple_X", "sys": sys}))
    assert stops.is_program_frame(eval("sys._getframe()", {"__name__": "m", "__file__": __file__, "sys": sys}))

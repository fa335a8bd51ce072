"""Typed errors say where, what was expected, what was found and what to do; names stay in their group."""

from __future__ import annotations

import pickle

import h5py
import pytest

from h5stream import errors
from h5stream.errors import (
    EncodingError,
    FormatError,
    H5StreamError,
    MissingPluginError,
    SourceNotFoundError,
    TargetExistsError,
    UnknownEncodingError,
    UnsafeFileError,
    UnsafeNameError,
    WriteError,
    WriterClaimError,
    compose_message,
)
from h5stream.names import check_name


def test_message_names_path_object_expected_found_and_hint():
    err = FormatError(
        "unsupported format version", path="/data/run.h5", obj="/@format_version",
        expected="one of 1.0, 2.0", found="'9.0'", hint="upgrade h5stream",
    )
    assert str(err) == (
        "/data/run.h5 [/@format_version]: unsupported format version "
        "(expected one of 1.0, 2.0, found '9.0'). upgrade h5stream"
    )
    assert (err.path, err.obj, err.expected, err.found, err.hint) == (
        "/data/run.h5", "/@format_version", "one of 1.0, 2.0", "'9.0'", "upgrade h5stream",
    )


@pytest.mark.parametrize(
    "kwargs, text",
    [
        ({}, "bad"),
        ({"path": "f.h5"}, "f.h5: bad"),
        ({"obj": "/x"}, "[/x]: bad"),
        ({"found": "3"}, "bad (found 3)"),
        ({"expected": "2"}, "bad (expected 2)"),
        ({"hint": "fix it"}, "bad. fix it"),
    ],
)
def test_message_parts_are_optional(kwargs, text):
    assert compose_message("bad", **kwargs) == text
    assert str(H5StreamError("bad", **kwargs)) == text


def test_path_like_objects_are_accepted(tmp_path):
    err = WriteError("disk full", path=tmp_path / "a.h5")
    assert err.path == str(tmp_path / "a.h5") and str(err).startswith(str(tmp_path / "a.h5"))


@pytest.mark.parametrize(
    "cls, builtin",
    [
        (FormatError, OSError),
        (UnknownEncodingError, FormatError),
        (MissingPluginError, FormatError),
        (UnsafeFileError, FormatError),
        (WriteError, OSError),
        (TargetExistsError, FileExistsError),
        (SourceNotFoundError, FileNotFoundError),
        (WriterClaimError, OSError),
        (EncodingError, TypeError),
        (UnsafeNameError, ValueError),
    ],
)
def test_errors_are_catchable_as_the_matching_builtin(cls, builtin):
    err = cls("went wrong", path="p.h5")
    assert isinstance(err, builtin) and isinstance(err, H5StreamError)
    # OSError subclasses must not reinterpret the message as (errno, strerror).
    assert str(err) == "p.h5: went wrong"
    with pytest.raises(builtin):
        raise err


def test_every_exported_error_is_an_h5stream_error_and_warnings_are_warnings():
    for name in errors.__all__:
        obj = getattr(errors, name)
        if name.endswith("Warning"):
            assert issubclass(obj, errors.H5StreamWarning) and issubclass(obj, UserWarning)
        else:
            assert issubclass(obj, H5StreamError), name
    assert issubclass(errors.StaleClaimWarning, errors.H5StreamWarning)


def test_errors_keep_their_message_through_pickle():
    err = FormatError("truncated", path="a.h5", obj="/x")
    copy = pickle.loads(pickle.dumps(err))
    assert type(copy) is FormatError and str(copy) == str(err)
    os_err = WriteError("full", path="a.h5")
    assert os_err.errno is None  # no errno invented from the message


# --------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    "bad, words",
    [
        ("", "is empty"),
        (".", "'.'"),
        ("..", "'..'"),
        ("a/b", "contains '/'"),
        ("/abs", "contains '/'"),
        ("nul\x00", "NUL"),
    ],
)
def test_check_name_rejects_names_that_nest_escape_or_vanish(bad, words):
    with pytest.raises(UnsafeNameError) as info:
        check_name(bad, what="unit name", path="rec.h5")
    message = str(info.value)
    assert message.startswith("rec.h5: unit name")
    assert words in message
    assert "expected a non-empty name" in message and "rename it" in message
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("bad", [3, None, b"bytes", ("a",)])
def test_check_name_rejects_non_strings(bad):
    with pytest.raises(UnsafeNameError) as info:
        check_name(bad)
    assert info.value.found == type(bad).__name__


@pytest.mark.parametrize("good", ["unit_001", "a.b", "...", " spaced ", "ünïcödé", "x" * 300, "-"])
def test_accepted_names_stay_one_link_in_their_group(good, tmp_path):
    assert check_name(good) == good
    with h5py.File(tmp_path / "n.h5", "w") as f:
        group = f.create_group("g")
        group[check_name(good)] = 1
        assert list(group.keys()) == [good]
        assert list(f.keys()) == ["g"]

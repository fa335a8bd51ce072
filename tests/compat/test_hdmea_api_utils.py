"""The original pipeline's utilities and exceptions at their import paths, called the original way."""

from __future__ import annotations

import hashlib
import json
import logging

import pytest


def test_hash_config_is_canonical_sha256_prefix():
    from hdmea.utils.hashing import hash_config, hash_file, verify_hash

    config = {"b": [1, 2], "a": {"y": 1.5, "x": "s"}}
    text = '{"a":{"x":"s","y":1.5},"b":[1,2]}'  # keys sorted, no spaces, written out by hand
    expected = "sha256:" + hashlib.sha256(text.encode()).hexdigest()[:16]
    assert hash_config(config) == expected
    assert hash_config(dict(reversed(list(config.items())))) == expected
    assert hash_config(config, prefix="x") == "x:" + expected.split(":")[1]
    assert verify_hash(config, expected) and not verify_hash({**config, "c": 0}, expected)
    assert json.loads(text) == config


def test_hash_file(tmp_path):
    from hdmea.utils.hashing import hash_file

    data = bytes(range(256)) * 9000
    (tmp_path / "f.bin").write_bytes(data)
    assert hash_file(str(tmp_path / "f.bin")) == "sha256:" + hashlib.sha256(data).hexdigest()[:16]


def test_validation(tmp_path):
    from hdmea.utils.exceptions import ConfigurationError
    from hdmea.utils.validation import (
        DATASET_ID_PATTERN, derive_dataset_id, validate_cmcr_path, validate_cmtr_path, validate_dataset_id,
        validate_input_files, validate_path_exists,
    )

    assert validate_dataset_id("2025.04.10-11.12.57-Rec-") == "2025.04.10-11.12.57-Rec"
    for bad in ("", "---", "a/b", "a:b", 'a"b', "a|b"):
        with pytest.raises(ConfigurationError):
            validate_dataset_id(bad)
    assert DATASET_ID_PATTERN.match("JIANG009_2024-01-15") and not DATASET_ID_PATTERN.match("a*b")
    cmcr, cmtr = tmp_path / "r.cmcr", tmp_path / "r-.cmtr"
    cmcr.write_bytes(b"x")
    cmtr.write_bytes(b"x")
    assert validate_path_exists(str(cmcr)) == cmcr
    with pytest.raises(FileNotFoundError, match="CMTR file not found"):
        validate_cmtr_path(tmp_path / "missing.cmtr")
    with pytest.raises(ConfigurationError, match=r"\.cmcr"):
        validate_cmcr_path(cmtr)
    assert validate_cmcr_path(None) is None
    assert validate_input_files(cmcr, None) == (cmcr, None)
    with pytest.raises(ConfigurationError):
        validate_input_files(None, None)
    assert derive_dataset_id(cmcr, cmtr) == "r"  # the .cmtr first, trailing hyphen dropped
    assert derive_dataset_id(cmcr, None) == "r"


def test_logging(caplog):
    from hdmea.utils.logging import LoggerMixin, get_logger, setup_logging

    setup_logging(level="debug", format_style="minimal")
    assert get_logger("hdmea.x") is logging.getLogger("hdmea.x")

    class Thing(LoggerMixin):
        pass

    assert Thing().logger.name == f"{__name__}.Thing"
    from hdmea.utils.exceptions import ConfigurationError

    with pytest.raises(ConfigurationError):
        setup_logging(level="loud")


def test_exceptions_both_hierarchies_catch():
    from hdmea import errors
    from hdmea.utils import exceptions as orig

    assert orig.HDMEAError is errors.HdmeaError
    assert orig.ConfigurationError is errors.ConfigError
    for name in ("DataLoadError", "FeatureExtractionError", "MissingInputError", "CacheConflictError",
                 "ValidationError", "MismatchError", "SessionError", "CheckpointError"):
        assert issubclass(getattr(orig, name), errors.HdmeaError), name
    # what our readers and steps raise is caught by the original's names
    assert issubclass(errors.RecordingFormatError, orig.DataLoadError)
    assert issubclass(errors.CorruptRecordingError, orig.DataLoadError)
    assert issubclass(errors.MissingStepError, orig.MissingInputError)
    # the original's constructor fields
    e = orig.DataLoadError("cannot read", file_path="/d/r.cmcr", original_error=OSError("x"))
    assert (e.file_path, str(e.original_error)) == ("/d/r.cmcr", "x") and "/d/r.cmcr" in str(e)
    e = orig.MissingInputError("no STA", feature_name="rf", missing_input="units/u/features/sta")
    assert (e.feature_name, e.missing_input) == ("rf", "units/u/features/sta")
    e = orig.FeatureExtractionError("failed", "rf", "unit_001", ValueError("v"))
    assert (e.feature_name, e.unit_id) == ("rf", "unit_001")
    e = orig.CacheConflictError("exists", feature_name="rf", unit_id="u", existing_version="1.0")
    assert e.existing_version == "1.0"
    e = orig.ValidationError("bad", entity="unit", entity_id="u1", field="spike_times")
    assert isinstance(e, ValueError) and e.field == "spike_times"
    e = orig.MismatchError("differ", cmcr_path="a.cmcr", cmtr_path="b.cmtr", reason="ids")
    assert e.reason == "ids"
    e = orig.SessionError("state", session_id="rec", operation="save")
    assert (e.session_id, e.operation) == ("rec", "save")
    e = orig.CheckpointError("cannot", checkpoint_path="c.h5")
    assert e.checkpoint_path == "c.h5" and e.path == "c.h5"
    with pytest.raises(TypeError):
        orig.MismatchError("m", "a", "b", "c", "too many")

"""Typed access to the tables of a TOML configuration, each value checked and each error naming its key.

:class:`TableReader` remembers the dotted key path of its table
(``stimulus.trials.step_up``) so that every :class:`~hdmea.errors.ConfigError`
names the key, the reason, the file and what was found; unknown keys are
refused with the closest known one as a hint.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Callable, Mapping
from typing import Any

from hdmea.errors import ConfigError

__all__ = ["TableReader", "config_error"]


def config_error(key: str, reason: str, *, source: str | None = None, found: Any = None,
                 expected: str | None = None, hint: str | None = None) -> ConfigError:
    """A :class:`ConfigError` naming ``key`` and the reason (and the file, what was found, what to do)."""
    return ConfigError(
        f"{key}: {reason}",
        path=source,
        expected=expected,
        found=None if found is None else repr(found),
        hint=hint,
    )


class TableReader:
    """Typed access to one TOML table that remembers the key path for errors."""

    def __init__(self, table: Any, key: str, source: str | None) -> None:
        if not isinstance(table, Mapping):
            raise config_error(key or "<root>", "must be a table", source=source,
                        expected="a table", found=type(table).__name__)
        self.table = dict(table)
        self.key = key
        self.source = source
        self.used: set[str] = set()

    def child_key(self, name: str) -> str:
        return f"{self.key}.{name}" if self.key else name

    def get(self, name: str, kind: str, default: Any = dataclasses.MISSING) -> Any:
        self.used.add(name)
        key = self.child_key(name)
        if name not in self.table:
            if default is dataclasses.MISSING:
                raise config_error(key, "is required", source=self.source)
            return default
        value = self.table[name]
        return _CHECKS[kind](value, key, self.source)

    def table_of(self, name: str) -> TableReader:
        self.used.add(name)
        return TableReader(self.table.get(name, {}), self.child_key(name), self.source)

    def reject_unknown(self, allowed: set[str] | None = None) -> None:
        allowed = self.used if allowed is None else allowed
        for name in self.table:
            if name not in allowed:
                close = difflib.get_close_matches(name, sorted(allowed), n=1)
                hint = f"did you mean {close[0]!r}?" if close else (
                    "known keys: " + ", ".join(sorted(allowed)) if allowed else None)
                raise config_error(self.child_key(name), "unknown key", source=self.source, hint=hint)


def _check_bool(value, key, source):
    if not isinstance(value, bool):
        raise config_error(key, "must be true or false", source=source, found=value)
    return value


def _check_int(value, key, source):
    if isinstance(value, bool) or not isinstance(value, int):
        raise config_error(key, "must be an integer", source=source, found=value)
    return value


def _check_number(value, key, source):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise config_error(key, "must be a finite number", source=source, found=value)
    return float(value)


def _check_str(value, key, source):
    if not isinstance(value, str) or not value:
        raise config_error(key, "must be a non-empty string", source=source, found=value)
    return value


def _check_str_list(value, key, source):
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise config_error(key, "must be a list of non-empty strings", source=source, found=value)
    return tuple(value)


def _check_any(value, key, source):
    return value


_CHECKS = {
    "bool": _check_bool,
    "int": _check_int,
    "number": _check_number,
    "str": _check_str,
    "str_list": _check_str_list,
    "any": _check_any,
}


def check_parameter_values(arguments: Mapping[str, Any], key: str, source: str | None,
                           checks: Mapping[str, Callable[[Any], Any]]) -> None:
    """Run the value check in ``checks`` of every parameter that has one; a bad value names ``key.name``."""
    for name, value in arguments.items():
        check = checks.get(name)
        if check is None:
            continue
        try:
            check(value)
        except ConfigError as exc:
            raise config_error(f"{key}.{name}", exc.args[0] if exc.args else str(exc), source=source, found=value,
                               expected=getattr(exc, "expected", None), hint=getattr(exc, "hint", None)) from exc

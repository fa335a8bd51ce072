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
import re
from collections.abc import Callable, Mapping
from typing import Any

from hdmea.errors import ConfigError

__all__ = ["TableReader", "config_error", "describe_value", "explain_toml_conflict"]


def config_error(key: str, reason: str, *, source: str | None = None, found: Any = None,
                 expected: str | None = None, hint: str | None = None, note: str | None = None) -> ConfigError:
    """A :class:`ConfigError` naming ``key`` and the reason (and the file, what was found, what to do).

    ``found`` is shown as the configuration writes it (:func:`describe_value`), ``note`` after it.
    """
    shown = None if found is None else describe_value(found)
    if note:
        shown = f"{shown}, {note}"
    return ConfigError(
        f"{key}: {reason}",
        path=source,
        expected=expected,
        found=shown,
        hint=hint,
    )


def describe_value(found: Any) -> str:
    """A value as a TOML file writes it: ``"twenty"``, ``2.5``, ``[1, 2]``, ``true``, ``a table``."""
    if isinstance(found, bool):
        return "true" if found else "false"
    if isinstance(found, str):
        return f'"{found}"'
    if isinstance(found, Mapping):
        return "a table"
    if isinstance(found, (list, tuple)):
        return "[" + ", ".join(describe_value(x) for x in found) + "]"
    if isinstance(found, float):
        return f"{found:g}"
    return str(found)


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


_HEADER = re.compile(r"^\s*\[\s*([^\[\]]+?)\s*\]\s*(#.*)?$")
_ARRAY_HEADER = re.compile(r"^\s*\[\[")
_ASSIGNMENT = re.compile(r"^\s*([A-Za-z0-9_.\-\"' ]+?)\s*=")


def _dotted(text: str) -> tuple[str, ...]:
    return tuple(part.strip().strip("\"'") for part in text.split("."))


def explain_toml_conflict(text: str) -> str | None:
    """What a TOML "Cannot overwrite a value" / "Cannot declare ... twice" means in ``text``, with the fix.

    Finds a key given twice in a table, a table declared twice, or a key that is both a value and a table
    (``compute_sta = true`` under ``[steps]`` and a ``[steps.compute_sta]`` table), naming both lines;
    None when the text shows none of these.
    """
    keys: dict[tuple[str, ...], int] = {}  # full key path -> line of its value
    tables: dict[tuple[str, ...], int] = {}  # table path -> line of its header
    current: tuple[str, ...] | None = ()
    for number, line in enumerate(text.splitlines(), start=1):
        if _ARRAY_HEADER.match(line):
            current = None  # arrays of tables repeat on purpose
            continue
        header = _HEADER.match(line)
        if header:
            current = _dotted(header.group(1))
            name = ".".join(current)
            if current in tables:
                return (f"the table [{name}] is declared twice (lines {tables[current]} and {number}); "
                        "TOML allows one: merge them into one table")
            if current in keys:
                parent, step = ".".join(current[:-1]), current[-1]
                fix = (f"keep the table, delete line {keys[current]} and put `enabled = true` (or false) in "
                       f"[{name}]" if parent == "steps" else "keep one of them")
                return (f"{name} is given twice: `{step} = ...` under [{parent or 'the top'}] (line {keys[current]}) "
                        f"and the table [{name}] (line {number}); TOML allows only one, so {fix}")
            tables[current] = number
            continue
        assignment = _ASSIGNMENT.match(line)
        if assignment and current is not None and not line.lstrip().startswith("#"):
            path = current + _dotted(assignment.group(1))
            name = ".".join(path)
            if path in keys:
                return f"{name} is given twice (lines {keys[path]} and {number}); keep one of them"
            if path in tables:
                return (f"{name} is given twice: the table [{name}] (line {tables[path]}) and `{path[-1]} = ...` "
                        f"(line {number}); TOML allows only one, so keep one of them")
            keys[path] = number
    return None

"""Typed access to the tables of a TOML configuration, each value checked and each error naming its key.

:class:`TableReader` remembers the dotted key path of its table
(``stimulus.trials.step_up``) so that every :class:`~hdmea.errors.ConfigError`
names the key, the reason, the file and what was found; unknown keys are
refused with the closest known one as a hint.  The readers of one configuration share a
:class:`Problems`: a wrong value is noted there and reading goes on with its default, so that one reading
finds every mistake; :meth:`Problems.raise_if_any` then raises them all at once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from hdmea.errors import ConfigError, ConfigErrors

__all__ = ["Problems", "TableReader", "at_least", "config_error", "describe_value", "explain_toml_conflict", "key_lines",
           "line_of"]


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
        key=key,
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


class Problems:
    """The mistakes found in one configuration so far; reading goes on past each one."""

    def __init__(self) -> None:
        self.errors: list[ConfigError] = []

    def __len__(self) -> int:
        return len(self.errors)

    def add(self, error: ConfigError) -> None:
        self.errors.extend(error.problems if isinstance(error, ConfigErrors) else [error])

    @contextlib.contextmanager
    def each(self):
        """A check whose mistake is noted; what follows the block runs all the same."""
        try:
            yield
        except ConfigError as exc:
            self.add(exc)

    def raise_if_any(self, source: str | None) -> None:
        """Raise the mistakes as one :class:`~hdmea.errors.ConfigErrors` (one mistake reads as it does alone)."""
        if self.errors:
            raise ConfigErrors(self.errors, path=source)


class TableReader:
    """Typed access to one TOML table that remembers the key path for errors.

    With ``problems``, a value that is missing, of the wrong kind or refused by its check is noted there and
    its default (``fallback`` for a required key) is returned, so the caller reads on; without, it is raised.
    """

    def __init__(self, table: Any, key: str, source: str | None, problems: Problems | None = None) -> None:
        self.problems = problems
        if not isinstance(table, Mapping):
            error = config_error(key or "<root>", "must be a table", source=source,
                                 expected="a table", found=type(table).__name__)
            if problems is None:
                raise error
            problems.add(error)
            table = {}
        self.table = dict(table)
        self.key = key
        self.source = source
        self.used: set[str] = set()

    def child_key(self, name: str) -> str:
        return f"{self.key}.{name}" if self.key else name

    def refuse(self, error: ConfigError) -> None:
        """Note ``error`` (raise it when this reader collects no problems)."""
        if self.problems is None:
            raise error
        self.problems.add(error)

    def get(self, name: str, kind: str, default: Any = dataclasses.MISSING, *,
            check: Callable[[Any], str | None] | None = None, fallback: Any = None) -> Any:
        """The value of ``name``, of ``kind``; ``check`` returns what is wrong with a value (None: good)."""
        self.used.add(name)
        key = self.child_key(name)
        if name not in self.table:
            if default is dataclasses.MISSING:
                self.refuse(config_error(key, "is required", source=self.source))
                return fallback
            return default
        try:
            value = _CHECKS[kind](self.table[name], key, self.source)
            wrong = None if check is None else check(value)
            if wrong is not None:
                raise config_error(key, wrong, source=self.source, found=value)
        except ConfigError as exc:
            self.refuse(exc)
            return fallback if default is dataclasses.MISSING else default
        return value

    def table_of(self, name: str) -> TableReader:
        self.used.add(name)
        return TableReader(self.table.get(name, {}), self.child_key(name), self.source, self.problems)

    def reject_unknown(self, allowed: set[str] | None = None) -> None:
        allowed = self.used if allowed is None else allowed
        for name in self.table:
            if name not in allowed:
                close = difflib.get_close_matches(name, sorted(allowed), n=1)
                hint = f"did you mean {close[0]!r}?" if close else (
                    "known keys: " + ", ".join(sorted(allowed)) if allowed else None)
                self.refuse(config_error(self.child_key(name), "unknown key", source=self.source, hint=hint))


def at_least(minimum: float, *, above: bool = False) -> Callable[[Any], str | None]:
    """A check of :meth:`TableReader.get`: the value is ``>= minimum`` (``> minimum`` with ``above``)."""
    def check(value: Any) -> str | None:
        if value is None or (value > minimum if above else value >= minimum):
            return None
        return f"must be {'>' if above else '>='} {minimum:g}"
    return check


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
        except ConfigError as exc:  # its message says what was expected, what was found and what to do
            raise config_error(f"{key}.{name}", str(exc), source=source) from exc


_HEADER = re.compile(r"^\s*\[\s*([^\[\]]+?)\s*\]\s*(#.*)?$")
_ARRAY_HEADER = re.compile(r"^\s*\[\[")
_ASSIGNMENT = re.compile(r"^\s*([A-Za-z0-9_.\-\"' ]+?)\s*=")


def _dotted(text: str) -> tuple[str, ...]:
    return tuple(part.strip().strip("\"'") for part in text.split("."))


def _entries(text: str):
    """``(kind, path, line)`` of each table header (``"table"``) and key (``"key"``) of a TOML text, in order.

    Lines inside arrays of tables (``[[...]]``, which repeat on purpose) are left out; a key's path is the
    path of its table and its own (dotted) name.
    """
    current: tuple[str, ...] | None = ()
    for number, line in enumerate(text.splitlines(), start=1):
        if _ARRAY_HEADER.match(line):
            current = None
            continue
        header = _HEADER.match(line)
        if header:
            current = _dotted(header.group(1))
            yield "table", current, number
            continue
        assignment = _ASSIGNMENT.match(line)
        if assignment and current is not None and not line.lstrip().startswith("#"):
            yield "key", current + _dotted(assignment.group(1)), number


def key_lines(text: str) -> dict[tuple[str, ...], int]:
    """The line of each key and table header of a TOML text (the first, where one is given twice)."""
    lines: dict[tuple[str, ...], int] = {}
    for _kind, path, number in _entries(text):
        lines.setdefault(path, number)
    return lines


def line_of(key: str | None, lines: Mapping[tuple[str, ...], int]) -> int | None:
    """The line ``key`` (``stimulus.trials.step_up.repeat``) is on: its own, else its nearest table's written."""
    path = _dotted(key) if key else ()
    while path:
        if path in lines:
            return lines[path]
        path = path[:-1]
    return None


def explain_toml_conflict(text: str) -> str | None:
    """What a TOML "Cannot overwrite a value" / "Cannot declare ... twice" means in ``text``, with the fix.

    Finds a key given twice in a table, a table declared twice, or a key that is both a value and a table
    (``compute_sta = true`` under ``[steps]`` and a ``[steps.compute_sta]`` table), naming both lines;
    None when the text shows none of these.
    """
    keys: dict[tuple[str, ...], int] = {}  # full key path -> line of its value
    tables: dict[tuple[str, ...], int] = {}  # table path -> line of its header
    for kind, path, number in _entries(text):
        name = ".".join(path)
        if kind == "table":
            if path in tables:
                return (f"the table [{name}] is declared twice (lines {tables[path]} and {number}); "
                        "TOML allows one: merge them into one table")
            if path in keys:
                parent, step = ".".join(path[:-1]), path[-1]
                fix = (f"keep the table, delete line {keys[path]} and put `enabled = true` (or false) in "
                       f"[{name}]" if parent == "steps" else "keep one of them")
                return (f"{name} is given twice: `{step} = ...` under [{parent or 'the top'}] (line {keys[path]}) "
                        f"and the table [{name}] (line {number}); TOML allows only one, so {fix}")
            tables[path] = number
            continue
        if path in keys:
            return f"{name} is given twice (lines {keys[path]} and {number}); keep one of them"
        if path in tables:
            return (f"{name} is given twice: the table [{name}] (line {tables[path]}) and `{path[-1]} = ...` "
                    f"(line {number}); TOML allows only one, so keep one of them")
        keys[path] = number
    return None

"""Logging set-up at the original pipeline's import path (library modules only log; scripts configure)."""

from __future__ import annotations

import logging as _logging

__all__ = ["setup_logging", "get_logger", "LoggerMixin"]

_FORMATS = {
    "default": "%(asctime)s | %(name)s | %(levelname)s | %(message)s",
    "minimal": "%(levelname)s | %(message)s",
}


def setup_logging(level: str = "INFO", format_style: str = "default") -> None:
    """Configure the root logger once, for a script or notebook (``format_style``: default or minimal)."""
    numeric = _logging.getLevelName(str(level).upper())
    if not isinstance(numeric, int):
        from hdmea.errors import ConfigError

        raise ConfigError(f"unknown log level {level!r}", expected="DEBUG, INFO, WARNING, ERROR or CRITICAL")
    fmt = _FORMATS.get(format_style, _FORMATS["default"])
    _logging.basicConfig(level=numeric, format=fmt, datefmt="%Y-%m-%d %H:%M:%S")


def get_logger(name: str) -> _logging.Logger:
    """The logger of that name (``get_logger(__name__)`` in a module)."""
    return _logging.getLogger(name)


class LoggerMixin:
    """Gives a class a ``logger`` named after its module and class."""

    @property
    def logger(self) -> _logging.Logger:
        cls = type(self)
        return _logging.getLogger(f"{cls.__module__}.{cls.__name__}")

"""The optional extras (NWB, SpikeInterface, zarr, Parquet, ...): one place that imports them or says what to install."""

from __future__ import annotations

import importlib
from types import ModuleType

from hdmea.errors import HdmeaError

__all__ = ["MissingExtraError", "require"]


class MissingExtraError(HdmeaError, ImportError):
    """An optional dependency is not installed; the message names the extra that provides it."""


def require(module: str, extra: str, feature: str) -> ModuleType:
    """``import module`` or a :class:`MissingExtraError` naming ``pip install "h5stream[extra]"``."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(
            f"{feature} needs the Python package {module.split('.')[0]!r}, which is not installed",
            expected=f"an importable {module}", found=f"ImportError: {exc}",
            hint=f'install the extra: pip install "h5stream[{extra}]"',
        ) from exc

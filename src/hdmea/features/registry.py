"""A registry of named, versioned feature extractors.

An extractor is a function ``fn(inputs: UnitInputs, **params) -> dict`` that turns
one unit's stored data into a feature (arrays, scalars, nested dicts).  It is
registered with its name, version, the inputs it needs and its default
parameters::

    @register_extractor("firing_rate", version="1", requires=("units/{unit}/spike_times_sectioned/{movie}",),
                        defaults={"movie": None})
    def firing_rate(inputs, *, movie):
        ...

Every stored result carries ``name``, ``version``, ``params_hash`` (of the name,
version and resolved parameters) and ``extracted_at``; a result whose name,
version and hash match is not recomputed unless forced.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from typing import Any

from h5stream.jsonvalues import stable_hash
from hdmea.errors import ConfigError

__all__ = [
    "FeatureExtractor",
    "register_extractor",
    "get_extractor",
    "list_extractors",
    "params_hash",
    "UnknownFeatureError",
]

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())


class UnknownFeatureError(ConfigError, KeyError):
    """No extractor is registered under the requested name."""

    def __str__(self) -> str:  # KeyError would quote the message
        return ConfigError.__str__(self)


def params_hash(name: str, version: str, params: Mapping[str, Any]) -> str:
    """16 hex digits of :func:`h5stream.jsonvalues.stable_hash` of an extractor's name, version and parameters."""
    return stable_hash({"name": name, "version": str(version), "params": dict(params)})


@dataclasses.dataclass(frozen=True)
class FeatureExtractor:
    """A registered extractor.

    Attributes
    ----------
    name : str
        Registry key, and the stem of the stored feature's name.
    version : str
        Bumped whenever the output changes; stored with every result.
    requires : tuple of str
        Paths (relative to the recording root, with ``{unit}`` and any parameter in
        braces, e.g. ``{movie}``) that must exist for a unit before it runs.
    defaults : dict
        Parameters and their default values; unknown parameters are rejected.
    fn : callable
        ``fn(inputs, **params) -> dict``.
    output_name : str
        Format of the stored feature's name (default ``"{name}"``; e.g.
        ``"firing_rate_{movie}"``).
    description : str
    """

    name: str
    version: str
    requires: tuple[str, ...]
    defaults: Mapping[str, Any]
    fn: Callable[..., dict]
    output_name: str = "{name}"
    description: str = ""

    def resolve(self, params: Mapping[str, Any] | None) -> dict[str, Any]:
        """Defaults updated by ``params``; unknown or missing parameters raise ConfigError."""
        params = dict(params or {})
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            raise ConfigError(
                f"feature {self.name!r} has no parameter(s) {unknown}",
                expected=f"some of {sorted(self.defaults)}", found=str(unknown),
            )
        resolved = {**self.defaults, **params}
        missing = sorted(k for k, v in resolved.items() if v is None)
        if missing:
            raise ConfigError(
                f"feature {self.name!r} needs a value for {missing}",
                hint=f"pass e.g. {{'name': {self.name!r}, 'params': {{{missing[0]!r}: ...}}}}",
            )
        return resolved

    def feature_name(self, params: Mapping[str, Any]) -> str:
        return self.output_name.format(name=self.name, **params)

    def required_paths(self, unit_id: str, params: Mapping[str, Any]) -> list[str]:
        return [p.format(unit=unit_id, **params) for p in self.requires]

    def hash(self, params: Mapping[str, Any]) -> str:
        return params_hash(self.name, self.version, params)


_REGISTRY: dict[str, FeatureExtractor] = {}


def register_extractor(
    name: str,
    *,
    version: str,
    requires: tuple[str, ...] = (),
    defaults: Mapping[str, Any] | None = None,
    output_name: str = "{name}",
    description: str = "",
    replace: bool = False,
):
    """Decorator registering ``fn(inputs, **params) -> dict`` as the extractor ``name``.

    Registering a name twice raises ConfigError unless ``replace=True``.
    """
    if not isinstance(name, str) or not name or "/" in name:
        raise ConfigError(f"extractor names are non-empty text without '/' (found {name!r})")

    def decorate(fn):
        if name in _REGISTRY and not replace:
            raise ConfigError(f"an extractor named {name!r} is registered already",
                              hint="pass replace=True to replace it, or choose another name")
        _REGISTRY[name] = FeatureExtractor(
            name=name, version=str(version), requires=tuple(requires), defaults=dict(defaults or {}), fn=fn,
            output_name=output_name, description=description or (fn.__doc__ or "").strip().split("\n")[0],
        )
        return fn

    return decorate


def get_extractor(name: str) -> FeatureExtractor:
    """The extractor registered as ``name``; :class:`UnknownFeatureError` lists the known ones."""
    _load_builtins()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownFeatureError(
            f"no feature extractor named {name!r}",
            expected="one of " + ", ".join(sorted(_REGISTRY)), found=repr(name),
            hint="register it with hdmea.features.register_extractor",
        ) from None


def list_extractors() -> list[FeatureExtractor]:
    """Every registered extractor, sorted by name."""
    _load_builtins()
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def _load_builtins() -> None:
    # The built-ins register themselves on import.
    import hdmea.features.extractors  # noqa: F401

"""One registry of named, versioned feature extractors, in two call styles over the same store.

The lab pipeline's style: a :class:`~hdmea.features.base.FeatureExtractor`
subclass registered with ``@FeatureRegistry.register("name")``, whose
``extract(unit_data, stimulus_data, config)`` returns one unit's feature dict.

The function style: ``fn(inputs: UnitInputs, **params) -> dict`` registered
with its name, version, the inputs it needs and its default parameters::

    @register_extractor("firing_rate", version="1", requires=("units/{unit}/spike_times_sectioned/{movie}",),
                        defaults={"movie": None})
    def firing_rate(inputs, *, movie):
        ...

Both land in ``FeatureRegistry``: ``FeatureRegistry.list_all()`` names every
extractor of either style, and :func:`get_extractor` gives the
:class:`RegisteredExtractor` that ``extract_features`` runs for any of them.
Every stored result carries ``version``, ``params_hash`` (of the name, version
and resolved parameters) and ``extracted_at``; a result whose version and hash
match is not recomputed unless forced.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import logging
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import numpy as np

from h5stream.jsonvalues import stable_hash
from hdmea.errors import ConfigError
from hdmea.features.base import FeatureExtractor, StoredGroup, _metadata_of

__all__ = [
    "FeatureRegistry",
    "FeatureExtractor",
    "RegisteredExtractor",
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
    """16 hex digits of :func:`h5stream.jsonvalues.stable_hash` of an extractor's name, version and parameters.

    An array of up to ``_LISTED_ARRAY_SIZE`` values counts as its JSON list of
    values, as feature hashes already stored in recordings were computed; a
    larger one (a class-style config may hold data, e.g. the filtered sensor
    data of ``eimage_sta``) counts by its dtype, shape and the SHA-256 of its
    bytes, so that hashing it does not cost a text of every value.
    """
    return stable_hash({"name": name, "version": str(version), "params": _digestible(dict(params))})


_LISTED_ARRAY_SIZE = 65_536


def _digestible(value):
    if isinstance(value, np.ndarray) and value.size > _LISTED_ARRAY_SIZE:
        data = np.ascontiguousarray(value)
        return {"ndarray_sha256": hashlib.sha256(data.view(np.uint8).reshape(-1) if data.dtype != object
                                                 else repr(data.tolist()).encode()).hexdigest(),
                "dtype": str(data.dtype), "shape": list(data.shape)}
    if isinstance(value, Mapping):
        return {k: _digestible(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_digestible(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_digestible(v) for v in value)
    return value


class FeatureRegistry:
    """Extractor classes by name (the lab pipeline's registry).

    ``@FeatureRegistry.register("name")`` registers a class (and sets its
    ``name``); ``get(name)`` returns it, ``list_all()`` gives the sorted names,
    ``get_metadata(name)`` its name, version, required inputs, output schema,
    runtime class and description.  The function-style extractors of
    :func:`register_extractor` are here too, as generated classes.
    """

    _registry: ClassVar[dict[str, type[FeatureExtractor]]] = {}

    @classmethod
    def register(cls, name: str, *, replace: bool = False):
        """Class decorator registering an extractor as ``name``.

        Raises :class:`~hdmea.errors.ConfigError` (a ``ValueError``) when the name is
        registered already, unless ``replace=True``.
        """
        _check_name(name)

        def decorator(extractor_class: type[FeatureExtractor]) -> type[FeatureExtractor]:
            if not (isinstance(extractor_class, type) and issubclass(extractor_class, FeatureExtractor)):
                raise ConfigError(f"feature {name!r}: only FeatureExtractor subclasses can be registered",
                                  expected="a subclass of hdmea.features.base.FeatureExtractor",
                                  found=repr(extractor_class))
            cls._add(name, extractor_class, replace=replace)
            return extractor_class

        return decorator

    @classmethod
    def _add(cls, name: str, extractor_class: type[FeatureExtractor], *, replace: bool) -> None:
        current = cls._registry.get(name)
        if current is not None and current is not extractor_class and not replace:
            raise ConfigError(f"Feature {name!r} is already registered by {current.__name__}",
                              hint="choose another name, or pass replace=True to replace it")
        extractor_class.name = name
        cls._registry[name] = extractor_class
        logger.debug("registered feature extractor %s -> %s", name, extractor_class.__name__)

    @classmethod
    def get(cls, name: str) -> type[FeatureExtractor]:
        """The class registered as ``name``; :class:`UnknownFeatureError` (a ``KeyError``) lists the known names."""
        try:
            return cls._registry[name]
        except (KeyError, TypeError):
            available = ", ".join(sorted(cls._registry)) or "(none)"
            raise UnknownFeatureError(
                f"Unknown feature: {name!r}. Available features: {available}",
                expected="a registered feature name", found=repr(name),
                hint="register it with @FeatureRegistry.register(name) (or hdmea.features.register_extractor) "
                     "and import its module before extracting",
            ) from None

    @classmethod
    def list_all(cls) -> list[str]:
        return sorted(cls._registry)

    @classmethod
    def get_metadata(cls, name: str) -> dict[str, Any]:
        return _metadata_of(cls.get(name))

    @classmethod
    def get_all_metadata(cls) -> dict[str, dict[str, Any]]:
        return {name: cls.get_metadata(name) for name in cls.list_all()}

    @classmethod
    def is_registered(cls, name: str) -> bool:
        return name in cls._registry

    @classmethod
    def clear(cls) -> None:
        """Forget every registered extractor, the built-ins too (for tests)."""
        cls._registry.clear()
        logger.warning("feature registry cleared")


def _check_name(name) -> None:
    if not isinstance(name, str) or not name or "/" in name:
        raise ConfigError(f"extractor names are non-empty text without '/' (found {name!r})")


@dataclasses.dataclass(frozen=True)
class RegisteredExtractor:
    """What ``extract_features`` runs for one registered name.

    Attributes
    ----------
    name : str
        Registry key, and the stem of the stored feature's name.
    version : str
        Bumped whenever the output changes; stored with every result.
    requires : tuple of str
        Function style: paths (relative to the recording root, with ``{unit}`` and
        any parameter in braces) that must exist for a unit before it runs.
        Class style: the class's ``required_inputs``, each looked up under the
        unit's group first, then under the root.
    defaults : dict or None
        Function style: parameters and their default values (unknown
        parameters are rejected).  ``None`` for a class: its ``config`` is free-form.
    fn : callable
        ``fn(inputs, **params) -> dict``, for a class the call of its ``extract``.
    output_name : str
        Format of the stored feature's name (default ``"{name}"``; e.g.
        ``"firing_rate_{movie}"``).
    description : str
    extractor_class : type or None
        The registered class (class style).
    """

    name: str
    version: str
    requires: tuple[str, ...]
    defaults: Mapping[str, Any] | None
    fn: Callable[..., dict]
    output_name: str = "{name}"
    description: str = ""
    extractor_class: type | None = None

    @property
    def is_class_style(self) -> bool:
        return self.defaults is None

    def resolve(self, params: Mapping[str, Any] | None) -> dict[str, Any]:
        """Defaults updated by ``params``; unknown or missing parameters raise ConfigError."""
        params = dict(params or {})
        if self.defaults is None:
            return params
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
        if self.defaults is None:
            return self.output_name.format(name=self.name)
        return self.output_name.format(name=self.name, **params)

    def required_paths(self, unit_id: str, params: Mapping[str, Any]) -> list[str]:
        if self.defaults is None:
            return [f"units/{unit_id}/{p.strip('/')}" for p in self.requires]
        return [p.format(unit=unit_id, **params) for p in self.requires]

    def missing_inputs(self, target, unit_id: str, params: Mapping[str, Any]) -> list[str]:
        """The required inputs that ``target`` lacks for this unit."""
        if self.defaults is None:
            return [p for p in self.requires
                    if not (target.has(f"units/{unit_id}/{p.strip('/')}") or target.has(p.strip("/")))]
        return [p for p in self.required_paths(unit_id, params) if not target.has(p)]

    def missing_inputs_each(self, target, unit_ids, params: Mapping[str, Any]) -> list[list[str]]:
        """:meth:`missing_inputs` of each of ``unit_ids``, every path checked in one call of the target's."""
        if self.defaults is None:
            shared = [p.strip("/") for p in self.requires]
            found = dict(zip(shared, target.has_each(shared)))  # (an input the recording holds for every unit)
            wanted = [(u, p) for u in unit_ids for p, there in zip(self.requires, shared) if not found[there]]
            present = target.has_each([f"units/{u}/{p.strip('/')}" for u, p in wanted])
            absent = {u: [] for u in unit_ids}
            for (unit_id, p), there in zip(wanted, present):
                if not there:
                    absent[unit_id].append(p)
            return [absent[u] for u in unit_ids]
        paths = [self.required_paths(u, params) for u in unit_ids]
        present = iter(target.has_each([p for unit_paths in paths for p in unit_paths]))
        return [[p for p in unit_paths if not next(present)] for unit_paths in paths]

    def hash(self, params: Mapping[str, Any]) -> str:
        return params_hash(self.name, self.version, params)

    def runner(self, params: Mapping[str, Any]) -> Callable[..., dict]:
        """``run(inputs) -> dict`` for one extraction run with these (resolved) parameters."""
        if self.extractor_class is not None and self.defaults is None:
            return _class_runner(self.extractor_class, params)
        fn = self.fn
        return lambda inputs: fn(inputs, **params)


    def batch_runner(self, params: Mapping[str, Any]) -> Callable[..., dict] | None:
        """``run_many(target, unit_ids) -> {unit id: dict}`` for a class whose ``extract_units`` computes many
        units at once (units it leaves out run one by one); None for any other, and for a subclass whose
        ``extract`` is not the one its ``extract_units`` was written beside (it would not compute the same)."""
        cls = self.extractor_class
        if cls is None or self.defaults is not None or _defined_in(cls, "extract_units") is None \
                or _defined_in(cls, "extract_units") is not _defined_in(cls, "extract"):
            return None
        config = dict(params) if params else None
        instance = cls(config=config)
        return lambda target, unit_ids: instance.extract_units(target, unit_ids, config)


def _defined_in(cls: type, name: str) -> type | None:
    """The class of ``cls``'s method resolution order that defines ``name``, else None."""
    return next((klass for klass in cls.__mro__ if name in vars(klass)), None)


def _accepts_metadata(method) -> bool:
    try:
        signature = inspect.signature(method)
    except (TypeError, ValueError):
        return True
    return "metadata" in signature.parameters or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values())


def _class_runner(extractor_class: type[FeatureExtractor], params: Mapping[str, Any]) -> Callable[..., dict]:
    # One instance per run, as the lab pipeline makes it; config None when nothing was given.
    config = dict(params) if params else None
    instance = extractor_class(config=config)
    with_metadata = _accepts_metadata(instance.extract)
    groups: dict[int, tuple] = {}

    def run(inputs) -> dict:
        target = inputs.recording.target
        shared = groups.get(id(target))
        if shared is None:
            # read once per run: every unit's extraction reads the same rate and frame period from them
            shared = groups[id(target)] = (StoredGroup(target, "stimulus", memo=True),
                                           StoredGroup(target, "metadata", memo=True))
        unit = StoredGroup(target, f"units/{inputs.unit_id}")
        if with_metadata:
            return instance.extract(unit, shared[0], config, metadata=shared[1])
        return instance.extract(unit, shared[0], config)

    return run


class _FunctionExtractor(FeatureExtractor):
    """The class a function-style extractor is registered as (its ``spec`` holds the function)."""

    spec: ClassVar[RegisteredExtractor]

    def extract(self, unit_data, stimulus_data, config=None, metadata=None) -> dict:
        from hdmea.features.inputs import RecordingInputs, UnitInputs

        if not isinstance(unit_data, StoredGroup) or not unit_data.name.startswith("/units/"):
            raise TypeError(
                f"feature {self.spec.name!r} reads a stored recording: run it through extract_features "
                f"(found unit_data of type {type(unit_data).__name__})")
        unit_id = unit_data.name[len("/units/"):]
        params = self.spec.resolve(self.merged_config(config))
        return self.spec.fn(UnitInputs(unit_id, RecordingInputs(unit_data._target)), **params)


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
    _check_name(name)

    def decorate(fn):
        if FeatureRegistry.is_registered(name) and not replace:
            raise ConfigError(f"an extractor named {name!r} is registered already",
                              hint="pass replace=True to replace it, or choose another name")
        text = description or (fn.__doc__ or "").strip().split("\n")[0]
        spec = RegisteredExtractor(
            name=name, version=str(version), requires=tuple(requires), defaults=dict(defaults or {}), fn=fn,
            output_name=output_name, description=text,
        )
        cls = type(f"{fn.__name__}_extractor", (_FunctionExtractor,), {
            "__module__": fn.__module__, "__doc__": fn.__doc__, "spec": spec, "version": spec.version,
            "required_inputs": list(spec.requires), "output_schema": {}, "description": text,
        })
        FeatureRegistry._add(name, cls, replace=True)
        return fn

    return decorate


def get_extractor(name: str) -> RegisteredExtractor:
    """The extractor registered as ``name``; :class:`UnknownFeatureError` lists the known ones."""
    cls = FeatureRegistry.get(name)
    spec = getattr(cls, "spec", None)
    if isinstance(spec, RegisteredExtractor) and issubclass(cls, _FunctionExtractor):
        return spec
    return RegisteredExtractor(
        name=name, version=str(cls.version), requires=tuple(cls.required_inputs or ()), defaults=None,
        fn=lambda inputs, **config: _class_runner(cls, config)(inputs), output_name="{name}",
        description=getattr(cls, "description", "") or (cls.__doc__ or "").strip().split("\n")[0],
        extractor_class=cls,
    )


def list_extractors() -> list[RegisteredExtractor]:
    """Every registered extractor, sorted by name."""
    return [get_extractor(name) for name in FeatureRegistry.list_all()]

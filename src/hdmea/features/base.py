"""The class-based extractor interface of the lab's pipeline, and the views an extractor reads.

An extractor written for the original pipeline is a subclass of
:class:`FeatureExtractor` registered by name::

    from hdmea.features.base import FeatureExtractor
    from hdmea.features.registry import FeatureRegistry

    @FeatureRegistry.register("my_feature_name")
    class MyFeatureExtractor(FeatureExtractor):
        version = "1.0.0"
        required_inputs = ["spike_times"]
        output_schema = {"my_value": {"dtype": "float64", "unit": "Hz"}}

        def extract(self, unit_data, stimulus_data, config=None):
            spikes = unit_data["spike_times"][:]
            return {"my_value": float(spikes.size)}

``extract_features(hdf5_path, features=["my_feature_name"])`` (or with
``session=``) calls ``extract`` once per unit with views of the recording:
``unit_data`` is ``units/{unit_id}``, ``stimulus_data`` is ``stimulus`` and,
when ``extract`` accepts it, ``metadata`` is ``metadata``.  The views behave
like h5py groups and datasets (``group["name"]``, ``"name" in group``,
``keys()``, ``dataset[:]``, ``dataset[()]``, ``.attrs``) and read the same
values from a file (immediate mode) or a session (deferred mode), so one
extractor gives equal results in both.  The returned dict is stored at
``units/{unit_id}/features/{name}``: arrays and lists as datasets, scalars and
text as attributes, nested dicts as subgroups.
"""

from __future__ import annotations

import abc
import copy
import logging
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar, Literal, Union

import numpy as np

__all__ = ["FeatureExtractor", "FeatureRows", "ArrayAdapter", "DictAdapter", "StoredGroup", "HDF5Group", "outputs"]

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

#: What ``extract`` receives: an h5py group, a :class:`DictAdapter` or a :class:`StoredGroup`.
HDF5Group = Union["DictAdapter", Any]


class ArrayAdapter:
    """A value (array, scalar, list) read like an h5py dataset: ``value[:]``, ``value[0]``, ``value[()]``.

    ``[:]`` of a scalar or a list gives ``np.asarray(value)``; ``[0]`` of a scalar
    gives the scalar; ``attrs`` holds the stored attributes, if any.
    """

    def __init__(self, value: Any, attrs: Mapping[str, Any] | None = None) -> None:
        self._value = value
        self.attrs = dict(attrs or {})

    def __getitem__(self, key):
        value = self._value
        if isinstance(value, np.ndarray):
            return value[key]
        if key == slice(None) or key == () or key is Ellipsis:
            return np.asarray(value)
        if isinstance(key, (int, np.integer)) and np.ndim(value) == 0:
            if key in (0, -1):
                return value
            raise IndexError(f"index {key} is out of bounds for a scalar")
        return np.asarray(value)[key]

    def __array__(self, dtype=None, copy=None):
        arr = np.asarray(self._value)
        return arr.astype(dtype) if dtype is not None else arr

    def __len__(self) -> int:
        if np.ndim(self._value) == 0:
            raise TypeError("len() of a scalar dataset")
        return len(self._value)

    @property
    def shape(self) -> tuple[int, ...]:
        return np.shape(self._value)

    @property
    def size(self) -> int:
        return int(np.size(self._value))

    @property
    def ndim(self) -> int:
        return int(np.ndim(self._value))

    @property
    def dtype(self) -> np.dtype:
        return np.asarray(self._value).dtype

    @property
    def flat(self):
        return np.asarray(self._value).flat

    def __repr__(self) -> str:
        return f"ArrayAdapter(shape={self.shape}, dtype={self.dtype})"


class DictAdapter:
    """A nested dict read like an h5py group: ``group["key"]`` gives a :class:`DictAdapter` for a dict,
    an :class:`ArrayAdapter` otherwise; ``"key" in group``, ``keys()``, ``items()``, ``get()``."""

    def __init__(self, data: Mapping[str, Any], attrs: Mapping[str, Any] | None = None) -> None:
        self._data = data
        self.attrs = dict(attrs or {})

    def __getitem__(self, key: str):
        node: Any = self
        for part in _parts(key):
            if not isinstance(node, DictAdapter):
                raise KeyError(f"{key!r}: {part!r} is inside a dataset")
            node = node._child(part)
        return node

    def _child(self, key: str):
        value = self._data[key]
        return DictAdapter(value) if isinstance(value, Mapping) else ArrayAdapter(value)

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        try:
            self[key]
        except (KeyError, TypeError):
            return False
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self.keys())

    def keys(self):
        return self._data.keys()

    def items(self):
        return self._data.items()

    def get(self, key: str, default: Any = None):
        return self._data.get(key, default)


def _parts(key: str) -> list[str]:
    if not isinstance(key, str):
        raise KeyError(key)
    parts = [p for p in key.split("/") if p]
    if not parts:
        raise KeyError(key)
    return parts


class _StoredAttrs:
    """The attributes of an object read through a pipeline step's target, read when first asked for."""

    _target: Any
    _path: str
    _attrs: dict[str, Any] | None

    @property
    def attrs(self) -> dict[str, Any]:
        if self._attrs is None:
            self._attrs = self._target.attrs(self._path)
        return self._attrs


class StoredGroup(_StoredAttrs, DictAdapter):
    """A group of a recording, read on demand through a pipeline step's target (a file or a session).

    Members are read when asked for, so an extractor that reads only
    ``spike_times`` does not load the unit's STA or its sectioned spikes.
    """

    def __init__(self, target, path: str, *, memo: bool = False) -> None:
        self._target = target
        self._path = path.strip("/")
        self._attrs: dict[str, Any] | None = None
        # values derived from the group, kept for the group's life (``memo``: one extraction run over
        # every unit, during which the recording's shared groups do not change); None: read each time
        self._memo: dict | None = {} if memo else None

    def memoized(self, key, compute):
        """``compute()``, once per ``key`` for a group made with ``memo``; each time for any other."""
        if self._memo is None:
            return compute()
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    @property
    def name(self) -> str:
        return "/" + self._path

    def _join(self, key: str) -> str:
        return f"{self._path}/{key}" if self._path else key

    def _child(self, key: str):
        path = self._join(key)
        try:
            self._target.keys(path)  # KeyError: nothing there; TypeError: a dataset
        except KeyError:
            raise KeyError(f"{self.name} has no member {key!r}") from None
        except TypeError:
            return _StoredDataset(self._target, path)
        return StoredGroup(self._target, path)

    def keys(self):
        return self._target.keys(self._path)

    def items(self):
        return [(k, self._child(k)) for k in self.keys()]

    def get(self, key: str, default: Any = None):
        try:
            return self[key]
        except KeyError:
            return default

    def __repr__(self) -> str:
        return f"StoredGroup({self.name!r})"


class _StoredDataset(_StoredAttrs, ArrayAdapter):
    """A dataset of a :class:`StoredGroup`: its value read at once, its attributes when first asked for (an
    extractor rarely reads them)."""

    def __init__(self, target, path: str) -> None:
        self._value = target.get(path)
        self._target = target
        self._path = path
        self._attrs = None


class FeatureExtractor(abc.ABC):
    """Base class of a named, versioned extractor (the lab pipeline's interface).

    Class attributes: ``name`` (set by :meth:`FeatureRegistry.register
    <hdmea.features.registry.FeatureRegistry.register>`), ``version`` (bump it
    when the output changes: a stored result of another version is recomputed),
    ``required_inputs`` (paths relative to the unit's group, or to the file's
    root, e.g. ``"spike_times"``, ``"stimulus/frame_time/default"``: a unit
    lacking one is skipped and reported), ``output_schema`` (what ``extract``
    returns: ``{key: {"dtype": ..., "unit": ..., "description": ...}}``),
    ``runtime_class`` (``"fast"`` or ``"slow"``) and ``description``.

    ``extract(unit_data, stimulus_data, config=None, metadata=None)`` returns a
    dict for one unit; it must be deterministic (take random seeds from
    ``config``).  ``metadata`` may be left out of an override's signature: it is
    passed only to extractors that accept it.  :meth:`merged_config` gives the
    configuration an override should read.
    """

    name: ClassVar[str] = ""
    version: ClassVar[str] = "0.0.0"
    required_inputs: ClassVar[list[str]] = []
    output_schema: ClassVar[dict[str, dict[str, Any]]] = {}
    runtime_class: ClassVar[Literal["fast", "slow"]] = "fast"
    description: ClassVar[str] = ""

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        self.config = dict(config or {})

    @abc.abstractmethod
    def extract(self, unit_data: HDF5Group, stimulus_data: HDF5Group, config: Mapping[str, Any] | None = None,
                metadata: HDF5Group | None = None) -> dict[str, Any]:
        """The feature values of one unit (scalars, arrays, lists, text or nested dicts)."""

    def merged_config(self, config: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """This extractor's ``config`` with a call's ``config`` over it (a call's value wins)."""
        return {**self.config, **(config or {})}

    def validate_inputs(self, root: HDF5Group) -> list[str]:
        """The ``required_inputs`` that ``root`` (a file, a group or a :class:`DictAdapter`) lacks."""
        missing = []
        for path in self.required_inputs:
            node = root
            try:
                for part in _parts(path):
                    node = node[part]
            except (KeyError, TypeError, ValueError):
                missing.append(path)
        return missing

    def get_metadata(self) -> dict[str, Any]:
        return _metadata_of(type(self))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, version={self.version!r})"


class FeatureRows(Mapping):
    """The features of many units that share their keys, one row of values per unit (what an extractor's
    ``extract_units`` computes for all units at once): ``rows[unit_id]`` holds the values of ``names`` in
    order.  Read as a mapping, a unit's features are the dict ``{name: value}`` of its row; a session stages
    the rows as they are (:meth:`hdmea.session.session.PipelineSession.add_features`)."""

    __slots__ = ("names", "rows")

    def __init__(self, names: tuple[str, ...], rows: dict[str, tuple]) -> None:
        self.names = tuple(names)
        self.rows = rows

    def __getitem__(self, unit_id: str) -> dict[str, Any]:
        return dict(zip(self.names, self.rows[unit_id]))

    def __contains__(self, unit_id: object) -> bool:
        return unit_id in self.rows

    def __iter__(self) -> Iterator[str]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)


def outputs(*names: str, dtype: str = "float64", unit: str | None = None,
            **details: Any) -> dict[str, dict[str, Any]]:
    """``output_schema`` entries of outputs that share a dtype, a unit and any other detail.

    ``outputs("dsi_on", "dsi_off", unit="dimensionless", range=[0, 1])`` is
    ``{"dsi_on": {"dtype": "float64", "unit": "dimensionless", "range": [0, 1]}, "dsi_off": {...}}``
    (no ``unit`` key when ``unit`` is None); each entry is a dict of its own.
    """
    entry = {"dtype": dtype, **({} if unit is None else {"unit": unit}), **details}
    return {name: copy.deepcopy(entry) for name in names}


def _metadata_of(cls: type[FeatureExtractor]) -> dict[str, Any]:
    return {
        "name": cls.name,
        "version": cls.version,
        "required_inputs": cls.required_inputs,
        "output_schema": cls.output_schema,
        "runtime_class": cls.runtime_class,
        "description": getattr(cls, "description", ""),
    }

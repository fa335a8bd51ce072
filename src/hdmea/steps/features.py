"""The ``extract_features`` step: run registered extractors over every unit.

Each requested feature is an extractor name, with parameters for a
function-style extractor or a ``config`` for a class-style one (the lab
pipeline's ``config_overrides``).  For every unit a result is stored at
``units/{unit}/features/{feature name}`` with ``version``, ``params_hash`` and
``extracted_at`` (function style: also ``name``, ``extractor`` and ``params``;
class style: also ``feature_name`` and ``extractor_version``, the lab
pipeline's names).  A unit whose stored result has the same version and
parameters hash is skipped (cached) unless ``force=True``; a unit lacking an
extractor's inputs is skipped and reported.  A class-style extractor that
raises on one unit is reported for that unit and the others still run (the lab
pipeline's rule); an error in a function-style extractor stops the step and
leaves the file as it was.

A class-style extractor whose class also defines ``extract_units(target, unit_ids,
config)`` beside its ``extract`` (the step movie's ON/OFF extractor) computes every
unit in one pass (:meth:`RegisteredExtractor.batch_runner`); the units it leaves out
run one by one through ``extract``, whose results it equals.  Those units share the
pass's ``extracted_at``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from h5stream.jsonvalues import canonical
from hdmea.errors import ConfigError, MissingInputError
from hdmea.features.base import FeatureRows
from hdmea.features.registry import RegisteredExtractor, get_extractor
from hdmea.progress import counted

__all__ = ["ExtractionResult", "FeatureCounts", "extract_features", "default_features"]

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

STEP = "extract_features"


class FeatureCounts(dict):
    """Units per feature name.  Iterating gives the names, and it compares equal to the list of its
    names too: the lab pipeline's ``ExtractionResult`` lists names where this counts units."""

    def __eq__(self, other):
        if isinstance(other, (list, tuple)):
            return list(self) == list(other)
        return dict.__eq__(self, other)

    def __ne__(self, other):
        return not self == other

    __hash__ = None  # type: ignore[assignment]


@dataclasses.dataclass
class ExtractionResult:
    """What :func:`extract_features` did (immediate mode).

    ``features_extracted`` lists the names of the features computed for at least
    one unit (a list, as in the original pipeline), ``units_extracted`` counts the
    units computed per feature name, ``features_cached``
    units skipped because an equal result was stored, ``features_missing_inputs``
    units skipped for lack of inputs (a required input absent, or a
    :class:`~hdmea.errors.MissingInputError` raised by a class-style
    extractor), ``units_failed`` units whose class-style extractor raised
    anything else.  ``features_skipped`` names the features that every unit
    had stored already; ``features_failed`` those that no unit could compute.
    """

    hdf5_path: Path | None
    units_processed: int = 0
    features_extracted: list[str] = dataclasses.field(default_factory=list)
    features_cached: FeatureCounts = dataclasses.field(default_factory=FeatureCounts)
    features_missing_inputs: FeatureCounts = dataclasses.field(default_factory=FeatureCounts)
    warnings: list[str] = dataclasses.field(default_factory=list)
    elapsed_s: float = 0.0
    units_failed: FeatureCounts = dataclasses.field(default_factory=FeatureCounts)
    features_skipped: list[str] = dataclasses.field(default_factory=list)
    features_failed: list[str] = dataclasses.field(default_factory=list)
    units_extracted: FeatureCounts = dataclasses.field(default_factory=FeatureCounts)

    @property
    def success(self) -> bool:
        return not self.features_missing_inputs and not self.units_failed


def _requests(features, config_overrides=None) -> list[tuple[RegisteredExtractor, dict[str, Any]]]:
    """Normalise ``features`` to (extractor, resolved params) pairs.

    ``config_overrides`` is the config of every class-style extractor (the lab
    pipeline passes one dict to all of them); a request's own ``params`` update it.
    """
    if isinstance(features, (str, Mapping)):
        features = [features]
    if config_overrides is not None and not isinstance(config_overrides, Mapping):
        raise ConfigError("config_overrides must be a dict", expected="a dict of extractor settings",
                          found=type(config_overrides).__name__)
    out = []
    for item in features:
        if isinstance(item, str):
            name, params = item, {}
        elif isinstance(item, Mapping):
            if "name" not in item:
                raise ConfigError(f"a feature request needs a 'name' (found keys {sorted(item)})")
            name, params = item["name"], dict(item.get("params", {}))
        elif isinstance(item, (tuple, list)) and len(item) == 2:
            name, params = item[0], dict(item[1])
        else:
            raise ConfigError(f"a feature request is a name, (name, params) or {{'name', 'params'}}; found {item!r}")
        extractor = get_extractor(name)
        if extractor.is_class_style:
            params = {**(config_overrides or {}), **params}
        out.append((extractor, extractor.resolve(params)))
    return out


def _run_many(extractor: RegisteredExtractor, params: dict[str, Any], target, unit_ids: list[str]) -> dict:
    """``{unit id: result}`` of the units an extractor that computes many units at once computed (empty for
    any other).  Should that pass fail, every unit runs alone instead, each failure reported as its own."""
    run_many = extractor.batch_runner(params) if unit_ids else None
    if run_many is None:
        return {}
    try:
        return run_many(target, unit_ids)
    except Exception as exc:  # the units' own runs report what went wrong, unit by unit
        logger.debug("%s: the pass over all units failed (%s: %s); each unit runs alone", extractor.name,
                     type(exc).__name__, exc)
        return {}


def default_features(target) -> list[dict[str, Any]]:
    """The built-ins that apply to a recording.

    ``firing_rate`` for every sectioned movie, ``step_response`` for every movie
    with a trial layout (several trials per occurrence, a step stimulus), and
    ``receptive_field`` for every movie with a stored STA.
    """
    from hdmea.steps.section_time import read_stimulus_config

    unit_ids = target.unit_ids()
    first = unit_ids[0] if unit_ids else None
    sectioned = []
    stas = []
    if first is not None:
        if target.has(f"units/{first}/spike_times_sectioned"):
            sectioned = target.keys(f"units/{first}/spike_times_sectioned")
        if target.has(f"units/{first}/features"):
            stas = [k[len("sta_"):] for k in target.keys(f"units/{first}/features") if k.startswith("sta_")]
    config = read_stimulus_config(target)
    trials = set(config.trial_configs) if config is not None else set()
    out: list[dict[str, Any]] = [{"name": "firing_rate", "params": {"movie": m}} for m in sectioned]
    out += [{"name": "step_response", "params": {"movie": m}} for m in sectioned if m in trials]
    out += [{"name": "receptive_field", "params": {"movie": m}} for m in stas]
    return out


def extract_features(
    hdf5_path: str | os.PathLike | None = None,
    features=None,
    *,
    force: bool = False,
    config_overrides: Mapping[str, Any] | None = None,
    units=None,
    session=None,
    # the original pipeline's parameter (see the docstring's last section)
    zarr_path: str | os.PathLike | None = None,
):
    """Run feature extractors over the units of a recording.

    Parameters
    ----------
    hdf5_path
        The recording file (immediate mode).
    features
        Names, ``(name, params)`` pairs or ``{"name": ..., "params": {...}}``
        dicts of registered extractors (default: :func:`default_features`).
    force
        Recompute results stored with the same version and parameters.
    config_overrides
        The ``config`` passed to every class-style extractor
        (:class:`~hdmea.features.base.FeatureExtractor` subclasses).
    units
        Unit ids to process (default: all).
    session
        Stage into this session instead of writing the file.

    The original pipeline's parameter (kept for its scripts; the last of the signature):

    zarr_path
        The original README's name for the recording (``LoadResult.zarr_path``):
        the same as ``hdf5_path``.

    Returns
    -------
    ExtractionResult or PipelineSession
    """
    from hdmea.features.inputs import RecordingInputs, UnitInputs
    from hdmea.io.hdf5_store import now_iso
    from hdmea.session.target import open_target

    if zarr_path is not None:
        if hdf5_path is not None and Path(hdf5_path) != Path(zarr_path):
            raise ConfigError(f"hdf5_path {hdf5_path} and zarr_path {zarr_path} differ; pass one")
        hdf5_path = zarr_path
    t0 = time.perf_counter()
    with open_target(hdf5_path, session, step=STEP) as target:
        target.require_steps("load_recording")
        requests = _requests(default_features(target) if features is None else features, config_overrides)
        all_units = target.unit_ids()
        if units is None:
            unit_ids = all_units
        else:
            unit_ids = [units] if isinstance(units, str) else list(units)
            unknown = sorted(set(unit_ids) - set(all_units))
            if unknown:
                raise ConfigError(f"no such units {unknown[:5]}", expected="unit ids of the recording",
                                  found=", ".join(unknown[:5]))
        recording = RecordingInputs(target)
        result = ExtractionResult(hdf5_path=Path(hdf5_path) if hdf5_path is not None else None,
                                  units_processed=len(unit_ids))
        extracted, cached, missing, failed = (result.units_extracted, result.features_cached,
                                              result.features_missing_inputs, result.units_failed)

        def note(text: str) -> None:
            result.warnings.append(text)
            target.add_warning(text)
            logger.warning(text)

        for extractor, params in requests:
            name = extractor.feature_name(params)
            digest = extractor.hash(params)
            meta: dict[str, Any] = {"version": extractor.version, "params_hash": digest}
            if extractor.is_class_style:
                meta.update(feature_name=name, extractor_version=extractor.version)
            else:
                meta.update(extractor=extractor.name,
                            params=json.dumps(canonical(params), sort_keys=True, default=str))
            run = None  # made for the first unit computed alone (a pass over all units may leave none)
            lacking: dict[str, None] = {}  # the inputs units lacked, in the order met
            # a session takes every unit's result in one call at the end (nothing staged if the run stops);
            # a file is written unit by unit, so that no more than one unit's result is held
            results: list | None = [] if target.is_deferred else None
            todo = []
            # which units hold a result and lack inputs: every unit's paths checked in one call each
            stored_before = [False] * len(unit_ids) if force else \
                target.has_each([f"units/{unit_id}/features/{name}" for unit_id in unit_ids])
            candidates = []
            for unit_id, there in zip(unit_ids, stored_before):
                if there:
                    stored = target.attrs(f"units/{unit_id}/features/{name}")
                    if stored.get("params_hash") == digest and str(stored.get("version")) == extractor.version:
                        cached[name] = cached.get(name, 0) + 1
                        continue
                candidates.append(unit_id)
            for unit_id, absent in zip(candidates, extractor.missing_inputs_each(target, candidates, params)):
                if absent:
                    lacking.update(dict.fromkeys(absent))
                    missing[name] = missing.get(name, 0) + 1
                    continue
                todo.append(unit_id)
            # an extractor that computes many units at once does (the units it leaves out run one by one)
            computed = _run_many(extractor, params, target, todo)
            # when the units computed together were: their metadata, one dict that every such unit's result takes
            # (staging and writing read it, none changes it)
            computed_meta = {**meta, "extracted_at": now_iso()}
            # a session stages the rows of units computed together as they are (their keys checked once)
            rows = computed.rows if results is not None and isinstance(computed, FeatureRows) else {}
            staged_rows = [(unit_id, rows[unit_id]) for unit_id in todo if unit_id in rows]
            if staged_rows:
                extracted[name] = extracted.get(name, 0) + len(staged_rows)
                todo = [unit_id for unit_id in todo if unit_id not in rows] if len(staged_rows) < len(todo) else []
            for unit_id in todo:
                data = computed.get(unit_id)
                if data is None and run is None:
                    run = extractor.runner(params)
                if data is None and extractor.is_class_style:
                    try:
                        data = run(UnitInputs(unit_id, recording))
                    except MissingInputError as exc:  # an input the extractor found absent while running
                        lacking[str(exc.missing_input or exc)] = None
                        missing[name] = missing.get(name, 0) + 1
                        continue
                    except Exception as exc:  # the lab pipeline's rule: report the unit, run the others
                        failed[name] = failed.get(name, 0) + 1
                        note(f"Failed {name} for {unit_id}: {type(exc).__name__}: {exc}")
                        continue
                    if not isinstance(data, Mapping):
                        failed[name] = failed.get(name, 0) + 1
                        note(f"Failed {name} for {unit_id}: extract() returned {type(data).__name__}, not a dict")
                        continue
                elif data is None:
                    data = run(UnitInputs(unit_id, recording))
                unit_meta = computed_meta if unit_id in computed else {**meta, "extracted_at": now_iso()}
                if results is None:
                    target.add_feature(unit_id, name, data, unit_meta)
                else:
                    results.append((unit_id, data, unit_meta))
                extracted[name] = extracted.get(name, 0) + 1
            if staged_rows:
                target.add_features(name, results, rows=(computed.names, staged_rows, computed_meta))
            elif results:
                target.add_features(name, results)
            if name in missing:
                note(f"feature {name}: {missing[name]} unit(s) lack its inputs "
                     f"({', '.join(lacking) or ', '.join(extractor.requires)}); they were skipped")
            if name in extracted:
                result.features_extracted.append(name)
            else:
                if unit_ids and cached.get(name, 0) == len(unit_ids):
                    result.features_skipped.append(name)
                elif unit_ids and not cached.get(name):
                    result.features_failed.append(name)
        target.mark_step_complete(STEP)
    result.elapsed_s = time.perf_counter() - t0
    logger.info("extracted %s (cached %s) for %s", dict(extracted), dict(cached), counted(len(unit_ids), "unit"))
    return session if session is not None else result

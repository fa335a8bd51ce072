"""The ``extract_features`` step: run registered extractors over every unit.

Each requested feature is an extractor name with parameters.  For every unit a
result is stored at ``units/{unit}/features/{feature name}`` with ``name``,
``version``, ``params_hash``, ``params`` (JSON) and ``extracted_at``.  A unit whose
stored result has the same version and parameters hash is skipped (cached)
unless ``force=True``; a unit lacking an extractor's inputs is skipped and
reported.
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
from hdmea.errors import ConfigError
from hdmea.features.registry import FeatureExtractor, get_extractor
from hdmea.progress import counted

__all__ = ["ExtractionResult", "extract_features", "default_features"]

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

STEP = "extract_features"


@dataclasses.dataclass
class ExtractionResult:
    """What :func:`extract_features` did (immediate mode).

    ``features_extracted`` counts units computed per feature name,
    ``features_cached`` units skipped because an equal result was stored,
    ``features_missing_inputs`` units skipped for lack of inputs.
    """

    hdf5_path: Path | None
    units_processed: int
    features_extracted: dict[str, int]
    features_cached: dict[str, int]
    features_missing_inputs: dict[str, int]
    warnings: list[str] = dataclasses.field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def success(self) -> bool:
        return not self.features_missing_inputs


def _requests(features) -> list[tuple[FeatureExtractor, dict[str, Any]]]:
    """Normalise ``features`` to (extractor, resolved params) pairs."""
    if isinstance(features, (str, Mapping)):
        features = [features]
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
        out.append((extractor, extractor.resolve(params)))
    return out


def default_features(target) -> list[dict[str, Any]]:
    """The built-ins that apply to a recording.

    ``firing_rate`` for every sectioned movie, ``step_response`` for every movie
    with a trial layout (several trials per occurrence, a step stimulus), and
    ``receptive_field`` for every movie with a stored STA.
    """
    from hdmea.io.section_time import read_stimulus_config

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
    units=None,
    force: bool = False,
    session=None,
):
    """Run feature extractors over the units of a recording.

    Parameters
    ----------
    hdf5_path
        The recording file (immediate mode).
    features
        Names, ``(name, params)`` pairs or ``{"name": ..., "params": {...}}``
        dicts of registered extractors (default: :func:`default_features`).
    units
        Unit ids to process (default: all).
    force
        Recompute results stored with the same version and parameters.
    session
        Stage into this session instead of writing the file.

    Returns
    -------
    ExtractionResult or PipelineSession
    """
    from hdmea.features.extractors import RecordingInputs, UnitInputs
    from hdmea.pipeline.target import open_target

    t0 = time.perf_counter()
    with open_target(hdf5_path, session, step=STEP) as target:
        target.require_steps("load_recording")
        requests = _requests(default_features(target) if features is None else features)
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
        extracted: dict[str, int] = {}
        cached: dict[str, int] = {}
        missing: dict[str, int] = {}
        warnings: list[str] = []
        from hdmea.io.hdf5_store import now_iso

        for extractor, params in requests:
            name = extractor.feature_name(params)
            digest = extractor.hash(params)
            meta = {"version": extractor.version, "params_hash": digest, "extractor": extractor.name,
                    "params": json.dumps(canonical(params), sort_keys=True, default=str)}
            for unit_id in unit_ids:
                path = f"units/{unit_id}/features/{name}"
                if not force and target.has(path):
                    stored = target.attrs(path)
                    if stored.get("params_hash") == digest and str(stored.get("version")) == extractor.version:
                        cached[name] = cached.get(name, 0) + 1
                        continue
                absent = [p for p in extractor.required_paths(unit_id, params) if not target.has(p)]
                if absent:
                    missing[name] = missing.get(name, 0) + 1
                    continue
                data = extractor.fn(UnitInputs(unit_id, recording), **params)
                target.add_feature(unit_id, name, data, {**meta, "extracted_at": now_iso()})
                extracted[name] = extracted.get(name, 0) + 1
            if name in missing:
                text = (f"feature {name}: {missing[name]} unit(s) lack its inputs "
                        f"({', '.join(extractor.requires)}); they were skipped")
                warnings.append(text)
                target.add_warning(text)
                logger.warning(text)
        target.mark_step_complete(STEP)
    result = ExtractionResult(
        hdf5_path=Path(hdf5_path) if hdf5_path is not None else None, units_processed=len(unit_ids),
        features_extracted=extracted, features_cached=cached, features_missing_inputs=missing,
        warnings=warnings, elapsed_s=time.perf_counter() - t0,
    )
    logger.info("extracted %s (cached %s) for %s", extracted, cached, counted(len(unit_ids), "unit"))
    return session if session is not None else result

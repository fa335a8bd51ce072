"""The original pipeline's flows and defaults: ``flows/<name>.json`` and ``defaults.json`` in its JSON format.

Looked up as the stimulus files are (:func:`hdmea.stimulus_files.config_search_dirs`: ``config_dir``, then
the copies shipped with hdmea).  The original's ``hdmea.pipeline.config`` hands these on with the stimulus
files' model (its ``PipelineConfig`` is :class:`PipelineDefaults` here).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any

from hdmea.errors import ConfigError
from hdmea.stimulus_files import _fields_from, config_search_dirs, load_config_as, load_json_config

__all__ = ["StageConfig", "FlowConfig", "PipelineDefaults", "DefaultsConfig", "load_flow_config", "load_defaults"]

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())


@dataclasses.dataclass
class StageConfig:
    """One stage of a flow: whether it runs and, for the features stage, which feature sets."""

    enabled: bool = True
    feature_sets: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class FlowConfig:
    """A named flow: its stages and the defaults passed to the steps."""

    name: str
    description: str | None = None
    version: str = "1.0.0"
    stages: dict[str, StageConfig] = dataclasses.field(default_factory=dict)
    defaults: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        stages = {}
        for key, stage in (self.stages or {}).items():
            if isinstance(stage, StageConfig):
                stages[key] = stage
            elif isinstance(stage, dict):
                sets = stage.get("feature_sets", [])
                if not isinstance(sets, list) or not all(isinstance(s, str) for s in sets):
                    raise ConfigError(f"flow {self.name!r}: stages.{key}.feature_sets must be a list of names",
                                      found=repr(sets))
                stages[key] = StageConfig(enabled=bool(stage.get("enabled", True)), feature_sets=list(sets))
            else:
                raise ConfigError(f"flow {self.name!r}: stages.{key} must be an object", found=repr(stage))
        self.stages = stages

    def get_feature_sets(self) -> list[str]:
        """The features stage's feature sets, or none when that stage is absent or disabled."""
        stage = self.stages.get("features")
        return list(stage.feature_sets) if stage is not None and stage.enabled else []


@dataclasses.dataclass
class PipelineDefaults:
    """Global settings of the original pipeline."""

    version: str = "0.1.0"
    random_seed: int = 42
    force_recompute: bool = False
    log_level: str = "INFO"


@dataclasses.dataclass
class DefaultsConfig:
    """``defaults.json``: pipeline settings and free-form sections per stage."""

    pipeline: PipelineDefaults = dataclasses.field(default_factory=PipelineDefaults)
    stage1: dict[str, Any] = dataclasses.field(default_factory=dict)
    stage2: dict[str, Any] = dataclasses.field(default_factory=dict)
    export: dict[str, Any] = dataclasses.field(default_factory=dict)
    paths: dict[str, str] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.pipeline, dict):
            self.pipeline = PipelineDefaults(**_fields_from(PipelineDefaults, self.pipeline, "defaults.pipeline"))


def load_flow_config(name_or_path: str, config_dir: str | os.PathLike | None = None) -> FlowConfig:
    """A flow by name (``flows/<name>.json``) or by path."""
    return load_config_as(FlowConfig, name_or_path, "flows", config_dir, "flow")


def load_defaults(config_dir: str | os.PathLike | None = None) -> DefaultsConfig:
    """``defaults.json`` of ``config_dir`` (else hdmea's copy); built-in defaults, with a warning, when unusable."""
    for folder in config_search_dirs(config_dir):
        path = folder / "defaults.json"
        if path.is_file():
            try:
                return DefaultsConfig(**_fields_from(DefaultsConfig, load_json_config(path), path))
            except (ConfigError, TypeError) as exc:
                logger.warning("%s: unusable defaults (%s); using the built-in defaults", path, exc)
                return DefaultsConfig()
    logger.warning("no defaults.json in %s; using the built-in defaults", config_search_dirs(config_dir)[0])
    return DefaultsConfig()

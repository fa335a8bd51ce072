"""The original pipeline's ``hdmea.pipeline.config``: its names, handed on from where they live.

Generated from :data:`hdmea._compat_table.ORIGINAL_API` by ``python -m hdmea._compat.surface``; do not
edit."""

from hdmea.stimulus_files import (
    DefaultsConfig, FlowConfig, StageConfig, load_defaults, load_flow_config, load_json_config, load_stimulus_config
)
from hdmea.stimulus_files import PipelineDefaults as PipelineConfig
from hdmea.stimulus_files import StimulusFile as StimulusConfig

__all__ = [
    "StimulusConfig", "StageConfig", "FlowConfig", "PipelineConfig", "DefaultsConfig", "load_json_config",
    "load_flow_config", "load_stimulus_config", "load_defaults"
]

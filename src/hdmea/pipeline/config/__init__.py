"""The original pipeline's ``hdmea.pipeline.config``: its names, handed on from where they live.

Generated from :data:`hdmea._compat_table.ORIGINAL_API` by ``python -m hdmea._compat.surface``; do not
edit."""

import importlib

from hdmea._compat.flow_files import DefaultsConfig, FlowConfig, StageConfig, load_defaults, load_flow_config
from hdmea.stimulus_files import load_json_config, load_stimulus_config
from hdmea._compat.flow_files import PipelineDefaults as PipelineConfig
from hdmea.stimulus_files import StimulusFile as StimulusConfig

__all__ = [
    "StimulusConfig", "load_json_config", "load_stimulus_config", "StageConfig", "FlowConfig", "PipelineConfig",
    "DefaultsConfig", "load_flow_config", "load_defaults"
]

importlib.import_module("hdmea._compat_table").settings_reach_their_home(__name__)

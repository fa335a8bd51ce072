"""The original pipeline's path of its JSON configuration (the files are read by :mod:`hdmea.stimulus_files`)."""

from hdmea.stimulus_files import (
    DefaultsConfig, FlowConfig, StageConfig, load_defaults, load_flow_config, load_json_config, load_stimulus_config,
)
from hdmea.stimulus_files import PipelineDefaults as PipelineConfig
from hdmea.stimulus_files import StimulusFile as StimulusConfig

__all__ = ["StimulusConfig", "StageConfig", "FlowConfig", "PipelineConfig", "DefaultsConfig", "load_json_config",
           "load_flow_config", "load_stimulus_config", "load_defaults"]

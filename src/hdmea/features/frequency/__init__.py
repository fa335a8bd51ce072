"""Temporal frequency tuning from full-field frequency steps (``freq_step_5st_3x``)."""

from hdmea.features.frequency.chirp import FrequencyFeatureExtractor

__all__ = ["FrequencyFeatureExtractor"]

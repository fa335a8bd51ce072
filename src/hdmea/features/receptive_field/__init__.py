"""The receptive field from a dense-noise STA (``perfect_dense_noise_15x15_15hz_r42_3min``)."""

from hdmea.features.receptive_field.dense_noise import DenseNoiseFeatureExtractor

__all__ = ["DenseNoiseFeatureExtractor"]

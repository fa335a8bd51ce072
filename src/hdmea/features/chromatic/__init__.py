"""Responses to green and blue light steps (``green_blue_3s_3i_3x``)."""

from hdmea.features.chromatic.green_blue import ChromaticFeatureExtractor

__all__ = ["ChromaticFeatureExtractor"]

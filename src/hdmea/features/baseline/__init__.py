"""Firing statistics on a gray screen (``baseline_127``)."""

from hdmea.features.baseline.baseline_127 import BaselineFeatureExtractor

__all__ = ["BaselineFeatureExtractor"]

"""Firing rate per display frame over the whole recording (``frif``)."""

from hdmea.features.frif.frif_extractor import FRIFExtractor

__all__ = ["FRIFExtractor"]

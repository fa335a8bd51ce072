"""RGC or not, from the waveform and the spike count (``cell_type_classifier``)."""

from hdmea.features.cell_type.rgc_classifier import CellTypeFeatureExtractor

__all__ = ["CellTypeFeatureExtractor"]

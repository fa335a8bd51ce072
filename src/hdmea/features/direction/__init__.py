"""Direction and orientation selectivity from a bar moving in 8 directions (``moving_h_bar_s5_d8_3x``)."""

from hdmea.features.direction.bar_geometry import DIRECTION_LIST, MovingBar
from hdmea.features.direction.moving_bar import MovingBarFeatureExtractor

__all__ = ["DIRECTION_LIST", "MovingBar", "MovingBarFeatureExtractor"]

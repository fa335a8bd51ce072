"""Where a moving bar is, display frame by display frame, and when it covers a point of the screen.

The movie shows a bright bar on a gray square screen of ``screen_px`` pixels,
once per direction of :data:`DIRECTION_LIST` (``0`` moves right, ``90`` moves
up: towards row 0), one direction per sweep of ``sweep_frames`` display frames,
the eight sweeps of a trial in that order.  The bar is ``bar_width_px`` thick
along its motion and longer than the screen across it; it moves ``speed_px``
pixels per frame.  On sweep frame ``k`` its leading edge lies at
``-R + speed_px * (k - lead_frames)`` along the motion, measured from the
screen's centre (``R`` = half the screen's diagonal, so the bar enters from
outside the screen).  A point at distance ``s`` along the motion is covered on
the frames ``k`` with ``s <= edge(k) < s + bar_width_px``: from
``on = lead_frames + ceil((s + R) / speed_px)`` to ``off = on + ...`` exclusive.

Pixel coordinates are (row, col) from the screen's top-left corner; the
15 x 15 dense-noise grid maps onto the same screen (20 pixels per check for a
300-pixel screen), as the lab's direction sectioning assumes.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

__all__ = ["DIRECTION_LIST", "MovingBar"]

#: The eight directions of motion in degrees, in the order of the sweeps of a trial.
DIRECTION_LIST: list[int] = [0, 45, 90, 135, 180, 225, 270, 315]


@dataclasses.dataclass(frozen=True)
class MovingBar:
    """The geometry of the moving-bar movie (defaults: the lab's ``moving_h_bar_s5_d8_3x`` bar)."""

    screen_px: int = 300
    bar_width_px: float = 50.0
    speed_px: float = 5.0
    sweep_frames: int = 100
    lead_frames: int = 0

    def __post_init__(self) -> None:
        if self.speed_px <= 0 or self.bar_width_px <= 0 or self.screen_px <= 0:
            raise ValueError("MovingBar: screen_px, bar_width_px and speed_px must be positive "
                             f"(found {self.screen_px}, {self.bar_width_px}, {self.speed_px})")
        if self.sweep_frames < self.frames_to_cross:
            raise ValueError(f"MovingBar: a sweep of {self.sweep_frames} frames is shorter than the "
                             f"{self.frames_to_cross} frames the bar needs to cross the screen")

    @property
    def half_diagonal(self) -> float:
        return self.screen_px / math.sqrt(2.0)

    @property
    def frames_to_cross(self) -> int:
        return self.lead_frames + int(math.ceil((2 * self.half_diagonal + self.bar_width_px) / self.speed_px)) + 1

    @property
    def trial_frames(self) -> int:
        return self.sweep_frames * len(DIRECTION_LIST)

    def along(self, row_px, col_px, direction_deg) -> np.ndarray:
        """Distance of the points from the screen's centre along the direction of motion (pixels)."""
        theta = np.deg2rad(np.asarray(direction_deg, dtype=np.float64))
        c = self.screen_px / 2.0
        return (np.asarray(col_px, np.float64) - c) * np.cos(theta) - (np.asarray(row_px, np.float64) - c) * np.sin(theta)

    def crossing_frames(self, row_px: float, col_px: float) -> tuple[np.ndarray, np.ndarray]:
        """(on, off) sweep frames of each direction: the bar covers the point on frames ``on <= k < off``."""
        s = self.along(row_px, col_px, DIRECTION_LIST)
        on = self.lead_frames + np.ceil((s + self.half_diagonal) / self.speed_px - 1e-9).astype(np.int64)
        off = self.lead_frames + np.ceil((s + self.half_diagonal + self.bar_width_px) / self.speed_px - 1e-9).astype(np.int64)
        return on, off

    def coverage(self, shape: tuple[int, int], direction_deg: float) -> np.ndarray:
        """(sweep_frames, h, w) bool: whether the bar covers the centre of each check of a ``shape`` grid."""
        h, w = shape
        rows = (np.arange(h) + 0.5) * self.screen_px / h
        cols = (np.arange(w) + 0.5) * self.screen_px / w
        s = self.along(rows[:, None], cols[None, :], direction_deg)
        k = np.arange(self.sweep_frames, dtype=np.float64)[:, None, None]
        edge = -self.half_diagonal + self.speed_px * (k - self.lead_frames)
        return (s[None] <= edge) & (edge < s[None] + self.bar_width_px)

    def check_to_pixel(self, row_check: float, col_check: float, grid: int = 15) -> tuple[int, int]:
        """Screen pixel (clipped to the screen) of a receptive-field centre in checks (0-based, check ``i``'s
        centre at ``i``).  The lab's sectioning took ``int(centre * 20)``, the top-left corner of the check,
        half a check (two frames of a 5-pixel-per-frame bar) from its centre."""
        scale = self.screen_px / grid
        row = min(max(int((row_check + 0.5) * scale), 0), self.screen_px - 1)
        col = min(max(int((col_check + 0.5) * scale), 0), self.screen_px - 1)
        return row, col

"""The lab's per-pixel on/off pickle of the moving bar and its 15 x 15 to 300 x 300 grid conversion.

Read by the direction sectioning (:mod:`hdmea.features.dsgc_direction`, which hands these names on
under the original pipeline's path) and by the moving-bar extractor
(:mod:`hdmea.features.direction.moving_bar`).
"""

from __future__ import annotations

import pickle
from pathlib import Path

from hdmea.errors import ConfigError

__all__ = ["COORDINATE_SCALE_FACTOR", "load_on_off_dict", "convert_center_15_to_300"]

COORDINATE_SCALE_FACTOR = 20


def load_on_off_dict(dict_path) -> dict[tuple[int, int], dict[str, list[int]]]:
    """The lab's per-pixel on/off pickle, checked: (row, col) keys, ``on_peak_location``/``off_peak_location``.

    A pickle runs code when loaded: pass only files your lab made.
    """
    path = Path(dict_path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no on/off dictionary here (a pickle of per-pixel bar timings)")
    with open(path, "rb") as fh:
        data = pickle.load(fh)  # noqa: S301 - the lab's own file, named by the caller
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: not an on/off dictionary", expected="a dict", found=type(data).__name__)
    for key, value in list(data.items())[:1]:
        if not (isinstance(key, tuple) and len(key) == 2):
            raise ConfigError(f"{path}: on/off dictionary keys must be (row, col)", found=repr(key))
        if not isinstance(value, dict) or not {"on_peak_location", "off_peak_location"} <= set(value):
            raise ConfigError(f"{path}: on/off dictionary values need 'on_peak_location' and 'off_peak_location'",
                              found=repr(value)[:80])
    return data


def convert_center_15_to_300(center_row_15: float, center_col_15: float) -> tuple[int, int]:
    """The lab's conversion of a 15 x 15 grid centre to 300 x 300 pixels (``int(c * 20)``, clipped)."""
    row = max(0, min(299, int(center_row_15 * COORDINATE_SCALE_FACTOR)))
    col = max(0, min(299, int(center_col_15 * COORDINATE_SCALE_FACTOR)))
    return row, col

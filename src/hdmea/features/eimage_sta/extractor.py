"""``eimage_sta``: one unit's electrical image from sensor data filtered beforehand.

The full workflow (read the ``.cmcr`` in chunks, filter, average every unit)
is the pipeline step :func:`hdmea.pipeline.compute_eimage_sta`, which stores
``units/{u}/features/eimage_sta``.  This extractor is the lab pipeline's
per-unit form: ``config["filtered_data"]`` is an array (samples, rows, cols)
already high-pass filtered, and the image is the mean of the windows
``[t - pre_samples, t + post_samples)`` around the unit's spikes whose window
lies inside the data (at most ``spike_limit``, the first in time), computed by
the same kernel as the step.  Without ``filtered_data`` it raises
``ValueError`` (the step writes that path: running this extractor there without
data would replace real images).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hdmea.features.base import FeatureExtractor
from hdmea.features.registry import FeatureRegistry
from hdmea.features.trials import stored_rate

__all__ = ["EImageSTAExtractor", "compute_sta_for_unit"]

# A second-order section that passes its input unchanged: the data are filtered already.
_PASS_THROUGH = np.array([[1.0, 0.0, 0.0, 1.0, 0.0, 0.0]])


def compute_sta_for_unit(filtered_data, spike_samples, pre_samples: int = 10, post_samples: int = 40,
                         spike_limit: int = -1) -> tuple[np.ndarray, int, int]:
    """(mean window (pre + post, rows, cols) float32, spikes used, spikes whose window did not fit).

    The image is NaN when no spike's window fits (the lab pipeline's convention).
    """
    from h5stream.kernels.eimage import electrical_images

    data = np.asarray(filtered_data)
    spikes = np.sort(np.asarray(spike_samples, dtype=np.int64).reshape(-1))
    batch = electrical_images(data, [spikes], sos=_PASS_THROUGH, settle_samples=0,
                              window=(-int(pre_samples), int(post_samples)),
                              max_spikes_per_unit=int(spike_limit) if spike_limit and spike_limit > 0 else None,
                              n_threads=1, prefetch=False, direct_io=False)
    used = int(batch.n_spikes_used[0])
    image = batch.images[0].astype(np.float32)
    if used == 0:
        image = np.full(image.shape, np.nan, np.float32)
    return image, used, int(batch.n_spikes_excluded[0])


@FeatureRegistry.register("eimage_sta")
class EImageSTAExtractor(FeatureExtractor):
    """Electrode image spike-triggered average from sensor data filtered beforehand."""

    version = "1.0.0"
    runtime_class = "slow"
    description = "Electrode image spike-triggered average from sensor data"
    required_inputs = ["spike_times"]
    output_schema = {
        "data": {"dtype": "float32", "shape": "(window_length, rows, cols)",
                 "description": "Average electrode activity around spikes"},
        "n_spikes": {"dtype": "int64", "description": "Number of spikes used in average"},
        "n_spikes_excluded": {"dtype": "int64", "description": "Spikes excluded due to edge effects"},
        "pre_samples": {"dtype": "int64", "description": "Samples before spike in window"},
        "post_samples": {"dtype": "int64", "description": "Samples after spike in window"},
        "cutoff_hz": {"dtype": "float64", "description": "High-pass filter cutoff frequency"},
        "filter_order": {"dtype": "int64", "description": "Butterworth filter order"},
    }

    def __init__(self, config=None) -> None:
        super().__init__(config)
        for key, value in (("cutoff_hz", 100.0), ("filter_order", 2), ("pre_samples", 10), ("post_samples", 40),
                           ("spike_limit", 10000), ("sampling_rate", 20000.0)):
            self.config.setdefault(key, value)

    def extract(self, unit_data, stimulus_data, config=None, metadata=None) -> dict[str, Any]:
        cfg = self.merged_config(config)
        if "filtered_data" not in cfg:
            raise ValueError("eimage_sta needs config['filtered_data'] (samples, rows, cols), filtered already; "
                             "for a recording, run hdmea.pipeline.compute_eimage_sta instead")
        data = np.asarray(cfg["filtered_data"])
        pre, post = int(cfg["pre_samples"]), int(cfg["post_samples"])
        spikes = np.asarray(unit_data["spike_times"][:]) if "spike_times" in unit_data else np.zeros(0)
        if stored_rate(unit_data, metadata) is not None:
            samples = spikes.astype(np.int64)  # stored spike times are samples already
        else:  # microseconds, truncated to samples as the lab pipeline did
            samples = (spikes / 1e6 * float(cfg["sampling_rate"])).astype(np.int64)
        if samples.size:
            image, used, excluded = compute_sta_for_unit(data, samples, pre, post, int(cfg["spike_limit"]))
        else:
            image, used, excluded = np.full((pre + post, *data.shape[1:]), np.nan, np.float32), 0, 0
        return {"data": image, "n_spikes": used, "n_spikes_excluded": excluded, "pre_samples": pre,
                "post_samples": post, "cutoff_hz": float(cfg["cutoff_hz"]), "filter_order": int(cfg["filter_order"])}

"""Synthetic HD-MEA recordings with a planted ground truth.

``generate_recording(out_dir, name, config=SyntheticConfig.tiny(), ...)`` writes a
``.cmcr``/``.cmtr`` pair in the MCS CMOS-MEA layout (readable by the vendor's
``McsPy.McsCMOSMEA``), the stimulus description (``<name>.stimulus.json`` and
the dense-noise movie ``.npy``) and ``<name>.truth.h5``: frame and section times,
planted receptive fields, electrical footprints and true spike times.
``SyntheticConfig.with_lab_stimuli()`` adds the lab's other movies (gray screen, a bar
moving in 8 directions, green-blue steps, frequency steps) and plants each unit's preferred
direction, colour and frequency.
"""

from hdmea.synthetic.config import SyntheticConfig
from hdmea.synthetic.generator import SyntheticRecording, generate_recording
from hdmea.synthetic.truth import GroundTruth, UnitTruth, load_truth

__all__ = [
    "SyntheticConfig",
    "SyntheticRecording",
    "generate_recording",
    "GroundTruth",
    "UnitTruth",
    "load_truth",
]

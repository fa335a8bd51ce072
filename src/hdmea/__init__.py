"""hdmea: analysis of HD-MEA retina recordings (MCS ``.cmcr``/``.cmtr``) into one HDF5 file per recording.

Steps run one by one (each writes its results to the recording file at once) or
inside a deferred :class:`hdmea.pipeline.PipelineSession` that saves once,
checkpoints, resumes and keeps memory within a budget.
"""

from h5stream import __version__
from hdmea._other_install import OriginalPipelineInstalledWarning, started_as_command, warn_if_original_installed

__all__ = ["__version__", "OriginalPipelineInstalledWarning"]

if not started_as_command():  # the command checks once its start has taken Ctrl-C (hdmea.__main__)
    warn_if_original_installed()

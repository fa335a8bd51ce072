"""hdmea: analysis of HD-MEA retina recordings (MCS ``.cmcr``/``.cmtr``) into one HDF5 file per recording.

Steps run one by one (each writes its results to the recording file at once) or
inside a deferred :class:`hdmea.pipeline.PipelineSession` that saves once,
checkpoints, resumes and keeps memory within a budget.
"""

from hdmea import _early_stops

if _early_stops.started_as_command():  # the command starting: a stop from here on is its one line
    _early_stops.hold()

from h5stream import __version__  # noqa: E402
from hdmea._other_install import OriginalPipelineInstalledWarning, warn_if_original_installed  # noqa: E402

__all__ = ["__version__", "OriginalPipelineInstalledWarning"]

if not _early_stops.started_as_command():  # the command checks once its start has taken Ctrl-C (hdmea.__main__)
    warn_if_original_installed()

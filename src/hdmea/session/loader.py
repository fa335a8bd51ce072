"""Open a finished recording file as a session, to add steps to it (the original's ``hdmea.session.loader``).

The session is :meth:`PipelineSession.load <hdmea.session.session.PipelineSession.load>`
of the file: arrays are read when a step uses them, so nothing needs choosing up
front; ``load_features`` is accepted for the original's signature and checked
against the file.
"""

from __future__ import annotations

import os

from hdmea.errors import ConfigError

__all__ = ["load_session_from_hdf5", "load_hdf5_to_session"]


def load_session_from_hdf5(hdf5_path: str | os.PathLike, *, dataset_id: str | None = None,
                           load_features: list[str] | None = None):
    """A :class:`~hdmea.session.session.PipelineSession` holding the recording ``hdf5_path``.

    ``dataset_id`` renames the session (saved under that id); ``load_features``
    names features that must be in the file (a name no unit holds is a
    ConfigurationError).
    """
    from hdmea.io import hdf5_store as store
    from hdmea.io.recording import open_recording
    from hdmea.session.session import PipelineSession

    if load_features:
        with open_recording(hdf5_path) as recording:
            held = {name for unit in recording.units() for name in unit.feature_names()}
        missing = sorted(set(load_features) - held)
        if missing:
            raise ConfigError(f"{hdf5_path}: no unit holds the features {missing}",
                              found=", ".join(sorted(held)) or "no features")
    session = PipelineSession.load(hdf5_path, hdf5_path=None)
    if dataset_id is not None:
        session.dataset_id = store.check_dataset_id(dataset_id)
    return session


#: The original's second name for the same function.
load_hdf5_to_session = load_session_from_hdf5

"""Open a finished recording file as a session, to add steps to it (the original's ``hdmea.session.loader``).

The session is :meth:`PipelineSession.load <hdmea.session.session.PipelineSession.load>`
of the file: arrays are read when a step uses them, so nothing needs choosing up
front; ``load_features`` is accepted for the original's signature and checked
against the file.  As the original's loader, it records ``load_from_hdf5`` among
the completed steps and reads each 1-element record as one value, so the session
saves the vendor's records (``units/<u>/unit_meta/*``) 0-d, as a file the
original resumed this way holds them (:func:`one_value_records_as_scalars`).
"""

from __future__ import annotations

import os

import numpy as np

from hdmea.errors import ConfigError

__all__ = ["load_session_from_hdf5", "load_hdf5_to_session", "LOADED_STEP", "one_value_records_as_scalars"]

#: The name the original's ``load_session_from_hdf5`` adds to ``completed_steps`` (saved with the rest).
LOADED_STEP = "load_from_hdf5"


def load_session_from_hdf5(hdf5_path: str | os.PathLike, *, dataset_id: str | None = None,
                           load_features: list[str] | None = None):
    """A :class:`~hdmea.session.session.PipelineSession` holding the recording ``hdf5_path``.

    ``dataset_id`` renames the session (saved under that id); ``load_features``
    names features that must be in the file (a name no unit holds is a
    ConfigurationError).  As the original's, the session's ``completed_steps``
    gain ``load_from_hdf5`` (the file's steps and this one, saved with it).
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
    one_value_records_as_scalars(session.tree.root)
    session.completed_steps.add(LOADED_STEP)
    return session


def one_value_records_as_scalars(root) -> list[str]:
    """Make each plain 1-element array of the tree one value (0-d), as the original's loader reads it (and
    its session then saves it): the vendor's one-value records (``units/<u>/unit_meta/unitid``, ...) and any
    other value in a unit's dicts, ``/metadata`` or ``/stimulus``.  Spike times are kept as they are: the
    original's makes a trial with one spike a scalar too, and the lab's ``f[...][:]`` of it then raises.
    Returns the paths changed."""
    from h5stream.staging import FileArray
    from h5stream.tree import Dataset, Group

    changed = []

    def visit(group, path: str, depth_in_unit: int | None) -> None:
        for name, node in list(group.children.items()):
            where = f"{path}/{name}"
            if isinstance(node, Group):
                if name in _SPIKE_GROUPS and depth_in_unit is not None:
                    continue
                inner = 0 if path == "/units" else None if depth_in_unit is None else depth_in_unit + 1
                visit(node, where, inner)
            elif (node.tag is None and tuple(node.data.shape) == (1,) and depth_in_unit != 0
                  and node.data.dtype.kind in "biufSU" and not (path == "" or path.startswith("/pipeline"))):
                data = node.data.read() if isinstance(node.data, FileArray) else node.data
                group.children[name] = Dataset(np.asarray(data).reshape(()), node.attrs, node.tag)
                changed.append(where)

    visit(root, "", None)
    return changed


#: A unit's groups of spike times, kept as they are by :func:`one_value_records_as_scalars`.
_SPIKE_GROUPS = frozenset({"spike_times_sectioned"})


#: The original's second name for the same function.
load_hdf5_to_session = load_session_from_hdf5

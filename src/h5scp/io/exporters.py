"""Writer of the scptensor HDF5 format 2.0 (``.h5``/``.hdf5``).

Layout::

    /                      @format_name="scptensor" @format_version="2.0"
                           @scptensor_version @creation_time @sample_id_col
                           @obs_saved @history_saved
    /obs                   dataframe element (row index = sample ids)
    /assays                @order (JSON list of assay names)
    /assays/<a>            @feature_id_col
    /assays/<a>/var        dataframe element (row index = feature ids)
    /assays/<a>/layers     @order
    /assays/<a>/layers/<l>/X         array, csr_matrix or csc_matrix element
    /assays/<a>/layers/<l>/M         int8 mask (absent = all VALID; gzip at level 1 at most)
    /assays/<a>/layers/<l>/metadata  dict element (absent = no metadata)
    /links/<i>             @source_assay @target_assay, linkage dataframe element
                           (/links absent = no links)
    /provenance/history    records (dataframe) + params (dict of per-entry dicts)
                           (/provenance absent = empty history)

Every element carries AnnData's ``encoding-type``/``encoding-version``.  The
file is built beside the target and renamed over it when complete.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import h5py
from scipy import sparse

from h5stream.elements import write_elem
from h5scp.io.classes import saves_any_container
from h5scp.core.structures import Assay, ScpContainer, ScpMatrix
from h5scp.io._files import writing
from h5scp.io.exceptions import PartNotFoundWarning
from h5scp.io.format_table import FORMAT_TABLE, writer_of
from h5scp.io.serializers import (
    compression_options,
    mask_level,
    serialize_dense_matrix,
    serialize_provenance,
    serialize_sparse_matrix,
)

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "save_hdf5", "select_parts", "write_matrix"]

logger = logging.getLogger(__name__)

FORMAT_NAME = "scptensor"
FORMAT_VERSION = "2.0"


def _skip_unknown(names: Sequence[str], known, what: str) -> list[str]:
    """``names`` that are in ``known``; the others are said in one :class:`PartNotFoundWarning`."""
    unknown = [n for n in names if n not in known]
    if unknown:
        warnings.warn(
            f"{what}: {unknown} not found, skipped (present: {list(known)})", PartNotFoundWarning, stacklevel=4
        )
    return [n for n in names if n in known]


def select_parts(
    container: ScpContainer,
    save_obs: bool = True,
    save_assays: Sequence[str] | None = None,
    save_layers: Sequence[str] | Mapping[str, Sequence[str]] | None = None,
    save_history: bool = True,
) -> ScpContainer:
    """The part of ``container`` a selective save keeps, as a container.

    ``save_obs=False`` keeps only the sample id column; ``save_assays`` names
    the assays to keep (in their container order); ``save_layers`` names the
    layers to keep in every assay that holds them, or maps assay names to their
    layers; ``save_history=False`` drops the history.  Links whose assays are
    not kept are dropped.  Names the container does not hold are skipped, as
    the original did, each said in a :class:`PartNotFoundWarning`.
    """
    if isinstance(save_assays, str):
        save_assays = [save_assays]
    if save_assays is not None:
        save_assays = _skip_unknown(save_assays, container.assays, "save_assays names assays the container lacks")
    kept = [a for a in container.assays if save_assays is None or a in save_assays]
    if isinstance(save_layers, str):
        save_layers = [save_layers]
    if isinstance(save_layers, Mapping):
        save_layers = {a: save_layers[a] for a in _skip_unknown(
            list(save_layers), container.assays, "save_layers names assays the container lacks")}
    elif save_layers is not None:
        known = dict.fromkeys(layer for a in kept for layer in container.assays[a].layers)
        _skip_unknown(list(save_layers), known, "save_layers names layers no assay saved holds")
    assays = {}
    for name in kept:
        assay = container.assays[name]
        if save_layers is None:
            wanted = None
        elif isinstance(save_layers, Mapping):
            wanted = save_layers.get(name)
            if wanted is not None:
                wanted = _skip_unknown([wanted] if isinstance(wanted, str) else list(wanted), assay.layers,
                                       f"save_layers names layers assay {name!r} lacks")
        else:
            wanted = list(save_layers)
        layers = dict(assay.layers) if wanted is None else {k: v for k, v in assay.layers.items() if k in wanted}
        assays[name] = Assay(assay.var, layers, feature_id_col=assay.feature_id_col)
    obs = container.obs if save_obs else container.obs.select(container.sample_id_col)
    links = [
        link for link in container.links if link.source_assay in assays and link.target_assay in assays
    ]
    history = container.history if save_history else []
    return ScpContainer(obs, assays, history=history, links=links, sample_id_col=container.sample_id_col)


def write_matrix(group: h5py.Group, matrix: ScpMatrix, compression: str | None, level: int | None) -> None:
    """Write ``X``, ``M`` and ``metadata`` of one matrix as elements of ``group``.

    The mask's gzip level is :func:`~h5scp.io.serializers.mask_level` (level 1 at most).
    """
    for name, values, at in (("X", matrix.X, level), ("M", matrix.M, mask_level(compression, level))):
        if values is None:
            continue
        if sparse.issparse(values):
            serialize_sparse_matrix(values, group, name, compression, at)
        else:
            serialize_dense_matrix(values, group, name, compression, at)
    if matrix.metadata:
        write_elem(group, "metadata", dict(matrix.metadata), **compression_options(compression, level))


def _write_container(
    f: h5py.File, container: ScpContainer, compression: str | None, level: int | None,
    *, obs_saved: bool, history_saved: bool,
) -> None:
    from h5scp._version import __version__

    options = compression_options(compression, level)
    f.attrs["format_name"] = FORMAT_NAME
    f.attrs["format_version"] = FORMAT_VERSION
    f.attrs["scptensor_version"] = __version__
    f.attrs["creation_time"] = _dt.datetime.now(_dt.timezone.utc).isoformat()
    f.attrs["sample_id_col"] = container.sample_id_col
    f.attrs["obs_saved"] = obs_saved
    f.attrs["history_saved"] = history_saved

    write_elem(f, "obs", container.obs, index=container.sample_id_col, **options)

    assays_group = f.create_group("assays")
    assays_group.attrs["order"] = json.dumps(list(container.assays))
    for name, assay in container.assays.items():
        group = assays_group.create_group(name)
        group.attrs["feature_id_col"] = assay.feature_id_col
        write_elem(group, "var", assay.var, index=assay.feature_id_col, **options)
        layers_group = group.create_group("layers")
        layers_group.attrs["order"] = json.dumps(list(assay.layers))
        for layer_name, matrix in assay.layers.items():
            write_matrix(layers_group.create_group(layer_name), matrix, compression, level)

    # No links and an empty history are written as no objects at all: each object is one more a load opens,
    # lists and checks (the reader takes an absent /links or /provenance for none, as it did from the start).
    if container.links:
        links_group = f.create_group("links")
        for i, link in enumerate(container.links):
            group = links_group.create_group(str(i))
            group.attrs["source_assay"] = link.source_assay
            group.attrs["target_assay"] = link.target_assay
            write_elem(group, "linkage", link.linkage, **options)
    if container.history:
        serialize_provenance(container.history, f.create_group("provenance").create_group("history"))


@saves_any_container
def save_hdf5(
    container: ScpContainer,
    path: str | os.PathLike,
    *,
    compression: str | None = "auto",
    compression_level: int | None = None,
    save_obs: bool = True,
    save_assays: Sequence[str] | None = None,
    save_layers: Sequence[str] | Mapping[str, Sequence[str]] | None = None,
    save_history: bool = True,
    overwrite: bool = False,
) -> Path:
    """Save ``container`` to ``path`` in the scptensor HDF5 format 2.0.

    Parameters
    ----------
    container : ScpContainer
        Container to save.
    path : str or os.PathLike
        Target file (``.h5`` or ``.hdf5`` by convention).
    compression : {"auto", "gzip", "lzf", None, ...}, default "auto"
        Codec of array data.  ``"auto"``: gzip level 1 (with the shuffle filter for
        matrices) for the arrays of a chunk (1 MiB) or more that shrink to at most a
        quarter (masks, mostly-missing values; a few sampled pieces tell), no
        compression for the others (measured intensities, whose bytes gzip barely
        shrinks at more time than writing them); only HDF5's built-in filters, so
        plain h5py reads the file.  ``"gzip"``: every array at ``compression_level``; ``zstd``,
        ``lz4``... need ``hdf5plugin``; None: no compression.
    compression_level : int, optional
        Level of gzip (0-9; default 4, or 1 with ``"auto"``) or zstd.
    save_obs : bool, default True
        False stores only the sample id column of ``obs``.
    save_assays : list of str, optional
        Assays to store (default all).
    save_layers : list of str or dict of str to list of str, optional
        Layers to store in every assay, or per assay (default all).
    save_history : bool, default True
        False stores an empty history (no ``/provenance`` group).
    overwrite : bool, default False
        Replace an existing file (it stays intact until the new one is complete).

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    IOTargetExistsError
        ``path`` exists and ``overwrite`` is False (an :class:`IOWriteError`).
    IOWriteError
        The directory is missing or unwritable, the disk is full, or writing failed.
    ValueError
        The extension names another format (``.h5ad``, ``.h5mu``, ...).

    Warns
    -----
    PartNotFoundWarning
        ``save_assays``/``save_layers`` name parts the container lacks (skipped, as the original did).
    """
    target = Path(path)
    other = FORMAT_TABLE.get(target.suffix.lower())
    if other is not None and other.writer != "save_hdf5":
        raise ValueError(
            f"{target}: save_hdf5 writes the scptensor HDF5 format, but the extension "
            f"{target.suffix!r} names {other.name}; use {writer_of(other)}, or a .h5 name"
        )
    part = select_parts(container, save_obs, save_assays, save_layers, save_history)
    with writing(target, overwrite=overwrite) as f:
        _write_container(
            f, part, compression, compression_level, obs_saved=save_obs, history_saved=save_history
        )
    logger.info("saved %r to %s", container, target)
    return target

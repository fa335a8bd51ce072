"""AnnData files (``.h5ad``): one assay of a container, readable by ``anndata.read_h5ad``.

``X`` is one layer (the ``layer`` argument, default the assay's first), the
other layers go to ``layers``; ``obs`` holds every sample column; masks,
metadata, history and the links that stay inside the assay are kept under
``uns/scptensor``, so loading the file gives back a container with that one
assay exactly.  Frame columns AnnData has no encoding for are shown as
readable stand-ins and kept exactly in ``uns/scptensor/exact_columns`` (see
:mod:`scptensor.io._anndata_columns`).
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
from pathlib import Path

import h5py

from scptensor.core.structures import ScpContainer
from scptensor.io._anndata_layout import (
    ANNDATA_ENCODING,
    MARK_ATTR,
    apply_container_extras,
    container_extras,
    interop_format_check,
    layer_order,
    read_anndata_obs,
    read_assay_group,
    read_info,
    write_assay_group,
    written_by_scptensor,
)
from scptensor.io._files import guarded, reading, writing
from scptensor.io.exporters import FORMAT_VERSION, select_parts
from scptensor.io.foreign import import_anndata
from scptensor.io.selection import selection_from

__all__ = ["save_h5ad", "load_h5ad", "read_h5ad", "check_h5ad"]

logger = logging.getLogger(__name__)

_ASSAY_ATTR = "scptensor:assay"


def save_h5ad(
    container: ScpContainer,
    path: str | os.PathLike,
    *,
    assay: str | None = None,
    layer: str | None = None,
    compression: str | None = "gzip",
    compression_level: int = 4,
    save_obs: bool = True,
    save_layers=None,
    save_history: bool = True,
    overwrite: bool = False,
) -> Path:
    """Save one assay of ``container`` as an AnnData file.

    Parameters
    ----------
    assay : str, optional
        The assay to save; may be omitted when the container holds exactly one.
    layer : str, optional
        The layer stored as ``X`` (default: the assay's first layer).
    Other parameters
        As for :func:`scptensor.io.save_hdf5`.
    """
    if assay is None:
        if len(container.assays) != 1:
            raise ValueError(
                "an .h5ad file holds one assay; pass assay= one of "
                f"{list(container.assays)}"
            )
        assay = next(iter(container.assays))
    if assay not in container.assays:
        raise ValueError(f"assay {assay!r} is not in the container; it holds {list(container.assays)}")
    part = select_parts(container, save_obs, [assay], save_layers, save_history)
    chosen = part.assays[assay]
    if layer is not None and layer not in chosen.layers:
        raise ValueError(f"layer {layer!r} is not saved from assay {assay!r}; layers {list(chosen.layers)}")
    target = Path(path)
    with writing(target, overwrite=overwrite) as f:
        f.attrs[MARK_ATTR] = FORMAT_VERSION
        f.attrs[_ASSAY_ATTR] = assay
        f.attrs["creation_time"] = _dt.datetime.now(_dt.timezone.utc).isoformat()
        write_assay_group(
            f, part.obs, part.sample_id_col, chosen, x_layer=layer,
            compression=compression, level=compression_level,
            uns_extra={"assay": assay, **container_extras(part)},
        )
    logger.info("saved assay %r of %r to %s (AnnData)", assay, container, target)
    return target


def check_h5ad(path):
    """The ``check`` of :func:`h5stream.files.open_validated` for AnnData files."""
    return interop_format_check(
        path, encoding_type=ANNDATA_ENCODING[0], label="AnnData", version=FORMAT_VERSION, required=("obs", "var")
    )


def read_h5ad(f: h5py.File, source: Path, *, assay: str | None = None, request: dict | None = None) -> ScpContainer:
    """The container in an open AnnData file (see :func:`load_h5ad`), or the part ``request`` names.

    ``request`` holds :func:`scptensor.io.load`'s partial options; only the
    requested layers, masks and obs columns, and only the selected rows of
    dense and CSR matrices, are read.
    """
    request = request or {}
    if not written_by_scptensor(f):
        return import_anndata(f, source, assay=assay, request=request)
    with guarded(source, "/"):
        info = read_info(f, source)
        name = info["assay"]
        selection = selection_from([name], {name: layer_order(info)}, assays=request.get("assays"),
                                   layers=request.get("layers"), path=source)
        obs, positions = read_anndata_obs(selection, f, info, source, request)
        stored, info = read_assay_group(f, source, info, layers=selection.layers, positions=positions)
        history, links = apply_container_extras(info, source)
        return ScpContainer(
            obs, {name: stored}, history=history, links=links, sample_id_col=info["sample_id_col"],
        )


def load_h5ad(path: str | os.PathLike, *, assay: str | None = None, verify: bool = True) -> ScpContainer:
    """Load a container from a ``.h5ad`` file.

    A file written by :func:`save_h5ad` (also after anndata re-saved it) gives
    back its assay exactly; an AnnData file of another tool is imported as one
    assay named ``assay`` (default ``"main"``; see :mod:`scptensor.io.foreign`).
    """
    source = Path(path)
    with reading(source, check_h5ad(source), verify=verify) as f:
        return read_h5ad(f, source, assay=assay)

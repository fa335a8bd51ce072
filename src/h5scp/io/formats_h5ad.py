"""AnnData files (``.h5ad``): one assay of a container, readable by ``anndata.read_h5ad``.

``X`` is one layer (the ``layer`` argument, default the assay's first), the
other layers go to ``layers``; ``obs`` holds every sample column; masks,
metadata, history and the links that stay inside the assay are kept under
``uns/scptensor``, so loading the file gives back a container with that one
assay exactly.  Frames are written in a form anndata reads and writes back
under its defaults, with a record of each frame in ``uns/scptensor/frames``
that restores every dtype (see :mod:`h5scp.io._anndata_columns`).
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
from pathlib import Path

import h5py

from h5scp.io.classes import loads_into_classes, saves_any_container
from h5scp.core.structures import ScpContainer
from h5scp.io._anndata_columns import FRAMES_KEY, FrameNotes
from h5scp.io._anndata_layout import (
    ANNDATA_ENCODING,
    SCPTENSOR_KEY,
    describe_ids,
    present_layers,
    recorded_frame,
    MARK_ATTR,
    apply_container_extras,
    container_extras,
    interop_format_check,
    layer_order,
    read_anndata_obs,
    read_assay_group,
    read_info,
    write_assay_group,
)
from h5scp.io._anndata_group import scan
from h5scp.io._files import guarded, reading, writing
from h5scp.io.exporters import FORMAT_VERSION, select_parts
from h5stream.elements.dataframe import categories_read
from h5scp.io.foreign import edits_entry, import_anndata, unused_categories
from h5scp.io.selection import links_part, selection_from

__all__ = ["save_h5ad", "load_h5ad", "container_from_h5ad", "check_h5ad"]

logger = logging.getLogger(__name__)

_ASSAY_ATTR = "scptensor:assay"


@saves_any_container
def save_h5ad(
    container: ScpContainer,
    path: str | os.PathLike,
    *,
    assay: str | None = None,
    layer: str | None = None,
    compression: str | None = "auto",
    compression_level: int | None = None,
    save_obs: bool = True,
    save_layers=None,
    save_history: bool = True,
    overwrite: bool = False,
    save_assays=None,
) -> Path:
    """Save one assay of ``container`` as an AnnData file.

    Parameters
    ----------
    assay : str, optional
        The assay to save; may be omitted when the container holds exactly one.
    layer : str, optional
        The layer stored as ``X`` (default: the assay's first layer).
    save_assays : str or list of one str, optional
        The other formats' name of the part to save: one assay, the same as ``assay=``; an AnnData
        file holds one, so more are refused, naming them.
    Other parameters
        As for :func:`h5scp.io.save_hdf5`.
    """
    if save_assays is not None:
        named = [save_assays] if isinstance(save_assays, str) else list(save_assays)
        if len(named) != 1 or (assay is not None and assay != named[0]):
            raise ValueError(
                f"an .h5ad file (and a .zarr store) holds one assay, but save_assays names {named}"
                + (f" and assay= {assay!r}" if assay is not None else "")
                + "; pass assay= one of them, or save to .h5, .h5mu or .parquet to keep several"
            )
        assay = named[0]
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


def container_from_h5ad(f: h5py.File, source: Path, *, assay: str | None = None, request: dict | None = None) -> ScpContainer:
    """The container in an open AnnData file (see :func:`load_h5ad`), or the part ``request`` names.

    ``request`` holds :func:`h5scp.io.load`'s partial options; only the
    requested layers, masks and obs columns, and only the selected rows of
    dense and CSR matrices, are read.
    """
    request = request or {}
    with guarded(source, "/"):
        view = scan(f)
    if not view.ours:
        return import_anndata(f, source, assay=assay, request=request, view=view)
    notes = FrameNotes()
    with guarded(source, "/"):
        info = read_info(view, source)
        name = info["assay"]
        present = present_layers(view, info)
        selection = selection_from([name], {name: list(present)}, assays=request.get("assays"),
                                   layers=request.get("layers"), features=request.get("features"), path=source)
        with categories_read() as seen:
            obs, positions = read_anndata_obs(selection, view, info, source, request, notes)
        ids = obs.get_column(info["sample_id_col"]).to_list() if info["sample_id_col"] in obs.columns else None
        recorded = recorded_frame(info, "obs", source, f"/uns/{SCPTENSOR_KEY}/{FRAMES_KEY}/obs")
        if recorded is not None and ids is not None and positions is None:
            moved = describe_ids("samples", ids, recorded.get_column(info["sample_id_col"]).to_list())
            if moved:
                notes.add(moved)
            for text in unused_categories(seen, "obs", obs):
                notes.add(text)
        with categories_read() as seen:
            stored, info = read_assay_group(view, source, info, layers=selection.layers, positions=positions,
                                            sample_ids=ids, notes=notes, features=selection.features_of(name))
        for text in unused_categories(seen, "var", stored.var):
            notes.add(text)
        history, links = apply_container_extras(info, source, notes)
        links = links_part(links, {name: stored}, list(selection.features))
        history = history + edits_entry("AnnData", source, view, notes.changes)
        return ScpContainer(
            obs, {name: stored}, history=history, links=links, sample_id_col=info["sample_id_col"],
        )


@loads_into_classes
def load_h5ad(path: str | os.PathLike, *, assay: str | None = None, verify: bool = True) -> ScpContainer:
    """Load a container from a ``.h5ad`` file.

    A file written by :func:`save_h5ad` and not changed since gives back its
    assay exactly.  A re-save by anndata (also scanpy) under its default
    settings changes nothing of that: the obs and var values, dtypes (Date,
    Datetime, Duration, Time, Enum, Decimal, String with nulls, floats with
    nulls apart from NaN, lists, structs, binary, null columns, zero rows), column
    names holding ``/``, layer order, masks, matrix metadata, history and links
    come back exactly, from what is kept under ``uns/scptensor``: a schema of
    each frame (every column's polars dtype), the sample and feature ids, the
    rare columns whose AnnData form cannot give them back (floats holding both
    nulls and NaN, nested values JSON text cannot carry exactly) and a 16-bit
    fingerprint of every other value.  Files written before schemas (a record
    of each whole frame, or exact copies of some columns) load as before.

    A file edited in anndata loads as it is now; what scptensor recorded is
    applied only where it still describes the file:

    * samples or features subset or reordered: the rows and columns found,
      masks following them by id (a mask whose rows or columns are gone is
      dropped, with a warning);
    * layers added (``X`` of a file without one is layer ``"X"``) or removed;
    * obs/var columns added, removed, or with values replaced: the values found,
      in the recorded dtype where they all fit it (else as anndata holds them,
      said in the history); replaced values are named by the fingerprints of the
      rows found, matched by id (a replaced value goes unnamed with probability
      1/65,536 per value when rows were subset or reordered);
    * obsm, varm, obsp, varp, raw and ``uns`` entries besides ours have no place
      in a container: listed with their shapes (``uns`` values with a JSON-like
      form kept as values).

    One history entry (``load_edited_anndata``) names every difference; it is
    logged once as a warning.  An AnnData file of another tool is imported as
    one assay named ``assay`` (default ``"main"``; see
    :mod:`h5scp.io.foreign`).  See the guide page "AnnData round trip".
    """
    source = Path(path)
    with reading(source, check_h5ad(source), verify=verify) as f:
        return container_from_h5ad(f, source, assay=assay)

"""MuData files (``.h5mu``): one modality per assay, readable by ``mudata.read_h5mu``.

Layout (MuData 0.1.0, ``axis=0``): a 512-byte user block starting with
``MuData (format-version=...)``; root ``obs`` (the container's samples), ``var``
(every assay's feature ids, concatenated), ``obsm``/``varm`` (membership flags),
``obsmap``/``varmap`` (1-based positions), ``uns`` (the history, links, id
column and frame record under ``uns/scptensor``) and ``mod/<assay>`` each an
AnnData group (see :mod:`h5scp.io._anndata_layout`), in ``mod-order``.  A
modality holds the samples its assay measured: rows all NaN with mask code
UNCERTAIN in every layer are left out of it.  Every element has an encoding
AnnData reads and writes back under its defaults (see
:mod:`h5scp.io._anndata_columns`).
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
from pathlib import Path

import h5py
import numpy as np
import polars as pl

from h5stream.elements import read_elem, write_elem
from h5stream.elements.dataframe import categories_read
from h5scp.io.classes import loads_into_classes, saves_any_container
from h5scp.core.structures import Assay, ScpContainer
from h5scp.io._anndata_columns import FRAMES_KEY, FrameNotes
from h5scp.io._anndata_layout import (
    MARK_ATTR,
    SCPTENSOR_KEY,
    apply_container_extras,
    container_extras,
    describe_ids,
    interop_format_check,
    new_records,
    present_layers,
    read_anndata_obs,
    read_assay_group,
    read_info,
    recorded_frame,
    write_anndata_frame,
    write_assay_group,
)
from h5scp.io._anndata_group import GroupView, mod_order, scan
from h5scp.io.partial_hdf5 import samples_part
from h5scp.io._files import guarded, reading, writing
from h5scp.io._modality_rows import NOT_MEASURED, not_measured_rows, rows_of, spread_rows
from h5scp.io.exceptions import IOFormatError
from h5scp.io.exporters import FORMAT_VERSION, select_parts
from h5scp.io.foreign import (
    edits_entry,
    frame_ids,
    import_modality,
    import_mudata,
    unused_categories,
)
from h5scp.io.selection import links_part, selection_from
from h5scp.io.serializers import compression_options

__all__ = ["save_h5mu", "load_h5mu", "container_from_h5mu", "check_h5mu", "MUDATA_VERSION"]

logger = logging.getLogger(__name__)

MUDATA_VERSION = "0.1.0"
USERBLOCK_SIZE = 512
_GLOBAL_VAR_INDEX = "_index"


def _header() -> bytes:
    from h5scp._version import __version__

    return (
        f"MuData (format-version={MUDATA_VERSION};creator=scptensor;creator-version={__version__})"
    ).encode()


def _global_var(container: ScpContainer) -> tuple[pl.DataFrame, dict[str, np.ndarray]]:
    ids, owner = [], []
    for name, assay in container.assays.items():
        ids.extend(str(v) for v in assay.feature_ids.to_list())
        owner.extend([name] * assay.n_features)
    frame = pl.DataFrame({_GLOBAL_VAR_INDEX: ids}, schema={_GLOBAL_VAR_INDEX: pl.String})
    owner_arr = np.asarray(owner, dtype=object)
    return frame, {name: owner_arr == name for name in container.assays}


def _write(f: h5py.File, container: ScpContainer, compression, level) -> None:
    from h5scp._version import __version__

    options = compression_options(compression, level)
    f.attrs["encoding-type"] = "MuData"
    f.attrs["encoding-version"] = MUDATA_VERSION
    f.attrs["encoder"] = "scptensor"
    f.attrs["encoder-version"] = __version__
    f.attrs["axis"] = 0
    f.attrs[MARK_ATTR] = FORMAT_VERSION
    f.attrs["creation_time"] = _dt.datetime.now(_dt.timezone.utc).isoformat()

    n_obs = container.n_samples
    records = new_records()
    write_anndata_frame(f, "obs", container.obs, container.sample_id_col, options, records)
    var, membership = _global_var(container)
    held = {name: ~not_measured_rows(assay, n_obs) for name, assay in container.assays.items()}
    write_elem(f, "var", var, index=_GLOBAL_VAR_INDEX, **options)
    write_elem(f, "obsm", held, **options)
    write_elem(f, "varm", membership, **options)
    write_elem(
        f, "obsmap",
        {name: np.where(rows, np.cumsum(rows), 0).astype(np.uint32) for name, rows in held.items()}, **options,
    )
    write_elem(
        f,
        "varmap",
        {name: np.where(flags, np.cumsum(flags), 0).astype(np.uint32) for name, flags in membership.items()},
        **options,
    )
    write_elem(f, "obsp", {})
    write_elem(f, "varp", {})
    extras = container_extras(container)
    extras.update({kind: v for kind, v in records.items() if v})
    write_elem(f, "uns", {SCPTENSOR_KEY: extras}, **options)

    mods = f.create_group("mod")
    mods.attrs["mod-order"] = np.array(list(container.assays), dtype=h5py.string_dtype())
    sample_ids = container.obs.select(container.sample_id_col)
    for name, assay in container.assays.items():
        rows = held[name]
        if not rows.all():
            assay = rows_of(assay, rows)
        write_assay_group(
            mods.create_group(name), sample_ids.filter(pl.Series(rows)), container.sample_id_col, assay,
            x_layer=None, compression=compression, level=level,
        )


@saves_any_container
def save_h5mu(
    container: ScpContainer,
    path: str | os.PathLike,
    *,
    compression: str | None = "auto",
    compression_level: int | None = None,
    save_obs: bool = True,
    save_assays=None,
    save_layers=None,
    save_history: bool = True,
    overwrite: bool = False,
) -> Path:
    """Save ``container`` as a MuData file, one modality per assay.

    The options mean what they mean for :func:`h5scp.io.save_hdf5`.  Masks,
    matrix metadata, history and links are kept under ``uns/scptensor``.
    """
    part = select_parts(container, save_obs, save_assays, save_layers, save_history)
    target = Path(path)
    with writing(target, overwrite=overwrite, userblock=_header(), userblock_size=USERBLOCK_SIZE) as f:
        _write(f, part, compression, compression_level)
    logger.info("saved %r to %s (MuData)", container, target)
    return target


def check_h5mu(path):
    """The ``check`` of :func:`h5stream.files.open_validated` for MuData files."""
    return interop_format_check(
        path, encoding_type="MuData", label="MuData", version=FORMAT_VERSION, required=("obs", "mod")
    )


@loads_into_classes
def load_h5mu(path: str | os.PathLike, *, verify: bool = True) -> ScpContainer:
    """Load a container from a ``.h5mu`` file.

    A file written by :func:`save_h5mu` and not changed since gives back the
    container exactly, and so does a re-save by mudata (also muon): every obs
    and var dtype, layer order, masks, metadata, history and links (see
    :func:`h5scp.io.load_h5ad` for the list).  A file edited in mudata loads
    as it is now, each modality reconciled the way ``load_h5ad`` reconciles an
    AnnData file (samples or features subset or reordered, layers and columns
    added or removed, values replaced; masks follow their rows by id).

    Modalities over different samples load: the container's samples are those
    of ``/obs`` (the union, in the file's order) and an assay's rows for samples
    its modality lacks are NaN with mask code ``UNCERTAIN`` (the data model's code
    for a missing value whose cause is unknown; it has no "not measured" code).  Saving such a container back with
    :func:`save_h5mu` leaves those rows out of that modality again.

    One history entry (``load_edited_mudata``) names every difference and lists
    what a container cannot hold (obsm, varm, obsp, varp, raw, other ``uns``
    entries, with shapes).  A MuData file of another tool is imported with one
    assay per modality (see :mod:`h5scp.io.foreign`).
    """
    source = Path(path)
    with reading(source, check_h5mu(source), verify=verify) as f:
        return container_from_h5mu(f, source)


def container_from_h5mu(f: h5py.File, source: Path, *, request: dict | None = None) -> ScpContainer:
    """The container in an open MuData file (see :func:`load_h5mu`), or the part ``request`` names.

    Only the requested modalities, layers, masks and obs columns, and only the
    selected rows of dense and CSR matrices, are read.
    """
    request = request or {}
    with guarded(source, "/"):
        view = scan(f)
    if not view.ours:
        return import_mudata(f, source, request=request, view=view)
    with guarded(source, "/uns/scptensor"):
        extras = read_info(view, source)
    with guarded(source, "/mod/@mod-order"):
        mods = f["mod"]
        order = mod_order(f)
    if sorted(order) != sorted(mods):
        raise IOFormatError(
            "modalities differ from mod-order", path=source, obj="/mod",
            expected=f"modalities {order}", found=f"modalities {sorted(mods)}",
        )
    infos, views = {}, {}
    notes = FrameNotes()
    for name in order:
        with guarded(source, f"/mod/{name}"):
            views[name] = scan(mods[name], f"mod/{name}/")
            if views[name].ours:
                infos[name] = read_info(views[name], source)
            else:  # a modality another tool added: imported as it is
                infos[name] = None
                notes.add(f"mod/{name}: modality added")
    selection = selection_from(
        order, {n: list(views[n].foreign_layers) if i is None else list(present_layers(views[n], i)) for n, i in infos.items()},
        assays=request.get("assays"), layers=request.get("layers"), features=request.get("features"), path=source,
    )
    id_col = extras["sample_id_col"]
    with guarded(source, "/obs"), categories_read() as seen:
        # (every sample's id read with the columns, once: a modality lacking some of them is told by all)
        obs, _ = read_anndata_obs(selection, view, extras, source, {**request, "samples": None}, notes)
        labels = obs.get_column(id_col)
        obs, positions = samples_part(selection, obs, id_col, request.get("samples"))
        ids = obs.get_column(id_col).to_list()
        recorded = recorded_frame(extras, "obs", source, f"/uns/{SCPTENSOR_KEY}/{FRAMES_KEY}/obs")
        if recorded is not None and positions is None:
            moved = describe_ids("samples", ids, recorded.get_column(id_col).to_list())
            if moved:
                notes.add(moved)
            for text in unused_categories(seen, "obs", obs):
                notes.add(text)
    # a modality lacking some of the file's samples gives every layer a mask, whichever samples are read
    file_ids = None if positions is None else set(labels.to_list())
    assays = {}
    for name in order:
        if selection.wants_assay(name):
            with guarded(source, f"/mod/{name}"):
                assays[name] = _read_modality(views[name], source, infos[name], ids, selection, notes, name,
                                              file_ids=file_ids)
    with guarded(source, "/"):
        history, links = apply_container_extras(extras, source, notes)
        links = links_part(links, assays, list(selection.features))
        history = history + edits_entry("MuData", source, view, notes.changes, mods=views)
        return ScpContainer(obs, assays, history=history, links=links, sample_id_col=id_col)


def _read_modality(view: GroupView, source: Path, info: dict, ids: list, selection, notes: FrameNotes,
                   name: str, *, file_ids: set | None) -> Assay:
    """One modality as an assay over the container's samples ``ids``, in that order (``file_ids``: every
    sample id of the file where ``ids`` are some of them; None where they are all).

    Samples the modality lacks get NaN rows with mask code :data:`NOT_MEASURED`; a modality lacking
    any of the file's samples gives each layer a mask (code 0 where measured), as the whole load does,
    so that a partial load equals the whole load cut by ``filter_samples``.
    """
    every_sample = file_ids is None
    group = view.group
    if info is None:
        own = frame_ids(view, source)
    else:
        found = read_elem(group["obs"])
        own_col = info.get("obs_id_col") if info.get("obs_id_col") in found.columns else found.columns[0]
        own = found.get_column(own_col).to_list()
    where = {v: i for i, v in enumerate(own)}
    rows = np.array([where.get(v, -1) for v in ids], dtype=np.int64)
    held = rows >= 0
    read = rows[held]
    positions = None if held.all() and np.array_equal(read, np.arange(len(own))) else read
    with categories_read() as seen:
        if info is None:
            assay = import_modality(view, source, selection.layers, positions, features=selection.features_of(name))
        else:
            assay, _info = read_assay_group(
                view, source, info, layers=selection.layers, positions=positions,
                sample_ids=[own[i] for i in read], notes=notes, label=f"mod/{name}: ",
                features=selection.features_of(name),
            )
    for text in unused_categories(seen, "var", assay.var, f"mod/{name}/"):
        notes.add(text)
    outside = len(set(own) - set(ids)) if every_sample else 0  # (else ids are the samples asked for)
    if outside:
        notes.add(f"mod/{name}: {outside} samples not in /obs left out")
    if held.all() and (every_sample or file_ids <= set(own)):
        return assay
    recorded = None if info is None else recorded_frame(info, "obs", source,
                                                        f"{group.name}/uns/{SCPTENSOR_KEY}/{FRAMES_KEY}/obs")
    if every_sample and (recorded is None or recorded.get_column(recorded.columns[0]).to_list() != own):
        # (a modality scptensor saved without its unmeasured samples is no change)
        notes.add(f"mod/{name}: {int((~held).sum())} of {len(ids)} samples not measured "
                  f"(NaN, mask code {NOT_MEASURED.name})")
    return Assay(assay.var, {k: spread_rows(m, held) for k, m in assay.layers.items()},
                 feature_id_col=assay.feature_id_col)

"""MuData files (``.h5mu``): one modality per assay, readable by ``mudata.read_h5mu``.

Layout (MuData 0.1.0, shared samples, ``axis=0``): a 512-byte user block
starting with ``MuData (format-version=...)``; root ``obs`` (the container's
samples), ``var`` (every assay's feature ids, concatenated), ``obsm``/``varm``
(membership flags), ``obsmap``/``varmap`` (1-based positions), ``uns`` (the
history, links and id column under ``uns/scptensor``) and ``mod/<assay>`` each
an AnnData group (see :mod:`scptensor.io._anndata_layout`), in ``mod-order``.
Every element has an encoding AnnData reads: obs columns without one are
written as readable stand-ins, their exact values kept in
``uns/scptensor/exact_columns/obs`` (see :mod:`scptensor.io._anndata_columns`).
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
from pathlib import Path

import h5py
import numpy as np
import polars as pl

from h5stream import checksums
from h5stream.elements import write_elem
from scptensor.core.structures import ScpContainer
from scptensor.io._anndata_columns import EXACT_COLUMNS_KEY
from scptensor.io._anndata_layout import (
    MARK_ATTR,
    SCPTENSOR_KEY,
    apply_container_extras,
    container_extras,
    interop_format_check,
    layer_order,
    read_anndata_obs,
    read_assay_group,
    read_info,
    write_anndata_frame,
    write_assay_group,
    written_by_scptensor,
)
from scptensor.io._files import guarded, reading, writing
from scptensor.io.exceptions import IOFormatError
from scptensor.io.exporters import FORMAT_VERSION, select_parts
from scptensor.io.foreign import import_mudata
from scptensor.io.selection import selection_from
from scptensor.io.serializers import compression_options

__all__ = ["save_h5mu", "load_h5mu", "read_h5mu", "check_h5mu", "MUDATA_VERSION"]

logger = logging.getLogger(__name__)

MUDATA_VERSION = "0.1.0"
USERBLOCK_SIZE = 512
_GLOBAL_VAR_INDEX = "_index"


def _header() -> bytes:
    from scptensor import __version__

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
    from scptensor import __version__

    options = compression_options(compression, level)
    f.attrs["encoding-type"] = "MuData"
    f.attrs["encoding-version"] = MUDATA_VERSION
    f.attrs["encoder"] = "scptensor"
    f.attrs["encoder-version"] = __version__
    f.attrs["axis"] = 0
    f.attrs[MARK_ATTR] = FORMAT_VERSION
    f.attrs["creation_time"] = _dt.datetime.now(_dt.timezone.utc).isoformat()

    n_obs = container.n_samples
    exact: dict = {}
    write_anndata_frame(f, "obs", container.obs, container.sample_id_col, options, exact)
    var, membership = _global_var(container)
    write_elem(f, "var", var, index=_GLOBAL_VAR_INDEX, **options)
    write_elem(f, "obsm", {name: np.ones(n_obs, dtype=bool) for name in container.assays}, **options)
    write_elem(f, "varm", membership, **options)
    write_elem(
        f, "obsmap", {name: np.arange(1, n_obs + 1, dtype=np.uint32) for name in container.assays}, **options
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
    if exact:
        extras[EXACT_COLUMNS_KEY] = exact
    write_elem(f, "uns", {SCPTENSOR_KEY: extras}, **options)

    mods = f.create_group("mod")
    mods.attrs["mod-order"] = np.array(list(container.assays), dtype=h5py.string_dtype())
    sample_ids = container.obs.select(container.sample_id_col)
    for name, assay in container.assays.items():
        write_assay_group(
            mods.create_group(name), sample_ids, container.sample_id_col, assay,
            x_layer=None, compression=compression, level=level,
        )


def save_h5mu(
    container: ScpContainer,
    path: str | os.PathLike,
    *,
    compression: str | None = "gzip",
    compression_level: int = 4,
    save_obs: bool = True,
    save_assays=None,
    save_layers=None,
    save_history: bool = True,
    overwrite: bool = False,
) -> Path:
    """Save ``container`` as a MuData file, one modality per assay.

    The options mean what they mean for :func:`scptensor.io.save_hdf5`.  Masks,
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


def load_h5mu(path: str | os.PathLike, *, verify: bool = True) -> ScpContainer:
    """Load a container from a ``.h5mu`` file.

    A file written by :func:`save_h5mu` (also after mudata re-saved it) gives
    back the container exactly; a MuData file of another tool is imported with
    one assay per modality (see :mod:`scptensor.io.foreign`).
    """
    source = Path(path)
    with reading(source, check_h5mu(source), verify=verify) as f:
        return read_h5mu(f, source)


def mod_order(f: h5py.File, source: Path) -> list[str]:
    """The modality names in ``mod-order`` (all of ``/mod`` when the attribute is absent)."""
    mods = f["mod"]
    order = [m.decode() if isinstance(m, bytes) else str(m) for m in checksums.attr_value(mods, "mod-order", [])]
    return order or list(mods)


def read_h5mu(f: h5py.File, source: Path, *, request: dict | None = None) -> ScpContainer:
    """The container in an open MuData file (see :func:`load_h5mu`), or the part ``request`` names.

    Only the requested modalities, layers, masks and obs columns, and only the
    selected rows of dense and CSR matrices, are read.
    """
    request = request or {}
    if not written_by_scptensor(f):
        return import_mudata(f, source, request=request)
    with guarded(source, "/uns/scptensor"):
        extras = read_info(f, source)
    with guarded(source, "/mod/@mod-order"):
        mods = f["mod"]
        order = mod_order(f, source)
    if sorted(order) != sorted(mods):
        raise IOFormatError(
            "modalities differ from mod-order", path=source, obj="/mod",
            expected=f"modalities {order}", found=f"modalities {sorted(mods)}",
        )
    infos = {}
    for name in order:
        with guarded(source, f"/mod/{name}"):
            infos[name] = read_info(mods[name], source)
    selection = selection_from(order, {n: layer_order(i) for n, i in infos.items()},
                               assays=request.get("assays"), layers=request.get("layers"), path=source)
    with guarded(source, "/obs"):
        obs, positions = read_anndata_obs(selection, f, extras, source, request)
    assays = {}
    for name in order:
        if selection.wants_assay(name):
            with guarded(source, f"/mod/{name}"):
                assays[name], _info = read_assay_group(
                    mods[name], source, infos[name], layers=selection.layers, positions=positions
                )
    with guarded(source, "/"):
        history, links = apply_container_extras(extras, source)
        links = [l for l in links if l.source_assay in assays and l.target_assay in assays]
        return ScpContainer(
            obs, assays, history=history, links=links, sample_id_col=extras["sample_id_col"]
        )

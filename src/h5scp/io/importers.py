"""Reader of container files, chosen by content: scptensor HDF5 (2.0 and the original 1.0), MuData, AnnData.

The root attributes decide the reader: ``format_name="scptensor"`` with
``format_version="2.0"``, or a bare ``format_version="1.0"`` (the original
layout, read by :mod:`h5scp.io.legacy`); ``encoding-type`` ``"MuData"`` or
``"anndata"`` for the AnnData ecosystem's files (ours, or imported from other
tools).  Anything else raises :class:`~h5scp.io.exceptions.IOFormatError`
naming the path and what was found.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import h5py
import polars as pl

from h5stream.elements import read_elem
from h5scp.io.classes import loads_into_classes
from h5scp.core.structures import AggregationLink, Assay, ScpContainer, ScpMatrix
from h5scp.io._files import guarded, reading, root_attr
from h5scp.io.exceptions import IOFormatError
from h5scp.io.exporters import FORMAT_NAME, FORMAT_VERSION
from h5scp.io.formats_h5ad import check_h5ad, container_from_h5ad
from h5scp.io.formats_h5mu import check_h5mu, container_from_h5mu
from h5scp.io.legacy import LEGACY_VERSION, read_container_v1
from h5scp.io.partial_hdf5 import read_matrix_part, read_obs_part
from h5scp.io.selection import links_part, select_loaded, selection_from
from h5scp.io.serializers import deserialize_matrix, deserialize_provenance

__all__ = ["load_hdf5", "read_matrix", "file_kind", "detect_format", "READERS"]

logger = logging.getLogger(__name__)


def _listing(group: h5py.Group) -> frozenset[str]:
    """A group's member names, listed once: h5py asks the file again for each membership test (10-80 us
    each in a warm load of a 5,000 x 2,000 container, the file's metadata evicted from the CPU's caches by the
    layers' bytes), where listing one of these small groups costs 16-60 us."""
    return frozenset(group)


def _require(group: h5py.Group, name: str, path, kind: str = "group", names: frozenset[str] | None = None):
    """The member ``name`` of ``group`` (``names``: the group's :func:`_listing`, when the caller has it)."""
    if name not in (group if names is None else names):
        where = group.name.rstrip("/")
        raise IOFormatError(
            f"required {kind} is missing", path=path, obj=f"{where}/{name}",
            expected=f"a {kind} {where}/{name} (scptensor format {FORMAT_VERSION})", found="nothing",
            hint="the file is incomplete or was not written by scptensor",
        )
    return group[name]


def _order(group: h5py.Group, path) -> list[str]:
    """Member names in their saved order (the ``order`` attribute), checked against the group."""
    raw = root_attr(group, "order")
    names = list(group) if raw is None else json.loads(raw)
    missing = [n for n in names if n not in group]
    if missing:
        raise IOFormatError(
            "group lacks members its order attribute lists", path=path, obj=group.name,
            expected=f"members {names}", found=f"members {list(group)}",
        )
    return names


def read_matrix(group: h5py.Group, path) -> ScpMatrix:
    """One layer group: ``X``, optional ``M`` and ``metadata``."""
    names = _listing(group)
    X = deserialize_matrix(_require(group, "X", path, "element", names))
    M = deserialize_matrix(group["M"]) if "M" in names else None
    metadata = read_elem(group["metadata"]) if "metadata" in names else None
    return ScpMatrix(X, M, metadata)


def _read_container_v2(f: h5py.File, path, request: dict | None = None) -> ScpContainer:
    """The container, or the part ``request`` names (keys of :func:`load_hdf5`'s partial options)."""
    request = request or {}
    sample_id_col = root_attr(f, "sample_id_col", "_index")
    top = _listing(f)
    assays_group = _require(f, "assays", path, names=top)
    assay_names = _order(assays_group, path)
    # each assay's group opened and listed once
    assay_groups = {a: assays_group[a] for a in assay_names}
    assay_members = {a: _listing(g) for a, g in assay_groups.items()}
    layers_groups = {a: g["layers"] for a, g in assay_groups.items() if "layers" in assay_members[a]}
    layer_names = {a: _order(layers_groups[a], path) if a in layers_groups else [] for a in assay_names}
    selection = selection_from(
        assay_names, layer_names,
        assays=request.get("assays"), layers=request.get("layers"), features=request.get("features"), path=path,
    )
    # Everything is read on this thread.  The layers read on a second one while this one read the frames and
    # the history were no faster: the read of the 80 MB layer then took as much longer as the frames took
    # (16 ms alone, 20-21 beside them): 5,000 x 2,000 containers, 21 alternated rounds on 2 cores, 35.6/40.0 ms
    # (min/median) against 33.1/37.4 (92 MB file), 38.8/43.6 against 38.6/42.9 (140 MB).
    with guarded(path, "/obs"):
        obs_group = _require(f, "obs", path, "element", top)
        obs, positions = read_obs_part(
            selection, obs_group, sample_id_col, request.get("obs_columns"), request.get("samples"),
            lambda: read_elem(obs_group),
        )
    history = []
    provenance = f["provenance"] if "provenance" in top else None
    if provenance is not None and "history" in provenance:
        with guarded(path, "/provenance/history"):
            history = deserialize_provenance(provenance["history"])
    # Every assay's var is read before any layer: a layer's bytes evict the file's metadata and the reader's
    # own state from the CPU's caches, and each small read after them took about twice as long.
    frames = {}
    for name in assay_names:
        if not selection.wants_assay(name):
            continue
        group, members = assay_groups[name], assay_members[name]
        with guarded(path, group.name):
            feature_id_col = root_attr(group, "feature_id_col", "_index")
            var = read_elem(_require(group, "var", path, "element", members))
            cols = None
            if name in selection.features:
                if not isinstance(var, pl.DataFrame) or feature_id_col not in var.columns:
                    raise IOFormatError("var lacks its feature id column", path=path, obj=f"{group.name}/var",
                                        expected=f"a dataframe with column {feature_id_col!r}",
                                        found=f"columns {getattr(var, 'columns', type(var).__name__)}")
                cols = selection.feature_positions(name, var.get_column(feature_id_col))
                var = var[cols]
            frames[name] = feature_id_col, var, cols
    assays = {}
    for name, (feature_id_col, var, cols) in frames.items():
        group, members = assay_groups[name], assay_members[name]
        with guarded(path, group.name):
            layers_group = layers_groups[name] if name in layers_groups else _require(group, "layers", path,
                                                                                        names=members)
            layers = {}
            for layer in layer_names[name]:
                if not selection.wants_layer(name, layer):
                    continue
                if positions is None and cols is None:
                    layers[layer] = read_matrix(layers_group[layer], path)
                else:
                    _require(layers_group[layer], "X", path, "element")
                    layers[layer] = read_matrix_part(layers_group[layer], positions, cols)
            assays[name] = Assay(var, layers, feature_id_col=feature_id_col)
    links = []
    if "links" in top:
        links_group = f["links"]
        for key in sorted(links_group, key=int):
            group = links_group[key]
            if not all(root_attr(group, k) in assays for k in ("source_assay", "target_assay")):
                continue
            with guarded(path, group.name):
                linkage = read_elem(group["linkage"])
                links.append(
                    AggregationLink(
                        root_attr(group, "source_assay"), root_attr(group, "target_assay"), linkage
                    )
                )
    links = links_part(links, assays, list(selection.features))
    if not isinstance(obs, pl.DataFrame):
        raise IOFormatError("obs is not a dataframe", path=path, obj="/obs", found=type(obs).__name__)
    return ScpContainer(obs, assays, history=history, links=links, sample_id_col=sample_id_col)


# format_version -> reader(open file, path) -> ScpContainer
READERS: dict[str, Callable[[h5py.File, str | os.PathLike], ScpContainer]] = {
    LEGACY_VERSION: read_container_v1,
    FORMAT_VERSION: _read_container_v2,
}


def _check_scptensor(path) -> Callable[[h5py.File], None]:
    def check(f: h5py.File) -> None:
        name = root_attr(f, "format_name")
        version = root_attr(f, "format_version")
        if version is None:
            other = root_attr(f, "encoding-type")
            found = f"a file written by another tool (encoding-type {other!r})" if other else (
                f"no format attributes; top-level members {sorted(f)[:8]}"
            )
            raise IOFormatError(
                "not a scptensor, AnnData or MuData file", path=path, obj="/@format_version",
                expected="root attributes format_name='scptensor' and format_version, "
                "or encoding-type 'anndata' or 'MuData'",
                found=found,
            )
        version = str(version)
        if name not in (None, FORMAT_NAME):
            raise IOFormatError(
                "file was written by another tool", path=path, obj="/@format_name",
                expected=repr(FORMAT_NAME), found=repr(name),
            )
        if version not in READERS:
            raise IOFormatError(
                "unsupported scptensor format version", path=path, obj="/@format_version",
                expected="one of " + ", ".join(sorted(READERS)), found=repr(version),
                hint="the file may come from a newer scptensor; upgrade to read it",
            )
        if name is None and version != LEGACY_VERSION:
            raise IOFormatError(
                "format name attribute is missing", path=path, obj="/@format_name",
                expected=repr(FORMAT_NAME), found="nothing",
            )

    return check


def file_kind(f: h5py.File) -> str:
    """Which of the three container formats an open file holds: "scptensor", "AnnData" or "MuData".

    Decided by content (the root attributes), never by the file name.
    """
    kind = root_attr(f, "encoding-type")
    if kind == "anndata":
        return "AnnData"
    if kind == "MuData":
        return "MuData"
    return "scptensor"


def detect_format(path: str | os.PathLike) -> str:
    """The format of a container file by content: "scptensor", "AnnData" or "MuData" (see :func:`file_kind`)."""
    source = Path(path)
    with reading(source, lambda f: None) as f:
        return file_kind(f)


def checked_format(path: str | os.PathLike) -> str:
    """:func:`detect_format`, after the format's checks of the file's root: raises for an HDF5 file that
    holds no container of the three formats (another program's file)."""
    source = Path(path)
    with reading(source, _check_any(source)) as f:
        return file_kind(f)


def _check_any(path) -> Callable[[h5py.File], None]:
    checks = {"AnnData": check_h5ad(path), "MuData": check_h5mu(path), "scptensor": _check_scptensor(path)}

    def check(f: h5py.File) -> None:
        checks[file_kind(f)](f)

    return check


@loads_into_classes
def load_hdf5(
    path: str | os.PathLike,
    *,
    assay: str | None = None,
    assays: Sequence[str] | None = None,
    layers: Sequence[str] | None = None,
    obs_columns: Sequence[str] | None = None,
    samples=None,
    features=None,
    verify: bool = True,
) -> ScpContainer:
    """Load a container, or part of it, from any of the three container formats, chosen by content.

    The scptensor HDF5 format (2.0, or the original 1.0), a MuData file or an
    AnnData file, whatever the file's extension.  AnnData and MuData files
    written by other tools are imported (see :mod:`h5scp.io.foreign`).

    Parameters
    ----------
    path : str or os.PathLike
    assay : str, optional
        Name of the assay of an AnnData file written by another tool (default "main").
    assays : list of str, optional
        Assays to read (default all); links to assays not read are left out.
    layers : list of str, optional
        Layers to read in every assay read (default all).
    obs_columns : list of str, optional
        obs columns to read besides the sample id column (default all).
    samples : sequence of sample ids, or boolean mask over the samples, optional
        Samples to read: ids in the order given, a mask in the saved order.
    features : mapping of assay name to feature ids or boolean mask, optional
        Features to read per assay (ids in the order given, a mask in the saved
        order; assays not named keep every feature), e.g. ``{"proteins": ["P1",
        "P7"]}``; a bare sequence or mask when one assay is read.  ``var``, every
        layer's ``X``, ``M`` and metadata with a feature axis, and the links'
        rows of features left out are cut.
    verify : bool, default True
        Check every object read against the checksum the file was written with
        (:mod:`h5stream.checksums`); False reads the data as stored.

    In the scptensor 2.0 format only the parts asked for are read: unrequested
    assays, layers and obs columns are never touched, ``samples`` reads only
    the selected rows of dense and CSR layers, ``features`` the selected
    columns of dense (when they are a few runs) and CSC layers; the other axis
    of a sparse layer is cut in memory.  MuData and AnnData files (ours and other tools') read likewise only
    the requested modalities, layers (``X`` or ``layers/``), masks and obs
    columns, and the selected rows of dense and CSR matrices.  Files of the 1.0
    layout are read whole and then cut to the request.

    Returns
    -------
    ScpContainer

    Raises
    ------
    IOFormatError
        Not an HDF5 file, a file of another kind, an unsupported version, a
        missing group or an unreadable object; the message names the path and
        the object.
    IOSourceNotFoundError
        The file does not exist.
    IOChecksumError
        (with ``verify``) an object read does not match its checksum; the
        message names the object, the expected and the found digest.
    ValueError
        A selection names parts the file lacks.

    Warns
    -----
    LegacyFormatWarning
        The file is in the 1.0 layout.
    """
    source = Path(path)
    request = {"assays": assays, "layers": layers, "obs_columns": obs_columns, "samples": samples,
               "features": features}
    partial = any(v is not None for v in request.values())
    with reading(source, _check_any(source), verify=verify) as f:
        kind = file_kind(f)
        if kind == "AnnData":
            container = container_from_h5ad(f, source, assay=assay, request=request)
            partial = False
        elif kind == "MuData":
            container = container_from_h5mu(f, source, request=request)
            partial = False
        else:
            version = str(root_attr(f, "format_version"))
            kind = f"scptensor {version}"
            with guarded(source, "/"):
                if version == FORMAT_VERSION:
                    container = _read_container_v2(f, source, request)
                    partial = False
                else:
                    container = READERS[version](f, source)
    if partial:
        container = select_loaded(container, path=source, **request)
    logger.info("loaded %r from %s (%s)", container, source, kind)
    return container

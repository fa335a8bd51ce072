"""The original pipeline's steps that copy what the ``.cmcr``/``.cmtr`` readers find into a recording (or a session).

``add_sys_meta_info`` copies the files' root attributes, under the vendor's names, to ``/metadata/cmcr_meta``
and ``/metadata/cmtr_meta`` (datasets: 0-d in a session's file, 1-element in immediate mode, as the
original writes them); ``add_cmtr_unit_info`` / ``update_hdf5_with_cmtr_unit_info`` copy each unit's
``Unit_Info`` row, group attributes, peaks, ROI STAs and unmixing vector to ``/units/<unit>/unit_meta``
(:func:`hdmea.io.vendor_meta.unit_meta`; the ``attr_id.*`` texts are datasets in a session's file and
attributes in immediate mode, as the original's).  The original defined them in ``hdmea.io.cmcr`` and
``hdmea.io.cmtr``, which hand them on under those paths.
"""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import numpy as np

from hdmea.errors import ConfigError
from hdmea.io.cmcr import CmcrFile
from hdmea.io.cmtr import CmtrFile
from hdmea.io.hdf5_store import source_paths
from hdmea.io.vendor_meta import file_meta, units_meta
from hdmea._compat.lab_readers import _existing
from hdmea.io.unit_names import unit_number
from hdmea.session.target import open_target

__all__ = ["add_sys_meta_info", "add_cmtr_unit_info", "update_hdf5_with_cmtr_unit_info"]


def _sources(target, cmcr_path, cmtr_path):
    """The source files named in the call, else those the recording was loaded from."""
    stored = []
    if target.has("") and "source_files" in target.attrs(""):
        stored = [p for p in source_paths(target.attrs("")["source_files"]) if p]
    if cmcr_path is None:
        cmcr_path = next((p for p in stored if p.lower().endswith(".cmcr")), None)
    if cmtr_path is None:
        cmtr_path = next((p for p in stored if p.lower().endswith(".cmtr")), None)
    return cmcr_path, cmtr_path


def _plain(value):
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return np.asarray(value) if all(isinstance(v, (int, float, np.number)) for v in value) else \
            [str(v) for v in value]
    return value


def add_sys_meta_info(session=None, hdf5_path=None, cmcr_path=None, cmtr_path=None, *, force: bool = False,
                      _cmcr_meta: dict | None = None, _cmtr_meta: dict | None = None):
    """Copy the source files' metadata into ``/metadata/cmcr_meta`` and ``/metadata/cmtr_meta``.

    One of ``session`` and ``hdf5_path``; the files default to those the recording
    was loaded from.  A group stored already is kept unless ``force``.  Returns
    ``{"hdf5_path", "cmcr_fields", "cmtr_fields"}`` (fields written), or the session.
    """
    if (session is None) == (hdf5_path is None):
        raise ConfigError("add_sys_meta_info needs one of session and hdf5_path")
    if hdf5_path is not None:
        _existing(hdf5_path, "HDF5")
    counts = {"cmcr": 0, "cmtr": 0}
    with open_target(hdf5_path, session, step="add_sys_meta_info") as target:
        cmcr_path, cmtr_path = _sources(target, cmcr_path, cmtr_path)
        metas = {"cmcr": _cmcr_meta, "cmtr": _cmtr_meta}
        for kind, opener, path in (("cmcr", CmcrFile, cmcr_path), ("cmtr", CmtrFile, cmtr_path)):
            if metas[kind] is None and path is not None and Path(path).exists():
                with opener(path) as mcs:
                    metas[kind] = file_meta(mcs, duration_seconds=kind == "cmcr")
        for kind, meta in metas.items():
            path = f"metadata/{kind}_meta"
            if not meta or (target.has(path) and not force):
                continue
            target.put_values(path, _plain(meta))
            counts[kind] = len(meta)
        target.mark_step_complete("add_sys_meta_info")
    if session is not None:
        return session
    return {"hdf5_path": Path(hdf5_path), "cmcr_fields": counts["cmcr"], "cmtr_fields": counts["cmtr"]}


def unit_number_of(target, unit: str) -> int | None:
    """A stored unit's ``.cmtr`` UnitID: its ``unit_num`` attribute, else the number in its name."""
    number = target.attrs(f"units/{unit}").get("unit_num")
    if number is None and target.has(f"units/{unit}/unit_num"):
        number = np.asarray(target.get(f"units/{unit}/unit_num")).reshape(-1)[0]
    return int(number) if number is not None else unit_number(unit)


def add_cmtr_unit_info(session=None, hdf5_path=None, cmtr_path=None, *, force: bool = False,
                       _file_meta: dict | None = None, _cmtr: CmtrFile | None = None):
    """Copy each unit's ``.cmtr`` information (its Unit_Info row: SNR, separability, ...; its attributes,
    peaks, ROI STAs and unmixing vector) to ``/units/<unit>/unit_meta``, laid out as the original's.

    Units are matched by their MCS UnitID (``unit_num``, else the name ``unit_012``); the ``.cmtr`` defaults to
    the one the recording was loaded from.  A unit's stored ``unit_meta`` is kept
    unless ``force``.  Returns ``{"hdf5_path", "units_updated"}``, or the session.  ``_file_meta`` (a dict):
    filled with the ``.cmtr``'s :func:`file_meta` while it is open, for :func:`add_sys_meta_info`'s
    ``_cmtr_meta`` (the file is then opened once for both).  ``_cmtr``: that ``.cmtr`` already open (its
    caller closes it).
    """
    if (session is None) == (hdf5_path is None):
        raise ConfigError("add_cmtr_unit_info needs one of session and hdf5_path")
    if hdf5_path is not None:
        _existing(hdf5_path, "HDF5")
    updated = 0
    with open_target(hdf5_path, session, step="add_cmtr_unit_info") as target:
        _, cmtr_path = _sources(target, None, cmtr_path)
        if cmtr_path is None:
            raise ConfigError("no .cmtr to read unit information from", hint="pass cmtr_path=")
        staged = []  # a session takes every unit's in one call at the end
        if _cmtr is not None and Path(_cmtr.path) != Path(cmtr_path):
            raise ConfigError("_cmtr is not the open .cmtr of cmtr_path", found=str(_cmtr.path),
                              expected=str(cmtr_path))
        with nullcontext(_cmtr) if _cmtr is not None else CmtrFile(_existing(cmtr_path, "CMTR")) as cmtr:
            known = set(cmtr.unit_ids())
            wanted = []
            for unit in target.unit_ids():
                number = unit_number_of(target, unit)
                if number not in known or (target.has(f"units/{unit}/unit_meta") and not force):
                    continue
                wanted.append((unit, number))
            if _file_meta is not None:
                _file_meta.update(file_meta(cmtr, duration_seconds=False))
            for (unit, _), (_, meta) in zip(wanted, units_meta(cmtr, [number for _, number in wanted])):
                if target.is_deferred:
                    staged.append((f"units/{unit}/unit_meta", meta))
                else:
                    target.put(f"units/{unit}/unit_meta", meta)
                updated += 1
        if staged:
            target.put_many(staged, values=True)
        target.mark_step_complete("add_cmtr_unit_info")
    if session is not None:
        return session
    return {"hdf5_path": Path(hdf5_path), "units_updated": updated}


def update_hdf5_with_cmtr_unit_info(hdf5_path, cmtr_path=None, *, force: bool = False):
    """:func:`add_cmtr_unit_info` on a recording file (the original's second name for it)."""
    return add_cmtr_unit_info(hdf5_path=hdf5_path, cmtr_path=cmtr_path, force=force)

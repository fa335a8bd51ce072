"""Bring a recording file written by an earlier version of this package to the original's layout.

Earlier versions wrote a recording the lab's analysis code cannot read in places (measured against the
original's files, ``tests/data/lab_layout``): scalars as 1-element arrays, sectioned spikes only in a
ragged form, ``unit_meta`` and ``cmcr_meta``/``cmtr_meta`` as attributes under our names, no
``firing_rate_10hz`` and no 10 Hz / 1 kHz light reference.  :func:`upgrade_layout` writes a copy with

* every movie's ``spike_times_sectioned/<movie>/{full_spike_times, trials_spike_times/<i>,
  trials_start_end, _attrs/}`` made from the ragged form (which stays beside it), the trial bounds
  without the pad margin recorded with it;
* ``units/<unit>/firing_rate_10hz`` from the spike times and the recording's duration;
* ``stimulus/light_reference/{10hz,1khz}_ch{1,2}`` from the raw channels;
* ``unit_meta`` and ``metadata/cmcr_meta``/``cmtr_meta`` read again from the ``.cmtr``/``.cmcr``
  (found where the file says they are, or passed) where the file holds them in the earlier form;
* the session file's rules (0-d scalars, ``hdmea_version``, ``/source_files``, ...), as a session saves;
* ``/pipeline/layout_upgrade`` recording what was mapped, from which file, when.

It refuses (:class:`LayoutUpgradeError`, nothing written) what it cannot map: earlier ``unit_meta`` or
``cmcr_meta`` whose vendor file is not found.  A file already in the layout is reported and not rewritten.
The copy is written atomically; the source is never changed.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from h5stream.files import staged_path
from hdmea.errors import HdmeaError
from hdmea.io.cmcr import CmcrFile
from hdmea.io.cmtr import CmtrFile
from hdmea.io.hdf5_store import now_iso
from hdmea.io.lab_series import firing_rate_10hz, light_reference_series
from hdmea.io.unit_names import unit_number
from hdmea.io.vendor_meta import file_meta, unit_meta
from hdmea.session.session import PipelineSession
from hdmea.session.target import open_target
from hdmea.steps.spike_sectioning import original_records, original_sections

__all__ = ["upgrade_layout", "upgrade_h5_recording", "LayoutUpgradeResult", "LayoutUpgradeError", "UPGRADE_RULE"]

STEP = "upgrade_layout"
UPGRADE_RULE = "the original pipeline's layout (hdmea_processing fe13de2, tests/data/lab_layout)"


class LayoutUpgradeError(HdmeaError):
    """A recording holds something in an earlier form that cannot be mapped to the original's layout."""


@dataclasses.dataclass
class LayoutUpgradeResult:
    source: Path
    output: Path | None
    mapped: list[str]
    already_current: bool = False

    def describe(self) -> str:
        if self.already_current:
            return f"{self.source}: already in the current layout; nothing written"
        return f"{self.output}: {len(self.mapped)} parts mapped from {self.source} ({', '.join(self.mapped)})"


def _sectioning(session, mapped: list[str]) -> None:
    fs = float(np.ravel(session.metadata["sampling_rate"])[0])
    done = 0
    with open_target(None, session, step=STEP) as target:
        for unit in target.unit_ids():
            base = f"units/{unit}/spike_times_sectioned"
            if not target.has(base):
                continue
            for movie in target.keys(base):
                path = f"{base}/{movie}"
                if target.has(f"{path}/trials_spike_times") or not target.has(f"{path}/trial_offsets"):
                    continue
                attrs = target.attrs(path)
                pad = (float(attrs.get("pad_margin_before_s", 0.0)), float(attrs.get("pad_margin_after_s", 0.0)))
                pre, post = int(round(pad[0] * fs)), int(round(pad[1] * fs))
                bounds = np.asarray(target.get(f"{path}/trial_bounds"), dtype=np.int64).reshape(-1, 2)
                unpadded = np.stack([bounds[:, 0] + np.where(bounds[:, 0] > 0, pre, 0), bounds[:, 1] - post], axis=1)
                offsets = np.asarray(target.get(f"{path}/trial_offsets"), dtype=np.int64)
                for name, value in original_sections(np.asarray(target.get(f"{path}/spike_times")), offsets,
                                                     unpadded).items():
                    target.put_values(f"{path}/{name}", value)
                target.put_values(f"{path}/_attrs", original_records(bounds.shape[0], pad, pre, post))
                done += 1
    if done:
        mapped.append(f"spike_times_sectioned ({done} unit movies)")


def _series(session, mapped: list[str]) -> None:
    fs = float(np.ravel(session.metadata["sampling_rate"])[0])
    acquisition = session.metadata.get("acquisition", {}) if "acquisition" in session.metadata else {}
    duration = acquisition.get("recording_duration_us") if hasattr(acquisition, "get") else None
    added = 0
    for unit in list(session.units.keys()):
        data = session.units[unit]
        if "firing_rate_10hz" not in data and "spike_times" in data and len(data["spike_times"]):
            data["firing_rate_10hz"] = firing_rate_10hz(np.asarray(data["spike_times"]), fs,
                                                        float(np.ravel(duration)[0]) if duration is not None else None)
            added += 1
    if added:
        mapped.append(f"firing_rate_10hz ({added} units)")
    light = session.stimulus.get("light_reference") if "light_reference" in session.stimulus else None
    if light is not None and "raw_ch1" in light and "10hz_ch1" not in light:
        series = light_reference_series({k: np.asarray(light[k]) for k in ("raw_ch1", "raw_ch2") if k in light}, fs)
        for name, values in series.items():
            if name not in light:
                light[name] = values
        mapped.append("light_reference 10hz/1khz")


def _vendor_file(session, given, key: str, suffix: str) -> Path | None:
    if given is not None:
        return Path(given)
    if key in session.source_files and Path(session.source_files[key]).is_file():
        return Path(session.source_files[key])
    return None


def _vendor_meta(session, source: Path, cmcr_path, cmtr_path, mapped: list[str]) -> None:
    """unit_meta and cmcr/cmtr_meta in an earlier form: read again from the vendor files, or refuse."""
    earlier_units = [u for u in session.units.keys() if "unit_meta" in session.units[u]
                     and "attr_id.type" not in session.units[u]["unit_meta"]]
    earlier_meta = [k for k in ("cmcr_meta", "cmtr_meta") if k in session.metadata
                    and "ID.InstanceID" not in session.metadata[k]]
    cmtr = _vendor_file(session, cmtr_path, "cmtr_path", ".cmtr") if earlier_units or "cmtr_meta" in earlier_meta \
        else None
    cmcr = _vendor_file(session, cmcr_path, "cmcr_path", ".cmcr") if "cmcr_meta" in earlier_meta else None
    for needed, found, what in ((earlier_units or "cmtr_meta" in earlier_meta, cmtr, ".cmtr"),
                                ("cmcr_meta" in earlier_meta, cmcr, ".cmcr")):
        if needed and (found is None or not found.is_file()):
            raise LayoutUpgradeError(
                f"the recording holds vendor metadata in an earlier form ({', '.join(earlier_meta) or 'unit_meta'}"
                f"{f' of {len(earlier_units)} units' if earlier_units else ''}); its fields under the vendor's "
                f"names come from the {what} file, which is not found", path=source,
                expected=f"the {what} the recording was loaded from", found=str(found) if found else "none",
                hint=f"pass its path ({what[1:]}_path=, or --{what[1:]} on the command line)")
    if cmtr is not None:
        with CmtrFile(cmtr) as f:
            known = set(f.unit_ids())
            for unit in earlier_units:
                number = session.units[unit].get("unit_num", unit_number(unit))
                if number is not None and int(number) in known:
                    session.units[unit]["unit_meta"] = unit_meta(f, int(number))
            if "cmtr_meta" in earlier_meta:
                session.metadata["cmtr_meta"] = file_meta(f, duration_seconds=False)
        mapped.append(f"unit_meta ({len(earlier_units)} units) from {cmtr.name}" if earlier_units else
                      f"cmtr_meta from {cmtr.name}")
    if cmcr is not None:
        with CmcrFile(cmcr) as f:
            session.metadata["cmcr_meta"] = file_meta(f, duration_seconds=True)
        mapped.append(f"cmcr_meta from {cmcr.name}")


def upgrade_layout(source: str | os.PathLike, output: str | os.PathLike, *, overwrite: bool = False,
                   cmcr_path: str | os.PathLike | None = None,
                   cmtr_path: str | os.PathLike | None = None) -> LayoutUpgradeResult:
    """Write ``source`` (a recording of an earlier version) to ``output`` in the original's layout (see the module)."""
    source, output = Path(source), Path(output)
    if output.resolve() == source.resolve():
        raise LayoutUpgradeError("the upgraded copy cannot replace its source", path=output,
                                 hint="write it to another path; the source is never changed")
    session = PipelineSession.load(source, hdf5_path=output)
    try:
        mapped: list[str] = []
        _vendor_meta(session, source, cmcr_path, cmtr_path, mapped)  # first: a refusal writes nothing
        _sectioning(session, mapped)
        _series(session, mapped)
        with open_target(None, session, step=STEP) as target:
            if not mapped and target.attrs("").get("hdmea_version") is not None:
                return LayoutUpgradeResult(source, None, [], already_current=True)
            mapped.append("session-file rules (0-d scalars, hdmea_version, source_files, frame_times)")
            target.put("pipeline/layout_upgrade", {"source": str(source), "upgraded_at": now_iso(),
                                                   "rule": UPGRADE_RULE, "mapped": list(mapped)})
        session.save(output, overwrite=overwrite)
    finally:
        session.close()
    return LayoutUpgradeResult(source, output, mapped)


def upgrade_h5_recording(source: str | os.PathLike, output: str | os.PathLike, *, overwrite: bool = False,
                         cmcr_path=None, cmtr_path=None) -> list[str]:
    """``hdmea migrate OLD.h5 NEW.h5``: units renamed by UnitID where the file named them by position
    (:func:`hdmea.interop.unit_rename.rename_positional_units`), then :func:`upgrade_layout`; the lines to
    print.  ``output`` appears only when complete."""
    from hdmea.interop.unit_rename import rename_positional_units

    source, output = Path(source), Path(output)
    if output.exists() and not overwrite:
        raise LayoutUpgradeError("the output exists", path=output, hint="pass overwrite=True (--overwrite)")
    _refuse_foreign(source)
    # a kill leaves it as a leftover that the next writer of the output removes (h5stream.files.paths.staged_path)
    staged = staged_path(output)
    try:
        renamed = rename_positional_units(source, staged, overwrite=True)
        upgraded = upgrade_layout(staged if renamed.output else source, output, overwrite=overwrite,
                                  cmcr_path=cmcr_path, cmtr_path=cmtr_path)
        if upgraded.already_current and renamed.output:
            os.replace(staged, output)
        lines = [renamed.describe(), upgraded.describe()]
        if upgraded.already_current and not renamed.output:
            lines.append(f"{output}: not written (nothing to change)")
        return lines
    finally:
        staged.unlink(missing_ok=True)


#: what ``hdmea migrate`` takes, for a message about a file it does not
MIGRATE_TAKES = ("hdmea migrate takes a recording file (.h5) written by hdmea or by the original hdmea_processing, "
                 "a .zarr store of the previous pipeline, or a folder of them; to analyse a recording from its raw "
                 "files, run `hdmea run REC.cmcr REC.cmtr --out REC.h5`")


def _refuse_foreign(source: Path) -> None:
    """Raise :class:`LayoutUpgradeError` saying what ``source`` is when it is no recording file of ours or of the
    original pipeline (neither format attribute ``hdmea-recording`` nor a ``dataset_id``)."""
    import h5py

    from hdmea.io.hdf5_store import FORMAT_NAME

    try:
        with h5py.File(source, "r") as f:
            attrs = {key: f.attrs[key] for key in ("h5stream_format", "dataset_id") if key in f.attrs}
            top = sorted(f.keys())
    except OSError as exc:
        if "signature" not in str(exc):
            return  # an HDF5 file this could not open now (locked, unreadable): the load says why
        raise LayoutUpgradeError("not an HDF5 file: nothing to migrate", path=source, found=str(exc),
                                 hint=MIGRATE_TAKES) from exc
    stated = attrs.get("h5stream_format")
    stated = stated.decode("utf-8", "replace") if isinstance(stated, bytes) else stated
    if stated == FORMAT_NAME or (stated is None and "dataset_id" in attrs):
        return
    shown = ", ".join(top[:6]) + (f" and {len(top) - 6} more" if len(top) > 6 else "") if top else "nothing"
    what = (f"an HDF5 file of another kind ({stated!r}, h5stream_format)" if stated is not None
            else "an HDF5 file not written by hdmea or hdmea_processing (no format attribute, no dataset_id)")
    raise LayoutUpgradeError("not a recording file: nothing to migrate", path=source,
                             found=f"{what}, holding {shown} at its top", hint=MIGRATE_TAKES)

"""Export a recording file to NWB (Neurodata Without Borders), the format the DANDI archive takes.

What goes where (``export(recording, out)``; ``hdmea export-nwb REC.h5 OUT.nwb``):

* ``/general/extracellular_ephys/electrodes``: the 65 x 65 chip, one row per sensor in
  sensor-id order (row ``i`` is sensor id ``i + 1``), with ``chip_row``/``chip_col``
  (0-based chip indices, the orientation of every chip array of ours), ``sensor_id``
  (1-based, column-major) and ``rel_x = chip_col * pitch``, ``rel_y = chip_row * pitch``
  in micrometres.  The pitch is :data:`PITCH_UM` (16 um between sensor centres on the
  MCS CMOS-MEA 65 x 65 chip) unless the recording's metadata holds
  ``metadata/acquisition/pitch_um`` or ``pitch_um=`` is given.
* ``/units``: one row per unit in the recording's order; ``id`` is the number in the
  unit id (``unit_007`` -> 7) when every id has a distinct one, else the position;
  ``unit_name`` holds our id.  ``spike_times`` in seconds (samples / sampling rate,
  float64: ``round(t * fs)`` gives the samples back exactly), ``electrodes`` the unit's
  own sensor, ``waveform_mean`` the stored mean waveform when every unit has one of
  the same length.  Every scalar attribute of a unit (``row``/``col`` as stored:
  1-based, ``sensor_id``, ``global_id``, quality measures, ``spike_count``) is a column
  of its name; every scalar of a feature (an attribute of
  ``units/{u}/features/{name}``) is a column ``{name}__{key}`` (firing rates, step
  responses, receptive-field centre, size and polarity), and every feature array of
  one shape across units a column ``{name}__{dataset}`` of shape ``(units, *shape)``.
  A unit without the feature gets NaN (numbers) or ``""`` (text).  Bookkeeping
  attributes (``name``, ``version``, ``params``, ``params_hash``, ``extracted_at``,
  ``extractor``) are not columns; feature arrays whose shape differs between units
  are listed in the file's ``notes`` and in :attr:`ExportResult.skipped`.
* ``/intervals/{movie}``: one :class:`~pynwb.epoch.TimeIntervals` per movie of
  ``stimulus/section_time``.  Rows are the movie's trials (from the units'
  ``spike_times_sectioned/{movie}/trial_bounds``, pad margins included) with
  ``occurrence`` and ``trial_index`` (within the occurrence), or the occurrences
  themselves (``trial_index`` -1) when the movie was not sectioned.
* ``/acquisition/light_reference_{name}``: each ``stimulus/light_reference`` channel as a
  ``TimeSeries`` at the sampling rate; ``/acquisition/frame_times_{name}`` the display
  frames' onsets (``data`` the frame number, ``timestamps`` in seconds).
* ``/processing/ecephys/eimage_sta`` (electrical images: ``data`` of shape
  ``(units, window, 65, 65)``, chip row and column 0-based, NaN where not recorded) and
  ``/processing/misc/sta_{movie}`` (receptive fields, ``(units, lags, height, width)``, oldest frame
  first), one row per unit that has it, ``unit`` pointing into ``/units``, the
  feature's scalar attributes as columns.
* Session: ``identifier`` (``dataset_id``), ``session_start_time`` (the acquisition's
  ``DateTime``, else the file's ``created_at``), description, lab fields, all
  overridable by keyword.

The recording's open-time safety scan keeps the units' objects open and the units are
read from them (:func:`hdmea.io._unit_scan.scan_units`: the spike trains and waveforms
listed first, then the attributes).  Spike times and mean waveforms up to
:data:`WHOLE_COLUMN_BYTES` are read at once into whole columns (the spike trains one after
the other into one buffer, divided in place, as soon as they are listed) and written as
such, gzip and shuffle in 1 MiB chunks (or uncompressed): :mod:`h5stream.writer.columns`
compresses the spike times' chunks on background threads while the attributes are read
and pynwb builds and writes the file, then stores them in the dataset pynwb created.
Larger ones, and feature arrays, images and the light reference, stream a buffer at a
time through hdmf's :class:`~hdmf.data_utils.GenericDataChunkIterator`, so memory stays
bounded whatever the number of spikes.  Python's garbage collector is paused while the
export runs (:func:`_collection_paused`).  The file is written at a partial
path and renamed onto ``out`` when complete (:func:`h5stream.files.create_atomic`).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import logging
import os
import re
import uuid
from pathlib import Path

import h5py
import numpy as np

from h5stream.files import create_atomic
from h5stream.writer.columns import CompressedColumn
from hdmea.errors import RecordingFormatError
from hdmea._extras import require
from hdmea.interop._nwb_streams import _SPIKES_PER_BUFFER, _SPIKES_PER_CHUNK, _iterator_class, gzip_column
from hdmea.interop._nwb_tables import IMAGE_FEATURES  # noqa: F401 (importable from here, as before the split)
from hdmea.interop._nwb_tables import add_images, add_intervals, feature_columns, unit_attr_description
from hdmea.io import hdf5_store as store
from hdmea.io._unit_scan import (
    BOOKKEEPING_ATTRS, MISSING, UnitObjects, attr_value, column_values, first_value, is_scalar, scan_units,
)
from hdmea.io.recording import Recording, read_whole
from hdmea.io.mcs import GRID_SIZE
from hdmea.progress import counted
from hdmea.session._collector import paused_collections

__all__ = ["export", "ExportResult", "PITCH_UM", "BOOKKEEPING_ATTRS", "WHOLE_COLUMN_BYTES"]

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

#: Distance between sensor centres of the 65 x 65 MCS CMOS-MEA chip, micrometres.
PITCH_UM = 16.0
_UNIT_NUMBER = re.compile(r"(\d+)$")
# Units attributes whose names pynwb reserves for its own columns.
_RESERVED_UNIT_COLUMNS = frozenset({"spike_times", "electrodes", "electrode_group", "obs_intervals",
                                    "waveform_mean", "waveform_sd", "waveforms", "id", "unit_name"})
#: Spike times and waveforms up to this many bytes are read at once and written as whole columns
#: (one numpy array each); larger ones stream through iterators so memory stays bounded.
WHOLE_COLUMN_BYTES = 512 * 1024**2


@dataclasses.dataclass
class ExportResult:
    """What :func:`export` wrote."""

    path: Path
    n_units: int
    n_spikes: int
    n_electrodes: int
    intervals: list[str]
    processing: list[str]
    unit_columns: list[str]
    skipped: list[str]

    def describe(self) -> str:
        lines = [f"{self.path}: {counted(self.n_units, 'unit')}, {counted(self.n_spikes, 'spike')}, "
                 f"{counted(self.n_electrodes, 'electrode')}",
                 f"  intervals: {', '.join(self.intervals) or 'none'}",
                 f"  processing: {', '.join(self.processing) or 'none'}",
                 f"  unit columns: {len(self.unit_columns)}"]
        if self.skipped:
            lines.append("  not exported: " + "; ".join(self.skipped))
        return "\n".join(lines)


def _pynwb():
    return require("pynwb", "nwb", "NWB export")


@dataclasses.dataclass(frozen=True)
class _Compression:
    name: str | None
    level: int | None

    def wrap(self, data, h5dataio):
        if self.name is None:
            return h5dataio(data)
        return h5dataio(data, compression=self.name, compression_opts=self.level, shuffle=True)

    def whole(self, array: np.ndarray, chunks: tuple[int, ...], h5dataio):
        """A column held whole in memory: as it is without compression, else compressed in ``chunks``."""
        if self.name is None or not array.size:
            return array
        return h5dataio(array, compression=self.name, compression_opts=self.level, shuffle=True, chunks=chunks)


def _collection_paused():
    """Python's cyclic garbage collector paused for the block (as it was before, after it), then the
    youngest generation collected.

    An export creates hundreds of thousands of objects that live until it ends (attribute
    values, pynwb's containers and hdmf's builders) and little garbage in reference cycles
    meanwhile: with the collector on, their creation sets off full collections over every
    object of the process (about 0.1 s for 4,000 units).  They are all young when the block
    ends: one collection of the youngest generation frees pynwb's containers (reference
    cycles that hold the exported arrays) at once, rather than after later collections
    promote them (back-to-back exports then held one more recording's arrays each).
    """
    return paused_collections(collect_young=True)


# --------------------------------------------------------------------------- reading the recording


def _numeric_ids(ids: list[str]) -> np.ndarray:
    numbers = []
    for uid in ids:
        m = _UNIT_NUMBER.search(uid)
        numbers.append(int(m.group(1)) if m else None)
    if ids and None not in numbers and len(set(numbers)) == len(numbers):
        return np.asarray(numbers, dtype=np.int64)
    return np.arange(len(ids), dtype=np.int64)


def _start_time(meta: dict, root_attrs: dict, given) -> _dt.datetime:
    candidates = [given, first_value((meta.get("acquisition") or {}).get("DateTime")), root_attrs.get("created_at")]
    for value in candidates:
        if value is None:
            continue
        if isinstance(value, _dt.datetime):
            stamp = value
        else:
            try:
                stamp = _dt.datetime.fromisoformat(str(value).strip())
            except ValueError:
                continue
        return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=_dt.timezone.utc)
    return _dt.datetime.now(_dt.timezone.utc)


# --------------------------------------------------------------------------- building the NWB file


def export(
    recording: str | os.PathLike,
    out: str | os.PathLike,
    *,
    overwrite: bool = False,
    session_description: str | None = None,
    identifier: str | None = None,
    session_start_time: _dt.datetime | str | None = None,
    experimenter: str | list[str] | None = None,
    lab: str | None = None,
    institution: str | None = None,
    experiment_description: str | None = None,
    session_id: str | None = None,
    keywords: list[str] | None = None,
    subject: dict | None = None,
    pitch_um: float | None = None,
    compression: str | None = "gzip",
    compression_level: int = 1,
    units_per_buffer: int = 64,
    verify: bool = True,
) -> ExportResult:
    """Write the recording file ``recording`` (an analysed ``.h5``) as the NWB file ``out``.

    Parameters
    ----------
    recording
        A recording file of ours (:mod:`hdmea.io.hdf5_store`).
    out
        The NWB file (``.nwb``); it appears only once complete.
    overwrite
        Replace an existing ``out`` (kept intact until the new file is complete).
    session_description, identifier, session_start_time, experimenter, lab, institution, experiment_description, session_id, keywords
        NWB session fields; by default the identifier is the recording's ``dataset_id``,
        the start time the acquisition's ``DateTime`` (UTC when it has no zone).
    subject
        Keyword arguments of :class:`pynwb.file.Subject` (``subject_id``, ``species``,
        ``age``, ``sex``, ``description``, ...); by default the recording's
        ``metadata/subject`` when it holds such fields, else ``subject_id`` = the
        dataset id (NWB validators ask for species, age and sex: pass them).
    pitch_um
        Sensor pitch in micrometres for the electrode positions (default: the
        recording's ``metadata/acquisition/pitch_um``, else :data:`PITCH_UM`).
    compression, compression_level
        HDF5 filter of the large arrays (``"gzip"`` with shuffle, or None).
    units_per_buffer
        Units read at a time for per-unit arrays (waveforms, feature arrays, images).
    verify
        Check what is read against the recording's checksum manifest
        (:mod:`h5stream.checksums`); False reads the data as stored.

    Raises
    ------
    MissingExtraError
        pynwb is not installed (``pip install "h5stream[nwb]"``).
    RecordingFormatError
        the recording lacks what the export needs (the message names the object).
    hdmea.errors.ChecksumError
        a value read differs from its digest (``verify``); nothing is written.
    TargetExistsError
        ``out`` exists and ``overwrite`` is False.
    """
    pynwb = _pynwb()
    recording, out = Path(recording), Path(out)
    if compression not in (None, "gzip"):
        raise ValueError(f"compression must be 'gzip' or None (found {compression!r})")
    packer = _Compression(compression, compression_level if compression else None)
    options = dict(session_description=session_description, identifier=identifier,
                   session_start_time=session_start_time, experimenter=experimenter, lab=lab,
                   institution=institution, experiment_description=experiment_description,
                   session_id=session_id, keywords=keywords, subject=subject, pitch_um=pitch_um)
    with _collection_paused():
        result = _export(pynwb, recording, out, overwrite, verify, packer, units_per_buffer, options)
    result.path = out
    logger.info("exported %s to %s (%d units, %d spikes)", recording, out, result.n_units, result.n_spikes)
    return result


def _export(pynwb, recording: Path, out: Path, overwrite: bool, verify: bool, packer: _Compression,
            per_buffer: int, options: dict) -> ExportResult:
    """The work of :func:`export`: pynwb's containers are unreachable once this returns."""
    # The open-time safety scan opens every object once; the units' objects stay open for the unit walk.
    held = UnitObjects()
    # Recording.open, not open_recording: a failure of the write below is the write's, not a read of the source.
    src = Recording.open(recording, verify=verify, visit=held)
    with src.file:
        # Claim the target before the work, so a second export of the same file fails at once.
        atomic = create_atomic(out, overwrite=overwrite)
        fills: list[tuple[str, CompressedColumn]] = []  # compressing in the background while pynwb writes
        try:
            with atomic as h5:
                nwbfile, result = _build(pynwb, src, recording, packer, per_buffer, held, fills, options)
                io = pynwb.NWBHDF5IO(file=h5, mode="w")
                io.write(nwbfile)
                for name, column in fills:
                    column.fill(h5[name])
                # The atomic write closes the file on commit; the IO object must not close it first.
        finally:
            for _name, column in fills:
                column.close()
            held.close()  # what the unit walk did not take (it closes the rest itself)
    return result


def _build(pynwb, reader: Recording, path: Path, packer: _Compression, per_buffer: int, held: UnitObjects,
           fills: list, options: dict):
    from hdmf.common import DynamicTable, DynamicTableRegion, ElementIdentifiers, VectorData, VectorIndex
    from pynwb.epoch import TimeIntervals
    from pynwb.file import ElectrodesTable

    StackedUnitArrays, FlatSpikeSeconds, DatasetSlices = _iterator_class()
    H5DataIO = pynwb.H5DataIO
    src = reader.file
    root_attrs = store.read_attrs(src)[0]
    meta = reader.metadata()
    fs = reader.require_sampling_rate()
    acquisition = meta.get("acquisition") or {}
    pitch = options["pitch_um"]
    if pitch is None:
        pitch = float(np.asarray(acquisition.get("pitch_um", PITCH_UM)).reshape(-1)[0])
    dataset_id = str(root_attrs.get("dataset_id") or path.stem)
    description = options["session_description"] or (
        f"HD-MEA recording {dataset_id} (MCS CMOS-MEA, 65 x 65 sensors), analysed with hdmea "
        f"{root_attrs.get('hdmea_pipeline_version', '')}".rstrip())
    skipped: list[str] = []

    nwbfile = pynwb.NWBFile(
        session_description=description,
        identifier=options["identifier"] or f"{dataset_id}-{uuid.uuid5(uuid.NAMESPACE_URL, str(path.resolve()))}",
        session_start_time=_start_time(meta, root_attrs, options["session_start_time"]),
        experimenter=options["experimenter"], lab=options["lab"], institution=options["institution"],
        experiment_description=options["experiment_description"],
        session_id=options["session_id"] or dataset_id, keywords=options["keywords"],
        source_script=f"hdmea.interop.nwb (h5stream {store.PIPELINE_VERSION})",
        source_script_file_name=str(path.name),
        subject=_subject(pynwb, options["subject"], meta, dataset_id),
    )

    # -- electrodes: the whole chip in sensor-id order (row i is sensor id i + 1)
    device = nwbfile.create_device(
        name="CMOS-MEA", description="Multi Channel Systems CMOS-MEA high-density microelectrode array, "
        f"65 x 65 sensors, {pitch:g} um pitch")
    group = nwbfile.create_electrode_group(
        name="chip", description="all 4225 sensors of the chip; rel_x/rel_y in micrometres from sensor (0, 0)",
        location="retina", device=device)
    sensor = np.arange(GRID_SIZE * GRID_SIZE, dtype=np.int64)
    chip_row, chip_col = sensor % GRID_SIZE, sensor // GRID_SIZE
    n_el = sensor.size
    electrodes = ElectrodesTable(
        id=ElementIdentifiers(name="id", data=sensor),
        columns=[
            # Text columns as numpy arrays: hdmf converts a list element by element (the same strings written).
            VectorData(name="location", description="the brain region of the electrode",
                       data=np.full(n_el, "retina")),
            VectorData(name="group", description="the electrode group of the electrode", data=[group] * n_el),
            VectorData(name="group_name", description="the name of the electrode group",
                       data=np.full(n_el, group.name)),
            VectorData(name="rel_x", description=f"x on the chip in micrometres: chip_col * {pitch:g}",
                       data=(chip_col * pitch).astype(np.float64)),
            VectorData(name="rel_y", description=f"y on the chip in micrometres: chip_row * {pitch:g}",
                       data=(chip_row * pitch).astype(np.float64)),
            VectorData(name="chip_row", description="0-based chip row (the vendor's Row minus one)",
                       data=chip_row),
            VectorData(name="chip_col", description="0-based chip column (the vendor's Column minus one)",
                       data=chip_col),
            VectorData(name="sensor_id", description="1-based, column-major sensor id: 65 * chip_col + chip_row + 1",
                       data=sensor + 1),
        ],
    )
    nwbfile.electrodes = electrodes

    # -- units
    whole: list[np.ndarray | None] = [None]

    def read_trains(scan) -> None:
        # Up to WHOLE_COLUMN_BYTES the trains are read at once and written as one column (what
        # pynwb writes fastest); beyond, they stream a buffer at a time.  Read once the trains are
        # listed, before the units' attributes: their compression runs while the attributes are read.
        total = scan.n_spikes
        seconds = whole[0] = scan.spike_seconds(fs) if 0 < total * 8 <= WHOLE_COLUMN_BYTES else None
        if seconds is not None and packer.name == "gzip":
            # Compressed from now on, on background threads, and stored once pynwb has created the dataset
            # (see export).
            fills.append(("units/spike_times", CompressedColumn(seconds, min(total, _SPIKES_PER_CHUNK),
                                                                packer.level)))

    scan = scan_units(src, path, held, read_trains)
    n_units = len(scan.ids)
    offsets = np.zeros(n_units + 1, dtype=np.int64)
    np.cumsum(scan.spike_counts, out=offsets[1:])
    total = int(offsets[-1])
    seconds = whole[0]
    if seconds is not None and packer.name == "gzip":
        spike_data = gzip_column(seconds, min(total, _SPIKES_PER_CHUNK), packer.level, H5DataIO)
    elif seconds is not None:
        spike_data = seconds
    elif total:
        spike_data = packer.wrap(FlatSpikeSeconds(scan.spike_datasets(), offsets, fs), H5DataIO)
    else:
        spike_data = np.zeros(0, dtype=np.float64)
    spike_times = VectorData(name="spike_times", description="spike times of each unit in seconds "
                             f"(sample index / {fs:g} Hz)", data=spike_data)
    # The index goes first: hdmf sets iterator-fed columns aside before it looks for an index's target.
    columns: list = [VectorIndex(name="spike_times_index", data=offsets[1:].astype(np.uint64), target=spike_times),
                     spike_times]
    own_electrode = []
    for uid, attrs in zip(scan.ids, scan.attrs):
        if "row" in attrs and "col" in attrs:
            r, c = int(np.asarray(attrs["row"]).reshape(-1)[0]) - 1, int(np.asarray(attrs["col"]).reshape(-1)[0]) - 1
            if not (0 <= r < GRID_SIZE and 0 <= c < GRID_SIZE):
                raise RecordingFormatError("unit position lies outside the 65 x 65 chip", path=path,
                                           obj=f"/units/{uid}", expected="1-based row and col in 1..65",
                                           found=f"row {r + 1}, col {c + 1}")
            own_electrode.append(c * GRID_SIZE + r)
        else:
            own_electrode.append(-1)
    if n_units and all(e >= 0 for e in own_electrode):
        region = DynamicTableRegion(name="electrodes", description="the unit's own sensor (row, col)",
                                    data=np.asarray(own_electrode, dtype=np.int64), table=electrodes)
        columns += [region, VectorIndex(name="electrodes_index", data=np.arange(1, n_units + 1, dtype=np.uint64),
                                        target=region)]
    elif n_units:
        skipped.append("electrodes of units (some units have no row/col)")
    waveform_rate = None
    shapes = {None if w is None else tuple(w) for w in scan.waveform_shapes}
    if n_units and len(shapes) == 1 and None not in shapes:
        shape = shapes.pop()
        row_bytes = 4 * int(np.prod(shape))
        if n_units * row_bytes <= WHOLE_COLUMN_BYTES:
            waveforms = packer.whole(scan.stacked_waveforms(shape),
                                     (max(1, min(n_units, (1 << 20) // max(1, row_bytes))), *shape), H5DataIO)
        else:
            waveforms = packer.wrap(StackedUnitArrays(scan.waveform_datasets(), shape, np.float32, np.nan,
                                                      per_buffer), H5DataIO)
        columns.append(VectorData(
            name="waveform_mean", description="mean waveform of the unit's included peaks, as stored in the "
            "spike sorting (.cmtr cutouts)", data=waveforms))
        waveform_rate = fs
    elif any(s is not None for s in shapes):
        skipped.append("waveform_mean (waveforms of different lengths)")
    columns.append(VectorData(name="unit_name", description="the unit's id in the hdmea recording file",
                              data=list(scan.ids)))
    attr_names = sorted({k for a in scan.attrs for k in a if is_scalar(a[k])} - _RESERVED_UNIT_COLUMNS)
    for key in attr_names:
        values = [attr_value(a[key]) if key in a else MISSING for a in scan.attrs]
        columns.append(VectorData(name=key, description=unit_attr_description(key),
                                  data=column_values(values)))
    columns += feature_columns(scan, packer, StackedUnitArrays, H5DataIO, VectorData, per_buffer, skipped)
    units = pynwb.misc.Units(
        name="units", description=f"spike-sorted units of {dataset_id}", id=ElementIdentifiers(
            name="id", data=_numeric_ids(scan.ids)),
        columns=columns, electrode_table=electrodes, resolution=1.0 / fs,
        **({"waveform_rate": waveform_rate, "waveform_unit": "as stored in the .cmtr cutouts"} if waveform_rate else {}),
    )
    nwbfile.units = units

    # -- stimulus: sections and trials, light reference, frame times
    interval_names = add_intervals(nwbfile, src, scan, fs, TimeIntervals)
    stimulus = src.get("stimulus")
    analog_unit = str((acquisition.get("analog") or {}).get("unit") or "") or "a.u."
    if isinstance(stimulus, h5py.Group) and isinstance(stimulus.get("light_reference"), h5py.Group):
        for name, ds in stimulus["light_reference"].items():
            if not isinstance(ds, h5py.Dataset) or ds.ndim != 1 or ds.shape[0] == 0:
                continue
            nwbfile.add_acquisition(pynwb.TimeSeries(
                name=f"light_reference_{name}", data=packer.wrap(DatasetSlices(ds, _SPIKES_PER_BUFFER), H5DataIO),
                unit=analog_unit, rate=fs, starting_time=0.0,
                description=f"analog input {name} of the acquisition ((raw - ADZero) * ConversionFactor; "
                "raw_ch1 photodiode, raw_ch2 display frame sync)",
            ))
    if isinstance(stimulus, h5py.Group) and isinstance(stimulus.get("frame_time"), h5py.Group):
        for name, ds in stimulus["frame_time"].items():
            if not isinstance(ds, h5py.Dataset) or ds.ndim != 1 or ds.shape[0] == 0:
                continue
            samples = read_whole(ds)
            nwbfile.add_acquisition(pynwb.TimeSeries(
                name=f"frame_times_{name}", data=np.arange(samples.size, dtype=np.int64), unit="frame",
                timestamps=samples.astype(np.float64) / fs,
                description="onset of each display frame detected on the frame-sync channel; data is the "
                "frame number",
            ))

    # -- processing: electrical images and STAs
    processing = add_images(nwbfile, scan, units, packer, StackedUnitArrays, H5DataIO, per_buffer, skipped,
                            DynamicTable, DynamicTableRegion, VectorData)
    if skipped:
        nwbfile.notes = "Not exported: " + "; ".join(skipped)
    result = ExportResult(path=Path(), n_units=n_units, n_spikes=total, n_electrodes=n_el,
                          intervals=interval_names, processing=processing,
                          unit_columns=list(units.colnames), skipped=skipped)
    return nwbfile, result


_SUBJECT_FIELDS = ("subject_id", "species", "age", "sex", "description", "genotype", "strain", "weight",
                   "date_of_birth", "age__reference")


def _subject(pynwb, given: dict | None, meta: dict, dataset_id: str):
    fields = {}
    stored = meta.get("subject")
    if isinstance(stored, dict):
        fields.update({k: str(first_value(v)) for k, v in stored.items() if k in _SUBJECT_FIELDS})
    fields.update(given or {})
    fields.setdefault("subject_id", dataset_id)
    fields.setdefault("description", f"the animal whose retina was recorded in {dataset_id}")
    fields.setdefault("sex", "U")  # NWB's value for "unknown"
    missing = [k for k in ("species", "age") if k not in fields and not (k == "age" and "date_of_birth" in fields)]
    if missing:
        logger.warning("NWB export of %s: the subject has no %s; NWB validators require them (pass subject=... or "
                       "--species/--age)", dataset_id, " or ".join(missing))
    return pynwb.file.Subject(**fields)

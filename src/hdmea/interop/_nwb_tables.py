"""The tables :func:`hdmea.interop.nwb.export` builds from a recording's units and stimulus.

* :func:`feature_columns` and :func:`unit_attr_description`: the ``/units`` columns of the
  units' scalar attributes and feature scalars and arrays.
* :func:`add_intervals`: one ``/intervals/{movie}`` table of trials (or occurrences) per movie of
  ``stimulus/section_time``.
* :func:`add_images`: the electrical images (``/processing/ecephys``) and receptive fields
  (``/processing/misc``), one row per unit that has them.

The pynwb and hdmf classes come in as arguments, so importing this module does not import pynwb.
"""

from __future__ import annotations

import re

import h5py
import numpy as np

from hdmea.io._unit_scan import BOOKKEEPING_ATTRS, MISSING, UnitScan, attr_value, column_values
from hdmea.io.recording import read_whole
from hdmea.io.layout_names import STA_DATASETS

__all__ = ["IMAGE_FEATURES", "STA_FEATURE", "add_images", "add_intervals", "feature_columns", "image_description",
           "unit_attr_description"]

#: Feature arrays written to the processing module rather than to Units columns.
IMAGE_FEATURES = {"eimage_sta": "data"}
#: Feature names of receptive fields (``sta_{movie}``), written to the processing module.
STA_FEATURE = re.compile(r"^sta_(.+)$")


def unit_attr_description(key: str) -> str:
    known = {
        "row": "1-based chip row of the unit's sensor (the vendor's Row)",
        "col": "1-based chip column of the unit's sensor (the vendor's Column)",
        "sensor_id": "1-based, column-major sensor id of the unit's sensor",
        "global_id": "1-based sensor id of the unit's sensor (the .cmtr SensorID), as the original pipeline stores it",
        "unit_num": "the unit's id in the spike sorting (.cmtr UnitID); the unit's name is unit_<UnitID, 3 digits>",
        "original_name": "the vendor reader's name of the unit (Unit_<UnitID>)",
        "spike_count": "number of spikes of the unit",
        "n_peaks": "peaks the spike sorter found for the unit, included or not",
    }
    if key in known:
        return known[key]
    if key.startswith("quality_"):
        return f"spike sorter quality measure {key[len('quality_'):]}"
    return f"unit attribute {key} of the hdmea recording"


def feature_columns(scan: UnitScan, packer, StackedUnitArrays, H5DataIO, VectorData, per_buffer, skipped):
    columns = []
    names = sorted({n for per in scan.features for n in per if n not in IMAGE_FEATURES and not STA_FEATURE.match(n)})
    for name in names:
        attr_keys = sorted({k for per in scan.features if name in per for k, v in per[name][0].items()
                            if k not in BOOKKEEPING_ATTRS and k != "movie"})
        for key in attr_keys:
            values = [attr_value(per[name][0][key]) if name in per and key in per[name][0] else MISSING
                      for per in scan.features]
            columns.append(VectorData(name=f"{name}__{key}", description=f"feature {name}: {key}",
                                      data=column_values(values)))
        dataset_keys = sorted({k for per in scan.features if name in per for k in per[name][1]})
        for key in dataset_keys:
            sources = [per[name][1].get(key) if name in per else None for per in scan.features]
            shapes = {tuple(s.shape) for s in sources if s is not None}
            dtypes = {s.dtype for s in sources if s is not None}
            if len(shapes) != 1 or any(d.kind not in "iuf" for d in dtypes):
                skipped.append(f"feature array {name}/{key} (shapes {sorted(shapes)} differ between units)"
                               if len(shapes) != 1 else f"feature array {name}/{key} (not numeric)")
                continue
            shape = shapes.pop()
            dtype = np.result_type(*dtypes)
            if any(s is None for s in sources) and dtype.kind != "f":
                dtype = np.dtype(np.float64)
            fill = np.nan if dtype.kind == "f" else 0
            data = StackedUnitArrays(sources, shape, dtype, fill, per_buffer) if shape and int(np.prod(shape)) else (
                np.full((len(sources), *shape), fill, dtype=dtype))
            columns.append(VectorData(
                name=f"{name}__{key}", description=f"feature {name}: array {key}, one {shape} array per unit"
                " (NaN for a unit without the feature)",
                data=packer.wrap(data, H5DataIO) if not isinstance(data, np.ndarray) else data))
    return columns


def add_intervals(nwbfile, src: h5py.File, scan: UnitScan, fs: float, TimeIntervals) -> list[str]:
    stimulus = src.get("stimulus")
    if not isinstance(stimulus, h5py.Group) or not isinstance(stimulus.get("section_time"), h5py.Group):
        return []
    names = []
    for movie, ds in stimulus["section_time"].items():
        if not isinstance(ds, h5py.Dataset):
            continue
        sections = np.asarray(read_whole(ds), dtype=np.int64).reshape(-1, 2)
        table = TimeIntervals(name=movie, description=f"stimulus movie {movie}: one row per trial "
                              "(per occurrence when the movie has no trials), times in seconds")
        table.add_column(name="occurrence", description="0-based occurrence of the movie in the playlist")
        table.add_column(name="trial_index", description="0-based trial within the occurrence; -1 for a row "
                         "that is a whole occurrence")
        table.add_column(name="section_start_time", description="start of the occurrence, seconds")
        table.add_column(name="section_stop_time", description="end of the occurrence, seconds")
        bounds = repeat = None
        for uid, members in zip(scan.ids, scan.members):
            if "spike_times_sectioned" not in members:
                continue
            sec = src.get(f"units/{uid}/spike_times_sectioned/{movie}")
            if isinstance(sec, h5py.Group) and "trial_bounds" in sec:
                stored = sec["trial_bounds"]
                bounds = np.asarray(read_whole(stored), dtype=np.int64).reshape(-1, 2)
                repeat = int(np.asarray(sec.attrs.get("repeat", 0)).reshape(-1)[0]) or None
                break
        if bounds is not None and bounds.shape[0] and sections.shape[0]:
            per_occurrence = repeat or max(1, bounds.shape[0] // sections.shape[0])
            for k, (start, stop) in enumerate(bounds):
                occ = min(k // per_occurrence, sections.shape[0] - 1)
                table.add_row(start_time=start / fs, stop_time=stop / fs, occurrence=occ,
                              trial_index=k - occ * per_occurrence, section_start_time=sections[occ, 0] / fs,
                              section_stop_time=sections[occ, 1] / fs)
        else:
            for occ, (start, stop) in enumerate(sections):
                table.add_row(start_time=start / fs, stop_time=stop / fs, occurrence=occ, trial_index=-1,
                              section_start_time=start / fs, section_stop_time=stop / fs)
        if len(table):
            nwbfile.add_time_intervals(table)
            names.append(movie)
    return names


def image_description(name: str, attrs: dict) -> tuple[str, str]:
    if name in IMAGE_FEATURES:
        unit = attrs.get("value_unit", "uV")
        return ("electrical images: spike-triggered mean of the high-pass filtered voltage on every sensor, "
                "one row per unit"), (
                f"axes (unit, sample in the window, chip row, chip column); rows and columns are 0-based chip "
                f"indices; sample k is k + window[0] samples from the spike; values in {unit}; NaN where the "
                "sensor was not recorded")
    movie = STA_FEATURE.match(name).group(1)
    return (f"receptive fields: spike-triggered average of the noise movie {movie}, one row per unit"), (
        "axes (unit, lag, check row, check column), oldest frame first: index k shows the frame "
        "first_lag + n_lags - 1 - k frames before the spike's frame; values are the mean stimulus "
        "intensity of the movie's frames")


def add_images(nwbfile, scan, units, packer, StackedUnitArrays, H5DataIO, per_buffer, skipped,
                DynamicTable, DynamicTableRegion, VectorData) -> list[str]:
    names = sorted({n for per in scan.features for n in per if n in IMAGE_FEATURES or STA_FEATURE.match(n)})
    if not names:
        return []
    modules = {}
    written = []
    for name in names:
        keys = [IMAGE_FEATURES[name]] if name in IMAGE_FEATURES else list(STA_DATASETS)
        rows = [i for i, per in enumerate(scan.features) if name in per and any(k in per[name][1] for k in keys)]
        sources = [scan.features[i][name][1][next(k for k in keys if k in scan.features[i][name][1])]
                   for i in rows]
        shapes = {tuple(s.shape) for s in sources}
        if len(shapes) != 1:
            skipped.append(f"{name} (image shapes {sorted(shapes)} differ between units)")
            continue
        shape = shapes.pop()
        first_attrs = scan.features[rows[0]][name][0]
        table_desc, data_desc = image_description(name, first_attrs)
        columns = [
            DynamicTableRegion(name="unit", description="the unit's row in /units", data=np.asarray(rows, np.int64),
                               table=units),
            VectorData(name="data", description=data_desc,
                       data=packer.wrap(StackedUnitArrays(sources, shape, np.float32, np.nan, per_buffer), H5DataIO)),
        ]
        attr_keys = sorted({k for i in rows for k, v in scan.features[i][name][0].items()
                            if k not in BOOKKEEPING_ATTRS})
        for k in attr_keys:
            values = [attr_value(scan.features[i][name][0][k]) if k in scan.features[i][name][0] else MISSING
                      for i in rows]
            columns.append(VectorData(name=k, description=f"{name}: {k}", data=column_values(values)))
        module_name = "ecephys" if name in IMAGE_FEATURES else "misc"
        if module_name not in modules:
            modules[module_name] = nwbfile.create_processing_module(
                name=module_name, description="electrical images computed by the hdmea pipeline"
                if module_name == "ecephys" else "receptive fields computed by the hdmea pipeline")
        modules[module_name].add(DynamicTable(name=name, description=table_desc,
                                id=np.arange(len(rows), dtype=np.int64), columns=columns))
        written.append(f"{module_name}/{name}")
    return written

"""Migrate archives of the previous zarr store to recording files (extra ``h5stream[zarr]``).

The previous store wrote one zarr v2 directory store per recording, in the same
logical layout as :mod:`hdmea.io.hdf5_store`:

* root attributes ``dataset_id``, ``hdmea_pipeline_version``, ``created_at``,
  ``updated_at``, ``stage1_completed``, ``stage1_params_hash``, ``features_extracted``
  (list) and ``source_files`` (a dict ``cmcr_path``, ``cmtr_path``, ``cmcr_exists``,
  ``cmtr_exists``);
* ``units/{id}/`` with ``spike_times`` (uint64 samples; absent for a unit without
  spikes), ``waveform`` (float32; absent when empty), optional ``firing_rate_10hz``,
  attributes ``row``, ``col``, ``global_id``, ``spike_count``, and
  ``features/{name}/``: arrays as arrays, scalars as attributes, nested dicts as
  subgroups (arrays inside, scalars as the subgroup's attributes), plus the
  feature's metadata attributes;
* ``stimulus/light_reference/{name}`` float32, ``stimulus/frame_time/{name}`` uint64,
  ``stimulus/section_time/{movie}`` uint64 ``(n, 2)``;
* ``metadata/...``: nested groups, scalars as 1-element arrays, text as 1-element
  string arrays.

:func:`migrate` reads an archive member by member and writes a recording file
through the recording store: arrays keep their dtype and values; 1-element
metadata arrays of int64, float64, bool or text become the store's typed scalars
(what the pipeline writes today); attributes keep their JSON types (int, float,
bool, text, lists, dicts).  ``/pipeline/migration`` (record version :data:`MIGRATION_FORMAT_VERSION`, its
``format_version``) records ``source_archive``,
``source_fingerprint`` (of the archive's file names, sizes and modification times),
``migrated_at`` and, as the group ``root_attrs``, every root attribute of the
archive as it was.  What has no place in our layout (other top-level members,
other ``stimulus`` members, attributes on metadata groups) is kept under
``/pipeline/migration/unmapped/<its path>``, never dropped.

Electrical images.  The original pipeline read the raw frames as ``[row, col]``;
where a file was stored ``[col, row]`` its images are transposed.  :func:`migrate`
runs the footprint test of :mod:`hdmea.io.frame_order` on the archive's
``features/eimage_sta/data`` images (chip ``(window, 65, 65)``) against the units'
``row``/``col``: the fraction of units whose image trough lies within one electrode
of ``(row, col)`` as stored and transposed (units on the diagonal, with fewer than 20
spikes used or without a clear trough are not counted).  When at least
:data:`~hdmea.io.frame_order.MIN_UNITS` units are counted and the transposed
fraction exceeds the stored one by :data:`~hdmea.io.frame_order.MARGIN`, every image
is stored transposed (its feature gets ``migration_transposed = True``); otherwise,
or with ``keep_eimage_orientation=True`` (``hdmea migrate --keep-eimage-orientation``),
the images stay as they were.  The test, its figures and what was done are recorded
at ``/pipeline/migration/eimage_orientation`` and in :class:`MigrationResult`.

A damaged archive (unreadable ``.zgroup``/``.zarray``/``.zattrs``, a missing or
undecodable chunk) raises :class:`ArchiveFormatError` naming the member; the
output is written atomically, so a failure leaves no file.  :func:`migrate_folder`
converts every ``*.zarr`` of a folder; an archive whose output already records the
same fingerprint is skipped, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import itertools
import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from h5stream.errors import H5StreamError
from hdmea.errors import RecordingFormatError
from hdmea._extras import require
from hdmea.io import hdf5_store as store
from hdmea.io.recording import open_recording
from hdmea.pipeline.preflight import PreflightError, check_output_folder
from hdmea.progress import counted

__all__ = ["migrate", "migrate_folder", "MigrationResult", "MigrationSummary", "ArchiveFormatError",
           "archive_fingerprint", "MIGRATION_GROUP", "MIGRATION_FORMAT_VERSION"]

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

MIGRATION_GROUP = "pipeline/migration"
#: Version of the ``/pipeline/migration`` record (its ``format_version``; golden file in tests/data/golden)
MIGRATION_FORMAT_VERSION = "1"
SOURCE_FORMAT = "zarr v2 directory store of hdmea.io.zarr_store"
_UNIT_ARRAYS = ("spike_times", "waveform", "firing_rate_10hz")
_STIMULUS_GROUPS = ("light_reference", "frame_time", "section_time")
_ROOT_MAPPED = {"dataset_id", "hdmea_pipeline_version", "created_at", "updated_at", "stage1_completed",
                "stage1_params_hash", "features_extracted", "source_files"}


class ArchiveFormatError(RecordingFormatError):
    """A zarr archive is damaged or not in the previous store's layout; names the member."""


@dataclasses.dataclass
class MigrationResult:
    """What :func:`migrate` wrote."""

    source: Path
    output: Path
    dataset_id: str
    n_units: int
    n_features: int
    unmapped: list[str]
    #: the electrical images' footprint test and what was done (None: the archive has no images)
    eimage_orientation: dict | None = None

    def describe(self) -> str:
        text = (f"{self.source} -> {self.output}: dataset {self.dataset_id}, {counted(self.n_units, 'unit')}, "
                f"{self.n_features} unit features")
        if self.eimage_orientation:
            text += f"; electrical images: {self.eimage_orientation['summary']}"
        if self.unmapped:
            text += f"; kept under /{MIGRATION_GROUP}/unmapped: {', '.join(self.unmapped)}"
        return text


def _zarr():
    return require("zarr", "zarr", "Migrating zarr archives")


# --------------------------------------------------------------------------- reading the archive


class _Reader:
    """Guarded reads of one archive: every failure is an :class:`ArchiveFormatError` naming the member."""

    def __init__(self, path: Path):
        self.zarr = _zarr()
        self.path = path
        if not path.is_dir():
            raise ArchiveFormatError("not a zarr directory store", path=path, obj="/",
                                     expected="a directory with .zgroup", found="a file" if path.exists() else "nothing")
        if not (path / ".zgroup").is_file():
            raise ArchiveFormatError("the archive has no root group", path=path, obj="/.zgroup",
                                     expected="a zarr v2 group (.zgroup)", found="no .zgroup")
        with self.guard("/"):
            self.root = self.zarr.open_group(self.zarr.storage.DirectoryStore(str(path)), mode="r")

    @contextlib.contextmanager
    def guard(self, member: str):
        try:
            yield
        except ArchiveFormatError:
            raise
        except Exception as exc:  # noqa: BLE001 - zarr and numcodecs raise many kinds for damage
            raise ArchiveFormatError(
                f"cannot read the member ({type(exc).__name__}: {exc})", path=self.path, obj=member,
                hint="the archive is damaged; restore it from a backup or re-run the pipeline for this recording",
            ) from exc

    def members(self, group, where: str) -> tuple[list[str], list[str]]:
        """(subgroup names, array names) of ``group``."""
        with self.guard(where or "/"):
            return sorted(group.group_keys()), sorted(group.array_keys())

    def attrs(self, node, where: str) -> dict:
        with self.guard(f"{where or ''}/.zattrs"):
            return dict(node.attrs.asdict())

    def array(self, group, name: str, where: str) -> np.ndarray:
        member = f"{where}/{name}"
        with self.guard(f"{member}/.zarray"):
            arr = group[name]
        with self.guard(member):
            expected = arr.nchunks
            if arr.nchunks_initialized != expected:
                missing = self._missing_chunk(arr, member)
                raise ArchiveFormatError(
                    "a chunk of the array is missing", path=self.path, obj=f"{member}/{missing}",
                    expected=f"{expected} chunks", found=f"{arr.nchunks_initialized}",
                    hint="the archive is incomplete; restore it from a backup")
            values = arr[...]
        return values

    def _missing_chunk(self, arr, member: str) -> str:
        sep = getattr(arr, "_dimension_separator", None) or "."
        keys = set(arr.store.listdir(arr.path)) if hasattr(arr.store, "listdir") else set()
        for index in itertools.product(*(range(n) for n in arr.cdata_shape)):
            key = sep.join(map(str, index)) or "0"
            if key.split("/")[0] not in keys:
                return key
        return "?"

    def group(self, group, name: str, where: str):
        with self.guard(f"{where}/{name}/.zgroup"):
            return group[name]

    def tree(self, group, where: str) -> _ZGroup:
        """A group with its attributes, arrays (numpy) and subgroups, read whole."""
        subgroups, arrays = self.members(group, where)
        return _ZGroup(
            attrs=self.attrs(group, where),
            arrays={name: self.array(group, name, where) for name in arrays},
            groups={name: self.tree(self.group(group, name, where), f"{where}/{name}") for name in subgroups},
        )


@dataclasses.dataclass
class _ZGroup:
    """A group read from the archive; attributes stay apart from members (an attribute may hold a dict)."""

    attrs: dict
    arrays: dict
    groups: dict

    def members(self) -> dict:
        """Arrays and subgroups (no attributes) as the store's put_node takes them."""
        return {**self.arrays, **{name: g.members() for name, g in self.groups.items()}}

    def apply_attrs(self, h5group) -> None:
        """Set the attributes of this group and its subgroups on the written ``h5group``, types kept."""
        if self.attrs:
            store.set_h5_attrs(h5group, self.attrs)
        for name, group in self.groups.items():
            group.apply_attrs(h5group[name])


def archive_fingerprint(path: str | os.PathLike) -> str:
    """sha256 of the archive's relative file names, sizes and modification times (changes when it does)."""
    path = Path(path)
    digest = hashlib.sha256()
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            full = Path(root) / name
            st = full.stat()
            digest.update(f"{full.relative_to(path).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()


# --------------------------------------------------------------------------- conversion


def _metadata_value(value):
    """A 1-element metadata array of a type the store keeps as a typed scalar becomes that scalar."""
    if isinstance(value, np.ndarray) and value.shape == (1,):
        item = value[0]
        if value.dtype == np.int64 or value.dtype == np.float64 or value.dtype == np.bool_:
            return item.item()
        if value.dtype.kind in "OU" and isinstance(item, str):
            return str(item)
    return value


def _split_metadata(tree: _ZGroup, where: str, unmapped: dict) -> dict:
    """Metadata without group attributes (they have no place in /metadata: kept in ``unmapped``)."""
    if tree.attrs:
        unmapped[f"{where}@attrs".replace("/", ".")] = _ZGroup(dict(tree.attrs), {}, {})
    out: dict[str, Any] = {k: _metadata_value(v) for k, v in tree.arrays.items()}
    out.update({k: _split_metadata(g, f"{where}/{k}", unmapped) for k, g in tree.groups.items()})
    return out


def _source_files(value) -> tuple[str | None, str | None, bool, bool] | None:
    if isinstance(value, Mapping):
        return (value.get("cmcr_path"), value.get("cmtr_path"), bool(value.get("cmcr_exists", False)),
                bool(value.get("cmtr_exists", False)))
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return value[0] or None, value[1] or None, bool(value[0]), bool(value[1])
    return None


def migrate(source: str | os.PathLike, output: str | os.PathLike, *, overwrite: bool = False,
            keep_eimage_orientation: bool = False) -> MigrationResult:
    """Write the zarr archive ``source`` (previous store) as the recording file ``output``.

    Electrical images the footprint test finds transposed are stored the right way round
    unless ``keep_eimage_orientation`` (see the module docstring).

    Raises
    ------
    MissingExtraError
        zarr is not installed (``pip install "h5stream[zarr]"``).
    ArchiveFormatError
        the archive is damaged or not in the previous store's layout (names the member);
        nothing is written.
    RecordingExistsError
        ``output`` exists and ``overwrite`` is False.
    """
    source, output = Path(source), Path(output)
    reader = _Reader(source)
    root_attrs = reader.attrs(reader.root, "")
    dataset_id = root_attrs.get("dataset_id")
    if not isinstance(dataset_id, str) or not dataset_id.strip():
        raise ArchiveFormatError("the archive has no dataset_id", path=source, obj="/.zattrs",
                                 expected="a non-empty text attribute dataset_id", found=repr(dataset_id))
    fingerprint = archive_fingerprint(source)
    groups, arrays = reader.members(reader.root, "")
    unmapped: dict[str, Any] = {}
    n_features = n_units = 0
    orientation = _eimage_orientation(reader, keep_eimage_orientation) if "units" in groups else None
    transpose = bool(orientation and orientation["action"] == "transposed")
    if orientation:
        (logger.warning if transpose or orientation["action"].startswith("kept transposed") else logger.info)(
            "%s: electrical images: %s", source, orientation["summary"])
    with store.create_recording_hdf5(output, dataset_id, overwrite=overwrite) as f:
        if "units" in groups:
            n_units, n_features = _migrate_units(reader, f, unmapped, transpose_eimage=transpose)
        if "stimulus" in groups:
            _migrate_stimulus(reader, f, unmapped)
        if "metadata" in groups:
            tree = reader.tree(reader.group(reader.root, "metadata", ""), "/metadata")
            meta = _split_metadata(tree, "metadata", unmapped)
            if meta:
                store.write_metadata(f, meta)
        for name in groups:
            if name not in ("units", "stimulus", "metadata"):
                unmapped[name] = reader.tree(reader.group(reader.root, name, ""), f"/{name}")
        for name in arrays:
            unmapped[name] = reader.array(reader.root, name, "")
        _root_attributes(f, root_attrs)
        record = {
            "source_archive": str(source.resolve()), "source_format": SOURCE_FORMAT,
            "source_fingerprint": fingerprint, "migrated_at": store.now_iso(), "root_attrs": {},
            "format_version": MIGRATION_FORMAT_VERSION,
        }
        if unmapped:
            record["unmapped"] = {k: (v.members() if isinstance(v, _ZGroup) else v) for k, v in unmapped.items()}
        if orientation:
            record["eimage_orientation"] = orientation
        pipeline = store.require_h5_group(f, "pipeline")
        store.replace_child(pipeline, "migration", store.put_node(record))
        migration = f[MIGRATION_GROUP]
        if root_attrs:
            store.set_h5_attrs(migration["root_attrs"], root_attrs)
        for name, value in unmapped.items():
            if isinstance(value, _ZGroup):
                value.apply_attrs(migration["unmapped"][name])
    logger.info("migrated %s to %s (%d units)", source, output, n_units)
    return MigrationResult(source=source, output=output, dataset_id=dataset_id, n_units=n_units,
                           n_features=n_features, unmapped=sorted(unmapped), eimage_orientation=orientation)


EIMAGE_FEATURE = "eimage_sta"


def _eimage_orientation(reader: _Reader, keep: bool) -> dict | None:
    """The footprint test on the archive's electrical images and what to do (None: no images)."""
    from hdmea.io.frame_order import MARGIN, MIN_UNITS, FootprintEvidence, image_evidence

    units_group = reader.group(reader.root, "units", "")
    unit_ids, _stray = reader.members(units_group, "/units")
    total = FootprintEvidence(on_target={("col_row", False): 0, ("row_col", False): 0})
    n_images = 0
    for uid in unit_ids:
        where = f"/units/{uid}"
        group = reader.group(units_group, uid, "/units")
        subgroups, _arrays = reader.members(group, where)
        if "features" not in subgroups:
            continue
        features = reader.group(group, "features", where)
        names, _ = reader.members(features, f"{where}/features")
        if EIMAGE_FEATURE not in names:
            continue
        fwhere = f"{where}/features/{EIMAGE_FEATURE}"
        feature = reader.group(features, EIMAGE_FEATURE, f"{where}/features")
        _sub, arrays = reader.members(feature, fwhere)
        if "data" not in arrays:
            continue
        image = reader.array(feature, "data", fwhere)
        if image.ndim != 3 or image.shape[1:] != (65, 65):
            continue
        n_images += 1
        attrs, fattrs = reader.attrs(group, where), reader.attrs(feature, fwhere)
        try:
            position = (int(attrs["row"]) - 1, int(attrs["col"]) - 1)
        except (KeyError, TypeError, ValueError):
            position = (-1, -1)  # no position: not counted
        used = next((fattrs[k] for k in ("n_spikes_used", "n_spikes", "spike_count") if k in fattrs),
                    attrs.get("spike_count"))
        one = image_evidence([image], [position], None if used is None else [int(used)])
        total.n_units += one.n_units
        for key, value in one.on_target.items():
            total.on_target[key] += value
        total.near_diagonal += one.near_diagonal
        total.too_few_spikes += one.too_few_spikes
        total.no_trough += one.no_trough
        total.not_recorded += one.not_recorded
    if not n_images:
        return None
    as_stored, transposed = total.fraction("col_row"), total.fraction("row_col")
    clear = total.n_units >= MIN_UNITS and transposed - as_stored >= MARGIN
    if clear and not keep:
        action = "transposed"
    elif clear:
        action = "kept transposed (keep_eimage_orientation)"
    else:
        action = "kept"
    figures = (f"{total.n_units} of {n_images} images tested: troughs at (row, col) "
               f"{'n/a' if total.n_units == 0 else f'{as_stored:.0%}'}, at (col, row) "
               f"{'n/a' if total.n_units == 0 else f'{transposed:.0%}'}")
    why = {"transposed": "they were transposed; stored the right way round",
           "kept": "no clear evidence of a transposition; stored as they were",
           }.get(action, "they look transposed but were kept as they were on request")
    return {"action": action, "n_images": n_images, "n_units_tested": total.n_units,
            "fraction_as_stored": float(as_stored), "fraction_transposed": float(transposed),
            "min_units": MIN_UNITS, "margin": MARGIN, "not_tested": total.skipped_text(),
            "summary": f"{why} ({figures})"}


def _root_attributes(f: h5py.File, attrs: dict) -> None:
    values: dict[str, Any] = {}
    for key in ("created_at", "stage1_params_hash"):
        if isinstance(attrs.get(key), str):
            values[key] = attrs[key]
    if "stage1_completed" in attrs:
        values["stage1_completed"] = bool(attrs["stage1_completed"])
    if isinstance(attrs.get("features_extracted"), list):
        values["features_extracted"] = store.features_text(sorted({str(v) for v in attrs["features_extracted"]}))
    store.set_h5_attrs(f, values)
    files = _source_files(attrs.get("source_files"))
    if files is not None:
        store.set_h5_attrs(f, store.source_files_attrs(files[0], files[1], exists=(files[2], files[3])))


def _migrate_units(reader: _Reader, f: h5py.File, unmapped: dict, *, transpose_eimage: bool = False
                   ) -> tuple[int, int]:
    units_group = reader.group(reader.root, "units", "")
    unit_ids, stray = reader.members(units_group, "/units")
    for name in stray:
        unmapped[f"units.{name}"] = reader.array(units_group, name, "/units")
    n_features = 0
    for uid in unit_ids:
        where = f"/units/{uid}"
        group = reader.group(units_group, uid, "/units")
        attrs = reader.attrs(group, where)
        subgroups, arrays = reader.members(group, where)
        data: dict[str, Any] = {k: v for k, v in attrs.items() if k != "spike_count"}
        extra_arrays = {}
        for name in arrays:
            values = reader.array(group, name, where)
            if name in _UNIT_ARRAYS:
                data[name] = values
            else:
                extra_arrays[name] = values
        if "spike_times" not in data:  # the previous store wrote no array for a unit without spikes
            data["spike_times"] = np.zeros(0, dtype=np.uint64)
        count = attrs.get("spike_count")
        if count is not None and int(count) != data["spike_times"].shape[0]:
            raise ArchiveFormatError("spike_count disagrees with spike_times", path=reader.path,
                                     obj=f"{where}/.zattrs", expected=str(data["spike_times"].shape[0]),
                                     found=str(count))
        others = {name: reader.tree(reader.group(group, name, where), f"{where}/{name}")
                  for name in subgroups if name != "features"}
        store.write_units(f, {uid: data})
        written = f["units"][uid]
        for name, values in extra_arrays.items():
            store.replace_child(written, name, store.put_node(values))
        for name, tree in others.items():
            store.replace_child(written, name, store.put_node(tree.members()))
            tree.apply_attrs(written[name])
        if "features" in subgroups:
            features = reader.group(group, "features", where)
            names, stray_arrays = reader.members(features, f"{where}/features")
            for name in stray_arrays:
                unmapped[f"units.{uid}.features.{name}"] = reader.array(features, name, f"{where}/features")
            for name in names:
                fwhere = f"{where}/features/{name}"
                feature = reader.group(features, name, f"{where}/features")
                tree = reader.tree(feature, fwhere)
                members, feature_attrs = tree.members(), tree.attrs
                if transpose_eimage and name == EIMAGE_FEATURE and np.ndim(members.get("data")) == 3:
                    members = dict(members, data=np.ascontiguousarray(np.swapaxes(members["data"], -1, -2)))
                    feature_attrs = dict(feature_attrs, migration_transposed=True)
                store.write_feature_to_unit(f, uid, name, members, feature_attrs)
                written_feature = f["units"][uid]["features"][name]
                for sub, group_tree in tree.groups.items():
                    group_tree.apply_attrs(written_feature[sub])
                n_features += 1
    return len(unit_ids), n_features


def _migrate_stimulus(reader: _Reader, f: h5py.File, unmapped: dict) -> None:
    stimulus = reader.group(reader.root, "stimulus", "")
    groups, arrays = reader.members(stimulus, "/stimulus")
    parts: dict[str, dict] = {}
    for name in groups:
        where = f"/stimulus/{name}"
        if name not in _STIMULUS_GROUPS:
            unmapped[f"stimulus.{name}"] = reader.tree(reader.group(stimulus, name, "/stimulus"), where)
            continue
        group = reader.group(stimulus, name, "/stimulus")
        sub, names = reader.members(group, where)
        parts[name] = {n: reader.array(group, n, where) for n in names}
        for s in sub:
            unmapped[f"stimulus.{name}.{s}"] = reader.tree(reader.group(group, s, where), f"{where}/{s}")
        attrs = reader.attrs(group, where)
        if attrs:
            unmapped[f"stimulus.{name}@attrs"] = _ZGroup(attrs, {}, {})
    for name in arrays:
        unmapped[f"stimulus.{name}"] = reader.array(stimulus, name, "/stimulus")
    if parts:
        try:
            store.write_stimulus(f, light_reference=parts.get("light_reference"),
                                 frame_times=parts.get("frame_time"), section_times=parts.get("section_time"))
        except H5StreamError as exc:
            raise ArchiveFormatError(f"stimulus arrays do not fit the recording layout ({exc})", path=reader.path,
                                     obj="/stimulus") from exc


# --------------------------------------------------------------------------- folders


@dataclasses.dataclass
class MigrationSummary:
    """Outcome of :func:`migrate_folder`: one entry per archive."""

    entries: list[dict]

    @property
    def ok(self) -> bool:
        return all(e["status"] != "failed" for e in self.entries)

    def table(self) -> str:
        lines = [f"{'archive':<32} {'status':<9} {'seconds':>8}  output / error"]
        for e in self.entries:
            tail = e["output"] if e["status"] != "failed" else f"{e['kind']}: {e['error']}"
            lines.append(f"{e['name']:<32} {e['status']:<9} {e['seconds']:8.2f}  {tail}")
        counts = {s: sum(e["status"] == s for e in self.entries) for s in ("migrated", "skipped", "failed")}
        lines.append(", ".join(f"{n} {s}" for s, n in counts.items()))
        return "\n".join(lines)

    def as_dict(self) -> dict:
        return {"ok": self.ok, "entries": self.entries}


def recorded_fingerprint(output: Path) -> str | None:
    """The source fingerprint a finished migration recorded in ``output``, or None."""
    if not output.is_file():
        return None
    try:
        with open_recording(output) as recording:
            if MIGRATION_GROUP.strip("/") not in recording.file:
                return None
            return recording.attr(MIGRATION_GROUP, "source_fingerprint")
    except (H5StreamError, OSError):
        return None


def migrate_folder(source_dir: str | os.PathLike, output_dir: str | os.PathLike, *,
                   keep_eimage_orientation: bool = False) -> MigrationSummary:
    """Migrate every ``*.zarr`` in ``source_dir`` to ``output_dir/<name>.h5``.

    An archive whose output already records its current fingerprint is skipped; one that
    changed since is migrated again (the old output stays until the new one is complete).
    A failing archive is reported and the others go on; an output folder that cannot be
    created or written raises :class:`~hdmea.pipeline.preflight.PreflightError` before any archive.
    """
    source_dir, output_dir = Path(source_dir), Path(output_dir)
    if not source_dir.is_dir():
        raise ArchiveFormatError("not a folder of archives", path=source_dir, obj="/",
                                 expected="a directory holding *.zarr archives", found="no such directory")
    # A folder that cannot take the outputs fails every archive: say so once, before any work.
    problems = check_output_folder(output_dir)
    if problems:
        raise PreflightError(problems)
    output_dir.mkdir(parents=True, exist_ok=True)
    entries = []
    for archive in sorted(p for p in source_dir.iterdir() if p.suffix == ".zarr" and p.is_dir()):
        target = output_dir / f"{archive.stem}.h5"
        start = time.perf_counter()
        entry = {"name": archive.name, "source": str(archive), "output": str(target)}
        try:
            fingerprint = archive_fingerprint(archive)
            if recorded_fingerprint(target) == fingerprint:
                entry["status"] = "skipped"
            else:
                result = migrate(archive, target, overwrite=target.exists(),
                                 keep_eimage_orientation=keep_eimage_orientation)
                if result.eimage_orientation:
                    entry["eimage_orientation"] = result.eimage_orientation["action"]
                entry["status"] = "migrated"
        except (H5StreamError, OSError) as exc:
            logger.error("migrating %s failed: %s", archive, exc)
            entry.update(status="failed", kind=type(exc).__name__, error=str(exc))
        entry["seconds"] = round(time.perf_counter() - start, 3)
        entries.append(entry)
    return MigrationSummary(entries)

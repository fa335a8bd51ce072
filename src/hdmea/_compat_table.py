"""The original pipeline's public names (jiang-lab-retina/hdmea_processing at fe13de2): every import path,
every name imported there, and where each object lives here.

``ORIGINAL_API[path]`` maps each module that defines objects the original imported from ``path`` to
their names (``"attribute as name"`` where the object has another name there), in the form of an import
statement.  The table is plain data, read without running anything: the thin modules at the
original's paths are generated from it (:mod:`hdmea._compat.surface`), the native modules at the
original's paths below the steps hand their names on through :func:`hand_on`, and the tests read it for
the list of names (``tests/compat/test_hdmea_api_names.py``) and for the paths no native module may
import (``tests/unit/test_compat_fence.py``).

Left out, as this library replaces them: ``hdmea.viz`` (``hdmea view``), ``hdmea.io.zarr_store`` (the
HDF5 recording) and ``hdmea.features.ap_tracking`` (its trained network is not public).

This module imports nothing of hdmea, so any module may read it: it stands beside the fence
(:mod:`hdmea._compat`, which holds the implementations and imports the whole library) rather than inside
it, so that the readers and the features, which hand some of the original's names on, depend on this data
alone and not on what lies above them.
"""

from __future__ import annotations

import importlib
import sys
import types

from h5stream.lazy_names import serve_lazily

__all__ = ["ORIGINAL_API", "SHARED_PATHS", "names_at", "home_of", "original_attribute", "hand_on"]

#: The original's paths where a module of this library's own lives as well (the readers, the recording
#: store, the feature extractors, the pipeline's package): those modules hand the original's names on
#: themselves.  Every other path of :data:`ORIGINAL_API` is a thin module generated from the table.
SHARED_PATHS: tuple[str, ...] = (
    "hdmea",
    "hdmea.features", "hdmea.features.base", "hdmea.features.registry",
    "hdmea.features.baseline", "hdmea.features.baseline.baseline_127",
    "hdmea.features.cell_type", "hdmea.features.cell_type.rgc_classifier",
    "hdmea.features.chromatic", "hdmea.features.chromatic.green_blue",
    "hdmea.features.direction", "hdmea.features.direction.moving_bar",
    "hdmea.features.eimage_sta", "hdmea.features.eimage_sta.extractor",
    "hdmea.features.example", "hdmea.features.example.example_feature",
    "hdmea.features.frequency", "hdmea.features.frequency.chirp",
    "hdmea.features.frif", "hdmea.features.frif.frif_extractor",
    "hdmea.features.on_off", "hdmea.features.on_off.step_up",
    "hdmea.features.receptive_field", "hdmea.features.receptive_field.dense_noise",
    "hdmea.io", "hdmea.io.cmcr", "hdmea.io.cmtr", "hdmea.io.hdf5_store", "hdmea.io.parquet_export",
    "hdmea.pipeline",
)

ORIGINAL_API: dict[str, dict[str, tuple[str, ...]]] = {
    "hdmea": {},
    "hdmea.analysis": {},
    "hdmea.features": {
        "hdmea.features.registry": ("FeatureRegistry",),
        "hdmea.features.base": ("FeatureExtractor",),
        "hdmea.features.on_off.step_up": ("StepUpFeatureExtractor",),
        "hdmea.features.baseline.baseline_127": ("BaselineFeatureExtractor",),
        "hdmea.features.direction.moving_bar": ("MovingBarFeatureExtractor",),
        "hdmea.features.receptive_field.dense_noise": ("DenseNoiseFeatureExtractor",),
        "hdmea.features.chromatic.green_blue": ("ChromaticFeatureExtractor",),
        "hdmea.features.frequency.chirp": ("FrequencyFeatureExtractor",),
        "hdmea.features.cell_type.rgc_classifier": ("CellTypeFeatureExtractor",),
        "hdmea.features.example.example_feature": ("ExampleFeatureExtractor",),
        "hdmea.features.frif.frif_extractor": ("FRIFExtractor",),
        "hdmea.steps.sta": ("compute_sta", "STAResult"),
        "hdmea.features.eimage_sta.extractor": ("EImageSTAExtractor",),
        "hdmea._compat.eimage_variants": ("compute_eimage_sta_lab as compute_eimage_sta",),
        "hdmea._compat.eimage_config": ("EImageSTAConfig", "EImageSTAResult"),
        "hdmea._compat.direction": ("section_by_direction",),
        "hdmea.features.direction.sectioning": ("DirectionSectionResult",),
        "hdmea.features.direction.bar_geometry": ("DIRECTION_LIST",),
    },
    "hdmea.features.base": {
        "hdmea.features.base": ("HDF5Group", "ArrayAdapter", "DictAdapter", "FeatureExtractor"),
    },
    "hdmea.features.baseline": {
        "hdmea.features.baseline.baseline_127": ("BaselineFeatureExtractor",),
    },
    "hdmea.features.baseline.baseline_127": {
        "hdmea.features.baseline.baseline_127": ("BaselineFeatureExtractor",),
    },
    "hdmea.features.cell_type": {
        "hdmea.features.cell_type.rgc_classifier": ("CellTypeFeatureExtractor",),
    },
    "hdmea.features.cell_type.rgc_classifier": {
        "hdmea.features.cell_type.rgc_classifier": ("CellTypeFeatureExtractor",),
    },
    "hdmea.features.chromatic": {
        "hdmea.features.chromatic.green_blue": ("ChromaticFeatureExtractor",),
    },
    "hdmea.features.chromatic.green_blue": {
        "hdmea.features.chromatic.green_blue": ("ChromaticFeatureExtractor",),
    },
    "hdmea.features.direction": {
        "hdmea.features.direction.moving_bar": ("MovingBarFeatureExtractor",),
    },
    "hdmea.features.direction.moving_bar": {
        "hdmea.features.direction.moving_bar": ("MovingBarFeatureExtractor",),
    },
    "hdmea.features.dsgc_direction": {
        "hdmea.features.direction.bar_geometry": ("DIRECTION_LIST",),
        "hdmea.features.direction.sectioning": (
            "N_DIRECTIONS", "N_REPETITIONS", "N_TRIALS", "DEFAULT_PADDING_FRAMES", "DEFAULT_STIMULI_DIR",
            "STA_GEOMETRY_FEATURE", "DEFAULT_MOVIE_NAME", "INVALID_CENTER_VALUE", "DirectionSectionResult",
            "get_cell_center", "section_unit_by_direction"
        ),
        "hdmea.features.direction.on_off_pickle": (
            "COORDINATE_SCALE_FACTOR", "load_on_off_dict", "convert_center_15_to_300"
        ),
        "hdmea._compat.direction": ("section_by_direction",),
    },
    "hdmea.features.eimage_sta": {
        "hdmea._compat.eimage_variants": (
            "compute_eimage_sta_lab as compute_eimage_sta", "compute_eimage_sta_chunked",
            "compute_eimage_sta_legacy", "compute_eimage_sta_legacy_improved",
        ),
        "hdmea.features.eimage_sta.extractor": ("compute_sta_for_unit", "EImageSTAExtractor"),
        "hdmea._compat.eimage_legacy": ("compute_sta_for_unit_legacy", "STAAccumulator"),
        "hdmea._compat.eimage_config": ("EImageSTAConfig", "EImageSTAResult"),
    },
    "hdmea.features.eimage_sta.compute": {
        "hdmea._compat.eimage_legacy": (
            "VERSION", "STAAccumulator", "compute_sta_for_unit_legacy", "extract_windows_for_chunk",
            "write_eimage_sta_to_hdf5"
        ),
        "hdmea._compat.eimage_config": ("EImageSTAConfig", "EImageSTAResult"),
        "hdmea.features.eimage_sta.extractor": ("compute_sta_for_unit",),
        "hdmea._compat.eimage_variants": (
            "compute_eimage_sta_lab as compute_eimage_sta", "compute_eimage_sta_chunked",
            "compute_eimage_sta_legacy", "compute_eimage_sta_legacy_improved",
        ),
    },
    "hdmea.features.eimage_sta.extractor": {
        "hdmea.features.eimage_sta.extractor": ("EImageSTAExtractor",),
    },
    "hdmea.features.example": {
        "hdmea.features.example.example_feature": ("ExampleFeatureExtractor",),
    },
    "hdmea.features.example.example_feature": {
        "hdmea.features.example.example_feature": ("ExampleFeatureExtractor",),
    },
    "hdmea.features.frequency": {
        "hdmea.features.frequency.chirp": ("FrequencyFeatureExtractor",),
    },
    "hdmea.features.frequency.chirp": {
        "hdmea.features.frequency.chirp": ("FrequencyFeatureExtractor",),
    },
    "hdmea.features.frif": {
        "hdmea.features.frif.frif_extractor": ("FRIFExtractor",),
    },
    "hdmea.features.frif.frif_extractor": {
        "hdmea.features.frif.frif_extractor": ("FRIFExtractor",),
    },
    "hdmea.features.on_off": {
        "hdmea.features.on_off.step_up": ("StepUpFeatureExtractor",),
    },
    "hdmea.features.on_off.step_up": {
        "hdmea.features.on_off.step_up": ("StepUpFeatureExtractor",),
    },
    "hdmea.features.receptive_field": {
        "hdmea.features.receptive_field.dense_noise": ("DenseNoiseFeatureExtractor",),
    },
    "hdmea.features.receptive_field.dense_noise": {
        "hdmea.features.receptive_field.dense_noise": ("DenseNoiseFeatureExtractor",),
    },
    "hdmea.features.registry": {
        "hdmea.features.registry": ("FeatureRegistry",),
    },
    "hdmea.features.sta": {
        # with the two private helpers the lab's own scripts import from here (Projects/rf_sta_measure/rf_session.py,
        # Projects/unified_pipeline/steps/geometry.py): without them the lab's RF-geometry step is skipped
        "hdmea.steps.sta": ("DEFAULT_STIMULI_DIR", "STAResult", "compute_sta", "_load_stimulus_movie",
                            "_find_noise_movie_from_session"),
    },
    "hdmea.io": {
        "hdmea.io.hdf5_store": (
            "create_recording_hdf5", "open_recording_hdf5", "write_units", "write_stimulus", "write_metadata",
            "write_source_files", "mark_stage1_complete", "get_stage1_status", "list_units", "list_features",
            "write_feature_to_unit"
        ),
        "hdmea.steps.section_time": (
            "add_section_time", "add_section_time_analog", "convert_frame_to_sample_index",
            "convert_sample_index_to_frame"
        ),
        "hdmea.steps.spike_sectioning": ("section_spike_times", "SectionResult"),
    },
    "hdmea.io.cmcr": {
        "hdmea._compat.lab_readers": (
            "load_cmcr_data", "load_sensor_data", "load_sensor_data_chunked", "get_sensor_data_info",
            "find_cmcr_file_from_cmtr"
        ),
        "hdmea._compat.source_info": ("add_sys_meta_info",),
    },
    "hdmea.io.cmtr": {
        "hdmea._compat.lab_readers": ("load_cmtr_data", "get_cmtr_recording_id", "validate_cmcr_cmtr_match"),
        "hdmea._compat.source_info": ("add_cmtr_unit_info", "update_hdf5_with_cmtr_unit_info"),
    },
    "hdmea.io.hdf5_store": {
        "hdmea.io.hdf5_store": (
            "create_recording_hdf5", "open_recording_hdf5", "write_units", "write_stimulus", "write_metadata",
            "write_source_files", "mark_stage1_complete", "get_stage1_status", "list_units", "list_features",
            "write_feature_to_unit"
        ),
    },
    "hdmea.io.parquet_export": {
        "hdmea.io.parquet_export": ("export_features_to_parquet", "read_exported_features", "get_export_metadata"),
    },
    "hdmea.io.section_time": {
        "hdmea.steps.section_time": (
            "PRE_MARGIN_FRAME_NUM", "POST_MARGIN_FRAME_NUM", "DEFAULT_PAD_FRAME", "DEFAULT_PLAYLIST_PATH",
            "DEFAULT_MOVIE_LENGTH_PATH", "convert_frame_to_sample_index", "convert_sample_index_to_frame",
            "add_section_time", "add_section_time_analog"
        ),
    },
    "hdmea.io.spike_sectioning": {
        "hdmea.steps.spike_sectioning": (
            "MAX_RETRIES", "RETRY_DELAY", "DEFAULT_CONFIG_DIR", "StimuliConfigDict", "SectionResult",
            "section_spike_times"
        ),
    },
    "hdmea.pipeline": {
        "hdmea.steps.load": ("load_recording", "LoadResult"),
        "hdmea._compat.load_with_eimage": ("load_recording_with_eimage_sta", "LoadWithEImageSTAResult"),
        "hdmea.steps.features": ("extract_features", "ExtractionResult"),
        "hdmea._compat.flows": ("FlowResult", "run_flow", "list_available_flows", "get_flow_info"),
        "hdmea.session.session": ("PipelineSession", "SaveState", "create_session"),
        "hdmea.session.loader": ("load_session_from_hdf5", "load_hdf5_to_session"),
        "hdmea.steps.section_time": ("add_section_time",),
    },
    "hdmea.pipeline.config": {
        "hdmea.stimulus_files": ("StimulusFile as StimulusConfig", "load_json_config", "load_stimulus_config"),
        "hdmea._compat.flow_files": (
            "StageConfig", "FlowConfig", "PipelineDefaults as PipelineConfig", "DefaultsConfig", "load_flow_config",
            "load_defaults",
        ),
    },
    "hdmea.pipeline.flows": {
        "hdmea._compat.flows": ("run_flow", "list_available_flows", "get_flow_info"),
    },
    "hdmea.pipeline.loader": {
        "hdmea.session.loader": ("load_session_from_hdf5", "load_hdf5_to_session"),
    },
    "hdmea.pipeline.runner": {
        "hdmea.steps.load": (
            "DEFAULT_ACQUISITION_RATE", "MIN_TYPICAL_ACQUISITION_RATE", "MAX_TYPICAL_ACQUISITION_RATE",
            "validate_acquisition_rate", "compute_frame_time", "get_frame_timestamps", "LoadResult",
            "load_recording",
        ),
        "hdmea._compat.load_with_eimage": ("LoadWithEImageSTAResult", "load_recording_with_eimage_sta"),
        "hdmea._compat.flows": ("FlowResult",),
        "hdmea.steps.features": ("ExtractionResult", "extract_features"),
    },
    "hdmea.pipeline.session": {
        "hdmea.session.session": ("SaveState", "PipelineSession", "create_session"),
    },
    "hdmea.preprocess": {},
    "hdmea.preprocess.filtering": {
        "hdmea._compat.filtering": (
            "apply_highpass_filter_3d", "apply_highpass_filter_3d_simple", "apply_highpass_filter_3d_legacy",
            "compute_firing_rate", "smooth_signal", "filter_by_firing_rate"
        ),
    },
    "hdmea.utils": {},
    "hdmea.utils.exceptions": {
        "hdmea.errors": (
            "HDMEAError", "ConfigurationError", "DataLoadError", "FeatureExtractionError", "MissingInputError",
            "CacheConflictError", "ValidationError", "MismatchError", "SessionError", "CheckpointError"
        ),
    },
    "hdmea.utils.hashing": {
        "hdmea._compat.hashing": ("hash_config", "hash_file", "verify_hash"),
    },
    "hdmea.utils.logging": {
        "hdmea._compat.log_setup": ("setup_logging", "get_logger", "LoggerMixin"),
    },
    "hdmea.utils.validation": {
        "hdmea.io.dataset_ids": (
            "DATASET_ID_PATTERN", "file_safe_dataset_id as validate_dataset_id",
            "dataset_id_from_files as derive_dataset_id",
        ),
        "hdmea._compat.validation": (
            "validate_path_exists", "validate_cmcr_path", "validate_cmtr_path", "validate_input_files"
        ),
    },
}


def _homes(groups: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, str]]:
    out = {}
    for module, entries in groups.items():
        for entry in entries:
            attribute, _, name = entry.partition(" as ")
            out[name or attribute] = (module, attribute)
    return out


#: path -> name -> (module, attribute): the table read by name.
_HOMES: dict[str, dict[str, tuple[str, str]]] = {path: _homes(groups) for path, groups in ORIGINAL_API.items()}


def names_at(path: str) -> list[str]:
    """The names the original imported from ``path``, in the table's order."""
    return list(_HOMES[path])


def home_of(path: str, name: str) -> tuple[str, str]:
    """(module, attribute) where the original's ``path.name`` lives; KeyError when the original had no such name."""
    return _HOMES[path][name]


def original_attribute(path: str, name: str):
    """The object the original's ``path.name`` is (imported from its home); AttributeError for a name the
    original did not have at ``path``."""
    try:
        module, attribute = home_of(path, name)
    except KeyError:
        raise AttributeError(f"module {path!r} has no attribute {name!r}") from None
    return getattr(importlib.import_module(module), attribute)


def hand_on(namespace: dict) -> None:
    """Give the module whose globals are ``namespace`` the original's names at its path that live elsewhere.

    For the native modules at the original's paths below the steps (``hdmea.io``, ``hdmea.io.cmcr``,
    ``hdmea.features``, ...): they cannot import the layers above them, so the names are imported from
    their homes on first use (the module's ``__getattr__``) and listed in its ``__all__``.  Called once at
    the end of such a module, with ``globals()``.
    """
    path = namespace["__name__"]
    names = [name for name in names_at(path) if home_of(path, name)[0] != path]
    serve_lazily(namespace, names, lambda name: original_attribute(path, name))
    module = sys.modules.get(path)
    if module is not None and type(module) is types.ModuleType:
        module.__class__ = _SettingsReachTheirHome


def settings_reach_their_home(path: str) -> None:
    """Make the module at ``path`` (a generated one that imports its names at once, such as
    ``hdmea.pipeline.runner``) hand a data name set there on to where it lives, as the lazily served
    modules do: ``hdmea.pipeline.runner.DEFAULT_ACQUISITION_RATE = 10000.0`` reaches the load step."""
    module = sys.modules.get(path)
    if module is not None and type(module) is types.ModuleType:
        module.__class__ = _SettingsReachTheirHome


class _SettingsReachTheirHome(types.ModuleType):
    """A module at an original path whose data names (a default folder, a retry count) are set at their home.

    The original's functions read such module-level defaults when called (``DEFAULT_STIMULI_DIR``,
    ``DEFAULT_PLAYLIST_PATH``, ``MAX_RETRIES``, ...), and the lab sets them at the original's path
    (``hdmea.features.sta.DEFAULT_STIMULI_DIR = ...``).  The value is set in the module where the name lives
    too, whose functions read it when called; otherwise the setting would be silently ignored.  Functions,
    classes and modules stay where they are set (rebinding one at a path does not replace it everywhere).
    """

    def __setattr__(self, name: str, value) -> None:
        path = self.__name__
        if name in _HOMES.get(path, {}) and not callable(value) and not isinstance(value, types.ModuleType):
            module, attribute = home_of(path, name)
            if module != path:
                setattr(importlib.import_module(module), attribute, value)
        super().__setattr__(name, value)

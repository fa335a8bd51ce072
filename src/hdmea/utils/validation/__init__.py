"""The original pipeline's ``hdmea.utils.validation``: its names, handed on from where they live.

Generated from :data:`hdmea._compat_table.ORIGINAL_API` by ``python -m hdmea._compat.surface``; do not
edit."""

import importlib

from hdmea._compat.validation import (
    validate_cmcr_path, validate_cmtr_path, validate_input_files, validate_path_exists
)
from hdmea.io.dataset_ids import DATASET_ID_PATTERN
from hdmea.io.dataset_ids import dataset_id_from_files as derive_dataset_id
from hdmea.io.dataset_ids import file_safe_dataset_id as validate_dataset_id

__all__ = [
    "DATASET_ID_PATTERN", "validate_dataset_id", "derive_dataset_id", "validate_path_exists", "validate_cmcr_path",
    "validate_cmtr_path", "validate_input_files"
]

importlib.import_module("hdmea._compat_table").settings_reach_their_home(__name__)

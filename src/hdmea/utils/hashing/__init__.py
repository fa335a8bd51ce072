"""The original pipeline's ``hdmea.utils.hashing``: its names, handed on from where they live.

Generated from :data:`hdmea._compat_table.ORIGINAL_API` by ``python -m hdmea._compat.surface``; do not
edit."""

import importlib

from hdmea._compat.hashing import hash_config, hash_file, verify_hash

__all__ = ["hash_config", "hash_file", "verify_hash"]

importlib.import_module("hdmea._compat_table").settings_reach_their_home(__name__)

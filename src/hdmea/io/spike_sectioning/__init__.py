"""The original pipeline's ``hdmea.io.spike_sectioning``: its names, handed on from where they live.

Generated from :data:`hdmea._compat_table.ORIGINAL_API` by ``python -m hdmea._compat.surface``; do not
edit.  The names live in the layers above this one: they are imported on first use.
"""

import importlib

importlib.import_module("hdmea._compat_table").hand_on(globals())

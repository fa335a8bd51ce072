"""Readers of MCS files and the recording store (``hdf5_store``).

The original pipeline's package-level names (the recording store's writers, its section-time functions and
``section_spike_times``) are handed on on first use by :mod:`hdmea._compat_table`, which lists them: the
steps among them live in the layers above.
"""

import importlib

importlib.import_module("hdmea._compat_table").hand_on(globals())

"""The original pipeline's API (jiang-lab-retina/hdmea_processing), fenced off from this library's own.

Everything here exists only so that the lab's scripts run unchanged:

- its table, :mod:`hdmea._compat_table` (a leaf beside this package, so that the readers below the steps
  can read it): every import path of the original, every name imported there, and where each object
  lives (here, or in the library where both APIs share a function);
- :mod:`hdmea._compat.surface`: writes the thin modules at the original's paths from that table;
- the implementations the original's names need and this library's own API does not: its readers
  (``lab_readers``), its extra steps (``source_info``, ``direction``, ``eimage_variants``), its flows,
  its electrical-image functions over arrays (``eimage_legacy``, ``eimage_config``), its signal filters,
  hashing, input checks and logging set-up.

No module outside this package imports one of the original's paths (``tests/unit/test_compat_fence.py``);
modules here import the library freely.
"""

"""Naive numpy twins of every compiled kernel.

Each function here is slow and obviously right; tests compare the compiled
kernels against them on seeded data and edge cases.  Sections are kept per
kernel family.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp  # noqa: F401

# ============================================================ CSR encoding (h5stream.kernels.csr)

# ============================================================ parallel compression (h5stream.writer)

# ============================================================ spike sectioning (h5stream.kernels.sectioning)

# ============================================================ STA accumulation (h5stream.kernels.sta)

# ============================================================ electrical image (h5stream.kernels.eimage)

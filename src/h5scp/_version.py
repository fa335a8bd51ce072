"""The version of h5scp, stamped into every file it writes and every history entry it adds.

A leaf of its own, so that the data model and the formats read it without importing the package above them.
"""

__version__ = "0.2.0"

"""Readers of MCS files and the recording store (``hdf5_store``)."""

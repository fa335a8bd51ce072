"""Analyses across recordings, at the original pipeline's import path.

The original package held no code here; summaries of many recordings are read
with :func:`hdmea.io.hdf5_store.open_recording_hdf5` or exported with
:mod:`hdmea.interop`.
"""

"""The original pipeline's path of the session loader (it lives in :mod:`hdmea.session.loader`)."""

from hdmea.session.loader import load_hdf5_to_session, load_session_from_hdf5

__all__ = ["load_session_from_hdf5", "load_hdf5_to_session"]

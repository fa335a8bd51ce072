"""hdmea in the neuroscience ecosystem: NWB export, SpikeInterface extractors, migration of zarr archives.

Each module needs an optional extra and says which one when it is missing:

* :mod:`hdmea.interop.nwb` -- ``pip install "h5stream[nwb]"`` (pynwb, nwbinspector)
* :mod:`hdmea.interop.spikeinterface` -- ``pip install "h5stream[spikeinterface]"``
* :mod:`hdmea.interop.zarr_migrate` -- ``pip install "h5stream[zarr]"``

Nothing here is imported by ``import hdmea``; import the module you need.
"""

from hdmea._extras import MissingExtraError

__all__ = ["MissingExtraError"]

"""The tile width shared by the electrical-image kernels and their wrapper (a leaf: it imports nothing)."""

#: channels per tile of the filtered buffer and of the sums (16 float32: one 64-byte cache line);
#: the kernels of :mod:`h5stream.kernels._numba_eimage` are compiled with it
TILE = 16

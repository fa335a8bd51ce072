"""The tile width shared by the electrical-image kernel and its wrapper (a leaf: it imports nothing)."""

#: channels per tile of the sums and of the filtered scratch (32 float32: two 64-byte cache lines; 64 bytes
#: of a uint16 raw row); must equal EIM_TILE of ext/_eimage_simd.h (h5stream.kernels.eimage checks it)
TILE = 32

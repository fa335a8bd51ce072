# One pass over a unit's Peaks table of an MCS .cmtr file (the kernel of hdmea.io.cmtr).
#
# The columns arrive as strided views of the table's bytes: a record of a Peaks table is 173
# bytes, so no column is aligned.  Each element is copied out of its bytes with memcpy (never
# read through a misaligned typed pointer).  The pass holds no GIL, so the reader's read-ahead
# thread reads the next table meanwhile.

cimport numpy as cnp
from libc.math cimport INFINITY, fabs, rint
from libc.stdint cimport int8_t, int16_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcpy

cnp.import_array()

# kinds of a scalar column
cdef enum:
    SIGNED = 0
    UNSIGNED = 1
    FLOATING = 2


cdef inline int64_t _signed(const char* p, int size) noexcept nogil:
    cdef int8_t a
    cdef int16_t b
    cdef int32_t c
    cdef int64_t d
    if size == 1:
        memcpy(&a, p, 1)
        return a
    if size == 2:
        memcpy(&b, p, 2)
        return b
    if size == 4:
        memcpy(&c, p, 4)
        return c
    memcpy(&d, p, 8)
    return d


cdef inline uint64_t _unsigned(const char* p, int size) noexcept nogil:
    cdef uint8_t a
    cdef uint16_t b
    cdef uint32_t c
    cdef uint64_t d
    if size == 1:
        memcpy(&a, p, 1)
        return a
    if size == 2:
        memcpy(&b, p, 2)
        return b
    if size == 4:
        memcpy(&c, p, 4)
        return c
    memcpy(&d, p, 8)
    return d


cdef inline double _floating(const char* p, int size) noexcept nogil:
    cdef float a
    cdef double b
    if size == 4:
        memcpy(&a, p, 4)
        return a
    memcpy(&b, p, 8)
    return b


cdef inline double _as_double(const char* p, int kind, int size) noexcept nogil:
    if kind == SIGNED:
        return <double>_signed(p, size)
    if kind == UNSIGNED:
        return <double>_unsigned(p, size)
    return _floating(p, size)


cdef inline float _as_float(const char* p, int kind, int size) noexcept nogil:
    # converted straight to float32 (one rounding, as numpy's astype(float32))
    if kind == SIGNED:
        return <float>_signed(p, size)
    if kind == UNSIGNED:
        return <float>_unsigned(p, size)
    return <float>_floating(p, size)


def _kind(cnp.ndarray column, str name):
    """The kind code of a 1-d native column of a supported type; TypeError otherwise."""
    dt = column.dtype
    if column.ndim != 1 or not dt.isnative or dt.shape != () or not (
            (dt.kind in "iu" and dt.itemsize in (1, 2, 4, 8)) or (dt.kind == "f" and dt.itemsize in (4, 8))):
        raise TypeError(f"summarise_peaks: {name} must be a 1-d native column of a 1/2/4/8-byte integer type or "
                        f"float32/float64, found {dt} with shape {(<object>column).shape}")
    return SIGNED if dt.kind == "i" else UNSIGNED if dt.kind == "u" else FLOATING


def summarise_peaks(cnp.ndarray timestamps, cnp.ndarray flags, cnp.ndarray amplitudes, cnp.ndarray cutouts,
                    double factor, uint64_t[::1] samples, float[::1] amps, double[::1] sums,
                    float[::1] template=None, double bound=INFINITY, int64_t[::1] flagged=None):
    """Check every peak and summarise the included ones, in one pass (no GIL held).

    For the peaks with ``flags == 1`` (in order): ``samples[k] = rint(timestamp * factor)``,
    ``amps[k] = amplitude`` (float32), and each cutout column added to ``sums`` (float64).
    ``amplitudes`` or ``cutouts`` with no rows / no columns are skipped.  ``timestamps``,
    ``flags`` and ``amplitudes`` are 1-d native columns of 1/2/4/8-byte integers or
    float32/float64 (strided, unaligned views are read as they lie); ``cutouts`` is an
    ``(n, n_cut)`` float32 view.  With a ``template`` (``n_cut`` float32), an included row
    holding a sample more than ``bound`` off the template's (or not a number) is flagged: its
    row number goes to ``flagged`` while there is room, and every such row is counted.

    Returns ``(k, first_bad_flag, first_bad_time, first_unsorted, n_flagged)``: the included
    count; the first row whose flag is neither 0 nor 1, whose timestamp is negative or not
    finite, and whose timestamp is below the one before it (-1: none); the flagged rows.
    """
    cdef Py_ssize_t n = timestamps.shape[0] if timestamps.ndim == 1 else 0
    cdef int t_kind = _kind(timestamps, "timestamps"), f_kind = _kind(flags, "flags")
    cdef int a_kind = _kind(amplitudes, "amplitudes")
    cdef int t_size = timestamps.itemsize, f_size = flags.itemsize, a_size = amplitudes.itemsize
    if flags.shape[0] != n or samples.shape[0] < n:
        raise ValueError(f"summarise_peaks: {n} timestamps, {flags.shape[0]} flags, room for {samples.shape[0]} "
                         "samples (expected as many flags and room for every sample)")
    cdef bint with_amps = amplitudes.shape[0] == n
    if with_amps and amps.shape[0] < n:
        raise ValueError(f"summarise_peaks: {n} amplitudes but room for {amps.shape[0]}")
    if cutouts.ndim != 2 or cutouts.dtype != (<object>cnp.dtype("=f4")) or (cutouts.shape[1] and cutouts.shape[0] != n):
        raise TypeError(f"summarise_peaks: cutouts must be an (n, n_cut) native float32 view, found "
                        f"{cutouts.dtype} with shape {(<object>cutouts).shape}")
    cdef Py_ssize_t n_cut = cutouts.shape[1]
    if sums.shape[0] < n_cut:
        raise ValueError(f"summarise_peaks: {n_cut} cutout columns but room for {sums.shape[0]} sums")
    cdef bint check = template is not None and n_cut > 0
    if check and template.shape[0] != n_cut:
        raise ValueError(f"summarise_peaks: {n_cut} cutout columns but a template of {template.shape[0]}")
    cdef Py_ssize_t room = flagged.shape[0] if flagged is not None else 0
    cdef Py_ssize_t n_flagged = 0
    cdef bint off
    cdef const char* tp = <const char*>cnp.PyArray_DATA(timestamps)
    cdef const char* fp = <const char*>cnp.PyArray_DATA(flags)
    cdef const char* ap = <const char*>cnp.PyArray_DATA(amplitudes)
    cdef const char* cp = <const char*>cnp.PyArray_DATA(cutouts)
    cdef Py_ssize_t t_stride = timestamps.strides[0], f_stride = flags.strides[0]
    cdef Py_ssize_t a_stride = amplitudes.strides[0] if amplitudes.shape[0] else 0
    cdef Py_ssize_t c_row = cutouts.strides[0], c_col = cutouts.strides[1]
    cdef Py_ssize_t i, j, k = 0, bad_flag = -1, bad_time = -1, unsorted = -1
    cdef int64_t ti = 0, prev_i = 0
    cdef uint64_t tu = 0, prev_u = 0
    cdef double tf = 0.0, prev_f = 0.0, flag
    cdef float value
    cdef bint valid, below
    with nogil:
        for i in range(n):
            if t_kind == SIGNED:
                ti = _signed(tp + i * t_stride, t_size)
                tf = <double>ti
                below = ti < prev_i
                prev_i = ti
            elif t_kind == UNSIGNED:
                tu = _unsigned(tp + i * t_stride, t_size)
                tf = <double>tu
                below = tu < prev_u
                prev_u = tu
            else:
                tf = _floating(tp + i * t_stride, t_size)
                below = tf < prev_f
                prev_f = tf
            flag = _as_double(fp + i * f_stride, f_kind, f_size)
            if bad_flag < 0 and flag != 0.0 and flag != 1.0:
                bad_flag = i
            valid = tf >= 0.0 and tf - tf == 0.0
            if bad_time < 0 and not valid:
                bad_time = i
            if unsorted < 0 and i > 0 and below:
                unsorted = i
            if flag == 1.0:
                samples[k] = <uint64_t>rint(tf * factor) if valid else 0
                if with_amps:
                    amps[k] = _as_float(ap + i * a_stride, a_kind, a_size)
                off = False
                if check:
                    for j in range(n_cut):
                        memcpy(&value, cp + i * c_row + j * c_col, 4)
                        sums[j] += <double>value
                        if not (fabs(<double>value - <double>template[j]) <= bound):  # NaN: off
                            off = True
                else:
                    for j in range(n_cut):
                        memcpy(&value, cp + i * c_row + j * c_col, 4)
                        sums[j] += <double>value
                if off:
                    if n_flagged < room:
                        flagged[n_flagged] = i
                    n_flagged += 1
                k += 1
    return k, bad_flag, bad_time, unsorted, n_flagged


cdef inline void _gather(const char* src, char* dst, Py_ssize_t n, Py_ssize_t k, Py_ssize_t stride,
                         Py_ssize_t size) noexcept nogil:
    # record by record (each read in order), its fields scattered to the k rows of dst: the k rows' current
    # cache lines stay in L1 while they fill (a lab Peaks table's 40 float32 cutout samples: 2.5 KiB).
    # Field by field over blocks of records instead reads each record's line once per field: 1.7-2x the
    # time on 120 lab-sized tables, this pass 0.85x of numpy's gather then transpose
    cdef Py_ssize_t i, j
    cdef const char* s
    if size == 4:
        for i in range(n):
            s = src + i * stride
            for j in range(k):
                memcpy(dst + (j * n + i) * 4, s + j * 4, 4)
    elif size == 8:
        for i in range(n):
            s = src + i * stride
            for j in range(k):
                memcpy(dst + (j * n + i) * 8, s + j * 8, 8)
    else:
        for i in range(n):
            s = src + i * stride
            for j in range(k):
                memcpy(dst + (j * n + i) * size, s + j * size, size)


def gather_fields(cnp.ndarray table, Py_ssize_t offset, cnp.ndarray out):
    """Copy ``k = out.shape[0]`` fields lying back to back in each record of ``table`` into the rows of
    ``out``: ``out[j, i]`` takes the ``out.itemsize`` bytes at ``offset + j * out.itemsize`` of record ``i``
    (no GIL held; the bytes are copied as they are, whatever their type and byte order).

    ``table``: a 1-d C-contiguous array of ``n`` records; ``out``: a C-contiguous ``(k, n)`` array; the
    fields must lie inside a record.
    """
    if table.ndim != 1 or not cnp.PyArray_IS_C_CONTIGUOUS(table):
        raise ValueError(f"gather_fields: the table must be a 1-d contiguous array of records, found shape "
                         f"{(<object>table).shape} (contiguous: {bool(cnp.PyArray_IS_C_CONTIGUOUS(table))})")
    cdef Py_ssize_t n = table.shape[0], stride = table.itemsize, size = out.itemsize
    if out.ndim != 2 or not cnp.PyArray_IS_C_CONTIGUOUS(out) or out.shape[1] != n:
        raise ValueError(f"gather_fields: out must be a contiguous (fields, {n}) array, found shape "
                         f"{(<object>out).shape}")
    cdef Py_ssize_t k = out.shape[0]
    if offset < 0 or size <= 0 or offset + k * size > stride:
        raise ValueError(f"gather_fields: {k} fields of {size} bytes from byte {offset} do not fit in a record "
                         f"of {stride} bytes")
    if not cnp.PyArray_ISWRITEABLE(out):
        raise ValueError("gather_fields: out is read-only")
    cdef const char* src = <const char*>cnp.PyArray_DATA(table) + offset
    cdef char* dst = <char*>cnp.PyArray_DATA(out)
    if n and k:
        with nogil:
            _gather(src, dst, n, k, stride, size)

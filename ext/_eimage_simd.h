/* Inner loops of the electrical-image kernel (ext/_eimage.pyx): float32, one tile of
 * EIM_TILE channels at a time.
 *
 * On x86-64 Linux with GCC or Clang each function is compiled twice, for AVX2 and for
 * the baseline instruction set, and the loader picks the one the CPU runs
 * (target_clones: no -march flag, so a built package runs on any x86-64 CPU).  The
 * loops are written so the compiler vectorises them across the tile's channels: the
 * filter's recursion runs along time, the channels of a row are independent.
 */
#ifndef EIM_SIMD_H
#define EIM_SIMD_H

#include <stdint.h>
#include <string.h>

/* channels per tile: 64 bytes of a uint16 raw row, filtered together */
#define EIM_TILE 32
/* channels per lane group: a tile's filtered rows are stored as EIM_TILE / EIM_LANES groups, each
 * (rows x EIM_LANES) contiguous, so that one group of a long run of rows fits the L2 cache while
 * the windows are added from it, and a unit's sums of one group (window x EIM_LANES) fit L1 while
 * that unit's windows are added */
#define EIM_LANES 16  /* 8 visited each unit's sums 4x as often (CPU per window 27-50 us against 24-30 us) */
#define EIM_GROUPS (EIM_TILE / EIM_LANES)

#if defined(__x86_64__) && defined(__linux__) && (defined(__GNUC__) || defined(__clang__)) \
    && !defined(EIM_NO_CLONES)
#define EIM_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define EIM_CLONES
#endif

#if defined(__GNUC__) || defined(__clang__)
#define EIM_RESTRICT __restrict__
#define EIM_PREFETCH(p) __builtin_prefetch(p)
#else
#define EIM_RESTRICT
#define EIM_PREFETCH(p) ((void)0)
#endif

/* Rows of a tile's raw channels lie a whole raw row apart (8450 bytes for a full chip): more
 * than a page, where the hardware prefetchers stop, so each row would wait for memory; the
 * row this many ahead is requested while the current one is filtered (both ends, a row's
 * share of a tile may straddle two cache lines).  Measured in memory, 65,536 full-chip uint16 rows,
 * one thread: 0.30 ns a sample 12 rows ahead, 0.23 at 24, 0.19 at 40, 0.17 at 64, 0.18-0.19 at 96-160. */
#define EIM_PREFETCH_ROWS 64

#if EIM_LANES % 16 != 0
#error "eim_add_windows steps through the sums 16 floats (a cache line) at a time"
#endif

#if defined(__GNUC__) || defined(__clang__)
/* eight floats as one value (a ymm register with AVX2, two xmm otherwise); loads and stores
 * through memcpy (unaligned) */
typedef float eim_v8 __attribute__((vector_size(32)));
#define EIM_LOAD8(v, p) __builtin_memcpy(&(v), (p), sizeof(eim_v8))
#define EIM_STORE8(p, v) __builtin_memcpy((p), &(v), sizeof(eim_v8))

/* One sweep over dst[0:block]: adds the k (1-4, a constant where it is inlined) windows p[0..k-1],
 * summed as (p0 + p1) + (p2 + p3), each read front to back, a cache line at a time; next (or NULL)
 * is requested a line at a time on the way, for write. */
static inline __attribute__((always_inline)) void eim_sweep(float *EIM_RESTRICT dst, const float *const *p,
                                                            int k, int64_t block, const float *next)
{
    eim_v8 s0, s1, a0, a1, b0, b1, c0, c1;
    for (int64_t j = 0; j < block; j += 16) {
        if (next != NULL)
            __builtin_prefetch(next + j, 1);
        EIM_LOAD8(a0, p[0] + j); EIM_LOAD8(a1, p[0] + j + 8);
        if (k > 1) {
            EIM_LOAD8(b0, p[1] + j); EIM_LOAD8(b1, p[1] + j + 8);
            a0 += b0; a1 += b1;
        }
        if (k > 2) {
            EIM_LOAD8(b0, p[2] + j); EIM_LOAD8(b1, p[2] + j + 8);
            if (k > 3) {
                EIM_LOAD8(c0, p[3] + j); EIM_LOAD8(c1, p[3] + j + 8);
                b0 += c0; b1 += c1;
            }
            a0 += b0; a1 += b1;
        }
        EIM_LOAD8(s0, dst + j); EIM_LOAD8(s1, dst + j + 8);
        s0 += a0; s1 += a1;
        EIM_STORE8(dst + j, s0); EIM_STORE8(dst + j + 8, s1);
    }
}
#else
/* the same sweep in plain C (other compilers), in the same order */
static void eim_sweep(float *EIM_RESTRICT dst, const float *const *p, int k, int64_t block, const float *next)
{
    (void)next;
    for (int64_t j = 0; j < block; j++) {
        float a = p[0][j];
        if (k > 1)
            a += p[1][j];
        if (k > 2) {
            float b = p[2][j];
            if (k > 3)
                b += p[3][j];
            a += b;
        }
        dst[j] += a;
    }
}
#endif

/* dst[0:block] += the sum of the n blocks buf[(rows[i] + shift) * EIM_LANES : ... + block]
 * (block: a whole number of EIM_LANES rows).  Four windows per sweep over dst, and the 1-3 left
 * over in one more sweep (a unit has about 9 windows in a sub-block at lab rates; in memory, 310
 * units of a full chip, one thread, interleaved runs: 7.59-7.77 us a window against 7.83-7.94 with
 * one sweep per leftover window); the first sweep also requests next[0:block] (the sums of the next
 * unit with windows, or NULL), so they arrive while this unit's windows are added. */
EIM_CLONES static void eim_add_windows(float *EIM_RESTRICT dst, const float *EIM_RESTRICT buf,
                                       const int64_t *rows, int64_t n, int64_t shift, int64_t block,
                                       const float *next)
{
    const float *p[4];
    for (int64_t i = 0; i < n; i += 4) {
        const int k = n - i < 4 ? (int)(n - i) : 4;
        for (int q = 0; q < k; q++)
            p[q] = buf + (rows[i + q] + shift) * EIM_LANES;
        switch (k) {  /* a constant k for each inlined sweep */
        case 4: eim_sweep(dst, p, 4, block, next); break;
        case 3: eim_sweep(dst, p, 3, block, next); break;
        case 2: eim_sweep(dst, p, 2, block, next); break;
        default: eim_sweep(dst, p, 1, block, next); break;
        }
        next = NULL;
    }
}

/* One biquad section (transposed direct form II, scipy's sosfilt convention) over n rows
 * of one tile, in place on out (EIM_GROUPS groups of rows x EIM_LANES, group_stride floats
 * apart): out = filter(out) + add.  coef holds b0 b1 b2 a1 a2; z1, z2 the tile's two delays
 * (EIM_TILE each), updated. */
EIM_CLONES static void eim_biquad_tile(float *EIM_RESTRICT out, int64_t group_stride, int64_t n,
                                       const float *coef, float *EIM_RESTRICT z1g, float *EIM_RESTRICT z2g,
                                       const float *EIM_RESTRICT add)
{
    float z1[EIM_TILE], z2[EIM_TILE], ad[EIM_TILE];
    const float b0 = coef[0], b1 = coef[1], b2 = coef[2], a1 = coef[3], a2 = coef[4];
    memcpy(z1, z1g, sizeof z1);
    memcpy(z2, z2g, sizeof z2);
    memcpy(ad, add, sizeof ad);
    for (int64_t t = 0; t < n; t++) {
        for (int g = 0; g < EIM_GROUPS; g++) {
            float *EIM_RESTRICT o = out + g * group_stride + t * EIM_LANES;
            for (int l = 0; l < EIM_LANES; l++) {
                const int j = g * EIM_LANES + l;
                const float x = o[l];
                const float y = b0 * x + z1[j];
                z1[j] = b1 * x - a1 * y + z2[j];
                z2[j] = b2 * x - a2 * y;
                o[l] = y + ad[j];
            }
        }
    }
    memcpy(z1g, z1, sizeof z1);
    memcpy(z2g, z2, sizeof z2);
}

/* The first section, straight from the raw rows: x = ((float)raw - base) * gain, then as
 * eim_biquad_tile (out in groups, group_stride floats apart).  raw points at the tile's first
 * channel of the first row, rows are row_stride elements apart; width (<= EIM_TILE) channels
 * are real, the lanes past them are written as zeros.  One function per raw type. */
#define EIM_FIRST_SECTION(NAME, T)                                                                     \
    EIM_CLONES static void NAME(const T *raw, int64_t row_stride, int64_t n, int width,               \
                                const float *EIM_RESTRICT base, float gain, const float *coef,        \
                                float *EIM_RESTRICT z1g, float *EIM_RESTRICT z2g,                     \
                                const float *EIM_RESTRICT add, float *EIM_RESTRICT out,               \
                                int64_t group_stride)                                                  \
    {                                                                                                  \
        float z1[EIM_TILE], z2[EIM_TILE], ad[EIM_TILE], bs[EIM_TILE];                                  \
        const float b0 = coef[0], b1 = coef[1], b2 = coef[2], a1 = coef[3], a2 = coef[4];             \
        memcpy(z1, z1g, sizeof z1);                                                                    \
        memcpy(z2, z2g, sizeof z2);                                                                    \
        memcpy(ad, add, sizeof ad);                                                                    \
        memcpy(bs, base, sizeof bs);                                                                   \
        if (width == EIM_TILE) {                                                                       \
            for (int64_t t = 0; t < n; t++) {                                                          \
                const T *row = raw + t * row_stride;                                                   \
                if (t + EIM_PREFETCH_ROWS < n) {                                                       \
                    EIM_PREFETCH(row + EIM_PREFETCH_ROWS * row_stride);                                \
                    EIM_PREFETCH(row + EIM_PREFETCH_ROWS * row_stride + EIM_TILE - 1);                 \
                }                                                                                      \
                for (int g = 0; g < EIM_GROUPS; g++) {                                                 \
                    float *EIM_RESTRICT o = out + g * group_stride + t * EIM_LANES;                    \
                    for (int l = 0; l < EIM_LANES; l++) {                                              \
                        const int j = g * EIM_LANES + l;                                               \
                        const float x = ((float)row[j] - bs[j]) * gain;                                \
                        const float y = b0 * x + z1[j];                                                \
                        z1[j] = b1 * x - a1 * y + z2[j];                                               \
                        z2[j] = b2 * x - a2 * y;                                                       \
                        o[l] = y + ad[j];                                                              \
                    }                                                                                  \
                }                                                                                      \
            }                                                                                          \
        } else {                                                                                       \
            for (int64_t t = 0; t < n; t++) {                                                          \
                const T *row = raw + t * row_stride;                                                   \
                for (int j = 0; j < EIM_TILE; j++) {                                                   \
                    float *o = out + (j / EIM_LANES) * group_stride + t * EIM_LANES + j % EIM_LANES;   \
                    if (j < width) {                                                                   \
                        const float x = ((float)row[j] - bs[j]) * gain;                                \
                        const float y = b0 * x + z1[j];                                                \
                        z1[j] = b1 * x - a1 * y + z2[j];                                               \
                        z2[j] = b2 * x - a2 * y;                                                       \
                        *o = y + ad[j];                                                                \
                    } else {                                                                           \
                        *o = 0.0f;                                                                     \
                    }                                                                                  \
                }                                                                                      \
            }                                                                                          \
        }                                                                                              \
        memcpy(z1g, z1, sizeof z1);                                                                    \
        memcpy(z2g, z2, sizeof z2);                                                                    \
    }

EIM_FIRST_SECTION(eim_first_u16, uint16_t)
EIM_FIRST_SECTION(eim_first_i16, int16_t)
EIM_FIRST_SECTION(eim_first_i32, int32_t)
EIM_FIRST_SECTION(eim_first_f32, float)
EIM_FIRST_SECTION(eim_first_f64, double)

#endif

/* Inner loop of the spike-triggered sums (ext/_sta.pyx): one unit's accumulator plus up to
 * four weighted windows of the movie, float32 or float64.
 *
 * On x86-64 Linux with GCC or Clang the loop is compiled twice, for AVX2 and for the
 * baseline instruction set, and the loader picks the one the CPU runs (target_clones: no
 * -march flag, so a built package runs on any x86-64 CPU).  The "_base" functions are the
 * same loop compiled for the baseline only, so that a test can hold the two against each
 * other on one machine.
 *
 * Rounding: both builds compute acc + ((wa*a + wb*b) + (wc*c + wd*d)) with one rounding per
 * operation, in this order.  Neither target enables FMA ("avx2" does not imply "fma"), so no
 * multiply-add can be contracted into a fused one, and the vectorised loop adds lane by lane
 * (no reassociation), so the AVX2 sums equal the baseline sums bit for bit.
 */
#ifndef STA_SIMD_H
#define STA_SIMD_H

#include <stdint.h>

#if defined(__x86_64__) && defined(__linux__) && (defined(__GNUC__) || defined(__clang__)) \
    && !defined(STA_NO_CLONES)
#define STA_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define STA_CLONES
#endif

#if defined(__GNUC__) || defined(__clang__)
#define STA_RESTRICT __restrict__
#define STA_INLINE static inline __attribute__((always_inline))
#else
#define STA_RESTRICT
#define STA_INLINE static inline
#endif

#if defined(__clang__)
/* Clang contracts a*b + c into an FMA only where the target has one and this is on; keep it off */
#pragma STDC FP_CONTRACT OFF
#endif

/* acc[0:block] += sum_j weights[j] * flat[starts[j] : starts[j] + block], n (1-4) windows.  Four
 * windows per pass read and write the accumulator (often larger than L1) once per four frames. */
#define STA_DEFINE(T, BODY, CLONED, BASE)                                                              \
    STA_INLINE void BODY(const T *STA_RESTRICT flat, int64_t block, T *STA_RESTRICT acc,                \
                         const int64_t *starts, const T *weights, int n)                                \
    {                                                                                                  \
        if (n == 4) {                                                                                  \
            const T *STA_RESTRICT a = flat + starts[0];                                                \
            const T *STA_RESTRICT b = flat + starts[1];                                                \
            const T *STA_RESTRICT c = flat + starts[2];                                                \
            const T *STA_RESTRICT d = flat + starts[3];                                                \
            const T wa = weights[0], wb = weights[1], wc = weights[2], wd = weights[3];                \
            for (int64_t k = 0; k < block; k++)                                                        \
                acc[k] += (wa * a[k] + wb * b[k]) + (wc * c[k] + wd * d[k]);                           \
            return;                                                                                    \
        }                                                                                              \
        for (int j = 0; j < n; j++) {                                                                  \
            const T *STA_RESTRICT a = flat + starts[j];                                                \
            const T wa = weights[j];                                                                   \
            for (int64_t k = 0; k < block; k++)                                                        \
                acc[k] += wa * a[k];                                                                   \
        }                                                                                              \
    }                                                                                                  \
    STA_CLONES static void CLONED(const T *flat, int64_t block, T *acc, const int64_t *starts,        \
                                  const T *weights, int n)                                             \
    {                                                                                                  \
        BODY(flat, block, acc, starts, weights, n);                                                    \
    }                                                                                                  \
    static void BASE(const T *flat, int64_t block, T *acc, const int64_t *starts, const T *weights,    \
                     int n)                                                                            \
    {                                                                                                  \
        BODY(flat, block, acc, starts, weights, n);                                                    \
    }

STA_DEFINE(float, sta_add_windows_f32_body, sta_add_windows_f32, sta_add_windows_f32_base)
STA_DEFINE(double, sta_add_windows_f64_body, sta_add_windows_f64, sta_add_windows_f64_base)

#undef STA_DEFINE

#endif

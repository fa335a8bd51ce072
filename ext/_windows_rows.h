/* The inner loop of the window kernel (ext/_windows.pyx): one row's values against four window edges.
 *
 * win_below_<type>(p, n, start, scale, edges, under) adds to under[k] (k < 4) how many of the row's
 * x = ((double)p[i] - start) * scale lie below edges[k] (x < edges[k]; a NaN edge has none), every x
 * compared with the four edges at once (no branch on the values), and returns whether p[0:n] never falls
 * (1 for fewer than two values; 0 when a value is NaN and the row holds two or more).  The conversion is
 * C's, as numpy's cast converts; the subtraction and product are done in that order in double precision.
 *
 * On x86-64 Linux with GCC or Clang each function is compiled twice, for AVX2 and for the baseline
 * instruction set, and the loader picks the one the CPU runs (target_clones, as in _eimage_simd.h).
 * Other compilers (or WIN_SCALAR defined) compare one edge at a time.
 */
#ifndef WIN_ROWS_H
#define WIN_ROWS_H

#include <stdint.h>

#if defined(__x86_64__) && defined(__linux__) && (defined(__GNUC__) || defined(__clang__)) \
    && !defined(WIN_NO_CLONES)
#define WIN_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define WIN_CLONES
#endif

#if (defined(__GNUC__) || defined(__clang__)) && !defined(WIN_SCALAR)
/* four doubles and four int64 as one value each (a ymm register with AVX2, two xmm otherwise); a
 * comparison of two double vectors gives -1 where it holds, 0 elsewhere */
typedef double win_d4 __attribute__((vector_size(32)));
typedef int64_t win_i4 __attribute__((vector_size(32)));

#define WIN_BELOW(NAME, T)                                                                             \
    WIN_CLONES int NAME(const T *p, int64_t n, double start, double scale, const double *edges,       \
                        int64_t *under) {                                                             \
        win_d4 e = {edges[0], edges[1], edges[2], edges[3]};                                          \
        win_i4 count = {0, 0, 0, 0};                                                                  \
        int rising = 1;                                                                               \
        T previous = n > 0 ? p[0] : (T)0;                                                             \
        for (int64_t i = 0; i < n; i++) {                                                             \
            T v = p[i];                                                                               \
            rising &= previous <= v;                                                                  \
            previous = v;                                                                             \
            double x = ((double)v - start) * scale;                                                   \
            win_d4 xs = {x, x, x, x};                                                                 \
            count -= (win_i4)(xs < e);                                                                \
        }                                                                                             \
        under[0] += count[0];                                                                         \
        under[1] += count[1];                                                                         \
        under[2] += count[2];                                                                         \
        under[3] += count[3];                                                                         \
        return rising;                                                                                \
    }
#else
#define WIN_BELOW(NAME, T)                                                                             \
    static int NAME(const T *p, int64_t n, double start, double scale, const double *edges,           \
                    int64_t *under) {                                                                 \
        int rising = 1;                                                                               \
        T previous = n > 0 ? p[0] : (T)0;                                                             \
        for (int64_t i = 0; i < n; i++) {                                                             \
            T v = p[i];                                                                               \
            rising &= previous <= v;                                                                  \
            previous = v;                                                                             \
            double x = ((double)v - start) * scale;                                                   \
            for (int k = 0; k < 4; k++)                                                               \
                under[k] += x < edges[k];                                                             \
        }                                                                                             \
        return rising;                                                                                \
    }
#endif

WIN_BELOW(win_below_i64, int64_t)
WIN_BELOW(win_below_u64, uint64_t)
WIN_BELOW(win_below_f64, double)

#endif

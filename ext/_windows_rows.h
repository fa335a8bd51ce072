/* The inner loop of the window kernel (ext/_windows.pyx): one row's values against four window edges.
 *
 * win_below_<type>(p, n, start, scale, edges, under) adds to under[k] (k < 4) how many of the row's
 * x = ((double)p[i] - start) * scale lie below edges[k] (x < edges[k]; a NaN edge has none), and returns
 * whether p[0:n] never falls (each value compared with the one before it, p[0] with itself: 0 when a value
 * is NaN).  The conversion is C's, as numpy's cast converts; the subtraction and product are done in that
 * order in double precision.
 *
 * A row of five values or more is read four values a pass, each lane's x computed as one value's and
 * compared with every edge, no branch on the values or on where the row ends: the passes' counts are those of
 * one value at a time.  Four whole numbers are made doubles at once where they lie in [0, 2**52) (every
 * sample index), exactly; a row holding any other is read again one value at a time, as a shorter row is.
 *
 * On x86-64 Linux with GCC or Clang each function is compiled twice, for AVX2 and for the baseline
 * instruction set (four lanes as two SSE2 halves: several times slower), and win_choose() picks the one the
 * CPU runs, once per kernel call, from glibc's table of the CPU's features (glibc 2.33 and later;
 * __builtin_cpu_supports before).  Not target_clones: its resolvers run when the module is loaded and ask
 * the CPU itself (CPUID, an exit to the hypervisor in a virtual machine, some microseconds each, tens of them),
 * where glibc read the CPU's features once when the process started.
 * Other compilers (or WIN_SCALAR defined) compare one value with one edge at a time.
 */
#ifndef WIN_ROWS_H
#define WIN_ROWS_H

#include <stdint.h>

#if defined(__x86_64__) && defined(__linux__) && (defined(__GNUC__) || defined(__clang__)) \
    && !defined(WIN_NO_CLONES) && !defined(WIN_SCALAR)
#define WIN_AVX2_TWIN 1
#if defined(__has_include)
#if __has_include(<sys/platform/x86.h>)
#include <sys/platform/x86.h>
#define WIN_CPU_AVX2() CPU_FEATURE_ACTIVE(AVX2)
#endif
#endif
#ifndef WIN_CPU_AVX2
#define WIN_CPU_AVX2() (__builtin_cpu_init(), __builtin_cpu_supports("avx2"))
#endif
/* whether the rows are read by the AVX2 twins: set by win_choose() (with the GIL held, before a kernel's
 * threads start), read by every row */
static int win_use_avx2 = 0;
static void win_choose(void) {
    static int known = -1;
    if (known < 0)
        known = WIN_CPU_AVX2() ? 1 : 0;
    win_use_avx2 = known;
}
#else
static void win_choose(void) {}
#endif

#if (defined(__GNUC__) || defined(__clang__)) && !defined(WIN_SCALAR)
/* four values as one (a ymm register with AVX2, two xmm otherwise); a comparison of two vectors gives -1
 * in each lane where it holds, 0 elsewhere */
typedef double win_d4 __attribute__((vector_size(32)));
typedef int64_t win_i4 __attribute__((vector_size(32)));
typedef uint64_t win_u4 __attribute__((vector_size(32)));

/* 2**52 as a double and its bits: a whole number v in [0, 2**52) or'ed into those bits is the double
 * 2**52 + v, and that less 2**52 is v, both exactly (the double C's conversion gives; AVX2 converts no
 * four int64 at once) */
#define WIN_TWO52 4503599627370496.0
#define WIN_TWO52_BITS 0x4330000000000000LL

/* A value type's four values as doubles (`high` gains the bits that tell a value outside [0, 2**52): such a
 * row is counted again one value at a time), and the lanes where a value falls below the one before it (a
 * NaN double neither rises nor stays). */
#define WIN_AS_D4_i64(v, high) (high |= (v), (win_d4)((v) | WIN_TWO52_BITS) - WIN_TWO52)
#define WIN_AS_D4_u64(v, high) (high |= (win_i4)(v), (win_d4)((v) | (uint64_t)WIN_TWO52_BITS) - WIN_TWO52)
#define WIN_AS_D4_f64(v, high) (v)
#define WIN_FELL_i64(previous, v) ((win_i4)((previous) > (v)))
#define WIN_FELL_u64(previous, v) ((win_i4)((previous) > (v)))
#define WIN_FELL_f64(previous, v) ((win_i4)(~((previous) <= (v))))

/* One value at a time (rows of fewer than five values, and rows holding a value outside [0, 2**52)). */
#define WIN_EACH(NAME, T)                                                                              \
    static int NAME##_each(const T *p, int64_t n, double start, double scale, const double *edges,    \
                           int64_t *under) {                                                          \
        int rising = 1;                                                                               \
        int64_t u[4] = {0, 0, 0, 0};                                                                  \
        T previous = n > 0 ? p[0] : (T)0;                                                             \
        for (int64_t i = 0; i < n; i++) {                                                             \
            T v = p[i];                                                                               \
            rising &= previous <= v;                                                                  \
            previous = v;                                                                             \
            double x = ((double)v - start) * scale;                                                   \
            for (int k = 0; k < 4; k++)                                                               \
                u[k] += x < edges[k];                                                                 \
        }                                                                                             \
        for (int k = 0; k < 4; k++)                                                                   \
            under[k] += u[k];                                                                         \
        return rising;                                                                                \
    }

/* Four values a pass, each lane's x computed as one value's (the conversion, less start, times scale, in
 * that order) and compared with every edge: p[0] alone (compared with itself for the rise), then p[1:], the
 * last pass taking the last four values, its lanes already counted masked out; no branch on the values or
 * on the row's length past the passes' loop. */
#define WIN_VECTOR(NAME, EACH, T, VT, SUFFIX, ATTRS)                                                   \
    ATTRS __attribute__((noinline)) static int NAME(const T *p, int64_t n, double start, double scale, \
                                                    const double *edges, int64_t *under) {            \
        if (n < 5)                                                                                    \
            return EACH(p, n, start, scale, edges, under);                                            \
        win_d4 e0 = {edges[0], edges[0], edges[0], edges[0]};                                         \
        win_d4 e1 = {edges[1], edges[1], edges[1], edges[1]};                                         \
        win_d4 e2 = {edges[2], edges[2], edges[2], edges[2]};                                         \
        win_d4 e3 = {edges[3], edges[3], edges[3], edges[3]};                                         \
        win_d4 starts = {start, start, start, start};                                                 \
        win_d4 scales = {scale, scale, scale, scale};                                                 \
        win_i4 c0 = {0, 0, 0, 0}, c1 = c0, c2 = c0, c3 = c0, fell = c0, high = c0;                    \
        VT v, previous;                                                                               \
        win_d4 x;                                                                                     \
        int64_t i;                                                                                    \
        (void)high;                                                                                   \
        for (i = 1; i + 4 <= n; i += 4) {                                                             \
            __builtin_memcpy(&v, p + i, sizeof v);                                                    \
            __builtin_memcpy(&previous, p + i - 1, sizeof previous);                                  \
            fell |= WIN_FELL_##SUFFIX(previous, v);                                                   \
            x = (WIN_AS_D4_##SUFFIX(v, high) - starts) * scales;                                      \
            c0 -= (win_i4)(x < e0);                                                                   \
            c1 -= (win_i4)(x < e1);                                                                   \
            c2 -= (win_i4)(x < e2);                                                                   \
            c3 -= (win_i4)(x < e3);                                                                   \
        }                                                                                             \
        /* the last four values, the lanes of p[:i] (counted above) masked out (all of them when i == n) */ \
        win_i4 lane = {n - 4, n - 3, n - 2, n - 1};                                                   \
        win_i4 mask = (win_i4)(lane >= i);                                                            \
        __builtin_memcpy(&v, p + n - 4, sizeof v);                                                    \
        __builtin_memcpy(&previous, p + n - 5, sizeof previous);                                      \
        fell |= WIN_FELL_##SUFFIX(previous, v) & mask;                                                \
        x = (WIN_AS_D4_##SUFFIX(v, high) - starts) * scales;                                          \
        c0 -= (win_i4)(x < e0) & mask;                                                                \
        c1 -= (win_i4)(x < e1) & mask;                                                                \
        c2 -= (win_i4)(x < e2) & mask;                                                                \
        c3 -= (win_i4)(x < e3) & mask;                                                                \
        if ((uint64_t)(high[0] | high[1] | high[2] | high[3]) >> 52) /* a value outside [0, 2**52) */ \
            return EACH(p, n, start, scale, edges, under);                                            \
        /* p[0], compared with itself for the rise (a NaN neither rises nor stays) */                 \
        double x0 = ((double)p[0] - start) * scale;                                                   \
        int64_t u0 = c0[0] + c0[1] + c0[2] + c0[3] + (x0 < edges[0]);                                 \
        int64_t u1 = c1[0] + c1[1] + c1[2] + c1[3] + (x0 < edges[1]);                                 \
        int64_t u2 = c2[0] + c2[1] + c2[2] + c2[3] + (x0 < edges[2]);                                 \
        int64_t u3 = c3[0] + c3[1] + c3[2] + c3[3] + (x0 < edges[3]);                                 \
        under[0] += u0;                                                                               \
        under[1] += u1;                                                                               \
        under[2] += u2;                                                                               \
        under[3] += u3;                                                                               \
        return (p[0] <= p[0]) & !(fell[0] | fell[1] | fell[2] | fell[3]);                             \
    }

#ifdef WIN_AVX2_TWIN
/* the AVX2 twin and the baseline one, the row read by the one win_choose() picked (neither inlined: the
 * baseline one inlined into the kernel's row loop made that loop slower) */
#define WIN_BELOW(NAME, T, VT, SUFFIX)                                                                 \
    WIN_EACH(NAME, T)                                                                                 \
    WIN_VECTOR(NAME##_avx2, NAME##_each, T, VT, SUFFIX, __attribute__((target("avx2"))))              \
    WIN_VECTOR(NAME##_base, NAME##_each, T, VT, SUFFIX, )                                             \
    static inline int NAME(const T *p, int64_t n, double start, double scale, const double *edges,    \
                           int64_t *under) {                                                          \
        return win_use_avx2 ? NAME##_avx2(p, n, start, scale, edges, under)                          \
                            : NAME##_base(p, n, start, scale, edges, under);                          \
    }
#else
#define WIN_BELOW(NAME, T, VT, SUFFIX)                                                                 \
    WIN_EACH(NAME, T)                                                                                 \
    WIN_VECTOR(NAME, NAME##_each, T, VT, SUFFIX, )
#endif

WIN_BELOW(win_below_i64, int64_t, win_i4, i64)
WIN_BELOW(win_below_u64, uint64_t, win_u4, u64)
WIN_BELOW(win_below_f64, double, win_d4, f64)
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

WIN_BELOW(win_below_i64, int64_t)
WIN_BELOW(win_below_u64, uint64_t)
WIN_BELOW(win_below_f64, double)
#endif

#endif

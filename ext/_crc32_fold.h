/* CRC-32 (zlib's polynomial and value) of long runs by carry-less multiplication on 512-bit
 * registers (AVX-512 with VPCLMULQDQ), for the whole reads of ext/_h5dsets.pyx (read_checked).
 *
 * The message is folded 64 bytes per lane, four registers at a time: a 128-bit lane A = H x^64 + L
 * (H its first 8 bytes: the reflected order puts the first bits at the highest degrees) standing D
 * bits before the data it is added to is replaced by H * (x^(D+32) mod P) + L * (x^(D-32) mod P),
 * which leaves the message's remainder modulo P unchanged (the constants are bit-reflected and
 * shifted left by one, the product of two reflected 64-bit values being one degree short).  The
 * 128 bits left at the end are a message of the same remainder: the CRC of those 16 bytes, then of
 * the last bytes (fewer than 16), is taken by the caller's own CRC function, so no final reduction
 * is written here.  The running CRC enters as zlib's does: its complement XORed into the first four
 * bytes.  The constants (D = 2048, 512 and 128 bits) are computed from P = 0x104C11DB7.
 *
 * On other machines, compilers or CPUs h5s_crc32_fold_available() is 0 and the caller keeps its own
 * CRC function.  Measured on the 2-core AMD EPYC (Zen 4) machine, 140 MB in memory, load 9-10: 8.4 ms
 * here against 14-25 ms with libdeflate 1.14's CRC-32 (PCLMULQDQ on 128 bits) and 69 ms with zlib's.
 */
#ifndef H5S_CRC32_FOLD_H
#define H5S_CRC32_FOLD_H

#include <stddef.h>
#include <stdint.h>

typedef unsigned long (*h5s_crc_fn)(unsigned long, const char *, size_t);

/* below this many bytes the caller's CRC function is used as it is */
#define H5S_FOLD_MIN 256

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(H5S_NO_FOLD)
#include <immintrin.h>

#define H5S_FOLD_TARGET __attribute__((target("avx512f,avx512vl,vpclmulqdq,pclmul,sse4.1")))

static int h5s_crc32_fold_available(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl")
           && __builtin_cpu_supports("vpclmulqdq") && __builtin_cpu_supports("pclmul");
}

/* each 128-bit lane of a, moved D bits on (k: x^(D+32), x^(D-32) mod P in each lane), XOR next */
H5S_FOLD_TARGET static inline __m512i h5s_fold512(__m512i a, __m512i k, __m512i next)
{
    return _mm512_ternarylogic_epi64(_mm512_clmulepi64_epi128(a, k, 0x00), _mm512_clmulepi64_epi128(a, k, 0x11),
                                     next, 0x96);
}

H5S_FOLD_TARGET static inline __m128i h5s_fold128(__m128i a, __m128i k, __m128i next)
{
    return _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(a, k, 0x00), _mm_clmulepi64_si128(a, k, 0x11)), next);
}

/* zlib's crc32(crc, p, n) for n >= H5S_FOLD_MIN; `scalar` (the same value as zlib's) takes the last bytes */
H5S_FOLD_TARGET static unsigned long h5s_crc32_fold(unsigned long crc, const unsigned char *p, size_t n,
                                                    h5s_crc_fn scalar)
{
    const __m512i k2048 = _mm512_broadcast_i32x4(_mm_set_epi64x(0x1322d1430LL, 0x11542778aLL));
    const __m512i k512 = _mm512_broadcast_i32x4(_mm_set_epi64x(0x1c6e41596LL, 0x154442bd4LL));
    const __m128i k128 = _mm_set_epi64x(0x0ccaa009eLL, 0x1751997d0LL);
    __m512i x0, x1, x2, x3;
    __m128i a;
    unsigned char rest[16];

    x0 = _mm512_xor_si512(_mm512_loadu_si512((const void *)p),
                          _mm512_set_epi32(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                           (int)(uint32_t)~(uint32_t)crc));
    x1 = _mm512_loadu_si512((const void *)(p + 64));
    x2 = _mm512_loadu_si512((const void *)(p + 128));
    x3 = _mm512_loadu_si512((const void *)(p + 192));
    p += 256;
    n -= 256;
    while (n >= 256) {
        x0 = h5s_fold512(x0, k2048, _mm512_loadu_si512((const void *)p));
        x1 = h5s_fold512(x1, k2048, _mm512_loadu_si512((const void *)(p + 64)));
        x2 = h5s_fold512(x2, k2048, _mm512_loadu_si512((const void *)(p + 128)));
        x3 = h5s_fold512(x3, k2048, _mm512_loadu_si512((const void *)(p + 192)));
        p += 256;
        n -= 256;
    }
    x1 = h5s_fold512(x0, k512, x1);
    x2 = h5s_fold512(x1, k512, x2);
    x0 = h5s_fold512(x2, k512, x3);
    while (n >= 64) {
        x0 = h5s_fold512(x0, k512, _mm512_loadu_si512((const void *)p));
        p += 64;
        n -= 64;
    }
    a = _mm512_extracti32x4_epi32(x0, 0);
    a = h5s_fold128(a, k128, _mm512_extracti32x4_epi32(x0, 1));
    a = h5s_fold128(a, k128, _mm512_extracti32x4_epi32(x0, 2));
    a = h5s_fold128(a, k128, _mm512_extracti32x4_epi32(x0, 3));
    while (n >= 16) {
        a = h5s_fold128(a, k128, _mm_loadu_si128((const __m128i *)p));
        p += 16;
        n -= 16;
    }
    _mm_storeu_si128((__m128i *)rest, a);
    crc = scalar(0xFFFFFFFFUL, (const char *)rest, 16);
    return scalar(crc, (const char *)p, n);
}

#else

static int h5s_crc32_fold_available(void) { return 0; }

static unsigned long h5s_crc32_fold(unsigned long crc, const unsigned char *p, size_t n, h5s_crc_fn scalar)
{
    return scalar(crc, (const char *)p, n);
}

#endif

#endif

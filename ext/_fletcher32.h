#include <stdint.h>
#include <stddef.h>
/* HDF5's Fletcher32 (H5_checksum_fletcher32): big-endian 16-bit words, an odd last byte is
   the high byte of a word, each sum folded with end-around carry (0 only for all-zero data).
   The words go to 16 lanes of 32-bit sums: per block of m <= 256 rows of 16 words, lane k holds
   a1 = the sum of its words and a2 = the sum of (m - j) * (its word of row j), so the block adds
   sum(a1) to sum1 and sum(16 * a2 - k * a1) to sum2 (word i of an n-word block weighs n - i in
   sum2).  a2 <= 256 * 257 / 2 * 65535 < 2**32.  An AVX2 version is used when the CPU has it. */
#define H5S_F32_ROWS 256

static void h5s_f32_finish_block(const uint32_t *a1, const uint32_t *a2, const unsigned char *lane_word,
                                 size_t m, uint64_t *s1, uint64_t *s2, uint64_t *seen) {
    uint64_t b1 = 0, b2 = 0;
    size_t l;
    for (l = 0; l < 16; l++) {
        b1 += a1[l];
        b2 += 16 * (uint64_t)a2[l] - (uint64_t)lane_word[l] * a1[l];
    }
    *seen |= b1;
    *s2 = (*s2 + ((uint64_t)(16 * m) % 65535) * *s1 + b2) % 65535;
    *s1 = (*s1 + b1) % 65535;
}

static size_t h5s_f32_blocks_portable(const unsigned char *data, size_t n_rows,
                                      uint64_t *s1, uint64_t *s2, uint64_t *seen) {
    static const unsigned char lane_word[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
    size_t done = 0, j, k;
    while (done < n_rows) {
        uint32_t a1[16], a2[16];
        size_t m = n_rows - done < H5S_F32_ROWS ? n_rows - done : H5S_F32_ROWS;
        const unsigned char *p = data + 32 * done;
        for (k = 0; k < 16; k++) { a1[k] = 0; a2[k] = 0; }
        for (j = 0; j < m; j++) {
            const unsigned char *row = p + 32 * j;
            for (k = 0; k < 16; k++) {
                a1[k] += ((uint32_t)row[2 * k] << 8) | (uint32_t)row[2 * k + 1];
                a2[k] += a1[k];
            }
        }
        h5s_f32_finish_block(a1, a2, lane_word, m, s1, s2, seen);
        done += m;
    }
    return done;
}

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define H5S_F32_AVX2 1
__attribute__((target("avx2")))
static size_t h5s_f32_blocks_avx2(const unsigned char *data, size_t n_rows,
                                  uint64_t *s1, uint64_t *s2, uint64_t *seen) {
    /* unpacklo/hi work within 128-bit halves: the lanes hold words 0-3, 8-11 and 4-7, 12-15 */
    static const unsigned char lane_word[16] = {0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 12, 13, 14, 15};
    const __m256i swap = _mm256_setr_epi8(1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14,
                                          1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14);
    const __m256i zero = _mm256_setzero_si256();
    size_t done = 0, j;
    while (done < n_rows) {
        uint32_t a1[16], a2[16];
        size_t m = n_rows - done < H5S_F32_ROWS ? n_rows - done : H5S_F32_ROWS;
        const unsigned char *p = data + 32 * done;
        __m256i a1_lo = zero, a1_hi = zero, a2_lo = zero, a2_hi = zero;
        for (j = 0; j < m; j++) {
            __m256i w = _mm256_shuffle_epi8(_mm256_loadu_si256((const __m256i *)(p + 32 * j)), swap);
            a1_lo = _mm256_add_epi32(a1_lo, _mm256_unpacklo_epi16(w, zero));
            a1_hi = _mm256_add_epi32(a1_hi, _mm256_unpackhi_epi16(w, zero));
            a2_lo = _mm256_add_epi32(a2_lo, a1_lo);
            a2_hi = _mm256_add_epi32(a2_hi, a1_hi);
        }
        _mm256_storeu_si256((__m256i *)a1, a1_lo);
        _mm256_storeu_si256((__m256i *)(a1 + 8), a1_hi);
        _mm256_storeu_si256((__m256i *)a2, a2_lo);
        _mm256_storeu_si256((__m256i *)(a2 + 8), a2_hi);
        h5s_f32_finish_block(a1, a2, lane_word, m, s1, s2, seen);
        done += m;
    }
    return done;
}
#endif

/* vector: 1 uses AVX2 when the CPU has it, 0 the portable loop */
static uint32_t h5s_fletcher32_with(const unsigned char *data, size_t len, int vector) {
    size_t n_words = len / 2, i;
    uint64_t s1 = 0, s2 = 0, seen = 0;
#ifdef H5S_F32_AVX2
    static int avx2 = -1;
    if (avx2 < 0) avx2 = __builtin_cpu_supports("avx2") ? 1 : 0;
    if (vector && avx2) i = 16 * h5s_f32_blocks_avx2(data, n_words / 16, &s1, &s2, &seen);
    else
#endif
    i = 16 * h5s_f32_blocks_portable(data, n_words / 16, &s1, &s2, &seen);
    for (; i < n_words; i++) {
        uint64_t w = ((uint64_t)data[2 * i] << 8) | (uint64_t)data[2 * i + 1];
        seen |= w;
        s1 += w;
        s2 += s1;
    }
    if (len % 2) {
        uint64_t w = (uint64_t)data[len - 1] << 8;
        seen |= w;
        s1 += w;
        s2 += s1;
    }
    s1 %= 65535;
    s2 %= 65535;
    if (!seen) return 0;
    /* a nonzero sum that is a multiple of 65535 folds to 0xffff */
    if (s1 == 0) s1 = 65535;
    if (s2 == 0) s2 = 65535;
    return (uint32_t)((s2 << 16) | s1);
}

static uint32_t h5s_fletcher32(const unsigned char *data, size_t len) {
    return h5s_fletcher32_with(data, len, 1);
}

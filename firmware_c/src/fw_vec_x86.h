/* The native x86-64 build's 8-wide forms of scalar firmware arithmetic (AVX2), for CPUs that have it.
 * Each lane runs the scalar code's operations in its order, with no FMA and every branch taken as a
 * blend, so it gives the scalar bits (the ARM build runs the scalar code; tested over the ISS and
 * lane by lane against fw_expf). Never included by the ARM build. */
#ifndef FW_VEC_X86_H
#define FW_VEC_X86_H

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#include <stdint.h>

#define FW_VEC_X86 1

/* 2^k for k in [-126, 127], as float bits (k + 127) << 23 */
__attribute__((target("avx2"))) static inline __m256 fw_pow2_8(__m256i k)
{
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k, _mm256_set1_epi32(127)), 23));
}

/* fw_expf (fw_math.c) of 8 lanes: the same range reduction, polynomial and scaling, lane by lane */
__attribute__((target("avx2"))) static inline __m256 fw_expf8(__m256 x)
{
    const __m256 log2e = _mm256_set1_ps(1.44269504088896341f);
    const __m256 ln2_hi = _mm256_set1_ps(0.693359375f), ln2_lo = _mm256_set1_ps(-2.12194440e-4f);
    const __m256 zero = _mm256_setzero_ps();
    const __m256 t = _mm256_mul_ps(x, log2e);
    const __m256 half = _mm256_blendv_ps(_mm256_set1_ps(0.5f), _mm256_set1_ps(-0.5f), _mm256_cmp_ps(t, zero, _CMP_LT_OQ));
    __m256i k = _mm256_cvttps_epi32(_mm256_add_ps(t, half));
    const __m256 kf = _mm256_cvtepi32_ps(k);
    __m256 r = _mm256_sub_ps(x, _mm256_mul_ps(kf, ln2_hi));
    r = _mm256_sub_ps(r, _mm256_mul_ps(kf, ln2_lo));
    const __m256 z = _mm256_mul_ps(r, r);
    __m256 p = _mm256_add_ps(_mm256_mul_ps(_mm256_set1_ps(1.9875691500e-4f), r), _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_add_ps(_mm256_add_ps(_mm256_mul_ps(p, z), r), _mm256_set1_ps(1.0f));
    /* k > 127: (p * 2) 2^(k-1); k < -126 (a subnormal result): (p 2^(k+100)) 2^-100, only the last rounds */
    const __m256i over = _mm256_cmpgt_epi32(k, _mm256_set1_epi32(127));
    p = _mm256_blendv_ps(p, _mm256_mul_ps(p, _mm256_set1_ps(2.0f)), _mm256_castsi256_ps(over));
    k = _mm256_add_epi32(k, over);  /* over is -1 where set */
    const __m256i under = _mm256_cmpgt_epi32(_mm256_set1_epi32(-126), k);
    k = _mm256_add_epi32(k, _mm256_and_si256(under, _mm256_set1_epi32(100)));
    __m256 y = _mm256_mul_ps(p, fw_pow2_8(k));
    y = _mm256_blendv_ps(y, _mm256_mul_ps(y, _mm256_set1_ps(0x1p-100f)), _mm256_castsi256_ps(under));
    /* the scalar code's early returns: below the range 0, above it infinity, NaN itself */
    y = _mm256_blendv_ps(y, zero, _mm256_cmp_ps(x, _mm256_set1_ps(-103.972084f), _CMP_LT_OQ));
    y = _mm256_blendv_ps(y, _mm256_castsi256_ps(_mm256_set1_epi32(0x7f800000)),
                         _mm256_cmp_ps(x, _mm256_set1_ps(88.7228391f), _CMP_GT_OQ));
    return _mm256_blendv_ps(y, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
}

/* the first n (<= 8) lanes set */
__attribute__((target("avx2"))) static inline __m256i fw_lanes8(uint32_t n)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int32_t)n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* Sparse blocks (network.connectivity, fw_abi.h: row starts, uint8 local-neuron columns). */

/* the per-neuron table v[0 .. n) as two vectors for fw_pick8 (n <= 16; lanes past n are 0) */
__attribute__((target("avx2"))) static inline __m256 fw_table8(const float *v, uint32_t n, uint32_t half)
{
    const uint32_t from = 8u * half;
    if (n <= from) return _mm256_setzero_ps();
    return _mm256_maskload_ps(v + from, fw_lanes8(n - from < 8u ? n - from : 8u));
}

/* v[j] for the 8 lanes' local neurons j (each < n): by two permutes and a blend of the tables lo, hi
 * (fw_table8) where n <= 16, else by a gather from v */
__attribute__((target("avx2"))) static inline __m256 fw_pick8(const float *v, __m256 lo, __m256 hi, uint32_t n, __m256i j)
{
    if (n > 16u) return _mm256_i32gather_ps(v, j, 4);
    return _mm256_blendv_ps(_mm256_permutevar8x32_ps(lo, j), _mm256_permutevar8x32_ps(hi, j),
                            _mm256_castsi256_ps(_mm256_cmpgt_epi32(j, _mm256_set1_epi32(7))));
}

/* the 8 local-neuron columns col[0 .. 8) as 32-bit lanes */
__attribute__((target("avx2"))) static inline __m256i fw_cols8(const uint8_t *col)
{
    return _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)col));
}

#define FW_SPREAD_CHUNK 128u  /* entries per spread: out takes FW_SPREAD_CHUNK + 8 floats */

/* Entries [k0, k1) of a block whose rows start at row[0 .. n_pre] (k0 < k1 <= row[n_pre]): out[k - k0] = v[i] for
 * the row i holding entry k. *i_row: a row at or before the one holding k0 (0 at first), advanced to the one
 * holding k1 - 1; call with ascending k0. Each row stores 8 lanes (more only for a row longer than 8) and the next row, empty ones
 * included, overwrites what passed its end: one store a row, no branch on its length, and out takes
 * k1 - k0 + 8 floats. */
__attribute__((target("avx2"))) static inline void fw_spread_rows8(const uint16_t *row, uint32_t *i_row, uint32_t k0,
                                                                   uint32_t k1, const float *v, float *out)
{
    uint32_t i = *i_row;
    while (row[i + 1u] <= k0) ++i;  /* ends: k0 < row[n_pre] */
    /* the row holding k0 may start before it */
    uint32_t a = k0, b = row[i + 1u];
    for (;;) {
        const __m256 x = _mm256_set1_ps(v[i]);
        _mm256_storeu_ps(out + (a - k0), x);
        if (b - a > 8u)  /* a long row: the rest of it in the chunk */
            for (uint32_t p = a + 8u; p < b && p < k1; p += 8u) _mm256_storeu_ps(out + (p - k0), x);
        if (b >= k1) break;  /* row i holds k1 - 1: the next chunk starts there or just after */
        ++i;
        a = b;
        b = row[i + 1u];
    }
    *i_row = i;
}

#endif
#endif

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

#endif
#endif

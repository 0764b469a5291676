/* float32 exp / log without libm. exp: Cody-Waite range reduction x = k ln2 + r, |r| <= ln2/2,
 * then a degree-6 minimax polynomial (Cephes expf coefficients) and an exact scaling by 2^k. */
#include "fw_math.h"
#include <stdint.h>
#include "fw_vec_x86.h"

static float scale_pow2(float p, int k)
{
    union { float f; uint32_t u; } s;
    if (k >= -126) {
        s.u = (uint32_t)(k + 127) << 23;
        return p * s.f;
    }
    /* subnormal result: two exact-range steps so that only the last one rounds */
    s.u = (uint32_t)(k + 100 + 127) << 23;
    p = p * s.f;
    s.u = (uint32_t)(-100 + 127) << 23;
    return p * s.f;
}

float fw_expf(float x)
{
    const float log2e = 1.44269504088896341f;
    const float ln2_hi = 0.693359375f;
    const float ln2_lo = -2.12194440e-4f;
    if (x != x) return x;
    if (x > 88.7228391f) { union { float f; uint32_t u; } inf; inf.u = 0x7f800000u; return inf.f; }
    if (x < -103.972084f) return 0.0f;
    float t = x * log2e;
    int k = (int)(t + (t < 0.0f ? -0.5f : 0.5f));
    float kf = (float)k;
    float r = x - kf * ln2_hi;
    r = r - kf * ln2_lo;
    float z = r * r;
    float p = ((((( 1.9875691500e-4f * r + 1.3981999507e-3f) * r + 8.3334519073e-3f) * r
                 + 4.1665795894e-2f) * r + 1.6666665459e-1f) * r + 5.0000001201e-1f) * z + r + 1.0f;
    if (k > 127) return scale_pow2(p * 2.0f, k - 1);
    return scale_pow2(p, k);
}

#if !defined(__arm__)
/* natively only: the vector path of the neuron step's surrogate, callable lane by lane by the tests */
#ifdef FW_VEC_X86
__attribute__((target("avx2"))) static void expf_n_avx2(const float *x, float *y, uint32_t n)
{
    for (uint32_t i = 0; i < n; i += 8u) {
        const uint32_t m = n - i < 8u ? n - i : 8u;
        _mm256_maskstore_ps(y + i, fw_lanes8(m), fw_expf8(_mm256_maskload_ps(x + i, fw_lanes8(m))));
    }
}
#endif

void fw_expf_n(const float *x, float *y, uint32_t n, int vectors)
{
#ifdef FW_VEC_X86
    if (vectors && __builtin_cpu_supports("avx2")) { expf_n_avx2(x, y, n); return; }
#endif
    for (uint32_t i = 0; i < n; ++i) y[i] = fw_expf(x[i]);
}
#endif

float fw_logf(float x)
{
    union { float f; uint32_t u; } v;
    v.f = x;
    if (!(x > 0.0f)) return x == 0.0f ? -1.0f / 0.0f : 0.0f / 0.0f;
    int e = 0;
    if (v.u < 0x00800000u) { v.f = x * 16777216.0f; e = -24; } /* subnormal input */
    e += (int)(v.u >> 23) - 127;
    v.u = (v.u & 0x007fffffu) | 0x3f800000u;          /* mantissa m in [1, 2) */
    float m = v.f;
    if (m > 1.41421356f) { m = m * 0.5f; e += 1; }     /* m in [sqrt(1/2), sqrt(2)] */
    float s = (m - 1.0f) / (m + 1.0f);
    float s2 = s * s;
    float poly = s2 * (0.33333334f + s2 * (0.2f + s2 * (0.14285715f + s2 * 0.11111111f)));
    float log_m = 2.0f * s + 2.0f * s * poly;
    return (float)e * 0.693147182f + log_m;
}

float fw_sqrtf(float x)
{
    return __builtin_sqrtf(x);
}

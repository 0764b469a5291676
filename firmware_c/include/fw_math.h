/* The firmware's own float32 exp and log: no libm on the core (and the chip's exp accelerator is
 * modelled by fw_expf). fw_expf is within 1 ulp of the correctly rounded result on [-104, 88.7]. */
#ifndef FW_MATH_H
#define FW_MATH_H

#include <stdint.h>

float fw_expf(float x);
float fw_logf(float x);     /* for x > 0 */
float fw_sqrtf(float x);    /* IEEE sqrt instruction (vsqrt.f32 / sqrtss) */
/* native builds only (a test hook): y[i] = fw_expf(x[i]), 8 lanes at a time on an AVX2 CPU when
 * `vectors` (the neuron step's vector path), else one by one: the same bits either way */
void fw_expf_n(const float *x, float *y, uint32_t n, int vectors);

#endif

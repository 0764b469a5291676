/* The firmware's own float32 exp and log: no libm on the core (and the chip's exp accelerator is
 * modelled by fw_expf). fw_expf is within 1 ulp of the correctly rounded result on [-104, 88.7]. */
#ifndef FW_MATH_H
#define FW_MATH_H

float fw_expf(float x);
float fw_logf(float x);     /* for x > 0 */
float fw_sqrtf(float x);    /* IEEE sqrt instruction (vsqrt.f32 / sqrtss) */

#endif

/* Private helpers shared by the firmware's source files: typed views of arena regions. */
#ifndef FW_INTERNAL_H
#define FW_INTERNAL_H

#include "fw_abi.h"

#define FW_F32(arena, h, region) ((float *)((arena) + (h)->layout.region))
#define FW_U32(arena, h, region) ((uint32_t *)((arena) + (h)->layout.region))

static inline uint32_t fw_bits(float f) { union { float f; uint32_t u; } c; c.f = f; return c.u; }
static inline float fw_float(uint32_t u) { union { float f; uint32_t u; } c; c.u = u; return c.f; }
static inline int fw_bit(const uint32_t *bitmap, uint32_t i) { return (int)((bitmap[i >> 5] >> (i & 31u)) & 1u); }
static inline uint32_t fw_bitmap_words(uint32_t n) { return (n + 31u) / 32u; }

#endif

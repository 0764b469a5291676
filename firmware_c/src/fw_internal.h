/* Private helpers shared by the firmware's source files: typed views of arena regions, bitmaps and
 * the step window of tagged packets. */
#ifndef FW_INTERNAL_H
#define FW_INTERNAL_H

#include "fw_abi.h"

#define FW_F32(arena, h, region) ((float *)((arena) + (h)->layout.region))
#define FW_U32(arena, h, region) ((uint32_t *)((arena) + (h)->layout.region))

static inline uint32_t fw_bits(float f) { union { float f; uint32_t u; } c; c.f = f; return c.u; }
static inline float fw_float(uint32_t u) { union { float f; uint32_t u; } c; c.u = u; return c.f; }
static inline int fw_bit(const uint32_t *bitmap, uint32_t i) { return (int)((bitmap[i >> 5] >> (i & 31u)) & 1u); }
/* x, or 0 where |x| < 2^-FW_TINY_EXP: what the firmware stores never decays into subnormal floats,
 * which x86 computes in microcode (docs/chip.md section 9); exact comparisons, the same on every build */
static inline float fw_flush_tiny(float x)
{
    const float tiny = fw_float((127u - FW_TINY_EXP) << 23);
    return __builtin_fabsf(x) < tiny ? 0.0f : x;  /* an instruction (vabs.f32, andps), not libm */
}
static inline uint32_t fw_bitmap_words(uint32_t n) { return (n + 31u) / 32u; }
static inline uint32_t fw_key_tag(uint32_t key) { return (key >> FW_KEY_TAG_SHIFT) & FW_KEY_TAG_MASK; }
static inline uint32_t fw_key_untagged(uint32_t key) { return key & ~(FW_KEY_TAG_MASK << FW_KEY_TAG_SHIFT); }
static inline uint32_t fw_tag_bits(uint32_t tag) { return (tag & FW_KEY_TAG_MASK) << FW_KEY_TAG_SHIFT; }

/* Whether a packet tagged `tag` (a sender's tick) may be kept: it belongs to the step of the last
 * tick this core handled (0) or to the next one (1, its sender runs a tick ahead). Anything else is
 * late (a step already used) or too early, and is counted. */
static inline int fw_tag_in_window(fw_state_t *s, uint32_t tag)
{
    const uint32_t d = (tag - s->tick) & FW_KEY_TAG_MASK;
    if (d <= 1u) return 1;
    if (d > FW_KEY_TAG_MASK / 2u) s->counters.late_packets++;
    else s->counters.early_packets++;
    return 0;
}

/* synapses stored in the input and recurrent blocks: n_pre x n_local, or the present ones (sparse) */
static inline uint32_t fw_syn_in(const fw_config_t *c) { return c->sparse ? c->nnz_in : c->n_in * c->n_local; }
static inline uint32_t fw_syn_rec(const fw_config_t *c) { return c->sparse ? c->nnz_rec : c->n_rec * c->n_local; }
#define FW_U16(arena, h, region) ((const uint16_t *)((arena) + (h)->layout.region))
#define FW_U8(arena, h, region) ((const uint8_t *)((arena) + (h)->layout.region))

/* number of set bits in n words */
static inline uint32_t fw_popcount(const uint32_t *bitmap, uint32_t n_words)
{
    uint32_t total = 0;
    for (uint32_t w = 0; w < n_words; ++w)
        for (uint32_t b = bitmap[w]; b; b &= b - 1u) total++;
    return total;
}

#endif

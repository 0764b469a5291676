/* Faults the router injects: the decision per packet (see chip_loop.h emu_fault_t). */
#include "chip_loop.h"

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint32_t emu_fault_hash(uint32_t seed, uint32_t src, uint64_t n)
{
    const uint64_t golden = 0x9e3779b97f4a7c15ull;  /* splitmix64's increment */
    const uint64_t base = mix64((((uint64_t)seed << 32) | src) + golden);
    return (uint32_t)(mix64(base + (n + 1u) * golden) >> 32);
}

uint32_t emu_faults_apply(emu_fault_t *faults, uint32_t n_faults, uint32_t src, uint32_t key, uint32_t *delay_ticks)
{
    if (src >= FW_MAX_CORES) return EMU_FAULT_NONE;  /* injected, or held back by a fault already */
    for (uint32_t i = 0; i < n_faults; ++i) {
        emu_fault_t *f = &faults[i];
        if ((key & f->mask) != f->key || (f->src != EMU_FAULT_ANY_SRC && f->src != src)) continue;
        const uint64_t n = f->seen[src]++;
        const int hit = f->count ? f->hits < f->count : (uint64_t)emu_fault_hash(f->seed, src, n) < f->threshold;
        if (!hit) continue;
        f->hits++;
        *delay_ticks = f->delay_ticks;
        return f->action;
    }
    return EMU_FAULT_NONE;
}

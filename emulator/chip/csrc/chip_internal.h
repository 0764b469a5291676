/* Helpers shared by the functional (chip_loop.c) and the timed (timed_loop.c) event loops. */
#ifndef CHIP_INTERNAL_H
#define CHIP_INTERNAL_H

#include "chip_loop.h"

_Static_assert(sizeof(fw_counts_t) % sizeof(uint32_t) == 0, "fw_counts_t holds uint32_t counts only");

/* acc += c, field by field (every field is a uint32_t count). Scalar and only the nonzero ones: a handler
 * returns a few, and vector loads of the struct it has just stored stall on store forwarding. */
static inline void emu_add_counts(fw_counts_t *acc, fw_counts_t c)
{
    uint32_t *a = (uint32_t *)acc;
    const uint32_t *b = (const uint32_t *)&c;
    for (uint32_t i = 0; i < sizeof c / sizeof *b; ++i)
        if (b[i]) a[i] += b[i];
}
/* copy SDRAM -> SRAM; 0 for an address outside SDRAM or the core's SRAM (counted, no completion) */
int emu_dma_copy(emu_chip_t *chip, const emu_dma_t *d);
/* the first routing entry matching key, or 0 */
const emu_route_t *emu_route(emu_chip_t *chip, uint32_t key);

/* whether `core` may run a handler: not stopped by a run-time error, its header checked after a host write */
static inline int emu_core_ok(emu_chip_t *chip, uint32_t core)
{
    if (chip->core_written[core]) {
        chip->core_written[core] = 0u;
        if (chip->core_error[core] == EMU_RTE_NONE)
            chip->core_error[core] = emu_core_check(chip->arenas[core], chip->sram_bytes);
    }
    return chip->core_error[core] == EMU_RTE_NONE;
}
/* The chip's threads (chip_loop.c), for the timed loop's batches: fn(arg, k, n) on each of n threads (k = 0: the
 * caller), back when every one has returned; returns n (1: no pool to be had, fn ran on the caller alone). */
typedef void (*emu_job_fn)(void *arg, uint32_t thread, uint32_t n_threads);
uint32_t emu_pool_run(emu_chip_t *chip, uint32_t n_threads, emu_job_fn fn, void *arg);
/* the threads the next run, of n_ticks, takes: 1, or the chip's where they pay (the faster way per tick as last
 * timed for runs of its length class; the slower one timed again every 32 runs); then the seconds per tick the
 * run took on them (kept where the chip has threads to choose from) */
uint32_t emu_threads_choose(emu_chip_t *chip, uint32_t n_ticks);
void emu_threads_timed(emu_chip_t *chip, uint32_t n_ticks, uint32_t n_threads, double s_per_tick);
double emu_seconds_now(void);
/* the words of the outbox entry at `at` of a core's outbox of `count` words (0: not a valid entry) */
uint32_t emu_outbox_entry_words(const uint32_t *box, uint32_t at, uint32_t count);
/* a core's outbox, its word count in *count (and emptied), or 0: nothing queued, the core stopped, or now stopped
 * (EMU_RTE_OUTBOX) because the count is past its outbox (a running core's config) or the outbox past its SRAM */
const uint32_t *emu_outbox_take(emu_chip_t *chip, uint32_t core, uint32_t *count);

#endif

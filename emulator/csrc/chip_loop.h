/* Fast path of the functional emulator: the tick loop and multicast routing of a chip, in C.
 * Same firmware, same tables and same order of events as the Python path (emulator/functional.py):
 * timers in core order, then every queued packet is delivered (FIFO, destinations in core order)
 * until none is left, so all tick-t packets arrive before any core's tick t+1. */
#ifndef CHIP_LOOP_H
#define CHIP_LOOP_H

#include <stdint.h>
#include "fw_abi.h"

#define EMU_DEST_WORDS 5u  /* route destinations: bitmask over up to 160 cores */

typedef struct {
    uint32_t key, mask;
    uint32_t dest[EMU_DEST_WORDS];
} emu_route_t;

typedef struct {
    uint32_t n_cores;
    uint8_t *arenas[FW_MAX_CORES];
    const emu_route_t *routes;
    uint32_t n_routes;
    uint32_t *pkt_buf;        /* FIFO of pending packets, 3 words each: src, key, payload */
    uint32_t pkt_cap;         /* in packets */
    uint32_t *host_buf;       /* messages to the host: [core, n_words, words...] */
    uint32_t host_cap, host_len;  /* in words */
    uint64_t delivered, dropped, pkt_overflows, host_overflows;
    uint32_t last_drop_src, last_drop_key;
    uint64_t dropped_from[FW_MAX_CORES];
    fw_counts_t counts[FW_MAX_CORES];  /* accumulated work per core (cost model input) */
} emu_chip_t;

/* one timer tick on every core, then delivery of everything it sent */
void emu_tick(emu_chip_t *chip, uint32_t tick);
/* a host message to one core, then delivery of anything it sent; -1 if there is no such core */
int32_t emu_host_msg(emu_chip_t *chip, uint32_t core, const uint32_t *msg, uint32_t n_words);
/* stream one sample (sample message to all cores, frames to neuron cores `lookahead` ticks ahead),
 * ticking until the result of `sample_id` reaches the host or max_ticks pass; returns ticks used,
 * -1 on timeout, -2 for a bad argument (n_in > FW_MAX_IN, a core that does not exist).
 * *tick is the chip's tick counter, advanced. */
int32_t emu_run_sample(emu_chip_t *chip, uint32_t *tick, uint32_t sample_id, uint32_t label, uint32_t train,
                       const float *frames, uint32_t n_steps, uint32_t n_in,
                       const uint32_t *neuron_cores, uint32_t n_neuron_cores,
                       uint32_t lookahead, uint32_t max_ticks);

#endif

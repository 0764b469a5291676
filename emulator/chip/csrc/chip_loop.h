/* Fast path of the functional emulator: the event loop of a chip in C, over the native firmware
 * build. Same firmware, tables and order of events as the Python path (emulator/chip/functional.py), which is
 * the readable specification:
 *  - a tick: every core's timer handler in core order; after each handler its outbox is drained
 *    (packets into one FIFO, host messages out, DMA transfers queued), and every queued DMA transfer
 *    is done at once, in order, each followed by its core's fw_on_dma_done (drained the same way);
 *  - then the packets are delivered in FIFO order, each to its destination cores in core order,
 *    and whatever those handlers send joins the FIFO, until it is empty;
 *  - then the user events raised, in core order (each again followed by delivery), until none is left.
 * The chip knows nothing of samples or frames: it routes packets, moves DMA data and keeps time. */
#ifndef CHIP_LOOP_H
#define CHIP_LOOP_H

#include <stdint.h>
#include "fw_abi.h"

#define EMU_DEST_WORDS 5u  /* route destinations: bitmask over up to 160 cores */
#define EMU_SRC_EXTERNAL 0xffffffffu  /* source of an injected packet (a chip link, a test) */
#define EMU_DROP_SOURCES 161u  /* FW_MAX_CORES cores, then injected packets */
#define EMU_ROUTE_CACHE 1024u  /* direct-mapped cache of route lookups */
#define EMU_MAX_THREADS 64u    /* threads of a timer phase */
#define EMU_RUN_CLASSES 8u     /* the threads' pay rule times runs of 1, 2-3, 4-7, ..., 128 and more ticks apart */

/* A core's run-time error (SpiNNaker's RTE): the host can write any byte of a core's SRAM, so the
 * header, layout and state offsets the firmware and these loops index with are checked (emu_core_check)
 * before the core's next handler after such a write, and its outbox entries as they are drained. A core
 * that fails stops: it runs no handler and sends nothing until fw_init runs on it again (a host's START). */
#define EMU_RTE_NONE 0u
#define EMU_RTE_HEADER 1u  /* magic, ABI version or arena size no longer those of a valid image */
#define EMU_RTE_LAYOUT 2u  /* config rejected, the layout is not the one its config gives, or a sparse index breaks its rules */
#define EMU_RTE_STATE 3u   /* a state field out of range: outbox not empty between handlers, label >= n_out */
#define EMU_RTE_OUTBOX 4u  /* an outbox count or entry past the outbox or the arena */

typedef struct {
    uint32_t key, mask;
    uint32_t dest[EMU_DEST_WORDS];
} emu_route_t;

/* Faults the router injects (a user's chip.faults, docs/chip.md section 7), the same in every loop: the
 * functional loops apply them as they deliver a routed packet, the timed loop as it routes a handler's
 * packets. A packet from a core (never an injected one, nor one a fault already held back) whose key & mask
 * equals `key`, from `src` (or any core), is hit by the first fault in the list that decides so:
 *  - count mode (count > 0): the first `count` such packets the router sees;
 *  - rate mode (count == 0): the packet with index n among those of its source core this fault has seen is
 *    hit when emu_fault_hash(seed, src, n) < threshold (rate x 2^32), a counter-based hash, so that the
 *    decision of every packet is the same in every loop whatever the order the cores' packets interleave.
 * Hit: dropped (lost on a link: only the firmware can see it), duplicated (delivered twice in a row), or
 * delayed by delay_ticks ticks (functional: delivered after the timers of tick + delay_ticks; timed:
 * arriving delay_ticks x tick later). */
#define EMU_FAULT_NONE 0u
#define EMU_FAULT_DROP 1u
#define EMU_FAULT_DUPLICATE 2u
#define EMU_FAULT_DELAY 3u
#define EMU_FAULT_ANY_SRC 0xffffffffu

typedef struct {
    uint32_t key, mask;               /* packets whose key & mask == key */
    uint32_t src;                     /* from this core, or EMU_FAULT_ANY_SRC */
    uint32_t action;                  /* EMU_FAULT_DROP, _DUPLICATE or _DELAY */
    uint32_t delay_ticks;
    uint32_t seed;
    uint64_t count;                   /* count mode: packets to hit; 0: rate mode */
    uint64_t threshold;               /* rate mode: hit when the packet's hash is below (rate x 2^32) */
    uint64_t seen[FW_MAX_CORES];      /* packets of each source core this fault has seen */
    uint64_t hits;                    /* packets it hit */
} emu_fault_t;

/* the counter-based hash of a packet's decision: splitmix64's finaliser over (seed, src) + the golden ratio,
 * then over that + (n + 1) x the golden ratio; its high 32 bits (mirrored in emulator/chip/faults.py) */
uint32_t emu_fault_hash(uint32_t seed, uint32_t src, uint64_t n);
/* the action of the first of n_faults faults that hits this packet from core src (EMU_FAULT_NONE: none
 * does); *delay_ticks is set for EMU_FAULT_DELAY */
uint32_t emu_faults_apply(emu_fault_t *faults, uint32_t n_faults, uint32_t src, uint32_t key, uint32_t *delay_ticks);

/* a DMA transfer: SDRAM -> SRAM (write 0) or SRAM -> SDRAM (write 1) */
typedef struct { uint32_t core, sdram_addr, sram_offset, n_bytes, tag, write; } emu_dma_t;

/* What one thread's share of cores leaves in a tick's timer phase (threads > 1), merged in core order
 * afterwards: packets (src, key, payload), host messages ([core, n_words, words...]), the DMA queue of the
 * core being settled, and counters. Buffers come from the caller (FunctionalChip), as the chip's own. */
typedef struct {
    uint32_t *pkt_buf; uint32_t pkt_cap, pkt_len;     /* in packets */
    uint32_t *host_buf; uint32_t host_cap, host_len;  /* in words */
    emu_dma_t *dma_buf; uint32_t dma_cap;
    uint32_t core_lo, core_hi;                        /* the cores [lo, hi) this thread runs */
    uint64_t pkt_overflows, host_overflows, dma_overflows, dma_faults, dma_bytes;
    /* a threaded tick (emu_run): what the delivery and user events left comes first in the buffers, up to
     * these marks, then what the timers left; packets delivered */
    uint32_t settle_pkt_len, settle_host_len;
    uint64_t delivered;
} emu_stage_t;

typedef struct {
    uint32_t n_cores;
    uint8_t *arenas[FW_MAX_CORES];
    uint32_t sram_bytes;              /* per core */
    uint8_t **sdram_pages;            /* sparse SDRAM: page p holds [p << page_bits, (p + 1) << page_bits) */
    uint32_t sdram_page_bits, sdram_n_pages;
    const emu_route_t *routes;
    uint32_t n_routes;
    /* a lookup depends only on the key bits some entry's mask looks at (route_care, the OR of all
     * masks): results are cached under those bits; load_routes sets route_care and bumps route_epoch */
    uint32_t route_care, route_epoch;
    uint32_t cache_key[EMU_ROUTE_CACHE], cache_epoch[EMU_ROUTE_CACHE];
    int32_t cache_route[EMU_ROUTE_CACHE];  /* entry index, -1: no route */
    uint32_t *pkt_buf;                /* FIFO of pending packets, 3 words each: src, key, payload */
    uint32_t pkt_cap;                 /* in packets */
    emu_dma_t *dma_buf;               /* FIFO of DMA transfers not yet done */
    uint32_t dma_cap;
    uint32_t *host_buf;               /* messages to the host: [core, n_words, words...] */
    uint32_t host_cap, host_len;      /* in words */
    uint8_t user_pending[FW_MAX_CORES];
    uint8_t core_written[FW_MAX_CORES];  /* set by the host when it writes a core's SRAM: check before it runs */
    uint32_t core_error[FW_MAX_CORES];   /* EMU_RTE_*: the core is stopped (cleared by fw_init) */
    /* set by emu_run for the run it begins: a core stopped by a run-time error, or one not running (status other
     * than FW_RUNNING) with nothing in its outbox and no user event due. Its timer phase is skipped: every
     * handler of a core not running returns at once, and nothing in a run starts one (fw_init is the host's),
     * so skipping gives the same bits without touching the idle cores' memory each tick (a board of 152 cores
     * running a 12-core network) */
    uint8_t core_asleep[FW_MAX_CORES];
    uint64_t delivered, dropped, pkt_overflows, host_overflows, dma_overflows, dma_faults, dma_bytes;
    uint32_t last_drop_src, last_drop_key;
    uint64_t dropped_from[EMU_DROP_SOURCES];
    fw_counts_t counts[FW_MAX_CORES];  /* accumulated work per core (cost model input) */
    /* threads of emu_run's timer phases (the cores' timer and DMA handlers, where the neuron steps run):
     * n_threads stages, one per thread; 0 or 1: none started. Same bits for any number (a core's
     * handlers touch its own SRAM, its counts, its own SDRAM records; their effects merge in core order). */
    uint32_t n_threads;
    emu_stage_t *stages;
    double core_s[FW_MAX_CORES];      /* threaded runs: seconds of each core's handlers, to share cores out evenly */
    void *pool;                       /* threaded runs: the threads, kept between runs (emu_threads_stop ends them) */
    /* threads only where they pay: per class of run length (EMU_RUN_CLASSES: 1 tick, 2-3, 4-7, ... ticks; a
     * timed sample's last tick holds the update, a tick's worth of which costs more), the last seconds per tick
     * on one thread and on n_threads, and runs since the slower way was last tried (a host core taken by
     * another process makes the threads' meetings slow). threads_forced (tests): 1 every run on the threads,
     * -1 every run on one thread, 0 the rule. */
    double tick_s_one[EMU_RUN_CLASSES], tick_s_threads[EMU_RUN_CLASSES];
    uint32_t runs_since_probe[EMU_RUN_CLASSES];
    int32_t threads_forced;
    uint64_t late_sends;              /* threaded runs: packets sent by packet handlers or user events (the
                                       * firmware sends none), which arrive after the next timers there */
    /* faults the router injects (functional and timed loops); n_faults 0: none */
    emu_fault_t *faults;
    uint32_t n_faults;
    /* functional loop: the tick running, or the next to run between emu_run calls; packets a delay fault
     * holds back, 3 words each (tick due, key, payload), delivered after that tick's timers */
    uint32_t tick;
    uint32_t *held_buf;
    uint32_t held_cap, held_len;      /* in packets */
} emu_chip_t;

/* EMU_RTE_NONE when the arena (a core's sram_bytes) is not running (status other than FW_RUNNING: its
 * handlers return at once) or holds a running image whose header, layout and state are valid; else why not */
uint32_t emu_core_check(const uint8_t *arena, uint32_t sram_bytes);
/* run the checks the host's writes made due (core_written), so core_error is up to date */
void emu_check_written(emu_chip_t *chip);
/* core_error of one core, after the check its host writes made due (EMU_RTE_NONE for no such core) */
uint32_t emu_core_error(emu_chip_t *chip, uint32_t core);
/* ticks first_tick .. first_tick + n_ticks - 1 on every core */
void emu_run(emu_chip_t *chip, uint32_t first_tick, uint32_t n_ticks);
/* end the threads emu_run started and kept for the next runs (the owner calls it before freeing the chip) */
void emu_threads_stop(emu_chip_t *chip);
/* a host message to one core, then everything it causes; -1 if there is no such core, -2 if it is stopped
 * by a run-time error (core_error) */
int32_t emu_host_msg(emu_chip_t *chip, uint32_t core, const uint32_t *msg, uint32_t n_words);
/* a packet entering the router from outside the cores, then everything it causes */
void emu_inject(emu_chip_t *chip, uint32_t key, uint32_t payload);

#endif

/* Timed path of the emulator: the event queue of a chip in virtual time (integer picoseconds), over
 * the native firmware build. emulator/chip/timed.py owns the clock (a SimPy process advances it one tick
 * at a time, paced to the wall clock in realtime mode) and hands each window to emu_timed_run, which
 * does the queueing and delivery of the events inside it. Rules (docs/timing.md):
 *  - a core runs one handler at a time, to completion (no preemption); its duration is
 *    (interrupt entry/exit + handler base + sum of work counts x cycles per count) x the core's
 *    clock period. Events that arrive meanwhile wait, served by priority: packet received, DMA
 *    done, host message, timer, user event; FIFO within a priority.
 *  - a handler's side effects leave when it ends: packets to each destination core as one burst,
 *    arriving after router latency + hops x hop latency + the burst's packets x packet interval
 *    (router faults, chip->faults: a dropped packet is left out, a duplicated one sent twice in a row,
 *    a delayed one sent alone, after the bursts, delay x tick later);
 *    DMA reads on the core's engine (set-up latency + bytes / bandwidth, one at a time; the copy is
 *    made at completion); host messages over the host link (bytes / bandwidth + latency).
 *  - core c's timer of tick k fires at k x tick_ps + skew_ps[c]; every handler's cycles are charged
 *    to the tick of the last timer handler the core started, so a step whose work exceeds the
 *    tick's cycles is an overrun, and the next timer handler starts late.
 *  - a packet that finds its core's receive queue full waits at the router, behind those already waiting,
 *    until a packet handler starts (then the oldest waiting one enters) or the chip file's drop timeout
 *    has passed since it arrived: then the router drops it and counts it (rx_overflows).
 *  - events at the same time: arrivals first, then core wake-ups; each class in scheduling order. */
#ifndef TIMED_LOOP_H
#define TIMED_LOOP_H

#include <stdint.h>
#include "chip_loop.h"

/* handler kinds, in priority order (highest first) */
#define EMU_H_PACKET 0u
#define EMU_H_DMA 1u
#define EMU_H_HOST 2u
#define EMU_H_TIMER 3u
#define EMU_H_USER 4u
#define EMU_HANDLERS 5u

#define EMU_COUNT_FIELDS 14u  /* uint32 fields of fw_counts_t */
#define EMU_PHASES 5u         /* neuron update, trace update, packet handling, learning update, overhead */
#define EMU_PHASE_OVERHEAD 4u /* interrupt entry/exit is charged here */
#define EMU_UTIL_BINS 202u    /* tick utilisation in 1 % bins: 0..200 %, then one bin for more */
#define EMU_SMALLQ 32u        /* pending DMA completions, host messages, timer ticks per core */
#define EMU_STAGE_PACKETS 4096u /* packets one handler may send */
#define EMU_STAGE_WORDS 8192u   /* 2 x EMU_STAGE_PACKETS: key, payload */
#define EMU_NO_TICK 0xffffffffu
#define EMU_WAIT_PACKETS 4096u  /* packets that may wait at the router for one core's receive queue */

typedef struct { int64_t time_ps; uint64_t seq; uint32_t cls, type, core, a, b, c, d, e; } emu_event_t;

/* one handler call (for the Gantt chart of a tick) */
typedef struct { int64_t start_ps, end_ps; uint32_t core, kind, tick, cycles; } emu_hlog_t;

/* one tick of one core: cycles charged to it, packets received, deepest receive queue, overrun,
 * DMA wait (request to completion) and how late its timer handler started */
typedef struct {
    uint32_t core, tick, cycles, packets, max_queue, overrun;
    int64_t dma_wait_ps, timer_delay_ps;
} emu_tickrec_t;

typedef struct {
    uint32_t enabled;                   /* started by the host: only such a core's timer runs */
    uint32_t busy, wake_pending, user_pending;
    uint32_t rx_head, rx_len;
    uint32_t wait_head, wait_len;       /* packets waiting at the router for room in the receive queue */
    uint32_t dma_q[EMU_SMALLQ], dma_head, dma_len;
    uint64_t host_at[EMU_SMALLQ];
    uint32_t host_words[EMU_SMALLQ], host_head, host_len;
    uint32_t timer_q[EMU_SMALLQ], timer_head, timer_len;
    int64_t timer_fire_ps[EMU_SMALLQ];
    int64_t dma_free_ps;
    uint32_t next_tick;                 /* the next timer tick to fire */
    uint32_t cur_tick;                  /* tick of the last timer handler started (EMU_NO_TICK: none yet) */
    uint64_t cur_cycles;
    uint32_t cur_packets, cur_max_queue;
    int64_t cur_dma_wait_ps, cur_timer_delay_ps;
    /* over the whole run */
    uint64_t ticks, overruns, busy_cycles, worst_cycles;
    uint32_t worst_tick, max_queue;
    uint64_t util_hist[EMU_UTIL_BINS];
    double phase_cycles[EMU_PHASES];
    int64_t max_timer_delay_ps;
    uint64_t rx_overflows;              /* packets the router dropped: the receive queue stayed full too long */
    uint64_t small_q_overflows, packets_received;
} emu_tcore_t;

typedef struct {
    /* chip file and placement (set by emulator/chip/timed.py) */
    int64_t tick_ps, router_latency_ps, hop_latency_ps, packet_interval_ps, dma_latency_ps, host_latency_ps;
    uint64_t dma_bytes_per_s, host_bytes_per_s;
    int64_t cycle_ps[FW_MAX_CORES], skew_ps[FW_MAX_CORES];
    double base_cycles[EMU_HANDLERS], count_cycles[EMU_COUNT_FIELDS];
    uint32_t irq_cycles;
    uint32_t phase_of_base[EMU_HANDLERS], phase_of_count[EMU_COUNT_FIELDS];
    const uint8_t *hops;                /* [n_cores][n_cores] NoC hops between the cores' QPEs */
    uint32_t rx_depth;                  /* receive queue of each core, in packets */
    uint32_t *rx_keys, *rx_payloads;    /* [n_cores][rx_depth] */
    /* a packet that finds its receive queue full waits at the router (in order, behind those already
     * waiting) until the queue has room or drop_timeout_ps has passed, then is dropped (rx_overflows);
     * drop_timeout_ps 0: dropped at once. At most wait_depth wait for one core (more: small_q_overflows) */
    int64_t drop_timeout_ps;
    uint32_t wait_depth;
    uint32_t *wait_keys, *wait_payloads; /* [n_cores][wait_depth] */
    int64_t *wait_deadline_ps;           /* [n_cores][wait_depth] */
    /* buffers (allocated by emulator/chip/timed.py) */
    emu_event_t *heap;
    uint32_t heap_cap, heap_len;
    uint64_t seq;
    uint32_t *pool;                     /* packets (key, payload) and host messages in flight: a ring */
    uint32_t pool_cap;                  /* words */
    uint64_t pool_head;
    emu_tickrec_t *recs;
    uint32_t rec_cap, rec_len;
    emu_hlog_t *log;
    uint32_t log_cap, log_len;
    /* staging of one handler's packets */
    uint32_t stage_packets[EMU_STAGE_WORDS], stage_burst[EMU_STAGE_WORDS];
    const emu_route_t *stage_routes[EMU_STAGE_PACKETS];
    /* ... and those a delay fault (chip->faults) sends apart, delayed_ticks x tick_ps later */
    uint32_t delayed_packets[EMU_STAGE_WORDS], delayed_ticks[EMU_STAGE_PACKETS];
    const emu_route_t *delayed_routes[EMU_STAGE_PACKETS];
    /* clock and link state */
    int64_t now_ps, host_in_free_ps, host_out_free_ps;
    uint32_t started;
    /* losses of the model itself (all stay 0 unless a buffer is too small) */
    uint64_t events, heap_overflows, pool_overwrites, rec_dropped, log_dropped, stage_overflows;
    emu_tcore_t cores[FW_MAX_CORES];
} emu_timed_t;

/* process every event before until_ps; host messages go to chip->host_buf as
 * [core, n_words, arrival_ps low, arrival_ps high, words...] */
void emu_timed_run(emu_chip_t *chip, emu_timed_t *t, int64_t until_ps);
/* a host message to one core, sent now over the host link; -1 if there is no such core, -2 if it is stopped by
 * a run-time error (chip->core_error) */
int32_t emu_timed_host_msg(emu_chip_t *chip, emu_timed_t *t, uint32_t core, const uint32_t *msg, uint32_t n_words);
/* the host started `core`: its timer runs from the next tick on (a core never started has none) */
void emu_timed_enable(emu_chip_t *chip, emu_timed_t *t, uint32_t core);
/* a multicast packet entering the router now from outside the cores */
void emu_timed_inject(emu_chip_t *chip, emu_timed_t *t, uint32_t key, uint32_t payload);

#endif

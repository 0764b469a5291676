/* See chip_loop.h. */
#define _POSIX_C_SOURCE 199309L  /* clock_gettime */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "chip_loop.h"
#include "chip_internal.h"
#include "hal.h"

_Static_assert(EMU_DROP_SOURCES == FW_MAX_CORES + 1u, "a drop counter per core and one for injected packets");

/* Where a core's side effects go: the chip's own buffers (`main`: packet FIFO, host buffer, DMA queue), or
 * a thread's stage in a timer phase run by several threads. The DMA queue is emptied by each settle. */
typedef struct {
    emu_chip_t *chip;
    emu_stage_t main;
    uint32_t pkt_head;
} run_t;

uint32_t emu_core_check(const uint8_t *arena, uint32_t sram_bytes)
{
    const fw_header_t *h = (const fw_header_t *)arena;
    if (sram_bytes < sizeof(fw_header_t)) return EMU_RTE_HEADER;
    if (h->status != FW_RUNNING) return EMU_RTE_NONE;  /* not running: every handler returns at once */
    if (h->magic != FW_MAGIC || h->abi_version != FW_ABI_VERSION || h->arena_bytes > sram_bytes) return EMU_RTE_HEADER;
    fw_layout_t expect;
    const uint32_t need = fw_layout(&h->config, &expect);
    if (need == 0 || need != h->arena_bytes || memcmp(&expect, &h->layout, sizeof expect) != 0) return EMU_RTE_LAYOUT;
    if (!fw_index_valid(arena)) return EMU_RTE_LAYOUT;  /* sparse connectivity: an index past its regions */
    /* the state fields the firmware indexes with that fw_init and its own handlers keep in range */
    const fw_state_t *s = &h->state;
    if (s->outbox_count != 0u || s->label >= h->config.n_out || s->pending_label >= h->config.n_out)
        return EMU_RTE_STATE;
    return EMU_RTE_NONE;
}

void emu_check_written(emu_chip_t *chip)
{
    for (uint32_t core = 0; core < chip->n_cores; ++core) (void)emu_core_ok(chip, core);
}

uint32_t emu_core_error(emu_chip_t *chip, uint32_t core)
{
    if (core >= chip->n_cores) return EMU_RTE_NONE;
    (void)emu_core_ok(chip, core);
    return chip->core_error[core];
}

uint32_t emu_outbox_entry_words(const uint32_t *box, uint32_t at, uint32_t count)
{
    const uint32_t tag = box[at] & 0xffu;
    uint32_t n;
    if (tag == HAL_OUT_MC) n = 3u;
    else if (tag == HAL_OUT_HOST) n = (box[at] >> 8) + 1u;
    else if (tag == HAL_OUT_DMA || tag == HAL_OUT_DMA_WRITE) n = HAL_DMA_WORDS;
    else if (tag == HAL_OUT_USER) n = 1u;
    else return 0u;
    return n <= count - at ? n : 0u;
}

const uint32_t *emu_outbox_take(emu_chip_t *chip, uint32_t core, uint32_t *count)
{
    fw_header_t *h = (fw_header_t *)chip->arenas[core];
    *count = 0u;
    if (chip->core_error[core] != EMU_RTE_NONE) return 0;
    const uint32_t n = h->state.outbox_count, off = h->layout.outbox;
    h->state.outbox_count = 0;
    if (n == 0u) return 0;
    /* a core not running has no config to trust (tests fill its outbox by hand): its SRAM bounds it */
    const uint32_t cap = h->status == FW_RUNNING ? h->config.outbox_words : 0xffffffffu;
    if (n > cap || off > chip->sram_bytes || (off & 3u) || n > (chip->sram_bytes - off) / 4u) {
        chip->core_error[core] = EMU_RTE_OUTBOX;
        return 0;
    }
    *count = n;
    return (const uint32_t *)(chip->arenas[core] + off);
}

/* move a core's outbox into the stage's packets, host messages and DMA queue and its user-event flag */
static void drain(emu_chip_t *chip, emu_stage_t *st, uint32_t *dma_tail, uint32_t core)
{
    uint32_t count, at = 0, len;
    const uint32_t *box = emu_outbox_take(chip, core, &count);
    for (; at < count; at += len) {
        len = emu_outbox_entry_words(box, at, count);
        if (len == 0u) { chip->core_error[core] = EMU_RTE_OUTBOX; return; }  /* the rest is not trusted */
        const uint32_t tag = box[at] & 0xffu;
        if (tag == HAL_OUT_MC) {
            if (st->pkt_len < st->pkt_cap) {
                uint32_t *p = st->pkt_buf + 3u * st->pkt_len++;
                p[0] = core; p[1] = box[at + 1]; p[2] = box[at + 2];
            } else {
                st->pkt_overflows++;
            }
        } else if (tag == HAL_OUT_HOST) {
            const uint32_t n = len - 1u;
            if (st->host_len + n + 2u <= st->host_cap && n + 2u <= st->host_cap) {
                uint32_t *m = st->host_buf + st->host_len;
                m[0] = core; m[1] = n;
                for (uint32_t w = 0; w < n; ++w) m[2 + w] = box[at + 1 + w];
                st->host_len += n + 2u;
            } else {
                st->host_overflows++;
            }
        } else if (tag == HAL_OUT_DMA || tag == HAL_OUT_DMA_WRITE) {
            if (*dma_tail < st->dma_cap) {
                emu_dma_t *d = st->dma_buf + (*dma_tail)++;
                d->core = core; d->sdram_addr = box[at + 1]; d->sram_offset = box[at + 2];
                d->n_bytes = box[at + 3]; d->tag = box[at + 4]; d->write = tag == HAL_OUT_DMA_WRITE;
            } else {
                st->dma_overflows++;
            }
        } else {  /* HAL_OUT_USER */
            chip->user_pending[core] = 1u;
        }
    }
}

/* whether every SDRAM page of [addr, addr + n) has been written by the host (a core writes only there) */
static int sdram_backed(const emu_chip_t *chip, uint32_t addr, uint32_t n)
{
    if (n == 0) return 1;
    for (uint32_t p = addr >> chip->sdram_page_bits; p <= (addr + n - 1u) >> chip->sdram_page_bits; ++p)
        if (!chip->sdram_pages[p]) return 0;
    return 1;
}

/* copy SDRAM -> SRAM or SRAM -> SDRAM; false for an address outside SDRAM or the core's SRAM, or a write
 * to SDRAM the host never wrote (counted in *faults, no completion); the bytes moved are added to *bytes */
static int dma_copy(const emu_chip_t *chip, const emu_dma_t *d, uint64_t *faults, uint64_t *bytes)
{
    const uint64_t sdram_end = (uint64_t)chip->sdram_n_pages << chip->sdram_page_bits;
    if ((uint64_t)d->sdram_addr + d->n_bytes > sdram_end || (uint64_t)d->sram_offset + d->n_bytes > chip->sram_bytes
        || (d->write && !sdram_backed(chip, d->sdram_addr, d->n_bytes))) {
        (*faults)++;
        return 0;
    }
    uint8_t *sram = chip->arenas[d->core] + d->sram_offset;
    uint32_t addr = d->sdram_addr, left = d->n_bytes;
    const uint32_t page_size = 1u << chip->sdram_page_bits;
    while (left) {
        const uint32_t page = addr >> chip->sdram_page_bits, off = addr & (page_size - 1u);
        const uint32_t n = left < page_size - off ? left : page_size - off;
        uint8_t *sdram = chip->sdram_pages[page];
        if (d->write) memcpy(sdram + off, sram, n);
        else if (sdram) memcpy(sram, sdram + off, n);
        else memset(sram, 0, n);  /* never written: reads as zeros */
        sram += n; addr += n; left -= n;
    }
    *bytes += d->n_bytes;
    return 1;
}

int emu_dma_copy(emu_chip_t *chip, const emu_dma_t *d)
{
    return dma_copy(chip, d, &chip->dma_faults, &chip->dma_bytes);
}

/* after a handler of `core`: drain it, then do every queued DMA transfer, each completion drained too (its work
 * added to *counts, the core's) */
static void settle_core(emu_chip_t *chip, emu_stage_t *st, uint32_t core, fw_counts_t *counts)
{
    uint32_t head = 0, tail = 0;
    drain(chip, st, &tail, core);
    while (head < tail) {
        const emu_dma_t d = st->dma_buf[head++];
        if (!dma_copy(chip, &d, &st->dma_faults, &st->dma_bytes) || !emu_core_ok(chip, d.core)) continue;
        emu_add_counts(counts, fw_on_dma_done(chip->arenas[d.core], d.tag));  /* d.core is `core`: its own DMA */
        drain(chip, st, &tail, d.core);
    }
}

const emu_route_t *emu_route(emu_chip_t *chip, uint32_t key)
{
    const uint32_t cared = key & chip->route_care;
    const uint32_t slot = (cared ^ (cared >> 8) ^ (cared >> 16) ^ (cared >> 24)) % EMU_ROUTE_CACHE;
    if (chip->cache_epoch[slot] == chip->route_epoch && chip->cache_key[slot] == cared) {
        const int32_t r = chip->cache_route[slot];
        return r < 0 ? 0 : &chip->routes[r];
    }
    int32_t found = -1;
    for (uint32_t r = 0; r < chip->n_routes; ++r)
        if ((key & chip->routes[r].mask) == chip->routes[r].key) { found = (int32_t)r; break; }
    chip->cache_epoch[slot] = chip->route_epoch;
    chip->cache_key[slot] = cared;
    chip->cache_route[slot] = found;
    return found < 0 ? 0 : &chip->routes[found];
}

/* emu_route without filling the cache: what the threads call in a phase (the cache is filled between phases) */
static const emu_route_t *route_peek(const emu_chip_t *chip, uint32_t key)
{
    const uint32_t cared = key & chip->route_care;
    const uint32_t slot = (cared ^ (cared >> 8) ^ (cared >> 16) ^ (cared >> 24)) % EMU_ROUTE_CACHE;
    if (chip->cache_epoch[slot] == chip->route_epoch && chip->cache_key[slot] == cared) {
        const int32_t r = chip->cache_route[slot];
        return r < 0 ? 0 : &chip->routes[r];
    }
    for (uint32_t r = 0; r < chip->n_routes; ++r)
        if ((key & chip->routes[r].mask) == chip->routes[r].key) return &chip->routes[r];
    return 0;
}

/* a packet a delay fault holds back until the timers of tick `due` have run (re-entering as injected) */
static void hold(emu_chip_t *chip, uint32_t due, uint32_t key, uint32_t payload)
{
    if (chip->held_len == chip->held_cap) { chip->pkt_overflows++; return; }
    uint32_t *h = chip->held_buf + 3u * chip->held_len++;
    h[0] = due; h[1] = key; h[2] = payload;
}

/* the held packets due at `tick`, in the order they were held, to the front of the (empty) packet FIFO */
static void release_held(run_t *r, uint32_t tick)
{
    emu_chip_t *chip = r->chip;
    uint32_t kept = 0;
    for (uint32_t i = 0; i < chip->held_len; ++i) {
        const uint32_t *h = chip->held_buf + 3u * i;
        if (h[0] != tick) {
            uint32_t *k = chip->held_buf + 3u * kept++;
            k[0] = h[0]; k[1] = h[1]; k[2] = h[2];
        } else if (r->main.pkt_len < r->main.pkt_cap) {
            uint32_t *p = r->main.pkt_buf + 3u * r->main.pkt_len++;
            p[0] = EMU_SRC_EXTERNAL; p[1] = h[1]; p[2] = h[2];
        } else {
            r->main.pkt_overflows++;
        }
    }
    chip->held_len = kept;
}

static void deliver_all(run_t *r)
{
    emu_chip_t *chip = r->chip;
    while (r->pkt_head < r->main.pkt_len) {
        const uint32_t *p = chip->pkt_buf + 3u * r->pkt_head++;
        const uint32_t src = p[0], key = p[1], payload = p[2];
        const emu_route_t *rt = emu_route(chip, key);
        if (!rt) {
            chip->dropped++;
            chip->dropped_from[src == EMU_SRC_EXTERNAL ? FW_MAX_CORES : src]++;
            chip->last_drop_src = src;
            chip->last_drop_key = key;
            continue;
        }
        uint32_t copies = 1u;
        if (chip->n_faults) {
            uint32_t delay = 0;
            const uint32_t action = emu_faults_apply(chip->faults, chip->n_faults, src, key, &delay);
            if (action == EMU_FAULT_DROP) continue;
            if (action == EMU_FAULT_DELAY) { hold(chip, chip->tick + delay, key, payload); continue; }
            if (action == EMU_FAULT_DUPLICATE) copies = 2u;
        }
        for (uint32_t copy = 0; copy < copies; ++copy) {
            for (uint32_t w = 0; w < EMU_DEST_WORDS; ++w) {  /* destinations in core order */
                for (uint32_t bits = rt->dest[w]; bits; bits &= bits - 1u) {
                    const uint32_t core = 32u * w + (uint32_t)__builtin_ctz(bits);
                    if (core >= chip->n_cores) break;
                    if (!emu_core_ok(chip, core)) continue;  /* stopped by a run-time error: nothing runs */
                    emu_add_counts(&chip->counts[core], fw_on_mc_packet(chip->arenas[core], key, payload));
                    chip->delivered++;
                    settle_core(chip, &r->main, core, &chip->counts[core]);
                }
            }
        }
    }
    r->pkt_head = r->main.pkt_len = 0;
}

/* deliver everything, then the user events in core order, until nothing is left */
static void settle_chip(run_t *r)
{
    emu_chip_t *chip = r->chip;
    for (;;) {
        deliver_all(r);
        uint32_t core = 0;
        while (core < chip->n_cores && !chip->user_pending[core]) core++;
        if (core == chip->n_cores) return;
        chip->user_pending[core] = 0u;
        if (!emu_core_ok(chip, core)) continue;
        emu_add_counts(&chip->counts[core], fw_on_user_event(chip->arenas[core]));
        settle_core(chip, &r->main, core, &chip->counts[core]);
    }
}

static run_t run_begin(emu_chip_t *chip)
{
    run_t r;
    r.chip = chip;
    memset(&r.main, 0, sizeof r.main);
    r.main.pkt_buf = chip->pkt_buf; r.main.pkt_cap = chip->pkt_cap;
    r.main.host_buf = chip->host_buf; r.main.host_cap = chip->host_cap; r.main.host_len = chip->host_len;
    r.main.dma_buf = chip->dma_buf; r.main.dma_cap = chip->dma_cap;
    r.pkt_head = 0;
    return r;
}

static void add_stage_counters(emu_chip_t *chip, emu_stage_t *st)
{
    chip->pkt_overflows += st->pkt_overflows;
    chip->host_overflows += st->host_overflows;
    chip->dma_overflows += st->dma_overflows;
    chip->dma_faults += st->dma_faults;
    chip->dma_bytes += st->dma_bytes;
    st->pkt_overflows = st->host_overflows = st->dma_overflows = st->dma_faults = st->dma_bytes = 0;
}

static void run_end(run_t *r)
{
    r->chip->host_len = r->main.host_len;
    add_stage_counters(r->chip, &r->main);
}

/* ---- threads of the timer phase ------------------------------------------------------------------ */

typedef struct pool pool_t;
typedef struct { pool_t *pool; emu_stage_t *st; uint32_t index; } worker_t;

/* The threads of emu_run's ticks, kept between runs (a sample is one run: starting threads for each cost
 * 0.3 ms of its 1.7): thread 0 is the caller's, workers 1 .. n_threads-1 wait for the next phase, spinning
 * a while, then asleep on the condition variable (the host's Python runs between runs). */
struct pool {
    emu_chip_t *chip;
    pid_t pid;                     /* the process that started the threads (a forked child has none of them) */
    uint32_t n_threads;
    uint32_t n_packets;            /* the routed packets at the front of the chip's FIFO, for the phase */
    uint32_t tick;                 /* the tick of the phase being run */
    int timers;                    /* whether the phase runs the timers (the last one of a run does not) */
    int route;                     /* whether the threads route their timers' packets */
    emu_job_fn job;                /* set: the phase runs job(job_arg, thread, n_threads) (emu_pool_run), not a tick */
    void *job_arg;
    atomic_uint phase;             /* bumped by the main thread to start a phase */
    atomic_uint done;              /* threads that finished the current phase */
    atomic_uint sleepers;          /* workers asleep on `wake` (the main thread signals only then) */
    atomic_int quit;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    worker_t workers[EMU_MAX_THREADS];
    pthread_t ids[EMU_MAX_THREADS];
};

/* A routed packet's source word (pkt_buf[3 i]) holds its route's index, or DROPPED | its source (no route). */
#define DROPPED 0x80000000u

static double seconds_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* One thread's cores in a threaded tick: the previous tick's routed packets that reach them, in FIFO order
 * and each to its destinations in core order (the one-thread loop's order, restricted to these cores), then
 * each core's user event if one is due, then each core's timer handler for `tick`; each handler settled into
 * the stage. What the deliveries and user events leave comes first in the stage (up to settle_*_len): merged
 * ahead of the timers' effects, the one-thread order. */
static void tick_phase(emu_chip_t *chip, emu_stage_t *shared, uint32_t n_packets, uint32_t tick, int timers,
                       int route)
{
    emu_stage_t local = *shared, *st = &local;  /* the stages share cache lines: each thread writes its own copy */
    const uint32_t lo = st->core_lo, hi = st->core_hi;
    uint32_t got[FW_MAX_CORES];  /* packets each of this thread's cores received: its share of the pass's time */
    /* the cores' work counts and seconds, added to the chip's once a phase: neighbouring cores' share cache
     * lines, and writing them at every handler from two threads made the lines travel between the host cores */
    fw_counts_t cnt[FW_MAX_CORES];
    double secs[FW_MAX_CORES];
    double t0 = seconds_now();
    st->settle_pkt_len = st->settle_host_len = 0;
    memset(got + lo, 0, (hi - lo) * sizeof *got);
    memset(cnt + lo, 0, (hi - lo) * sizeof *cnt);
    memset(secs + lo, 0, (hi - lo) * sizeof *secs);
    /* in FIFO order, each packet to its destinations among this thread's cores, in core order: a pass over the
     * packets, not one per core (144 cores on 2 threads scanned every packet 72 times) */
    const uint32_t w_lo = lo / 32u, w_hi = hi ? (hi - 1u) / 32u : 0u;
    for (uint32_t i = 0; hi > lo && i < n_packets; ++i) {
        const uint32_t *p = chip->pkt_buf + 3u * i;
        if (p[0] & DROPPED) continue;
        const emu_route_t *rt = &chip->routes[p[0]];
        for (uint32_t w = w_lo; w <= w_hi; ++w) {
            uint32_t bits = rt->dest[w];
            if (w == w_lo) bits &= ~0u << (lo & 31u);                                 /* cores from lo */
            if (w == w_hi && (hi & 31u)) bits &= (1u << (hi & 31u)) - 1u;           /* ... below hi */
            for (; bits; bits &= bits - 1u) {
                const uint32_t core = 32u * w + (uint32_t)__builtin_ctz(bits);
                if (!emu_core_ok(chip, core)) continue;
                emu_add_counts(&cnt[core], fw_on_mc_packet(chip->arenas[core], p[1], p[2]));
                st->delivered++;
                got[core]++;
                settle_core(chip, st, core, &cnt[core]);
            }
        }
    }
    if (st->delivered) {  /* the pass's time shared by the packets each core received */
        const double t1 = seconds_now(), per = (t1 - t0) / (double)st->delivered;
        for (uint32_t core = lo; core < hi; ++core) secs[core] += per * (double)got[core];
        t0 = t1;
    }
    for (uint32_t core = lo; core < hi; ++core) {  /* then the due user events, in core order */
        if (chip->user_pending[core]) {
            chip->user_pending[core] = 0u;
            if (emu_core_ok(chip, core)) {
                emu_add_counts(&cnt[core], fw_on_user_event(chip->arenas[core]));
                settle_core(chip, st, core, &cnt[core]);
            }
            const double t1 = seconds_now();
            secs[core] += t1 - t0;
            t0 = t1;
        }
    }
    st->settle_pkt_len = st->pkt_len;
    st->settle_host_len = st->host_len;
    for (uint32_t core = lo; core < hi; ++core) {
        if (timers && !chip->core_asleep[core] && emu_core_ok(chip, core)) {  /* each thread: its own cores */
            emu_add_counts(&cnt[core], fw_on_timer(chip->arenas[core], tick));
            settle_core(chip, st, core, &cnt[core]);
        }
        const double t1 = seconds_now();
        secs[core] += t1 - t0;
        t0 = t1;
    }
    for (uint32_t core = lo; core < hi; ++core) {
        emu_add_counts(&chip->counts[core], cnt[core]);
        chip->core_s[core] += secs[core];
    }
    if (route)  /* the timers' packets routed for the next phase (merge_stages counts the dropped ones in order) */
        for (uint32_t i = st->settle_pkt_len; i < st->pkt_len; ++i) {
            uint32_t *p = st->pkt_buf + 3u * i;
            const emu_route_t *rt = route_peek(chip, p[1]);
            p[0] = rt ? (uint32_t)(rt - chip->routes) : DROPPED | p[0];
        }
    *shared = local;
}

/* Workers spin this long for the next phase before they sleep: longer than the host's Python between two
 * samples' runs (0.17-0.3 ms), as a wake-up from sleep costs tens of microseconds; no longer, as another
 * thread of the process (a loopback board's) may need the CPU. (Spinning with sched_yield instead, from
 * 20-300 us on, cost the threads a fifth of their gain on the 2-core VM.) */
#define SPIN_S 0.5e-3

/* a worker: until the phase counter moves on from `seen`, spin a while, then sleep (seq_cst with the
 * main thread's bump-then-check of sleepers: one of the two sees the other) */
static unsigned wait_phase(pool_t *pool, unsigned seen)
{
    unsigned now;
    const double until = seconds_now() + SPIN_S;
    for (uint32_t spin = 1;; ++spin) {
        if ((now = atomic_load(&pool->phase)) != seen) return now;
        if (!(spin & 1023u) && seconds_now() > until) break;
    }
    pthread_mutex_lock(&pool->lock);
    atomic_fetch_add(&pool->sleepers, 1u);
    while ((now = atomic_load(&pool->phase)) == seen) pthread_cond_wait(&pool->wake, &pool->lock);
    atomic_fetch_sub(&pool->sleepers, 1u);
    pthread_mutex_unlock(&pool->lock);
    return now;
}

static void *worker_main(void *arg)
{
    worker_t *w = (worker_t *)arg;
    pool_t *pool = w->pool;
    unsigned seen = 0;
    for (;;) {
        seen = wait_phase(pool, seen);
        if (atomic_load_explicit(&pool->quit, memory_order_acquire)) return 0;
        if (pool->job) pool->job(pool->job_arg, w->index, pool->n_threads);
        else tick_phase(pool->chip, w->st, pool->n_packets, pool->tick, pool->timers, pool->route);
        atomic_fetch_add_explicit(&pool->done, 1u, memory_order_release);
    }
}

/* start a phase on the workers (set n_packets and tick first) */
static void start_phase(pool_t *pool)
{
    atomic_store_explicit(&pool->done, 0u, memory_order_relaxed);
    atomic_fetch_add(&pool->phase, 1u);
    if (atomic_load(&pool->sleepers)) {
        pthread_mutex_lock(&pool->lock);
        pthread_cond_broadcast(&pool->wake);
        pthread_mutex_unlock(&pool->lock);
    }
}

/* the main thread: until every worker has finished the phase (spinning, yielding now and then) */
static void wait_done(pool_t *pool)
{
    const unsigned workers = pool->n_threads - 1u;
    while (atomic_load_explicit(&pool->done, memory_order_acquire) != workers) {
        for (uint32_t spin = 0; spin < 2000u && atomic_load_explicit(&pool->done, memory_order_acquire) != workers;
             ++spin) {}
        if (atomic_load_explicit(&pool->done, memory_order_acquire) != workers) sched_yield();
    }
}

void emu_threads_stop(emu_chip_t *chip)
{
    pool_t *pool = (pool_t *)chip->pool;
    if (!pool) return;
    if (pool->pid != getpid()) {  /* a forked child: the threads are the parent's (their memory is left alone) */
        chip->pool = 0;
        return;
    }
    atomic_store(&pool->quit, 1);
    start_phase(pool);
    for (uint32_t t = 1; t < pool->n_threads; ++t) pthread_join(pool->ids[t], 0);
    pthread_cond_destroy(&pool->wake);
    pthread_mutex_destroy(&pool->lock);
    free(pool);
    chip->pool = 0;
}

/* the chip's pool of n_threads (started, or kept from the last run), or 0: no thread to be had */
static pool_t *pool_of(emu_chip_t *chip, uint32_t n_threads)
{
    pool_t *pool = (pool_t *)chip->pool;
    if (pool && pool->pid != getpid()) chip->pool = pool = 0;  /* forked: the parent's threads are not here */
    if (pool && pool->n_threads == n_threads) return pool;
    emu_threads_stop(chip);
    pool = (pool_t *)calloc(1, sizeof *pool);
    if (!pool) return 0;
    pool->chip = chip;
    pool->pid = getpid();
    atomic_init(&pool->phase, 0u);
    atomic_init(&pool->done, 0u);
    atomic_init(&pool->sleepers, 0u);
    atomic_init(&pool->quit, 0);
    pthread_mutex_init(&pool->lock, 0);
    pthread_cond_init(&pool->wake, 0);
    uint32_t started = 1;  /* thread 0 is the caller */
    for (; started < n_threads; ++started) {
        pool->workers[started].pool = pool;
        pool->workers[started].st = &chip->stages[started];
        pool->workers[started].index = started;
        if (pthread_create(&pool->ids[started], 0, worker_main, &pool->workers[started]) != 0) break;
    }
    pool->n_threads = started;
    chip->pool = pool;
    if (started == 1) {  /* no thread to be had */
        emu_threads_stop(chip);
        return 0;
    }
    return pool;
}

/* stage st's packets [from, to) and host messages [hfrom, hto) appended to the chip's buffers, with the
 * capacity checks the one-thread loop makes as it goes */
static void append_stage(run_t *r, const emu_stage_t *st, uint32_t from, uint32_t to, uint32_t hfrom, uint32_t hto)
{
    for (uint32_t i = from; i < to; ++i) {
        if (r->main.pkt_len < r->main.pkt_cap) {
            memcpy(r->main.pkt_buf + 3u * r->main.pkt_len++, st->pkt_buf + 3u * i, 3u * sizeof(uint32_t));
        } else {
            r->main.pkt_overflows++;
        }
    }
    for (uint32_t at = hfrom; at < hto;) {
        const uint32_t n = st->host_buf[at + 1];
        if (r->main.host_len + n + 2u <= r->main.host_cap) {
            memcpy(r->main.host_buf + r->main.host_len, st->host_buf + at, (n + 2u) * sizeof(uint32_t));
            r->main.host_len += n + 2u;
        } else {
            r->main.host_overflows++;
        }
        at += n + 2u;
    }
}

/* count a packet without a route, as deliver_all does */
static void count_drop(emu_chip_t *chip, uint32_t src, uint32_t key)
{
    chip->dropped++;
    chip->dropped_from[src == EMU_SRC_EXTERNAL ? FW_MAX_CORES : src]++;
    chip->last_drop_src = src;
    chip->last_drop_key = key;
}

/* after a threaded tick: what the deliveries and user events left (all stages, in core order), then what the
 * timers left (the same), appended to the chip's FIFO and its host buffer. `routed`: the FIFO is for the next
 * threaded phase: the first part routed here, the timers' routed by their threads; the drops counted in FIFO
 * order. Else the packets keep their source (settle_chip routes them). */
static void merge_stages(run_t *r, uint32_t n_threads, int routed)
{
    emu_chip_t *chip = r->chip;
    for (uint32_t t = 0; t < n_threads; ++t) {
        const emu_stage_t *st = &chip->stages[t];
        chip->late_sends += st->settle_pkt_len;
        const uint32_t at = r->main.pkt_len;
        append_stage(r, st, 0, st->settle_pkt_len, 0, st->settle_host_len);
        for (uint32_t i = at; routed && i < r->main.pkt_len; ++i) {
            uint32_t *p = r->main.pkt_buf + 3u * i;
            const emu_route_t *rt = emu_route(chip, p[1]);
            if (!rt) count_drop(chip, p[0], p[1]);
            p[0] = rt ? (uint32_t)(rt - chip->routes) : DROPPED | p[0];
        }
    }
    for (uint32_t t = 0; t < n_threads; ++t) {
        emu_stage_t *st = &chip->stages[t];
        const uint32_t at = r->main.pkt_len;
        append_stage(r, st, st->settle_pkt_len, st->pkt_len, st->settle_host_len, st->host_len);
        for (uint32_t i = at; routed && i < r->main.pkt_len; ++i) {
            const uint32_t *p = r->main.pkt_buf + 3u * i;
            if (p[0] & DROPPED) count_drop(chip, p[0] & ~DROPPED, p[1]);
        }
        chip->delivered += st->delivered;
        st->pkt_len = st->host_len = st->settle_pkt_len = st->settle_host_len = 0;
        st->delivered = 0;
        add_stage_counters(chip, st);
    }
}

/* contiguous shares of the cores, in core order, with about equal seconds of handlers so far (a core not yet
 * timed counts as the mean of those timed, or 1) */
static void share_cores(emu_chip_t *chip, uint32_t n_threads)
{
    double total = 0.0, timed = 0.0;
    uint32_t n_timed = 0;
    for (uint32_t c = 0; c < chip->n_cores; ++c)
        if (!chip->core_asleep[c] && chip->core_s[c] > 0.0) { timed += chip->core_s[c]; n_timed++; }
    const double mean = n_timed ? timed / n_timed : 1.0;
    double w[FW_MAX_CORES];
    for (uint32_t c = 0; c < chip->n_cores; ++c) {
        w[c] = chip->core_asleep[c] ? 0.0 : (chip->core_s[c] > 0.0 ? chip->core_s[c] : mean);
        total += w[c];
    }
    uint32_t core = 0;
    double sum = 0.0;
    for (uint32_t t = 0; t < n_threads; ++t) {  /* cut where the running sum passes (t + 1) / n of the total */
        chip->stages[t].core_lo = core;
        const double cut = total * (double)(t + 1u) / (double)n_threads;
        while (core < chip->n_cores && (t + 1u == n_threads || sum + 0.5 * w[core] < cut)) sum += w[core++];
        chip->stages[t].core_hi = core;
        chip->stages[t].pkt_len = chip->stages[t].host_len = 0;
        chip->stages[t].delivered = 0;
    }
}

/* which cores this run's timer phases skip (emu_chip_t.core_asleep): checked once a run, not each tick */
static void mark_asleep(emu_chip_t *chip)
{
    for (uint32_t core = 0; core < chip->n_cores; ++core) {
        const fw_header_t *h = (const fw_header_t *)chip->arenas[core];
        chip->core_asleep[core] = (uint8_t)(!emu_core_ok(chip, core)
            || (chip->sram_bytes >= sizeof *h && h->status != FW_OK && h->state.outbox_count == 0u
                && !chip->user_pending[core]));
    }
}

uint32_t emu_pool_run(emu_chip_t *chip, uint32_t n_threads, emu_job_fn fn, void *arg)
{
    if (n_threads > EMU_MAX_THREADS) n_threads = EMU_MAX_THREADS;
    pool_t *pool = chip->stages && n_threads > 1u ? pool_of(chip, n_threads) : 0;
    if (!pool) {
        fn(arg, 0u, 1u);
        return 1u;
    }
    pool->job = fn;
    pool->job_arg = arg;
    start_phase(pool);  /* seq_cst: the workers see the job once they see the phase move */
    fn(arg, 0u, pool->n_threads);
    wait_done(pool);
    pool->job = 0;
    return pool->n_threads;
}

/* Every PROBE_RUNS runs (of a class) the way (one thread or the threads) that was slower when last timed is
 * timed again. */
#define PROBE_RUNS 32u

/* the class of a run of n_ticks: floor(log2 n_ticks), at most EMU_RUN_CLASSES - 1 */
static uint32_t run_class(uint32_t n_ticks)
{
    uint32_t c = 0;
    while (n_ticks > 1u && c + 1u < EMU_RUN_CLASSES) { n_ticks >>= 1; c++; }
    return c;
}

/* the host threads the chip has for a run: its n_threads, at most one a core; 1 without stages */
static uint32_t threads_at_hand(const emu_chip_t *chip)
{
    if (!chip->stages) return 1u;
    return chip->n_threads < chip->n_cores ? chip->n_threads : chip->n_cores;
}

/* whether the threads pay for a run of n_ticks: the faster way per tick as last timed for its class, each way
 * timed first, the slower one again every PROBE_RUNS runs of the class */
static int threads_pay(emu_chip_t *chip, uint32_t n_ticks)
{
    if (chip->threads_forced) return chip->threads_forced > 0;
    const uint32_t c = run_class(n_ticks);
    if (chip->tick_s_threads[c] <= 0.0) return 1;
    if (chip->tick_s_one[c] <= 0.0) return 0;
    const int faster = chip->tick_s_threads[c] < chip->tick_s_one[c];
    if (++chip->runs_since_probe[c] >= PROBE_RUNS) {
        chip->runs_since_probe[c] = 0;
        return !faster;
    }
    return faster;
}

uint32_t emu_threads_choose(emu_chip_t *chip, uint32_t n_ticks)
{
    const uint32_t n = threads_at_hand(chip);
    return n > 1u && threads_pay(chip, n_ticks) ? n : 1u;
}

void emu_threads_timed(emu_chip_t *chip, uint32_t n_ticks, uint32_t n_threads, double s_per_tick)
{
    if (threads_at_hand(chip) <= 1u) return;  /* no choice was made */
    const uint32_t c = run_class(n_ticks);
    if (n_threads > 1u) chip->tick_s_threads[c] = s_per_tick;
    else chip->tick_s_one[c] = s_per_tick;
}

static void emu_run_ticks(emu_chip_t *chip, uint32_t first_tick, uint32_t n_ticks, uint32_t n_threads);

void emu_run(emu_chip_t *chip, uint32_t first_tick, uint32_t n_ticks)
{
    if (n_ticks == 0) {
        emu_run_ticks(chip, first_tick, 0u, 1u);
        return;
    }
    const uint32_t n_threads = emu_threads_choose(chip, n_ticks);
    const double t0 = seconds_now();
    emu_run_ticks(chip, first_tick, n_ticks, n_threads);
    emu_threads_timed(chip, n_ticks, n_threads, (seconds_now() - t0) / n_ticks);
}

double emu_seconds_now(void) { return seconds_now(); }

static void emu_run_ticks(emu_chip_t *chip, uint32_t first_tick, uint32_t n_ticks, uint32_t n_threads)
{
    run_t r = run_begin(chip);
    mark_asleep(chip);
    if (n_threads <= 1) {
        for (uint32_t t = 0; t < n_ticks; ++t) {
            chip->tick = first_tick + t;
            if (chip->held_len) release_held(&r, chip->tick);
            for (uint32_t core = 0; core < chip->n_cores; ++core) {
                if (chip->core_asleep[core] || !emu_core_ok(chip, core)) continue;
                emu_add_counts(&chip->counts[core], fw_on_timer(chip->arenas[core], first_tick + t));
                settle_core(chip, &r.main, core, &chip->counts[core]);
            }
            settle_chip(&r);
        }
        chip->tick = first_tick + n_ticks;
        run_end(&r);
        return;
    }
    if (n_threads > EMU_MAX_THREADS) n_threads = EMU_MAX_THREADS;
    pool_t *pool = pool_of(chip, n_threads);
    n_threads = pool ? pool->n_threads : 1u;
    share_cores(chip, n_threads);
    /* Each tick delivers the previous tick's packets and runs due user events on the threads, core by core,
     * before the core's timer: the one-thread loop's order for every core, as its packet handlers and user
     * events send no packets (counted in late_sends if they do). Router faults decide in the one-thread
     * order: with faults (or packets they hold) a tick runs its timers on the threads and settles here. */
    for (uint32_t t = 0; t <= n_ticks; ++t) {  /* the last phase settles the last tick: no timers */
        const int timers = t < n_ticks;
        chip->tick = first_tick + t;
        const int faults = chip->n_faults || chip->held_len;
        if (faults && !timers) break;  /* settled already */
        if (faults && chip->held_len) release_held(&r, chip->tick);
        /* without faults the FIFO holds the last phase's packets, routed; with faults it is settled: the
         * phase runs the timers, and their packets keep their source for the faults' decisions */
        const uint32_t n_packets = faults ? 0u : r.main.pkt_len;
        const int route = timers && !faults;
        if (pool) {
            pool->n_packets = n_packets;
            pool->tick = chip->tick;
            pool->timers = timers;
            pool->route = route;
            start_phase(pool);
        }
        tick_phase(chip, &chip->stages[0], n_packets, chip->tick, timers, route);
        if (pool) wait_done(pool);
        if (!faults) r.pkt_head = r.main.pkt_len = 0;  /* all delivered */
        merge_stages(&r, n_threads, route);
        if (faults) settle_chip(&r);
    }
    settle_chip(&r);  /* what the last phase left (the firmware leaves nothing), in the one-thread order */
    chip->tick = first_tick + n_ticks;
    run_end(&r);
}

int32_t emu_host_msg(emu_chip_t *chip, uint32_t core, const uint32_t *msg, uint32_t n_words)
{
    if (core >= chip->n_cores) return -1;
    if (!emu_core_ok(chip, core)) return -2;
    run_t r = run_begin(chip);
    emu_add_counts(&chip->counts[core], fw_on_host_msg(chip->arenas[core], msg, n_words));
    settle_core(chip, &r.main, core, &chip->counts[core]);
    settle_chip(&r);
    run_end(&r);
    return 0;
}

void emu_inject(emu_chip_t *chip, uint32_t key, uint32_t payload)
{
    if (chip->pkt_cap == 0) { chip->pkt_overflows++; return; }
    run_t r = run_begin(chip);
    chip->pkt_buf[0] = EMU_SRC_EXTERNAL; chip->pkt_buf[1] = key; chip->pkt_buf[2] = payload;
    r.main.pkt_len = 1u;
    settle_chip(&r);
    run_end(&r);
}

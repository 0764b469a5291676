/* See timed_loop.h. */
#include <string.h>
#include "chip_internal.h"
#include "hal.h"
#include "timed_loop.h"

_Static_assert(sizeof(fw_counts_t) == 4u * EMU_COUNT_FIELDS, "fw_counts_t is EMU_COUNT_FIELDS uint32 words");
_Static_assert(EMU_STAGE_WORDS == 2u * EMU_STAGE_PACKETS, "a staged packet is a key and a payload");

enum { EV_TIMER, EV_BURST, EV_DMA, EV_HOST, EV_WAKE, EV_DROP };
enum { CLS_ARRIVAL, CLS_WAKE };

/* -- the event heap, ordered by (time, class, sequence) --------------------------------------------- */
static int before(const emu_event_t *a, const emu_event_t *b)
{
    if (a->time_ps != b->time_ps) return a->time_ps < b->time_ps;
    if (a->cls != b->cls) return a->cls < b->cls;
    return a->seq < b->seq;
}

/* A new event in the heap, its place found before it is written (no event copied in: a struct built field by
 * field and copied whole stalled on store forwarding): the slot, with a .. e zero for the caller to fill, or 0
 * when the heap is full (counted). */
static emu_event_t *push(emu_timed_t *t, int64_t time_ps, uint32_t cls, uint32_t type, uint32_t core)
{
    if (t->heap_len == t->heap_cap) { t->heap_overflows++; return 0; }
    const uint64_t seq = t->seq++;
    uint32_t i = t->heap_len++;
    while (i > 0) {  /* before(new, parent): by time, then class, then sequence (the new one's is the largest) */
        const uint32_t up = (i - 1u) / 2u;
        const emu_event_t *p = &t->heap[up];
        if (!(time_ps < p->time_ps || (time_ps == p->time_ps && cls < p->cls))) break;
        t->heap[i] = *p;
        i = up;
    }
    emu_event_t *e = &t->heap[i];
    e->time_ps = time_ps; e->seq = seq; e->cls = cls; e->type = type; e->core = core;
    e->a = e->b = e->c = e->d = e->e = 0u;
    return e;
}

static emu_event_t pop(emu_timed_t *t)
{
    const emu_event_t top = t->heap[0], last = t->heap[--t->heap_len];
    uint32_t i = 0;
    for (;;) {
        uint32_t kid = 2u * i + 1u;
        if (kid >= t->heap_len) break;
        if (kid + 1u < t->heap_len && before(&t->heap[kid + 1u], &t->heap[kid])) kid++;
        if (!before(&t->heap[kid], &last)) break;
        t->heap[i] = t->heap[kid];
        i = kid;
    }
    if (t->heap_len) t->heap[i] = last;
    return top;
}

/* x mod n; a mask where n is a power of two (the pool and queues by default: a division per word in
 * flight was a tenth of the loop's time) */
static inline uint64_t wrap(uint64_t x, uint64_t n) { return (n & (n - 1u)) == 0u ? x & (n - 1u) : x % n; }

/* -- the ring of words in flight (packet bursts, host messages) ----------------------------------- */
static uint64_t pool_put(emu_timed_t *t, const uint32_t *words, uint32_t n)
{
    const uint64_t at = t->pool_head;
    for (uint32_t i = 0; i < n; ++i) t->pool[wrap(at + i, t->pool_cap)] = words[i];
    t->pool_head += n;
    return at;
}

static int pool_live(emu_timed_t *t, uint64_t at, uint32_t n)
{
    if (t->pool_head - at > t->pool_cap || n > t->pool_cap) { t->pool_overwrites++; return 0; }
    return 1;
}

static uint32_t pool_word(const emu_timed_t *t, uint64_t at) { return t->pool[wrap(at, t->pool_cap)]; }

/* -- arrivals at a core ------------------------------------------------------------------------------ */
static void wake(emu_timed_t *t, uint32_t core, int64_t time_ps)
{
    emu_tcore_t *c = &t->cores[core];
    if (c->busy || c->wake_pending) return;
    c->wake_pending = 1u;
    (void)push(t, time_ps, CLS_WAKE, EV_WAKE, core);
}

/* the slot of a new entry at the back of a small per-core queue */
static uint32_t enqueue(uint32_t head, uint32_t *len)
{
    return (head + (*len)++) % EMU_SMALLQ;
}

static void schedule_timer(emu_timed_t *t, uint32_t core)
{
    emu_tcore_t *c = &t->cores[core];
    emu_event_t *ev = push(t, (int64_t)c->next_tick * t->tick_ps + t->skew_ps[core], CLS_ARRIVAL, EV_TIMER, core);
    if (ev) ev->a = c->next_tick;
    c->next_tick++;
}

static void arrive(emu_chip_t *chip, emu_timed_t *t, const emu_event_t *ev)
{
    emu_tcore_t *c = &t->cores[ev->core];
    switch (ev->type) {
    case EV_TIMER:
        schedule_timer(t, ev->core);
        if (c->timer_len == EMU_SMALLQ) { c->small_q_overflows++; break; }
        {
            const uint32_t slot = enqueue(c->timer_head, &c->timer_len);
            c->timer_q[slot] = ev->a;
            c->timer_fire_ps[slot] = ev->time_ps;
        }
        break;
    case EV_BURST: {
        const uint64_t at = (uint64_t)ev->a | (uint64_t)ev->b << 32;
        if (!pool_live(t, at, 2u * ev->c)) break;
        uint32_t waited = 0;
        for (uint32_t i = 0; i < ev->c; ++i) {
            const uint32_t key = pool_word(t, at + 2u * i), payload = pool_word(t, at + 2u * i + 1u);
            if (c->rx_len < t->rx_depth) {  /* room: then nothing waits (a waiting packet takes the first room) */
                const uint32_t slot = ev->core * t->rx_depth + (uint32_t)wrap(c->rx_head + c->rx_len, t->rx_depth);
                t->rx_keys[slot] = key;
                t->rx_payloads[slot] = payload;
                c->rx_len++;
            } else if (t->drop_timeout_ps == 0) {
                c->rx_overflows++;
            } else if (c->wait_len == t->wait_depth) {
                c->small_q_overflows++;
            } else {
                const uint32_t slot = ev->core * t->wait_depth + (uint32_t)wrap(c->wait_head + c->wait_len++, t->wait_depth);
                t->wait_keys[slot] = key;
                t->wait_payloads[slot] = payload;
                t->wait_deadline_ps[slot] = ev->time_ps + t->drop_timeout_ps;
                waited = 1u;
            }
        }
        if (c->rx_len > c->cur_max_queue) c->cur_max_queue = c->rx_len;
        if (waited) (void)push(t, ev->time_ps + t->drop_timeout_ps, CLS_ARRIVAL, EV_DROP, ev->core);
        break;
    }
    case EV_DROP:  /* the router drops the packets that waited their timeout; nothing for the core to do */
        while (c->wait_len && t->wait_deadline_ps[ev->core * t->wait_depth + c->wait_head] <= ev->time_ps) {
            c->wait_head = (uint32_t)wrap(c->wait_head + 1u, t->wait_depth);
            c->wait_len--;
            c->rx_overflows++;
        }
        return;
    case EV_DMA: {
        const emu_dma_t d = {ev->core, ev->a, ev->b, ev->c, ev->d, ev->e};
        if (!emu_dma_copy(chip, &d)) break;
        if (c->dma_len == EMU_SMALLQ) { c->small_q_overflows++; break; }
        c->dma_q[enqueue(c->dma_head, &c->dma_len)] = ev->d;
        break;
    }
    case EV_HOST: {
        if (c->host_len == EMU_SMALLQ) { c->small_q_overflows++; break; }
        const uint32_t slot = enqueue(c->host_head, &c->host_len);
        c->host_at[slot] = (uint64_t)ev->a | (uint64_t)ev->b << 32;
        c->host_words[slot] = ev->c;
        break;
    }
    default:
        break;
    }
    wake(t, ev->core, ev->time_ps);
}

/* -- side effects of a handler, leaving at end_ps ------------------------------------------------- */
static int64_t transfer_ps(uint64_t n_bytes, uint64_t bytes_per_s)
{
    return (int64_t)((n_bytes * 1000000000000ull + bytes_per_s - 1u) / bytes_per_s);
}

static void drop(emu_chip_t *chip, uint32_t src, uint32_t key)
{
    chip->dropped++;
    chip->dropped_from[src == EMU_SRC_EXTERNAL ? FW_MAX_CORES : src]++;
    chip->last_drop_src = src;
    chip->last_drop_key = key;
}

/* packets[2 * i] = key, [2 * i + 1] = payload; routes[i] their entries (0: dropped already) */
static void send_bursts(emu_chip_t *chip, emu_timed_t *t, uint32_t src, int64_t end_ps, const uint32_t *packets,
                        const emu_route_t *const *routes, uint32_t n)
{
    uint32_t dest[EMU_DEST_WORDS] = {0};
    uint32_t *burst = t->stage_burst;
    for (uint32_t i = 0; i < n; ++i)
        if (routes[i])
            for (uint32_t w = 0; w < EMU_DEST_WORDS; ++w) dest[w] |= routes[i]->dest[w];
    for (uint32_t w = 0; w < EMU_DEST_WORDS; ++w) {
        while (dest[w]) {
            const uint32_t bit = (uint32_t)__builtin_ctz(dest[w]);
            dest[w] &= dest[w] - 1u;
            const uint32_t core = 32u * w + bit;
            if (core >= chip->n_cores) continue;
            uint32_t m = 0;
            for (uint32_t i = 0; i < n; ++i) {
                if (!routes[i] || !((routes[i]->dest[w] >> bit) & 1u)) continue;
                burst[2u * m] = packets[2u * i];
                burst[2u * m + 1u] = packets[2u * i + 1u];
                m++;
            }
            const uint64_t at = pool_put(t, burst, 2u * m);
            const uint32_t hops = src == EMU_SRC_EXTERNAL ? 0u : t->hops[src * chip->n_cores + core];
            emu_event_t *ev = push(t, end_ps + t->router_latency_ps + (int64_t)hops * t->hop_latency_ps
                                      + (int64_t)m * t->packet_interval_ps, CLS_ARRIVAL, EV_BURST, core);
            if (ev) { ev->a = (uint32_t)at; ev->b = (uint32_t)(at >> 32); ev->c = m; }
            chip->delivered += m;
        }
    }
}

static void host_out(emu_chip_t *chip, emu_timed_t *t, uint32_t core, int64_t end_ps, const uint32_t *words, uint32_t n)
{
    if (chip->host_len + n + 4u > chip->host_cap) { chip->host_overflows++; return; }
    const int64_t start = end_ps > t->host_out_free_ps ? end_ps : t->host_out_free_ps;
    t->host_out_free_ps = start + transfer_ps(4u * n, t->host_bytes_per_s);
    const int64_t arrival = t->host_out_free_ps + t->host_latency_ps;
    uint32_t *m = chip->host_buf + chip->host_len;
    m[0] = core; m[1] = n; m[2] = (uint32_t)arrival; m[3] = (uint32_t)((uint64_t)arrival >> 32);
    memcpy(m + 4, words, 4u * n);
    chip->host_len += n + 4u;
}

static void release(emu_chip_t *chip, emu_timed_t *t, uint32_t core, int64_t end_ps)
{
    uint32_t *packets = t->stage_packets;
    const emu_route_t **routes = t->stage_routes;
    emu_tcore_t *c = &t->cores[core];
    uint32_t count, at = 0, n = 0, n_delayed = 0, len;
    const uint32_t *box = emu_outbox_take(chip, core, &count);
    for (; at < count; at += len) {
        len = emu_outbox_entry_words(box, at, count);
        if (len == 0u) { chip->core_error[core] = EMU_RTE_OUTBOX; break; }  /* the rest is not trusted */
        const uint32_t tag = box[at] & 0xffu;
        if (tag == HAL_OUT_MC) {
            const uint32_t key = box[at + 1], payload = box[at + 2];
            if (n == EMU_STAGE_PACKETS) { t->stage_overflows++; continue; }
            const emu_route_t *rt = emu_route(chip, key);
            uint32_t action = EMU_FAULT_NONE, delay = 0, copies = 1u;
            if (!rt) drop(chip, core, key);
            else if (chip->n_faults) action = emu_faults_apply(chip->faults, chip->n_faults, core, key, &delay);
            if (action == EMU_FAULT_DROP) continue;
            if (action == EMU_FAULT_DELAY) {  /* sent apart, delay ticks later, after this handler's bursts */
                if (n_delayed == EMU_STAGE_PACKETS) { t->stage_overflows++; continue; }
                t->delayed_packets[2u * n_delayed] = key;
                t->delayed_packets[2u * n_delayed + 1u] = payload;
                t->delayed_ticks[n_delayed] = delay;
                t->delayed_routes[n_delayed++] = rt;
                continue;
            }
            if (action == EMU_FAULT_DUPLICATE) copies = 2u;
            for (uint32_t copy = 0; copy < copies; ++copy) {
                if (n == EMU_STAGE_PACKETS) { t->stage_overflows++; break; }
                packets[2u * n] = key;
                packets[2u * n + 1u] = payload;
                routes[n++] = rt;
            }
        } else if (tag == HAL_OUT_HOST) {
            host_out(chip, t, core, end_ps, box + at + 1, len - 1u);
        } else if (tag == HAL_OUT_DMA || tag == HAL_OUT_DMA_WRITE) {  /* one engine per core, in order */
            const int64_t start = end_ps > c->dma_free_ps ? end_ps : c->dma_free_ps;
            c->dma_free_ps = start + t->dma_latency_ps + transfer_ps(box[at + 3], t->dma_bytes_per_s);
            c->cur_dma_wait_ps += c->dma_free_ps - end_ps;
            emu_event_t *ev = push(t, c->dma_free_ps, CLS_ARRIVAL, EV_DMA, core);
            if (ev) {
                ev->a = box[at + 1]; ev->b = box[at + 2]; ev->c = box[at + 3]; ev->d = box[at + 4];
                ev->e = tag == HAL_OUT_DMA_WRITE;
            }
        } else {  /* HAL_OUT_USER: only this core sees it, and it is busy until end_ps */
            c->user_pending = 1u;
        }
    }
    if (n) send_bursts(chip, t, core, end_ps, packets, routes, n);
    for (uint32_t i = 0; i < n_delayed; ++i)
        send_bursts(chip, t, core, end_ps + (int64_t)t->delayed_ticks[i] * t->tick_ps, t->delayed_packets + 2u * i,
                    t->delayed_routes + i, 1u);
}

/* -- running handlers ----------------------------------------------------------------------------- */
static void close_tick(emu_timed_t *t, uint32_t core)
{
    emu_tcore_t *c = &t->cores[core];
    if (c->cur_tick == EMU_NO_TICK) return;
    const double budget = (double)t->tick_ps / (double)t->cycle_ps[core];
    const uint32_t overrun = (double)c->cur_cycles > budget ? 1u : 0u;
    uint32_t bin = (uint32_t)((double)c->cur_cycles * 100.0 / budget);
    if (bin >= EMU_UTIL_BINS) bin = EMU_UTIL_BINS - 1u;
    c->util_hist[bin]++;
    c->ticks++;
    c->overruns += overrun;
    if (c->cur_cycles > c->worst_cycles || c->ticks == 1u) { c->worst_cycles = c->cur_cycles; c->worst_tick = c->cur_tick; }
    if (c->cur_max_queue > c->max_queue) c->max_queue = c->cur_max_queue;
    if (c->cur_timer_delay_ps > c->max_timer_delay_ps) c->max_timer_delay_ps = c->cur_timer_delay_ps;
    if (t->rec_len < t->rec_cap) {
        emu_tickrec_t *r = &t->recs[t->rec_len++];
        r->core = core; r->tick = c->cur_tick;
        r->cycles = c->cur_cycles > 0xffffffffu ? 0xffffffffu : (uint32_t)c->cur_cycles;
        r->packets = c->cur_packets; r->max_queue = c->cur_max_queue; r->overrun = overrun;
        r->dma_wait_ps = c->cur_dma_wait_ps; r->timer_delay_ps = c->cur_timer_delay_ps;
    } else {
        t->rec_dropped++;
    }
}

static uint32_t charge(emu_timed_t *t, uint32_t core, uint32_t kind, const fw_counts_t *counts)
{
    emu_tcore_t *c = &t->cores[core];
    const uint32_t *v = (const uint32_t *)counts;
    double cycles = (double)t->irq_cycles + t->base_cycles[kind];
    c->phase_cycles[EMU_PHASE_OVERHEAD] += (double)t->irq_cycles;
    c->phase_cycles[t->phase_of_base[kind]] += t->base_cycles[kind];
    for (uint32_t i = 0; i < EMU_COUNT_FIELDS; ++i) {
        if (!v[i]) continue;
        const double x = t->count_cycles[i] * (double)v[i];
        cycles += x;
        c->phase_cycles[t->phase_of_count[i]] += x;
    }
    const uint32_t whole = (uint32_t)cycles + ((double)(uint32_t)cycles < cycles ? 1u : 0u);
    c->cur_cycles += whole;
    c->busy_cycles += whole;
    return whole;
}

/* A handler a core starts: what it takes from the core's queues (kind, and the packet, DMA tag, tick or host
 * message words it is called with), then what the firmware returns. */
typedef struct {
    uint32_t core, kind, ok, a, b, n_words;
    uint32_t words[FW_MAX_HOST_WORDS];
    fw_counts_t counts;
} job_t;

/* the kind of handler the core would start next, by priority; EMU_HANDLERS: nothing pending */
static uint32_t next_kind(const emu_tcore_t *c)
{
    if (c->rx_len) return EMU_H_PACKET;
    if (c->dma_len) return EMU_H_DMA;
    if (c->host_len) return EMU_H_HOST;
    if (c->timer_len) return EMU_H_TIMER;
    if (c->user_pending) return EMU_H_USER;
    return EMU_HANDLERS;
}

/* the core is free at time_ps: take its highest-priority pending event into j (0: nothing pending, the core is
 * idle). Everything but the firmware call: the queues, the tick's bookkeeping when a timer handler starts. */
static int take(emu_chip_t *chip, emu_timed_t *t, uint32_t core, int64_t time_ps, job_t *j)
{
    emu_tcore_t *c = &t->cores[core];
    /* a core stopped by a run-time error takes its events and runs nothing */
    j->ok = (uint32_t)emu_core_ok(chip, core);
    j->core = core;
    j->kind = next_kind(c);
    c->busy = 0;
    c->wake_pending = 0;
    switch (j->kind) {
    case EMU_H_PACKET: {
        const uint32_t slot = core * t->rx_depth + c->rx_head;
        c->rx_head = (uint32_t)wrap(c->rx_head + 1u, t->rx_depth);
        c->rx_len--;
        j->a = t->rx_keys[slot];
        j->b = t->rx_payloads[slot];
        c->cur_packets++;
        c->packets_received++;
        if (c->wait_len) {  /* the oldest packet waiting at the router takes the room (its timeout is ahead) */
            const uint32_t from = core * t->wait_depth + c->wait_head;
            const uint32_t to = core * t->rx_depth + (uint32_t)wrap(c->rx_head + c->rx_len, t->rx_depth);
            t->rx_keys[to] = t->wait_keys[from];
            t->rx_payloads[to] = t->wait_payloads[from];
            c->rx_len++;
            c->wait_head = (uint32_t)wrap(c->wait_head + 1u, t->wait_depth);
            c->wait_len--;
        }
        return 1;
    }
    case EMU_H_DMA:
        j->a = c->dma_q[c->dma_head];
        c->dma_head = (c->dma_head + 1u) % EMU_SMALLQ;
        c->dma_len--;
        return 1;
    case EMU_H_HOST: {
        const uint32_t n = c->host_words[c->host_head];
        const uint64_t at = c->host_at[c->host_head];
        c->host_head = (c->host_head + 1u) % EMU_SMALLQ;
        c->host_len--;
        if (j->ok && !pool_live(t, at, n)) j->ok = 0u;  /* overwritten in flight: nothing runs */
        j->n_words = n;
        for (uint32_t i = 0; j->ok && i < n; ++i) j->words[i] = pool_word(t, at + i);
        return 1;
    }
    case EMU_H_TIMER: {
        const uint32_t tick = c->timer_q[c->timer_head];
        const int64_t fired = c->timer_fire_ps[c->timer_head];
        c->timer_head = (c->timer_head + 1u) % EMU_SMALLQ;
        c->timer_len--;
        close_tick(t, core);
        c->cur_tick = tick;
        c->cur_cycles = 0;
        c->cur_packets = 0;
        c->cur_max_queue = c->rx_len;
        c->cur_dma_wait_ps = 0;
        c->cur_timer_delay_ps = time_ps - fired;
        j->a = tick;
        return 1;
    }
    case EMU_H_USER:
        c->user_pending = 0;
        return 1;
    default:
        return 0;  /* nothing to do: idle until the next arrival */
    }
}

/* the firmware's handler for a job: touches the core's own SRAM only, so jobs of different cores may run at once */
static void call(emu_chip_t *chip, job_t *j)
{
    uint8_t *arena = chip->arenas[j->core];
    if (!j->ok) { memset(&j->counts, 0, sizeof j->counts); return; }
    switch (j->kind) {
    case EMU_H_PACKET: j->counts = fw_on_mc_packet(arena, j->a, j->b); break;
    case EMU_H_DMA: j->counts = fw_on_dma_done(arena, j->a); break;
    case EMU_H_HOST: j->counts = fw_on_host_msg(arena, j->words, j->n_words); break;
    case EMU_H_TIMER: j->counts = fw_on_timer(arena, j->a); break;
    default: j->counts = fw_on_user_event(arena); break;
    }
}

/* after the call: the handler's cycles, its log line and its side effects; returns when it ends (the core is
 * busy until then) */
static int64_t finish(emu_chip_t *chip, emu_timed_t *t, const job_t *j, int64_t time_ps)
{
    const uint32_t core = j->core;
    emu_tcore_t *c = &t->cores[core];
    emu_add_counts(&chip->counts[core], j->counts);
    const uint32_t cycles = charge(t, core, j->kind, &j->counts);
    const int64_t end_ps = time_ps + (int64_t)cycles * t->cycle_ps[core];
    if (t->log_len < t->log_cap) {
        emu_hlog_t *l = &t->log[t->log_len++];
        l->start_ps = time_ps; l->end_ps = end_ps; l->core = core; l->kind = j->kind; l->tick = c->cur_tick;
        l->cycles = cycles;
    } else {
        t->log_dropped++;
    }
    release(chip, t, core, end_ps);
    c->busy = 1u;
    return end_ps;
}

/* the core is free at time_ps: start its highest-priority pending event; returns when that handler
 * ends (the core is busy until then), or -1 if nothing is pending (the core is idle) */
static int64_t serve(emu_chip_t *chip, emu_timed_t *t, uint32_t core, int64_t time_ps)
{
    job_t j;
    if (!take(chip, t, core, time_ps, &j)) return -1;
    call(chip, &j);
    return finish(chip, t, &j, time_ps);
}

/* after a handler that ended at end_ps: a wake-up then, unless the core's next handler would start before
 * anything else in the heap: then it runs at once (the order popping a wake-up for it would give, without
 * the heap round trip), and so on */
static void go_on(emu_chip_t *chip, emu_timed_t *t, uint32_t core, int64_t end_ps, int64_t until_ps)
{
    while (end_ps >= 0) {
        if (end_ps >= until_ps || (t->heap_len && t->heap[0].time_ps <= end_ps)) {
            (void)push(t, end_ps, CLS_WAKE, EV_WAKE, core);
            return;
        }
        t->now_ps = end_ps;
        t->events++;
        end_ps = serve(chip, t, core, end_ps);
    }
}

/* serve core from time_ps on */
static void serve_from(emu_chip_t *chip, emu_timed_t *t, uint32_t core, int64_t time_ps, int64_t until_ps)
{
    go_on(chip, t, core, serve(chip, t, core, time_ps), until_ps);
}

/* Handlers that start at one time on several cores (the neuron cores' steps after their input frame's DMA, the
 * update at a sample's end): their firmware calls run on the chip's threads, everything else in the one-thread
 * order. A batch's heavy calls (DMA done, user event: the neuron, trace and learning steps) are shared out by
 * position; packet and timer handlers (a few hundred cycles) are not worth a meeting of the threads. */
typedef struct {
    emu_chip_t *chip;
    job_t *jobs[FW_MAX_CORES];
    uint32_t n;
} batch_t;

static void call_batch(void *arg, uint32_t thread, uint32_t n_threads)
{
    batch_t *b = (batch_t *)arg;
    for (uint32_t i = thread; i < b->n; i += n_threads) call(b->chip, b->jobs[i]);
}

static int heavy(uint32_t kind) { return kind == EMU_H_DMA || kind == EMU_H_USER; }

/* The wake-ups at ev's time, ev's first: in the one-thread loop each core's handler starts in turn (a wake-up
 * of the next core is at the top of the heap, so each but the last pushes a wake-up at its end). Here every
 * core's queues are taken first (in that order: the tick records close in it), the calls run (heavy ones on
 * the threads), then each handler's cycles and side effects are settled in that order: the same events with
 * the same sequence numbers. A host message's words are read from the pool in flight, which handlers settled
 * before it may overwrite: such a core is served whole, in its turn. */
static void serve_batch(emu_chip_t *chip, emu_timed_t *t, const emu_event_t *ev, int64_t until_ps, uint32_t n_threads)
{
    static _Thread_local job_t jobs[FW_MAX_CORES];  /* large (host words): not on the stack */
    uint32_t cores[FW_MAX_CORES], n = 0, has[FW_MAX_CORES];
    batch_t heavy_calls;
    heavy_calls.chip = chip;
    heavy_calls.n = 0;
    cores[n++] = ev->core;
    while (n < FW_MAX_CORES && t->heap_len && t->heap[0].time_ps == ev->time_ps && t->heap[0].type == EV_WAKE) {
        cores[n++] = pop(t).core;
        t->events++;
    }
    for (uint32_t i = 0; i < n; ++i) {
        if (next_kind(&t->cores[cores[i]]) == EMU_H_HOST) { has[i] = 2u; continue; }  /* served whole, below */
        has[i] = (uint32_t)take(chip, t, cores[i], ev->time_ps, &jobs[i]);
        if (!has[i]) continue;
        if (heavy(jobs[i].kind) && jobs[i].ok) heavy_calls.jobs[heavy_calls.n++] = &jobs[i];
        else call(chip, &jobs[i]);
    }
    if (heavy_calls.n > 1u) (void)emu_pool_run(chip, n_threads, call_batch, &heavy_calls);
    else if (heavy_calls.n) call(chip, heavy_calls.jobs[0]);
    for (uint32_t i = 0; i < n; ++i) {
        const int64_t end_ps = has[i] == 2u ? serve(chip, t, cores[i], ev->time_ps)
                             : has[i] ? finish(chip, t, &jobs[i], ev->time_ps) : -1;
        if (end_ps < 0) continue;
        if (i + 1u < n) (void)push(t, end_ps, CLS_WAKE, EV_WAKE, cores[i]);  /* the next core's wake-up is ahead */
        else go_on(chip, t, cores[i], end_ps, until_ps);
    }
}

static void start(emu_chip_t *chip, emu_timed_t *t)
{
    if (t->started) return;
    t->started = 1u;
    for (uint32_t core = 0; core < chip->n_cores; ++core) {
        t->cores[core].cur_tick = EMU_NO_TICK;
        if (t->cores[core].enabled) schedule_timer(t, core);
    }
}

void emu_timed_enable(emu_chip_t *chip, emu_timed_t *t, uint32_t core)
{
    if (core >= chip->n_cores || t->cores[core].enabled) return;
    t->cores[core].enabled = 1u;
    if (!t->started) return;  /* start() schedules it */
    /* the first tick whose fire time is still ahead */
    const int64_t since = t->now_ps - t->skew_ps[core];
    t->cores[core].next_tick = since <= 0 ? 0u : (uint32_t)((since + t->tick_ps - 1) / t->tick_ps);
    schedule_timer(t, core);
}

static void run_events(emu_chip_t *chip, emu_timed_t *t, int64_t until_ps, uint32_t n_threads)
{
    while (t->heap_len && t->heap[0].time_ps < until_ps) {
        const emu_event_t ev = pop(t);
        t->now_ps = ev.time_ps;
        t->events++;
        if (ev.type != EV_WAKE) arrive(chip, t, &ev);
        else if (n_threads > 1u && t->heap_len && t->heap[0].time_ps == ev.time_ps) serve_batch(chip, t, &ev, until_ps, n_threads);
        else serve_from(chip, t, ev.core, ev.time_ps, until_ps);
    }
}

void emu_timed_run(emu_chip_t *chip, emu_timed_t *t, int64_t until_ps)
{
    start(chip, t);
    const int64_t from_ps = t->now_ps;
    if (until_ps <= from_ps) {
        run_events(chip, t, until_ps, 1u);
    } else {  /* on the threads only where they pay, as the functional loop (chip_loop.c emu_run) */
        const double ticks = (double)(until_ps - from_ps) / (double)t->tick_ps;
        const uint32_t n_ticks = ticks < 1.0 ? 1u : ticks > 4e9 ? 0xffffffffu : (uint32_t)ticks;
        const uint32_t n_threads = emu_threads_choose(chip, n_ticks);
        const double t0 = emu_seconds_now();
        run_events(chip, t, until_ps, n_threads);
        emu_threads_timed(chip, n_ticks, n_threads, (emu_seconds_now() - t0) / ticks);
    }
    if (until_ps > t->now_ps) t->now_ps = until_ps;
}

int32_t emu_timed_host_msg(emu_chip_t *chip, emu_timed_t *t, uint32_t core, const uint32_t *msg, uint32_t n_words)
{
    if (core >= chip->n_cores || n_words > FW_MAX_HOST_WORDS) return -1;
    if (!emu_core_ok(chip, core)) return -2;
    start(chip, t);
    const int64_t begin = t->now_ps > t->host_in_free_ps ? t->now_ps : t->host_in_free_ps;
    t->host_in_free_ps = begin + transfer_ps(4u * n_words, t->host_bytes_per_s);
    const uint64_t at = pool_put(t, msg, n_words);
    emu_event_t *ev = push(t, t->host_in_free_ps + t->host_latency_ps, CLS_ARRIVAL, EV_HOST, core);
    if (ev) { ev->a = (uint32_t)at; ev->b = (uint32_t)(at >> 32); ev->c = n_words; }
    return 0;
}

void emu_timed_inject(emu_chip_t *chip, emu_timed_t *t, uint32_t key, uint32_t payload)
{
    const uint32_t packet[2] = {key, payload};
    const emu_route_t *rt = emu_route(chip, key);
    start(chip, t);
    if (!rt) { drop(chip, EMU_SRC_EXTERNAL, key); return; }
    send_bursts(chip, t, EMU_SRC_EXTERNAL, t->now_ps, packet, &rt, 1u);
}

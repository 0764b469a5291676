/* See chip_loop.h. */
#include <string.h>
#include "chip_loop.h"
#include "chip_internal.h"
#include "hal.h"

_Static_assert(EMU_DROP_SOURCES == FW_MAX_CORES + 1u, "a drop counter per core and one for injected packets");

void emu_add_counts(fw_counts_t *acc, fw_counts_t c)
{
    acc->neuron_updates += c.neuron_updates;
    acc->synapse_mults += c.synapse_mults;
    acc->trace_updates += c.trace_updates;
    acc->exp_calls += c.exp_calls;
    acc->adam_updates += c.adam_updates;
    acc->mc_sent += c.mc_sent;
    acc->mc_received += c.mc_received;
    acc->host_words += c.host_words;
    acc->dma_bytes += c.dma_bytes;
    acc->words_cleared += c.words_cleared;
    acc->partials_reduced += c.partials_reduced;
    acc->w2_terms += c.w2_terms;
    acc->spikes_received += c.spikes_received;
    acc->partials_received += c.partials_received;
}

typedef struct { uint32_t head, tail; } fifo_t;

typedef struct {
    emu_chip_t *chip;
    fifo_t pkt, dma;
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

/* move a core's outbox into the packet FIFO, the host buffer, the DMA queue and its user-event flag */
static void drain(run_t *r, uint32_t core)
{
    emu_chip_t *chip = r->chip;
    uint32_t count, at = 0, len;
    const uint32_t *box = emu_outbox_take(chip, core, &count);
    for (; at < count; at += len) {
        len = emu_outbox_entry_words(box, at, count);
        if (len == 0u) { chip->core_error[core] = EMU_RTE_OUTBOX; return; }  /* the rest is not trusted */
        const uint32_t tag = box[at] & 0xffu;
        if (tag == HAL_OUT_MC) {
            if (r->pkt.tail < chip->pkt_cap) {
                uint32_t *p = chip->pkt_buf + 3u * r->pkt.tail++;
                p[0] = core; p[1] = box[at + 1]; p[2] = box[at + 2];
            } else {
                chip->pkt_overflows++;
            }
        } else if (tag == HAL_OUT_HOST) {
            const uint32_t n = len - 1u;
            if (chip->host_len + n + 2u <= chip->host_cap && n + 2u <= chip->host_cap) {
                uint32_t *m = chip->host_buf + chip->host_len;
                m[0] = core; m[1] = n;
                for (uint32_t w = 0; w < n; ++w) m[2 + w] = box[at + 1 + w];
                chip->host_len += n + 2u;
            } else {
                chip->host_overflows++;
            }
        } else if (tag == HAL_OUT_DMA || tag == HAL_OUT_DMA_WRITE) {
            if (r->dma.tail < chip->dma_cap) {
                emu_dma_t *d = chip->dma_buf + r->dma.tail++;
                d->core = core; d->sdram_addr = box[at + 1]; d->sram_offset = box[at + 2];
                d->n_bytes = box[at + 3]; d->tag = box[at + 4]; d->write = tag == HAL_OUT_DMA_WRITE;
            } else {
                chip->dma_overflows++;
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
 * to SDRAM the host never wrote (counted, no completion) */
int emu_dma_copy(emu_chip_t *chip, const emu_dma_t *d)
{
    const uint64_t sdram_end = (uint64_t)chip->sdram_n_pages << chip->sdram_page_bits;
    if ((uint64_t)d->sdram_addr + d->n_bytes > sdram_end || (uint64_t)d->sram_offset + d->n_bytes > chip->sram_bytes
        || (d->write && !sdram_backed(chip, d->sdram_addr, d->n_bytes))) {
        chip->dma_faults++;
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
    chip->dma_bytes += d->n_bytes;
    return 1;
}

/* after a handler of `core`: drain it, then do every queued DMA read, each completion drained too */
static void settle_core(run_t *r, uint32_t core)
{
    emu_chip_t *chip = r->chip;
    drain(r, core);
    while (r->dma.head < r->dma.tail) {
        const emu_dma_t d = chip->dma_buf[r->dma.head++];
        if (!emu_dma_copy(chip, &d) || !emu_core_ok(chip, d.core)) continue;
        emu_add_counts(&chip->counts[d.core], fw_on_dma_done(chip->arenas[d.core], d.tag));
        drain(r, d.core);
    }
    r->dma.head = r->dma.tail = 0;
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

static void deliver_all(run_t *r)
{
    emu_chip_t *chip = r->chip;
    while (r->pkt.head < r->pkt.tail) {
        const uint32_t *p = chip->pkt_buf + 3u * r->pkt.head++;
        const uint32_t src = p[0], key = p[1], payload = p[2];
        const emu_route_t *rt = emu_route(chip, key);
        if (!rt) {
            chip->dropped++;
            chip->dropped_from[src == EMU_SRC_EXTERNAL ? FW_MAX_CORES : src]++;
            chip->last_drop_src = src;
            chip->last_drop_key = key;
            continue;
        }
        for (uint32_t w = 0; w < EMU_DEST_WORDS; ++w) {  /* destinations in core order */
            for (uint32_t bits = rt->dest[w]; bits; bits &= bits - 1u) {
                const uint32_t core = 32u * w + (uint32_t)__builtin_ctz(bits);
                if (core >= chip->n_cores) break;
                if (!emu_core_ok(chip, core)) continue;  /* stopped by a run-time error: nothing runs */
                emu_add_counts(&chip->counts[core], fw_on_mc_packet(chip->arenas[core], key, payload));
                chip->delivered++;
                settle_core(r, core);
            }
        }
    }
    r->pkt.head = r->pkt.tail = 0;
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
        settle_core(r, core);
    }
}

void emu_run(emu_chip_t *chip, uint32_t first_tick, uint32_t n_ticks)
{
    run_t r = {chip, {0, 0}, {0, 0}};
    for (uint32_t t = 0; t < n_ticks; ++t) {
        for (uint32_t core = 0; core < chip->n_cores; ++core) {
            if (!emu_core_ok(chip, core)) continue;
            emu_add_counts(&chip->counts[core], fw_on_timer(chip->arenas[core], first_tick + t));
            settle_core(&r, core);
        }
        settle_chip(&r);
    }
}

int32_t emu_host_msg(emu_chip_t *chip, uint32_t core, const uint32_t *msg, uint32_t n_words)
{
    run_t r = {chip, {0, 0}, {0, 0}};
    if (core >= chip->n_cores) return -1;
    if (!emu_core_ok(chip, core)) return -2;
    emu_add_counts(&chip->counts[core], fw_on_host_msg(chip->arenas[core], msg, n_words));
    settle_core(&r, core);
    settle_chip(&r);
    return 0;
}

void emu_inject(emu_chip_t *chip, uint32_t key, uint32_t payload)
{
    run_t r = {chip, {0, 0}, {0, 0}};
    if (chip->pkt_cap == 0) { chip->pkt_overflows++; return; }
    chip->pkt_buf[0] = EMU_SRC_EXTERNAL; chip->pkt_buf[1] = key; chip->pkt_buf[2] = payload;
    r.pkt.tail = 1u;
    settle_chip(&r);
}

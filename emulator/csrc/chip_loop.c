/* See chip_loop.h. */
#include "chip_loop.h"
#include "hal.h"

static void add_counts(fw_counts_t *acc, fw_counts_t c)
{
    acc->neuron_updates += c.neuron_updates;
    acc->synapse_mults += c.synapse_mults;
    acc->trace_updates += c.trace_updates;
    acc->exp_calls += c.exp_calls;
    acc->adam_updates += c.adam_updates;
    acc->mc_sent += c.mc_sent;
    acc->mc_received += c.mc_received;
    acc->host_words += c.host_words;
}

typedef struct { uint32_t head, tail; } fifo_t;

/* move a core's outbox into the packet FIFO and the host buffer, then empty it */
static void drain(emu_chip_t *chip, uint32_t core, fifo_t *q)
{
    fw_header_t *h = (fw_header_t *)chip->arenas[core];
    const uint32_t *box = (const uint32_t *)(chip->arenas[core] + h->layout.outbox);
    uint32_t at = 0;
    while (at < h->state.outbox_count) {
        const uint32_t tag = box[at] & 0xffu;
        if (tag == HAL_OUT_MC) {
            if (q->tail < chip->pkt_cap) {
                uint32_t *p = chip->pkt_buf + 3u * q->tail++;
                p[0] = core; p[1] = box[at + 1]; p[2] = box[at + 2];
            } else {
                chip->pkt_overflows++;
            }
            at += 3u;
        } else {
            const uint32_t n = box[at] >> 8;
            if (chip->host_len + n + 2u <= chip->host_cap) {
                uint32_t *m = chip->host_buf + chip->host_len;
                m[0] = core; m[1] = n;
                for (uint32_t w = 0; w < n; ++w) m[2 + w] = box[at + 1 + w];
                chip->host_len += n + 2u;
            } else {
                chip->host_overflows++;
            }
            at += n + 1u;
        }
    }
    h->state.outbox_count = 0;
}

static const emu_route_t *route(const emu_chip_t *chip, uint32_t key)
{
    for (uint32_t r = 0; r < chip->n_routes; ++r)
        if ((key & chip->routes[r].mask) == chip->routes[r].key) return &chip->routes[r];
    return 0;
}

static void deliver_all(emu_chip_t *chip, fifo_t *q)
{
    while (q->head < q->tail) {
        const uint32_t *p = chip->pkt_buf + 3u * q->head++;
        const uint32_t src = p[0], key = p[1], payload = p[2];
        const emu_route_t *r = route(chip, key);
        if (!r) {
            chip->dropped++;
            chip->dropped_from[src]++;
            chip->last_drop_src = src;
            chip->last_drop_key = key;
            continue;
        }
        for (uint32_t core = 0; core < chip->n_cores; ++core) {
            if (!((r->dest[core >> 5] >> (core & 31u)) & 1u)) continue;
            add_counts(&chip->counts[core], fw_on_mc_packet(chip->arenas[core], key, payload));
            chip->delivered++;
            drain(chip, core, q);
        }
    }
}

void emu_tick(emu_chip_t *chip, uint32_t tick)
{
    fifo_t q = {0, 0};
    for (uint32_t core = 0; core < chip->n_cores; ++core) {
        add_counts(&chip->counts[core], fw_on_timer(chip->arenas[core], tick));
        drain(chip, core, &q);
    }
    deliver_all(chip, &q);
}

int32_t emu_host_msg(emu_chip_t *chip, uint32_t core, const uint32_t *msg, uint32_t n_words)
{
    fifo_t q = {0, 0};
    if (core >= chip->n_cores) return -1;
    add_counts(&chip->counts[core], fw_on_host_msg(chip->arenas[core], msg, n_words));
    drain(chip, core, &q);
    deliver_all(chip, &q);
    return 0;
}

static int result_arrived(const emu_chip_t *chip, uint32_t from_word, uint32_t sample_id)
{
    uint32_t at = from_word;
    while (at + 2u <= chip->host_len) {
        const uint32_t n = chip->host_buf[at + 1];
        if (n >= 2u && chip->host_buf[at + 2] == FW_MSG_RESULT && chip->host_buf[at + 3] == sample_id) return 1;
        at += n + 2u;
    }
    return 0;
}

int32_t emu_run_sample(emu_chip_t *chip, uint32_t *tick, uint32_t sample_id, uint32_t label, uint32_t train,
                       const float *frames, uint32_t n_steps, uint32_t n_in,
                       const uint32_t *neuron_cores, uint32_t n_neuron_cores,
                       uint32_t lookahead, uint32_t max_ticks)
{
    uint32_t msg[3u + FW_MAX_IN];
    const uint32_t sample_msg[4] = {FW_MSG_SAMPLE, sample_id, label, train};
    const uint32_t host_from = chip->host_len;
    uint32_t pushed = 0;
    if (n_in > FW_MAX_IN) return -2;
    for (uint32_t c = 0; c < n_neuron_cores; ++c)
        if (neuron_cores[c] >= chip->n_cores) return -2;
    for (uint32_t core = 0; core < chip->n_cores; ++core) emu_host_msg(chip, core, sample_msg, 4u);
    for (uint32_t k = 0; k < max_ticks; ++k) {
        while (pushed < n_steps && pushed < k + lookahead) {
            msg[0] = FW_MSG_FRAME; msg[1] = sample_id; msg[2] = pushed;
            const uint32_t *src = (const uint32_t *)(frames + (uint64_t)pushed * n_in);
            for (uint32_t i = 0; i < n_in; ++i) msg[3 + i] = src[i];
            for (uint32_t c = 0; c < n_neuron_cores; ++c) emu_host_msg(chip, neuron_cores[c], msg, 3u + n_in);
            pushed++;
        }
        emu_tick(chip, (*tick)++);
        if (result_arrived(chip, host_from, sample_id)) return (int32_t)(k + 1u);
    }
    return -1;
}

/* Entry points of the per-core application: init, timer tick, multicast packet, DMA done, host message.
 * Per-tick order (documented once, here): the readout role reduces the partial sums of the previous
 * step (and finishes a sample after its last step), then the neuron role runs one ALIF step with the
 * spikes received during the previous tick, sends its spikes and partial sums, and updates its
 * eligibility traces. The weight update runs when the last output-error packet of a sample arrives. */
#include "fw_abi.h"
#include "fw_internal.h"
#include "adam.h"
#include "eprop_trace.h"
#include "neuron_model.h"
#include "readout.h"

static fw_counts_t no_counts(void)
{
    fw_counts_t c = {0};
    return c;
}

uint32_t fw_init(uint8_t *arena, uint32_t arena_bytes)
{
    fw_header_t *h = (fw_header_t *)arena;
    fw_layout_t expect;
    if (arena_bytes < sizeof(fw_header_t)) return FW_ERR_SIZE; /* too small to hold even the status */
    if (h->magic != FW_MAGIC) return h->status = FW_ERR_MAGIC;
    if (h->abi_version != FW_ABI_VERSION) return h->status = FW_ERR_VERSION;
    const uint32_t need = fw_layout(&h->config, &expect);
    if (need == 0) return h->status = FW_ERR_CONFIG;
    if (need > arena_bytes || h->arena_bytes != need) return h->status = FW_ERR_SIZE;
    const uint8_t *a = (const uint8_t *)&expect, *b = (const uint8_t *)&h->layout;
    for (uint32_t i = 0; i < sizeof(fw_layout_t); ++i)
        if (a[i] != b[i]) return h->status = FW_ERR_LAYOUT;
    fw_state_t s = {0};
    s.lr = h->config.lr;
    s.b1_pow = h->config.b1_pow0;
    s.b2_pow = h->config.b2_pow0;
    s.adam_t = h->config.adam_t0;
    h->state = s;
    /* zero everything after the optimizer state: traces, neuron state, buffers */
    const uint32_t from = h->layout.ea_in ? h->layout.ea_in : h->layout.z_prev;
    for (uint32_t *p = (uint32_t *)(arena + from); p < (uint32_t *)(arena + need); ++p) *p = 0u;
    return h->status = FW_OK;
}

static void start_sample(fw_header_t *h, uint8_t *arena)
{
    fw_state_t *s = &h->state;
    const uint32_t nl = h->config.n_local, zw = fw_bitmap_words(h->config.n_rec);
    s->sample_id = s->pending_id;
    s->label = s->pending_label;
    s->train = s->pending_train;
    s->pending_valid = 0;
    s->step = 0;
    s->err_received = 0;
    s->phase = FW_PHASE_RUN;
    eprop_trace_reset(h, arena);
    float *state_f[] = {FW_F32(arena, h, v), FW_F32(arena, h, a), FW_F32(arena, h, psi),
                        FW_F32(arena, h, zbar), FW_F32(arena, h, zsum), FW_F32(arena, h, z_local)};
    for (uint32_t r = 0; r < sizeof state_f / sizeof state_f[0]; ++r)
        for (uint32_t j = 0; j < nl; ++j) state_f[r][j] = 0.0f;
    uint32_t *z_next = FW_U32(arena, h, z_next);
    for (uint32_t w = 0; w < zw; ++w) z_next[w] = 0u;  /* spikes of the previous sample's last step */
}

static const uint32_t *ring_head(fw_header_t *h, uint8_t *arena)
{
    if (h->state.ring_count == 0) return 0;
    return FW_U32(arena, h, ring) + h->state.ring_head * (2u + h->config.n_in);
}

static void neuron_tick(fw_header_t *h, uint8_t *arena, fw_counts_t *c)
{
    fw_state_t *s = &h->state;
    const fw_config_t *cfg = &h->config;
    const uint32_t *frame = ring_head(h, arena);
    if (s->phase == FW_PHASE_IDLE) {
        if (!s->pending_valid || !frame || frame[0] != s->pending_id || frame[1] != 0u) return;
        start_sample(h, arena);
    }
    if (s->phase != FW_PHASE_RUN) return;
    if (!frame || frame[0] != s->sample_id || frame[1] != s->step) {
        s->input_underruns++;  /* the host did not stream this step's frame in time */
        return;
    }
    const uint32_t zw = fw_bitmap_words(cfg->n_rec);
    uint32_t *z_prev = FW_U32(arena, h, z_prev), *z_next = FW_U32(arena, h, z_next);
    for (uint32_t w = 0; w < zw; ++w) { z_prev[w] = z_next[w]; z_next[w] = 0u; }
    const float *x = (const float *)(frame + 2);

    neuron_step(h, arena, x, z_prev, c);
    readout_send_partials(h, arena, c);
    if (s->train) eprop_trace_step(h, arena, x, z_prev, c);

    s->ring_head = (s->ring_head + 1u) % cfg->ring_frames;
    s->ring_count--;
    if (++s->step == cfg->n_steps) {
        s->phase = s->train ? FW_PHASE_WAIT_ERR : FW_PHASE_IDLE;
        if (!s->train) s->samples_done++;
    }
}

fw_counts_t fw_on_timer(uint8_t *arena, uint32_t tick)
{
    fw_header_t *h = (fw_header_t *)arena;
    fw_counts_t c = no_counts();
    (void)tick;
    if (h->status != FW_OK) return c;
    if (h->config.role & FW_ROLE_READOUT) readout_reduce_tick(h, arena, &c);
    if (h->config.role & FW_ROLE_NEURON) neuron_tick(h, arena, &c);
    return c;
}

fw_counts_t fw_on_mc_packet(uint8_t *arena, uint32_t key, uint32_t payload)
{
    fw_header_t *h = (fw_header_t *)arena;
    const fw_config_t *cfg = &h->config;
    fw_state_t *s = &h->state;
    fw_counts_t c = no_counts();
    if (h->status != FW_OK) return c;
    c.mc_received = 1;
    if (key - cfg->key_spike < cfg->n_rec) {
        const uint32_t i = key - cfg->key_spike;
        FW_U32(arena, h, z_next)[i >> 5] |= 1u << (i & 31u);
        s->spikes++;
    } else if ((cfg->role & FW_ROLE_READOUT) && key - cfg->key_partial < cfg->n_src * cfg->n_out) {
        readout_on_partial(h, arena, key - cfg->key_partial, payload, &c);
    } else if ((cfg->role & FW_ROLE_NEURON) && key - cfg->key_err < cfg->n_out) {
        if (s->phase != FW_PHASE_WAIT_ERR) { s->late_packets++; return c; }
        FW_F32(arena, h, err)[key - cfg->key_err] = fw_float(payload);
        if (++s->err_received == cfg->n_out) {
            adam_apply_sample(h, arena, &c);
            s->err_received = 0;
            s->samples_done++;
            s->phase = FW_PHASE_IDLE;
        }
    } else {
        s->unknown_keys++;
    }
    return c;
}

fw_counts_t fw_on_dma_done(uint8_t *arena, uint32_t tag)
{
    /* The emulated core keeps all its state in SRAM; no DMA is issued yet (inputs arrive as host
     * messages). The handler exists so that the event set matches the board's. */
    (void)arena;
    (void)tag;
    return no_counts();
}

fw_counts_t fw_on_host_msg(uint8_t *arena, const uint32_t *msg, uint32_t n_words)
{
    fw_header_t *h = (fw_header_t *)arena;
    const fw_config_t *cfg = &h->config;
    fw_state_t *s = &h->state;
    fw_counts_t c = no_counts();
    c.host_words = n_words;
    if (h->status != FW_OK || n_words == 0) { s->bad_host_msgs++; return c; }
    switch (msg[0]) {
    case FW_MSG_SAMPLE:
        if (n_words != 4u || s->pending_valid || msg[2] >= cfg->n_out) { s->bad_host_msgs++; break; }
        s->pending_id = msg[1];
        s->pending_label = msg[2];
        s->pending_train = msg[3] ? 1u : 0u;
        s->pending_valid = 1u;
        break;
    case FW_MSG_FRAME: {
        if (!(cfg->role & FW_ROLE_NEURON) || n_words != 3u + cfg->n_in) { s->bad_host_msgs++; break; }
        if (s->ring_count == cfg->ring_frames) { s->ring_overflows++; break; }
        uint32_t *slot = FW_U32(arena, h, ring)
                         + ((s->ring_head + s->ring_count) % cfg->ring_frames) * (2u + cfg->n_in);
        for (uint32_t w = 0; w < 2u + cfg->n_in; ++w) slot[w] = msg[1u + w];
        s->ring_count++;
        break;
    }
    case FW_MSG_SCALE_LR:
        if (n_words != 2u) { s->bad_host_msgs++; break; }
        s->lr = s->lr * fw_float(msg[1]);
        break;
    default:
        s->bad_host_msgs++;
    }
    return c;
}

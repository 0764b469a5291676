/* Entry points of the per-core application: init, timer tick, multicast packet, DMA done, host
 * message, user event.
 *
 * Per-tick order (documented once, here). A sample starts at the first timer tick after its SAMPLE
 * message (step 0) and takes n_steps + 1 ticks on every core:
 *  - timer, every tick: the spikes tagged with the previous tick become this step's input (z_prev).
 *  - timer, step 1..n_steps, readout role: reduce the partial sums of the previous tick; at step
 *    n_steps finish the sample (RESULT to the host, output errors to the neuron cores if training).
 *  - timer, step k < n_steps, neuron role: start the DMA of input slot k (an analog frame or, with
 *    spike input, the step's bitmap of active inputs) from the SDRAM ring;
 *    fw_on_dma_done checks the frame's header, runs one ALIF step, sends spikes and partial sums
 *    tagged with this tick, and updates the eligibility traces. A frame that is missing or of
 *    another sample is counted and the step runs with zero input; one that has not arrived by the
 *    next tick is counted and its step skipped, so each core's step stays that of its timer.
 *  - timer, step n_steps: without training every core sends SAMPLE_DONE and is idle again.
 *  - recording (a sample marked FW_SAMPLE_RECORD): a neuron core writes step k's record after the
 *    step runs; the readout role writes step k's output when it reduces it (tick k + 1).
 *  - packets: spikes and partial sums are filed under their tag's step (the last tick handled or
 *    the next); others are counted as late or early. Output errors carry the sample's tag.
 *  - spike counts: a neuron core's last step of a sample also multicasts the spikes it sent in the
 *    sample (tagged like its spikes); at step n_steps each neuron core compares the counts of all
 *    n_src senders with the spikes it filed for the sample's steps (spikes_missing,
 *    spike_counts_missing), before the sample's SAMPLE_DONE reports what moved.
 *  - when the last output error is in and the steps are done, the user event (lowest priority)
 *    applies Adam, then sends SAMPLE_DONE; the next timer tick does it if the event was lost. */
#include "fw_abi.h"
#include "fw_internal.h"
#include "adam.h"
#include "eprop_trace.h"
#include "hal.h"
#include "neuron_model.h"
#include "readout.h"
#include "recording.h"

_Static_assert(FW_MAX_OUT <= 64u, "err_seen holds 64 bits");
_Static_assert(FW_RESULT_HEAD_WORDS + FW_MAX_OUT <= FW_MAX_HOST_WORDS, "a RESULT fits one host message");
_Static_assert(sizeof(fw_counters_t) / 4u <= 32u, "SAMPLE_DONE's bitmask has a bit per counter");
_Static_assert(FW_COUNT_SEEN_WORDS * 32u >= FW_MAX_CORES, "counts_seen has a bit per sender");

/* ticks a training core waits past its last step for the output errors before it gives up on them
 * (when the host has already announced the next sample) */
#define FW_ERR_WAIT_TICKS 16u

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
    if (!fw_index_valid(arena)) return h->status = FW_ERR_LAYOUT;  /* sparse: the index stays inside its regions */
    fw_state_t s = {0};
    s.tick = 0xffffffffu;  /* no tick handled yet: packets of tick 0 are a step ahead */
    s.count_tag = FW_COUNT_TAG_NONE;
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

static void start_sample(fw_header_t *h, uint8_t *arena, fw_counts_t *c)
{
    fw_state_t *s = &h->state;
    const uint32_t nl = h->config.n_local, zw = fw_bitmap_words(h->config.n_rec);
    s->sample_id = s->pending_id;
    s->label = s->pending_label;
    s->train = s->pending_train;
    s->record = s->pending_record;
    s->slot0 = s->pending_slot0;
    s->pending_valid = 0;
    s->step = 0;
    s->err_received = 0;
    s->err_seen[0] = s->err_seen[1] = 0u;
    s->spikes = 0;
    s->spikes_filed = s->spikes_announced = 0u;
    for (uint32_t w = 0; w < FW_COUNT_SEEN_WORDS; ++w) s->counts_seen[w] = 0u;
    s->dma_busy = 0;
    s->phase = FW_PHASE_RUN;
    /* step 0 runs at this tick: the counts come tagged with the tick of step n_steps - 1 */
    s->count_tag = (s->tick + h->config.n_steps - 1u) & FW_KEY_TAG_MASK;
    uint32_t *z_prev = FW_U32(arena, h, z_prev);
    for (uint32_t w = 0; w < zw; ++w) z_prev[w] = 0u;  /* spikes of before the sample */
    c->words_cleared += zw;
    if (!nl) return;
    eprop_trace_reset(h, arena, c);
    float *state_f[] = {FW_F32(arena, h, v), FW_F32(arena, h, a), FW_F32(arena, h, psi),
                        FW_F32(arena, h, zbar), FW_F32(arena, h, zsum), FW_F32(arena, h, z_local)};
    for (uint32_t r = 0; r < sizeof state_f / sizeof state_f[0]; ++r)
        for (uint32_t j = 0; j < nl; ++j) state_f[r][j] = 0.0f;
    c->words_cleared += (uint32_t)(sizeof state_f / sizeof state_f[0]) * nl;
    if (h->layout.zcount) {  /* train.rate_reg: spikes per neuron of this sample */
        float *zcount = FW_F32(arena, h, zcount);
        for (uint32_t j = 0; j < nl; ++j) zcount[j] = 0.0f;
        c->words_cleared += nl;
    }
}

/* sum of w^2 over this core's weights, float32 in a fixed order */
static float weights_sum_sq(fw_header_t *h, uint8_t *arena, fw_counts_t *c)
{
    const fw_config_t *cfg = &h->config;
    const uint32_t nl = cfg->n_local;
    const float *blocks[] = {FW_F32(arena, h, w_in), FW_F32(arena, h, w_rec), FW_F32(arena, h, w_out)};
    const uint32_t sizes[] = {fw_syn_in(cfg), fw_syn_rec(cfg), nl * cfg->n_out};
    float sum = 0.0f;
    if (!nl) return sum;
    for (uint32_t b = 0; b < 3u; ++b)
        for (uint32_t i = 0; i < sizes[b]; ++i) sum += blocks[b][i] * blocks[b][i];
    c->w2_terms += sizes[0] + sizes[1] + sizes[2];
    return sum;
}

static void sample_done(fw_header_t *h, uint8_t *arena, fw_counts_t *c)
{
    fw_state_t *s = &h->state;
    const uint32_t *now = (const uint32_t *)&s->counters, *then = (const uint32_t *)&s->reported;
    uint32_t moved = 0;
    const uint32_t irq = hal_irq_disable();  /* a packet's count between the two would never be reported */
    for (uint32_t i = 0; i < sizeof(fw_counters_t) / 4u; ++i)
        if (now[i] != then[i]) moved |= 1u << i;
    s->reported = s->counters;
    hal_irq_restore(irq);
    const uint32_t msg[FW_SAMPLE_DONE_WORDS] = {FW_MSG_SAMPLE_DONE, s->sample_id, fw_bits(weights_sum_sq(h, arena, c)),
                                                s->spikes, moved};
    hal_send_host(h, msg, FW_SAMPLE_DONE_WORDS);
    c->host_words += FW_SAMPLE_DONE_WORDS;
    s->samples_done++;
    s->phase = FW_PHASE_IDLE;
}

static void apply_update(fw_header_t *h, uint8_t *arena, fw_counts_t *c)
{
    adam_apply_sample(h, arena, c);
    sample_done(h, arena, c);
}

static void queue_update(fw_header_t *h)
{
    h->state.phase = FW_PHASE_UPDATE;
    hal_user_event(h);  /* if the outbox is full (counted), the next timer tick applies it */
}

static void start_frame_dma(fw_header_t *h, uint8_t *arena, uint32_t step, fw_counts_t *c)
{
    fw_state_t *s = &h->state;
    const fw_config_t *cfg = &h->config;
    const uint32_t slot_words = fw_input_slot_words(cfg->input_kind, cfg->n_in);
    const uint32_t slot = (s->slot0 + step) % cfg->ring_slots;
    uint32_t *dst = FW_U32(arena, h, dma_buf) + (step & 1u) * slot_words;
    if (s->dma_busy) s->counters.input_underruns++;  /* the previous frame never came: its step was skipped */
    s->dma_busy = hal_dma_read(h, cfg->sdram_ring + slot * slot_words * 4u, dst, slot_words * 4u, step) ? 1u : 0u;
    s->dma_step = step;
    if (!s->dma_busy) s->counters.input_underruns++;  /* outbox full (counted too): no frame for this step */
    c->dma_bytes += slot_words * 4u;
}

static void end_of_steps(fw_header_t *h, uint8_t *arena, fw_counts_t *c)
{
    fw_state_t *s = &h->state;
    if (s->dma_busy) { s->counters.input_underruns++; s->dma_busy = 0; }  /* the last frame never came */
    if (!(h->config.role & FW_ROLE_NEURON) || !s->train) { sample_done(h, arena, c); return; }
    /* the packet handler queues the update itself once the last error is in, but only in WAIT_ERR */
    const uint32_t irq = hal_irq_disable();
    if (s->err_received == h->config.n_out) queue_update(h);
    else s->phase = FW_PHASE_WAIT_ERR;
    hal_irq_restore(irq);
}

/* Called at each timer tick once the `filed` spikes of the previous tick are taken: they are this
 * sample's if that tick ran one of its steps. At step n_steps (the sample's last spikes taken)
 * compare the spikes filed with those the senders announced. */
static void check_spikes(fw_header_t *h, uint32_t filed)
{
    fw_state_t *s = &h->state;
    const fw_config_t *cfg = &h->config;
    const int running = s->phase == FW_PHASE_RUN && s->step >= 1u;
    if (running) s->spikes_filed += filed;
    if (!running || s->step != cfg->n_steps) return;
    const uint32_t seen = fw_popcount(s->counts_seen, fw_bitmap_words(cfg->n_src));
    if (seen != cfg->n_src) s->counters.spike_counts_missing += cfg->n_src - seen;  /* cannot compare */
    else if (s->spikes_filed != s->spikes_announced)
        s->counters.spikes_missing += s->spikes_filed < s->spikes_announced ? s->spikes_announced - s->spikes_filed
                                                                             : s->spikes_filed - s->spikes_announced;
}

fw_counts_t fw_on_timer(uint8_t *arena, uint32_t tick)
{
    fw_header_t *h = (fw_header_t *)arena;
    const fw_config_t *cfg = &h->config;
    fw_state_t *s = &h->state;
    fw_counts_t c = no_counts();
    if (h->status != FW_OK) return c;
    const uint32_t zw = fw_bitmap_words(cfg->n_rec), parity = (tick - 1u) & 1u;
    uint32_t *z_prev = FW_U32(arena, h, z_prev), *z_rx = FW_U32(arena, h, z_rx) + parity * zw;
    /* Masked: once the tick moves, the packet handler files spikes tagged tick + 1 under the parity
     * of tick - 1, into the buffer (and count) taken here (docs/chip.md section 10, race 1). The
     * sample's spike counts stop with the tick whose check_spikes compares them (race 7). */
    uint32_t irq = hal_irq_disable();
    s->tick = tick;
    if (s->phase != FW_PHASE_RUN || s->step >= cfg->n_steps) s->count_tag = FW_COUNT_TAG_NONE;
    for (uint32_t w = 0; w < zw; ++w) { z_prev[w] = z_rx[w]; z_rx[w] = 0u; }
    const uint32_t filed = s->spikes_rx[parity];
    s->spikes_rx[parity] = 0u;
    hal_irq_restore(irq);
    if (cfg->role & FW_ROLE_NEURON) check_spikes(h, filed);

    if (s->phase == FW_PHASE_UPDATE) apply_update(h, arena, &c);
    if (s->phase == FW_PHASE_WAIT_ERR && ++s->step > cfg->n_steps + FW_ERR_WAIT_TICKS && s->pending_valid) {
        s->counters.errors_missing++;  /* no update without the whole error */
        sample_done(h, arena, &c);
    }
    if (s->phase == FW_PHASE_IDLE && s->pending_valid) start_sample(h, arena, &c);
    const int reducing = s->phase == FW_PHASE_RUN && s->step >= 1u;
    if (cfg->role & FW_ROLE_READOUT) {
        /* Masked: partial sums tagged tick + 1 go to the buffer of tick - 1 read and cleared here (race 2) */
        float y[FW_MAX_OUT];
        irq = hal_irq_disable();
        if (reducing) readout_reduce(h, arena, tick - 1u, y, &c);
        else readout_discard(h, arena, tick - 1u, &c);
        hal_irq_restore(irq);
        if (reducing) recording_readout_step(h, arena, s->step - 1u, y, &c);
    }
    if (s->phase != FW_PHASE_RUN) return c;
    const uint32_t k = s->step++;
    if (k < cfg->n_steps) {
        if (cfg->role & FW_ROLE_NEURON) start_frame_dma(h, arena, k, &c);
        return c;
    }
    if (cfg->role & FW_ROLE_READOUT) readout_finish(h, arena, &c);
    end_of_steps(h, arena, &c);
    return c;
}

fw_counts_t fw_on_dma_done(uint8_t *arena, uint32_t tag)
{
    fw_header_t *h = (fw_header_t *)arena;
    const fw_config_t *cfg = &h->config;
    fw_state_t *s = &h->state;
    fw_counts_t c = no_counts();
    if (h->status != FW_OK) return c;
    if (tag & FW_DMA_WRITE_TAG) { recording_dma_done(h, tag); return c; }
    if (!s->dma_busy || tag != s->dma_step || s->phase != FW_PHASE_RUN) return c;
    s->dma_busy = 0;
    const uint32_t k = tag;
    const int spiking = cfg->input_kind == FW_INPUT_SPIKES;
    const uint32_t slot_words = fw_input_slot_words(cfg->input_kind, cfg->n_in);
    uint32_t *frame = FW_U32(arena, h, dma_buf) + (k & 1u) * slot_words;
    const uint32_t magic = spiking ? FW_SPIKES_MAGIC : FW_FRAME_MAGIC;
    /* (a spike bitmap's bits past n_in are never read: every scan stops at n_in) */
    if (frame[0] != magic || frame[1] != s->sample_id || frame[2] != k) {
        s->counters.input_underruns++;  /* never written, or not this sample's slot k: zero input */
        for (uint32_t i = FW_FRAME_HEAD_WORDS; i < slot_words; ++i) frame[i] = 0u;
    }
    const uint32_t *input = frame + FW_FRAME_HEAD_WORDS;
    const uint32_t *z_prev = FW_U32(arena, h, z_prev);
    neuron_step(h, arena, input, z_prev, s->tick, &c);
    if (k + 1u == cfg->n_steps) {  /* the sample's last spikes are out: announce how many it sent */
        hal_send_mc(h, cfg->key_count | fw_tag_bits(s->tick) | cfg->src_index, s->spikes);
        c.mc_sent++;
    }
    recording_neuron_step(h, arena, k, &c);
    readout_send_partials(h, arena, s->tick, &c);
    if (s->train) eprop_trace_step(h, arena, input, z_prev, &c);
    return c;
}

/* a sender's spike count of this sample: tagged with the tick of the sample's last step, once per sender */
static void on_spike_count(fw_header_t *h, uint32_t tag, uint32_t src, uint32_t n_spikes)
{
    fw_state_t *s = &h->state;
    if (!fw_tag_in_window(s, tag)) return;
    /* one word the timer sets, never tick and step (which it moves apart): not this sample's end is late */
    if (tag != s->count_tag) { s->counters.late_packets++; return; }
    const uint32_t bit = 1u << (src & 31u);
    if (s->counts_seen[src >> 5] & bit) { s->counters.duplicate_packets++; return; }
    s->counts_seen[src >> 5] |= bit;
    s->spikes_announced += n_spikes;
}

static void on_error(fw_header_t *h, uint8_t *arena, uint32_t tag, uint32_t k, uint32_t payload)
{
    fw_state_t *s = &h->state;
    const uint32_t bit = 1u << (k & 31u);
    const int running = s->phase == FW_PHASE_RUN || s->phase == FW_PHASE_WAIT_ERR;
    if (!running || !s->train || tag != (s->sample_id & FW_KEY_TAG_MASK)) { s->counters.late_packets++; return; }
    if (s->err_seen[k >> 5] & bit) { s->counters.duplicate_packets++; return; }
    s->err_seen[k >> 5] |= bit;
    FW_F32(arena, h, err)[k] = fw_float(payload);
    if (++s->err_received == h->config.n_out && s->phase == FW_PHASE_WAIT_ERR) queue_update(h);
}

fw_counts_t fw_on_mc_packet(uint8_t *arena, uint32_t key, uint32_t payload)
{
    fw_header_t *h = (fw_header_t *)arena;
    const fw_config_t *cfg = &h->config;
    fw_state_t *s = &h->state;
    fw_counts_t c = no_counts();
    if (h->status != FW_OK) return c;
    c.mc_received = 1;
    const uint32_t base = fw_key_untagged(key), tag = fw_key_tag(key);
    if ((cfg->role & FW_ROLE_NEURON) && base - cfg->key_spike < cfg->n_rec) {
        if (!fw_tag_in_window(s, tag)) return c;
        const uint32_t i = base - cfg->key_spike, bit = 1u << (i & 31u);
        uint32_t *z_rx = FW_U32(arena, h, z_rx) + (tag & 1u) * fw_bitmap_words(cfg->n_rec);
        if (z_rx[i >> 5] & bit) s->counters.duplicate_packets++;
        else s->spikes_rx[tag & 1u]++;
        z_rx[i >> 5] |= bit;
        c.spikes_received = 1;
    } else if ((cfg->role & FW_ROLE_READOUT) && base - cfg->key_partial < cfg->n_src * cfg->n_out) {
        readout_on_partial(h, arena, tag, base - cfg->key_partial, payload);
        c.partials_received = 1;
    } else if ((cfg->role & FW_ROLE_NEURON) && base - cfg->key_err < cfg->n_out) {
        on_error(h, arena, tag, base - cfg->key_err, payload);
    } else if ((cfg->role & FW_ROLE_NEURON) && base - cfg->key_count < cfg->n_src) {
        on_spike_count(h, tag, base - cfg->key_count, payload);
    } else {
        s->counters.unknown_keys++;
    }
    return c;
}

fw_counts_t fw_on_user_event(uint8_t *arena)
{
    fw_header_t *h = (fw_header_t *)arena;
    fw_counts_t c = no_counts();
    if (h->status == FW_OK && h->state.phase == FW_PHASE_UPDATE) apply_update(h, arena, &c);
    return c;
}

fw_counts_t fw_on_host_msg(uint8_t *arena, const uint32_t *msg, uint32_t n_words)
{
    fw_header_t *h = (fw_header_t *)arena;
    const fw_config_t *cfg = &h->config;
    fw_state_t *s = &h->state;
    fw_counts_t c = no_counts();
    c.host_words = n_words;
    if (h->status != FW_OK || n_words == 0 || n_words > FW_MAX_HOST_WORDS) { s->counters.bad_host_msgs++; return c; }
    switch (msg[0]) {
    case FW_MSG_SAMPLE:
        if (n_words != 5u || s->pending_valid || msg[2] >= cfg->n_out || msg[3] > (FW_SAMPLE_TRAIN | FW_SAMPLE_RECORD)
            || ((cfg->role & FW_ROLE_NEURON) && msg[4] >= cfg->ring_slots)) { s->counters.bad_host_msgs++; break; }
        s->pending_id = msg[1];
        s->pending_label = msg[2];
        s->pending_train = msg[3] & FW_SAMPLE_TRAIN;
        s->pending_record = (msg[3] & FW_SAMPLE_RECORD) ? 1u : 0u;
        s->pending_slot0 = msg[4];
        s->pending_valid = 1u;
        break;
    case FW_MSG_SCALE_LR:
        if (n_words != 2u) { s->counters.bad_host_msgs++; break; }
        s->lr = s->lr * fw_float(msg[1]);
        break;
    default:
        s->counters.bad_host_msgs++;
    }
    return c;
}

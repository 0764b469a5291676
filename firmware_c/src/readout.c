/* Readout (reference notes section 10.3 and 10.6). Each neuron core filters its spikes
 * (zbar = kappa zbar + z) and sends its partial sums zbar @ W_out[own rows] every step; the readout
 * core adds them in core order (deterministic whatever the arrival order), accumulates the output,
 * and after the last step computes the time-mean, softmax cross-entropy, prediction and error. */
#include "readout.h"
#include "fw_internal.h"
#include "fw_math.h"
#include "hal.h"

void readout_send_partials(fw_header_t *h, uint8_t *arena, fw_counts_t *c)
{
    const fw_config_t *cfg = &h->config;
    const uint32_t nl = cfg->n_local, no = cfg->n_out;
    float *zbar = FW_F32(arena, h, zbar), *zsum = FW_F32(arena, h, zsum);
    const float *z = FW_F32(arena, h, z_local), *w_out = FW_F32(arena, h, w_out);
    for (uint32_t j = 0; j < nl; ++j) {
        zbar[j] = zbar[j] * cfg->kappa + z[j];
        zsum[j] = zsum[j] + zbar[j];
    }
    for (uint32_t k = 0; k < no; ++k) {
        float y = 0.0f;
        for (uint32_t j = 0; j < nl; ++j) y += zbar[j] * w_out[j * no + k];
        hal_send_mc(h, cfg->key_partial + cfg->src_index * no + k, fw_bits(y));
    }
    c->mc_sent += no;
}

void readout_on_partial(fw_header_t *h, uint8_t *arena, uint32_t index, uint32_t payload, fw_counts_t *c)
{
    uint32_t *seen = FW_U32(arena, h, partial_seen);
    const uint32_t bit = 1u << (index & 31u);
    (void)c;
    if (seen[index >> 5] & bit) {  /* a duplicate must not stand in for a missing partial sum */
        h->state.late_packets++;
        return;
    }
    seen[index >> 5] |= bit;
    FW_U32(arena, h, partials)[index] = payload;
    h->state.partials_received++;
}

static void finish_sample(fw_header_t *h, uint8_t *arena, fw_counts_t *c)
{
    const fw_config_t *cfg = &h->config;
    fw_state_t *s = &h->state;
    const uint32_t no = cfg->n_out;
    float *out = FW_F32(arena, h, out_sum);
    float mean[FW_MAX_OUT] = {0}, err[FW_MAX_OUT];
    const float T = (float)cfg->n_steps;
    uint32_t pred = 0;
    for (uint32_t k = 0; k < no; ++k) {
        mean[k] = out[k] / T;
        if (mean[k] > mean[pred]) pred = k;
    }
    float sum = 0.0f;
    for (uint32_t k = 0; k < no; ++k) sum += fw_expf(mean[k] - mean[pred]);
    const float offset = mean[pred] + fw_logf(sum);
    const uint32_t label = s->r_label;  /* checked < n_out when the sample message arrived */
    const float loss = -(mean[label] - offset);
    for (uint32_t k = 0; k < no; ++k) err[k] = fw_expf(mean[k] - offset) - (k == label ? 1.0f : 0.0f);
    c->exp_calls += 2u * no + 1u;

    uint32_t msg[6 + FW_MAX_OUT];
    msg[0] = FW_MSG_RESULT;
    msg[1] = s->r_sample_id;
    msg[2] = s->r_label;
    msg[3] = pred;
    msg[4] = fw_bits(loss);
    msg[5] = s->spikes;
    for (uint32_t k = 0; k < no; ++k) msg[6 + k] = fw_bits(mean[k]);
    hal_send_host(h, msg, 6u + no);
    c->host_words += 6u + no;
    if (s->r_train) {
        for (uint32_t k = 0; k < no; ++k) hal_send_mc(h, cfg->key_err + k, fw_bits(err[k]));
        c->mc_sent += no;
    }
    for (uint32_t k = 0; k < no; ++k) out[k] = 0.0f;
    s->steps_reduced = 0;
}

void readout_reduce_tick(fw_header_t *h, uint8_t *arena, fw_counts_t *c)
{
    const fw_config_t *cfg = &h->config;
    fw_state_t *s = &h->state;
    const uint32_t no = cfg->n_out, expected = cfg->n_src * no;
    if (s->partials_received == 0) return;
    uint32_t *seen = FW_U32(arena, h, partial_seen);
    for (uint32_t w = 0; w < fw_bitmap_words(expected); ++w) seen[w] = 0u;
    if (s->partials_received != expected) {
        s->partials_incomplete++;  /* lost packets: this step is not counted; the host sees no result */
        s->partials_received = 0;
        return;
    }
    if (s->steps_reduced == 0) {
        if (cfg->role & FW_ROLE_NEURON) {
            s->r_sample_id = s->sample_id; s->r_label = s->label; s->r_train = s->train;
        } else {
            s->r_sample_id = s->pending_id; s->r_label = s->pending_label; s->r_train = s->pending_train;
            s->pending_valid = 0;
        }
    }
    const float *partials = FW_F32(arena, h, partials);
    float *out = FW_F32(arena, h, out_sum);
    for (uint32_t k = 0; k < no; ++k) {
        float y = 0.0f;
        for (uint32_t src = 0; src < cfg->n_src; ++src) y += partials[src * no + k];
        out[k] = out[k] + y;
    }
    s->partials_received = 0;
    s->steps_reduced++;
    if (s->steps_reduced == cfg->n_steps) finish_sample(h, arena, c);
}

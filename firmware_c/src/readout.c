/* Readout (reference notes section 10.3 and 10.6). Each neuron core filters its spikes
 * (zbar = kappa zbar + z) and sends its partial sums zbar @ W_out[own rows] every step, tagged with
 * its tick; the readout core files them by tag (two steps in flight), adds them in core order
 * (deterministic whatever the arrival order) at its next tick, accumulates the output, and after
 * the last step computes the time-mean, softmax cross-entropy, prediction and error. */
#include "readout.h"
#include "fw_internal.h"
#include "fw_math.h"
#include "hal.h"
#include "fw_vec_x86.h"

#ifdef FW_VEC_X86
/* The native build, on an AVX2 CPU: the partial sums of 8 outputs at a time, each lane adding
 * zbar[j] w_out[j][k] over j in ascending order from +0 as the scalar loop does: its bits. */
__attribute__((target("avx2")))
static void partials_avx2(const float *zbar, const float *w_out, uint32_t nl, uint32_t no, float *y)
{
    for (uint32_t k = 0; k < no; k += 8u) {
        const __m256i lanes = fw_lanes8(no - k < 8u ? no - k : 8u);
        __m256 sum = _mm256_setzero_ps();
        for (uint32_t j = 0; j < nl; ++j)
            sum = _mm256_add_ps(sum, _mm256_mul_ps(_mm256_set1_ps(zbar[j]), _mm256_maskload_ps(w_out + j * no + k, lanes)));
        _mm256_maskstore_ps(y + k, lanes, sum);
    }
}
#endif

void readout_send_partials(fw_header_t *h, uint8_t *arena, uint32_t tick, fw_counts_t *c)
{
    const fw_config_t *cfg = &h->config;
    const uint32_t nl = cfg->n_local, no = cfg->n_out;
    const uint32_t key = cfg->key_partial | fw_tag_bits(tick);
    float *zbar = FW_F32(arena, h, zbar), *zsum = FW_F32(arena, h, zsum);
    const float *z = FW_F32(arena, h, z_local), *w_out = FW_F32(arena, h, w_out);
    for (uint32_t j = 0; j < nl; ++j) {
        zbar[j] = zbar[j] * cfg->kappa + z[j];
        zsum[j] = zsum[j] + zbar[j];
    }
#ifdef FW_VEC_X86
    if (__builtin_cpu_supports("avx2")) {
        float y[FW_MAX_OUT];
        partials_avx2(zbar, w_out, nl, no, y);
        for (uint32_t k = 0; k < no; ++k) hal_send_mc(h, key | (cfg->src_index * no + k), fw_bits(y[k]));
        c->mc_sent += no;
        return;
    }
#endif
    for (uint32_t k = 0; k < no; ++k) {
        float y = 0.0f;
        for (uint32_t j = 0; j < nl; ++j) y += zbar[j] * w_out[j * no + k];
        hal_send_mc(h, key | (cfg->src_index * no + k), fw_bits(y));
    }
    c->mc_sent += no;
}

/* the partial sums and the bitmap of those received, of the step run at `tick` */
static uint32_t *seen_of(fw_header_t *h, uint8_t *arena, uint32_t tick)
{
    return FW_U32(arena, h, partial_seen) + (tick & 1u) * fw_bitmap_words(h->config.n_src * h->config.n_out);
}

static uint32_t *partials_of(fw_header_t *h, uint8_t *arena, uint32_t tick)
{
    return FW_U32(arena, h, partials) + (tick & 1u) * h->config.n_src * h->config.n_out;
}

void readout_on_partial(fw_header_t *h, uint8_t *arena, uint32_t tag, uint32_t index, uint32_t payload)
{
    if (!fw_tag_in_window(&h->state, tag)) return;
    uint32_t *seen = seen_of(h, arena, tag);
    const uint32_t bit = 1u << (index & 31u);
    if (seen[index >> 5] & bit) {  /* a duplicate must not stand in for a missing partial sum */
        h->state.counters.duplicate_packets++;
        return;
    }
    seen[index >> 5] |= bit;
    partials_of(h, arena, tag)[index] = payload;
}

static void clear_step(fw_header_t *h, uint8_t *arena, uint32_t tick)
{
    const uint32_t n = h->config.n_src * h->config.n_out;
    uint32_t *seen = seen_of(h, arena, tick), *partials = partials_of(h, arena, tick);
    for (uint32_t w = 0; w < fw_bitmap_words(n); ++w) seen[w] = 0u;
    for (uint32_t i = 0; i < n; ++i) partials[i] = 0u;
}

void readout_discard(fw_header_t *h, uint8_t *arena, uint32_t tick, fw_counts_t *c)
{
    const uint32_t n = h->config.n_src * h->config.n_out;
    const uint32_t stray = fw_popcount(seen_of(h, arena, tick), fw_bitmap_words(n));
    if (stray == 0) return;
    h->state.counters.late_packets += stray;
    clear_step(h, arena, tick);
    c->partials_reduced += n;
}

void readout_reduce(fw_header_t *h, uint8_t *arena, uint32_t tick, float *y, fw_counts_t *c)
{
    const fw_config_t *cfg = &h->config;
    const uint32_t no = cfg->n_out, expected = cfg->n_src * no;
    if (fw_popcount(seen_of(h, arena, tick), fw_bitmap_words(expected)) != expected)
        h->state.counters.partials_incomplete++;  /* lost or late: a missing partial sum adds 0 */
    const float *partials = (const float *)partials_of(h, arena, tick);
    float *out = FW_F32(arena, h, out_sum);
    for (uint32_t k = 0; k < no; ++k) {
        float yk = 0.0f;
        for (uint32_t src = 0; src < cfg->n_src; ++src) yk += partials[src * no + k];
        out[k] = out[k] + yk;
        y[k] = yk;
    }
    clear_step(h, arena, tick);
    c->partials_reduced += expected;
}

void readout_finish(fw_header_t *h, uint8_t *arena, fw_counts_t *c)
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
    const uint32_t label = s->label;  /* checked < n_out when the sample message arrived */
    const float loss = -(mean[label] - offset);
    for (uint32_t k = 0; k < no; ++k) err[k] = fw_expf(mean[k] - offset) - (k == label ? 1.0f : 0.0f);
    c->exp_calls += 2u * no + 1u;

    uint32_t msg[FW_RESULT_HEAD_WORDS + FW_MAX_OUT];
    msg[0] = FW_MSG_RESULT;
    msg[1] = s->sample_id;
    msg[2] = s->label;
    msg[3] = pred;
    msg[4] = fw_bits(loss);
    for (uint32_t k = 0; k < no; ++k) msg[FW_RESULT_HEAD_WORDS + k] = fw_bits(mean[k]);
    hal_send_host(h, msg, FW_RESULT_HEAD_WORDS + no);
    c->host_words += FW_RESULT_HEAD_WORDS + no;
    if (s->train) {
        const uint32_t key = cfg->key_err | fw_tag_bits(s->sample_id);
        for (uint32_t k = 0; k < no; ++k) hal_send_mc(h, key | k, fw_bits(err[k]));
        c->mc_sent += no;
    }
    for (uint32_t k = 0; k < no; ++k) out[k] = 0.0f;
}

/* ALIF step of this core's neurons (authors' order of operations, reference notes section 10.2):
 *   a = rho a + (1-rho) z[t-1];  A = v_th + beta a
 *   v = alpha v + (1-alpha)(x W_in + z[t-1] W_rec) - z[t-1] A   (full W_rec, diagonal included)
 *   u = v - A;  z = u > 0;  psi = surrogate(u), 0 where |surrogate(u)| < 2^-64 (FW_TINY_EXP)
 * The first n_regular neurons (global ids) are LIF: beta 0 for them, so A = v_th.
 * Sums run sequentially over the presynaptic index; a silent presynaptic neuron adds nothing. */
#include "neuron_model.h"
#include "fw_internal.h"
#include "fw_math.h"
#include "hal.h"

static float gaussian(float u, float mu, float sigma, fw_counts_t *c)
{
    const float sqrt_2pi = 2.5066282746f;
    float d = u - mu;
    float arg = -(d * d) / (2.0f * sigma * sigma);
    c->exp_calls++;
    return fw_expf(arg) / sqrt_2pi / sigma;
}

/* NEST's surrogates (eprop_archiving_node: piecewise_linear, exponential, fast_sigmoid_derivative, arctan)
 * with their beta (width) and gamma (height), of u = v - A (NEST: v_m - v_th_adapt); no libm */
static float surrogate(const fw_config_t *cfg, float u, fw_counts_t *c)
{
    const float au = u < 0.0f ? -u : u, beta = cfg->surr_beta, gamma = cfg->surr_gamma;
    if (cfg->surrogate == FW_SURR_TRIANGLE) {
        float x = u / cfg->v_th;
        float t = 1.0f - beta * (x < 0.0f ? -x : x);
        return t > 0.0f ? (gamma / cfg->v_th) * t : 0.0f;
    }
    if (cfg->surrogate == FW_SURR_EXPONENTIAL) {
        c->exp_calls++;
        return gamma * fw_expf(-(beta * au));
    }
    if (cfg->surrogate == FW_SURR_FAST_SIGMOID) {
        const float d = 1.0f + beta * au;
        return gamma / (d * d);
    }
    if (cfg->surrogate == FW_SURR_ARCTAN) {
        const float pi = 3.14159265f;
        const float q = beta * pi * u;
        return (gamma / pi) / (1.0f + q * q);
    }
    const float s = cfg->mg_sigma, h = cfg->mg_height;
    float g0 = gaussian(u, 0.0f, s, c) * (1.0f + h);
    float g1 = gaussian(u, s, cfg->mg_scale * s, c) * h;
    float g2 = gaussian(u, -s, cfg->mg_scale * s, c) * h;
    return (g0 - g1 - g2) * cfg->mg_gamma;
}

float neuron_surrogate(const fw_config_t *cfg, float u, fw_counts_t *c)
{
    /* psi of a neuron far from its threshold is tiny, down to subnormal; as 0 it keeps the traces,
     * its products with the presynaptic traces, in normal floats */
    return fw_flush_tiny(surrogate(cfg, u, c));
}

/* add the row of every presynaptic neuron whose bit is set, in ascending order (the dense sum with
 * spikes in {0, 1}, silent ones left out): recurrent spikes, and spike input; returns the spikes */
static uint32_t add_spiking_rows(const float *w, const uint32_t *bits, uint32_t n_pre, uint32_t nl, float *acc)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < n_pre; ++i) {
        if (!fw_bit(bits, i)) continue;
        const float *row = w + i * nl;
        for (uint32_t j = 0; j < nl; ++j) acc[j] += row[j];
        n++;
    }
    return n;
}

void neuron_step(fw_header_t *h, uint8_t *arena, const uint32_t *input, const uint32_t *z_prev, uint32_t tick,
                 fw_counts_t *c)
{
    const uint32_t key = h->config.key_spike | fw_tag_bits(tick);
    const fw_config_t *cfg = &h->config;
    const uint32_t nl = cfg->n_local, lo = cfg->neuron_lo;
    const float *w_in = FW_F32(arena, h, w_in);
    const float *w_rec = FW_F32(arena, h, w_rec);
    float *v = FW_F32(arena, h, v), *a = FW_F32(arena, h, a), *psi = FW_F32(arena, h, psi);
    float *z = FW_F32(arena, h, z_local);
    float *zcount = h->layout.zcount ? FW_F32(arena, h, zcount) : 0;
    float i_in[FW_MAX_LOCAL], i_rec[FW_MAX_LOCAL];

    for (uint32_t j = 0; j < nl; ++j) { i_in[j] = 0.0f; i_rec[j] = 0.0f; }
    uint32_t rows = cfg->n_in;  /* weight rows used: analog, every input's */
    if (cfg->input_kind == FW_INPUT_ANALOG) {
        const float *x = (const float *)input;
        for (uint32_t i = 0; i < cfg->n_in; ++i) {
            const float xi = x[i];
            const float *row = w_in + i * nl;
            for (uint32_t j = 0; j < nl; ++j) i_in[j] += xi * row[j];
        }
    } else {  /* spike input: the work follows the input spikes */
        rows = add_spiking_rows(w_in, input, cfg->n_in, nl, i_in);
    }
    rows += add_spiking_rows(w_rec, z_prev, cfg->n_rec, nl, i_rec);
    c->synapse_mults += rows * nl;
    for (uint32_t j = 0; j < nl; ++j) {
        const float zp = (float)fw_bit(z_prev, lo + j);
        a[j] = cfg->rho * a[j] + cfg->one_rho * zp;
        const float beta = lo + j < cfg->n_regular ? 0.0f : cfg->beta;  /* LIF: no adaptation */
        const float A = cfg->v_th + beta * a[j];
        v[j] = cfg->alpha * v[j] + cfg->one_alpha * (i_in[j] + i_rec[j]) - zp * A;
        const float u = v[j] - A;
        z[j] = u > 0.0f ? 1.0f : 0.0f;
        psi[j] = neuron_surrogate(cfg, u, c);
        if (z[j] != 0.0f) {
            if (zcount) zcount[j] = zcount[j] + 1.0f;  /* train.rate_reg: the neuron's spikes in the sample */
            hal_send_mc(h, key | (lo + j), 0u);
            h->state.spikes++;
            c->mc_sent++;
        }
    }
    c->neuron_updates += nl;
}

/* Eligibility traces (reference notes section 10.5), per step and synapse i -> j:
 *   ev_i = alpha ev_i + pre_i                      (once per presynaptic neuron)
 *   ea   = (rho - (1-rho) beta psi_j) ea + psi_j ev_i (1-alpha)(1-rho)
 *   e    = psi_j ((1-alpha) ev_i - beta ea)
 *   eb   = kappa eb + e;   acc += eb               (acc: sum over the sample, used at the update)
 * The recurrent diagonal keeps no trace (its weight changes only through the L2 term). A LIF neuron
 * (network.n_regular) takes psi_a = 0 in the ea line: its ea stays 0. */
#include "eprop_trace.h"
#include "fw_internal.h"

void eprop_trace_reset(fw_header_t *h, uint8_t *arena, fw_counts_t *c)
{
    const fw_layout_t *L = &h->layout;
    const uint32_t from = L->ea_in, to = L->ev_rec + h->config.n_rec * 4u;
    for (uint32_t *p = (uint32_t *)(arena + from); p < (uint32_t *)(arena + to); ++p) *p = 0u;
    c->words_cleared += (to - from) / 4u;
}

/* The native x86-64 build keeps an AVX2 copy of the loop beside the SSE2 one and takes it on a CPU
 * that has AVX2 (GCC's function multiversioning): 8 synapses per instruction instead of 4, each
 * element's operations and their order unchanged and no FMA (-ffp-contract=off, and AVX2 alone does
 * not enable it), so the bits are those of the ARM build (tested over the ISS). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define TRACE_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define TRACE_CLONES
#endif

TRACE_CLONES static void trace_block(const fw_config_t *cfg, uint32_t n_pre, const float *ev, const float *psi,
                        const float *psi_a, const float *ca, float *ea, float *eb, float *acc, uint32_t skip_lo,
                        int skip_diag)
{
    const uint32_t nl = cfg->n_local;
    const float oaor = cfg->one_alpha_x_one_rho, one_alpha = cfg->one_alpha;
    const float beta = cfg->beta, kappa = cfg->kappa;
    for (uint32_t i = 0; i < n_pre; ++i) {
        const float evi = ev[i];
        float *ea_r = ea + i * nl, *eb_r = eb + i * nl, *acc_r = acc + i * nl;
        for (uint32_t j = 0; j < nl; ++j) {
            const float ean = ca[j] * ea_r[j] + psi_a[j] * evi * oaor;
            const float e = psi[j] * (one_alpha * evi - beta * ean);
            ea_r[j] = ean;
            eb_r[j] = eb_r[j] * kappa + e;
            acc_r[j] = acc_r[j] + eb_r[j];
        }
        if (skip_diag && i >= skip_lo && i < skip_lo + nl) {
            /* a self-connection keeps no trace: branch-free loop above, then zero it again */
            const uint32_t d = i - skip_lo;
            ea_r[d] = 0.0f;
            eb_r[d] = 0.0f;
            acc_r[d] = 0.0f;
        }
    }
}

/* ev_i = alpha ev_i + spike_i for the n presynaptic neurons of a spike bitmap (recurrent spikes, spike
 * input). Not inlined: one copy keeps the ARM image small, so the arena, which starts on the next
 * 1 KiB boundary after the code, keeps its room (116,736 B) (GCC and Clang both take the attribute). */
__attribute__((noinline)) static void decay_add_spikes(float *ev, const uint32_t *bits, uint32_t n, float alpha)
{
    for (uint32_t i = 0; i < n; ++i) ev[i] = alpha * ev[i] + (float)fw_bit(bits, i);
}

void eprop_trace_step(fw_header_t *h, uint8_t *arena, const uint32_t *input, const uint32_t *z_prev, fw_counts_t *c)
{
    const fw_config_t *cfg = &h->config;
    const uint32_t nl = cfg->n_local;
    float *ev_in = FW_F32(arena, h, ev_in), *ev_rec = FW_F32(arena, h, ev_rec);
    const float *psi = FW_F32(arena, h, psi);
    float ca[FW_MAX_LOCAL];

    if (cfg->input_kind == FW_INPUT_ANALOG) {
        const float *x = (const float *)input;
        for (uint32_t i = 0; i < cfg->n_in; ++i) ev_in[i] = cfg->alpha * ev_in[i] + x[i];
    } else {  /* spike input: the presynaptic signal is the spike, 0 or 1; the traces stay dense */
        decay_add_spikes(ev_in, input, cfg->n_in, cfg->alpha);
    }
    decay_add_spikes(ev_rec, z_prev, cfg->n_rec, cfg->alpha);
    for (uint32_t j = 0; j < nl; ++j) ca[j] = cfg->rho - cfg->one_rho * cfg->beta * psi[j];
    /* LIF neurons (network.n_regular: global ids below it) take no psi into eps_a, which stays 0, so
     * e = psi (1-alpha) ev for them; the ALIF ones read psi itself */
    const float *psi_a = psi;
    float psi_lif[FW_MAX_LOCAL];
    if (cfg->neuron_lo < cfg->n_regular) {
        for (uint32_t j = 0; j < nl; ++j) psi_lif[j] = cfg->neuron_lo + j < cfg->n_regular ? 0.0f : psi[j];
        psi_a = psi_lif;
    }

    trace_block(cfg, cfg->n_in, ev_in, psi, psi_a, ca, FW_F32(arena, h, ea_in), FW_F32(arena, h, eb_in),
                FW_F32(arena, h, acc_in), 0u, 0);
    trace_block(cfg, cfg->n_rec, ev_rec, psi, psi_a, ca, FW_F32(arena, h, ea_rec), FW_F32(arena, h, eb_rec),
                FW_F32(arena, h, acc_rec), cfg->neuron_lo, 1);
    c->trace_updates += (cfg->n_in + cfg->n_rec) * nl - nl;
}

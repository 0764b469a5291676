/* End-of-sample update (reference notes section 10.7-10.8), on this core's weights only:
 *   L_j = (sum_k B_jk err_k) / T, B = W_out (before the update) or a random feedback matrix (fixed, or
 *   adaptive: updated after W_out with W_out's gradient g_out and its own moments m_fb, v_fb)
 *   g = L_j acc_ij + 2 l2 W;  g_out_jk = (zsum_j err_k) / T + 2 l2 W_out
 *   lr_t = lr sqrt(1 - b2^t) / (1 - b1^t);  m, v moments;  W -= lr_t m / (sqrt(v) + eps)
 *   or, train.optimizer sgd: m = momentum m + g;  W -= lr m
 * m, v and W are stored as 0 where below 2^-64 in magnitude (fw_flush_tiny): a weight that L2 alone
 * decays (no trace, a silent neuron) reaches 0 instead of lingering in subnormal floats. */
#include "adam.h"
#include "fw_internal.h"
#include "fw_math.h"

static void adam_block(const fw_config_t *cfg, float lr_t, uint32_t n, const float *grad_scale,
                       uint32_t stride, const float *acc, float *w, float *m, float *v)
{
    const float b1 = cfg->adam_b1, b2 = cfg->adam_b2, eps = cfg->adam_eps, l2x2 = cfg->l2x2;
    const float one_b1 = 1.0f - b1, one_b2 = 1.0f - b2;
    for (uint32_t idx = 0; idx < n; ++idx) {
        float g = grad_scale[idx % stride] * acc[idx];
        g = g + l2x2 * w[idx];
        m[idx] = fw_flush_tiny(b1 * m[idx] + one_b1 * g);
        v[idx] = fw_flush_tiny(b2 * v[idx] + one_b2 * g * g);
        w[idx] = fw_flush_tiny(w[idx] - (lr_t * m[idx]) / (fw_sqrtf(v[idx]) + eps));
    }
}

/* train.optimizer sgd: m = momentum m + g;  W -= lr m  (lr after the schedule; v unused) */
static void sgd_block(const fw_config_t *cfg, float lr, uint32_t n, const float *grad_scale,
                      uint32_t stride, const float *acc, float *w, float *m)
{
    const float mu = cfg->momentum, l2x2 = cfg->l2x2;
    for (uint32_t idx = 0; idx < n; ++idx) {
        float g = grad_scale[idx % stride] * acc[idx];
        g = g + l2x2 * w[idx];
        m[idx] = fw_flush_tiny(mu * m[idx] + g);
        w[idx] = fw_flush_tiny(w[idx] - lr * m[idx]);
    }
}

/* one optimizer step on n weights: Adam (lr_t bias-corrected) or SGD (lr) */
static void step_block(const fw_config_t *cfg, const fw_state_t *s, float lr_t, uint32_t n, const float *grad_scale,
                       uint32_t stride, const float *acc, float *w, float *m, float *v)
{
    if (cfg->optimizer == FW_OPT_SGD) sgd_block(cfg, s->lr, n, grad_scale, stride, acc, w, m);
    else adam_block(cfg, lr_t, n, grad_scale, stride, acc, w, m, v);
}

/* Firing-rate regularisation (train.rate_reg): r_j = c_reg (n_j / T - f_target), n_j the neuron's spikes in
 * the sample, f_target in spikes per step; its gradient r_j / T sum_t e_ji^t needs the unfiltered trace sum,
 * which the filtered ones give exactly: eb^t = kappa eb^(t-1) + e^t summed over t is
 * sum_t e^t = (1 - kappa) acc + kappa eb^T (eb^T: the last step's eb, still in place). The gradient
 * L_j acc + r_j / T sum_t e^t is formed in acc, in place, before the optimizer reads it with scale 1. */
static void add_rate_reg(const fw_config_t *cfg, uint32_t n_pre, const float *L, const float *r, float *acc,
                         const float *eb)
{
    const uint32_t nl = cfg->n_local;
    const float one_kappa = 1.0f - cfg->kappa, kappa = cfg->kappa;
    for (uint32_t i = 0; i < n_pre; ++i)
        for (uint32_t j = 0; j < nl; ++j) {
            const float sum_e = one_kappa * acc[i * nl + j] + kappa * eb[i * nl + j];
            acc[i * nl + j] = L[j] * acc[i * nl + j] + r[j] * sum_e;
        }
}

/* network.connectivity: a block's gradient over its present synapses (fw_abi.h: col), formed in acc in place as
 * the dense passes form it: L_j acc, or with the rate term (r not 0) L_j acc + r_j sum_e, in add_rate_reg's order;
 * the optimizer then reads it with scale 1 (1 x g is g: the dense path's bits). Plain C on every build. */
__attribute__((noinline)) static void gradient_sparse(const fw_config_t *cfg, uint32_t nnz, const uint8_t *col,
                                                      const float *L, const float *r, float *acc, const float *eb)
{
    const float one_kappa = 1.0f - cfg->kappa, kappa = cfg->kappa;
    for (uint32_t k = 0; k < nnz; ++k) {
        const uint32_t j = col[k];
        if (r) {
            const float sum_e = one_kappa * acc[k] + kappa * eb[k];
            acc[k] = L[j] * acc[k] + r[j] * sum_e;
        } else {
            acc[k] = L[j] * acc[k];
        }
    }
}

void adam_apply_sample(fw_header_t *h, uint8_t *arena, fw_counts_t *c)
{
    const fw_config_t *cfg = &h->config;
    fw_state_t *s = &h->state;
    const uint32_t nl = cfg->n_local, no = cfg->n_out;
    const float T = (float)cfg->n_steps;
    const float *err = FW_F32(arena, h, err);
    const float *w_out = FW_F32(arena, h, w_out);
    float *fb = cfg->feedback != FW_FEEDBACK_SYMMETRIC ? FW_F32(arena, h, fb) : 0;
    const float *B = fb ? fb : w_out;
    const float *zsum = FW_F32(arena, h, zsum);
    float L[FW_MAX_LOCAL];
    float g_out[FW_MAX_OUT];

    for (uint32_t j = 0; j < nl; ++j) {
        float sum = 0.0f;
        for (uint32_t k = 0; k < no; ++k) sum += B[j * no + k] * err[k];
        L[j] = sum / T;
    }
    const float lr_t = s->lr * fw_sqrtf(1.0f - s->b2_pow) / (1.0f - s->b1_pow);
    const float *scale = L;
    uint32_t stride = nl;
    const uint32_t syn_in = fw_syn_in(cfg), syn_rec = fw_syn_rec(cfg);  /* stored synapses (sparse: present) */
    static const float one_scale = 1.0f;
    float r[FW_MAX_LOCAL];
    if (cfg->c_reg != 0.0f) {  /* the rate term joins the gradient in acc (the region exists: fw_layout) */
        const float *zcount = FW_F32(arena, h, zcount);
        for (uint32_t j = 0; j < nl; ++j) r[j] = (cfg->c_reg * (zcount[j] / T - cfg->f_target)) / T;
        c->adam_updates += syn_in + syn_rec;  /* a second pass over the synapses */
    }
    if (cfg->sparse) {  /* network.connectivity: the present synapses' gradients formed in acc */
        const float *rr = cfg->c_reg != 0.0f ? r : 0;
        gradient_sparse(cfg, syn_in, FW_U8(arena, h, col_in), L, rr, FW_F32(arena, h, acc_in), FW_F32(arena, h, eb_in));
        gradient_sparse(cfg, syn_rec, FW_U8(arena, h, col_rec), L, rr, FW_F32(arena, h, acc_rec),
                        FW_F32(arena, h, eb_rec));
        scale = &one_scale;
        stride = 1u;
    } else if (cfg->c_reg != 0.0f) {
        add_rate_reg(cfg, cfg->n_in, L, r, FW_F32(arena, h, acc_in), FW_F32(arena, h, eb_in));
        add_rate_reg(cfg, cfg->n_rec, L, r, FW_F32(arena, h, acc_rec), FW_F32(arena, h, eb_rec));
        scale = &one_scale;
        stride = 1u;
    }
    step_block(cfg, s, lr_t, syn_in, scale, stride, FW_F32(arena, h, acc_in), FW_F32(arena, h, w_in),
               FW_F32(arena, h, m_in), FW_F32(arena, h, v_in));
    step_block(cfg, s, lr_t, syn_rec, scale, stride, FW_F32(arena, h, acc_rec), FW_F32(arena, h, w_rec),
               FW_F32(arena, h, m_rec), FW_F32(arena, h, v_rec));
    /* readout weights, row by row: the gradient (zsum_j err_k) / T is formed in place of acc */
    float *wo = FW_F32(arena, h, w_out), *mo = FW_F32(arena, h, m_out), *vo = FW_F32(arena, h, v_out);
    const float one = 1.0f;
    for (uint32_t j = 0; j < nl; ++j) {
        for (uint32_t k = 0; k < no; ++k) g_out[k] = (zsum[j] * err[k]) / T;
        step_block(cfg, s, lr_t, no, &one, 1u, g_out, wo + j * no, mo + j * no, vo + j * no);
        if (cfg->feedback == FW_FEEDBACK_ADAPTIVE)  /* B learns as W_out does: the same gradient, its own moments */
            step_block(cfg, s, lr_t, no, &one, 1u, g_out, fb + j * no, FW_F32(arena, h, m_fb) + j * no,
                       FW_F32(arena, h, v_fb) + j * no);
    }
    if (cfg->feedback == FW_FEEDBACK_ADAPTIVE) c->adam_updates += nl * no;
    s->b1_pow = s->b1_pow * cfg->adam_b1;
    s->b2_pow = s->b2_pow * cfg->adam_b2;
    s->adam_t++;
    c->adam_updates += syn_in + syn_rec + no * nl;
}

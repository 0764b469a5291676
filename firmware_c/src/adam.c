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
#include "fw_vec_x86.h"

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

/* gradient_sparse's entries [from, to) one at a time: the loop of every build, and the AVX2 loop's tail */
static void gradient_sparse_from(const fw_config_t *cfg, uint32_t from, uint32_t to, const uint8_t *col,
                                 const float *L, const float *r, float *acc, const float *eb)
{
    const float one_kappa = 1.0f - cfg->kappa, kappa = cfg->kappa;
    for (uint32_t k = from; k < to; ++k) {
        const uint32_t j = col[k];
        if (r) {
            const float sum_e = one_kappa * acc[k] + kappa * eb[k];
            acc[k] = L[j] * acc[k] + r[j] * sum_e;
        } else {
            acc[k] = L[j] * acc[k];
        }
    }
}

#ifdef FW_VEC_X86
/* The native build, on an AVX2 CPU: adam_block 8 weights at a time, each lane with adam_block's operations
 * in its order (no FMA; sqrt and division are IEEE-exact in both): the scalar bits (tested over the ISS).
 * grad_scale[idx % stride] is gathered by a lane index kept in [0, stride). */
__attribute__((target("avx2")))
static void adam_block_avx2(const fw_config_t *cfg, float lr_t, uint32_t n, const float *grad_scale,
                            uint32_t stride, const float *acc, float *w, float *m, float *v)
{
    const float b1 = cfg->adam_b1, b2 = cfg->adam_b2;
    const __m256 v_b1 = _mm256_set1_ps(b1), v_b2 = _mm256_set1_ps(b2), eps = _mm256_set1_ps(cfg->adam_eps);
    const __m256 one_b1 = _mm256_set1_ps(1.0f - b1), one_b2 = _mm256_set1_ps(1.0f - b2);
    const __m256 l2x2 = _mm256_set1_ps(cfg->l2x2), lr = _mm256_set1_ps(lr_t);
    const __m256 tiny = _mm256_set1_ps(fw_float((127u - FW_TINY_EXP) << 23));
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    const __m256i v_stride = _mm256_set1_epi32((int32_t)stride), eight = _mm256_set1_epi32(8);
    __m256i j = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);  /* idx % stride of each lane */
    for (uint32_t r = 0; r < 8u && r < 8u / stride + 1u; ++r)
        j = _mm256_sub_epi32(j, _mm256_and_si256(_mm256_cmpgt_epi32(j, _mm256_sub_epi32(v_stride, _mm256_set1_epi32(1))), v_stride));
#define FLUSH(x) _mm256_andnot_ps(_mm256_cmp_ps(_mm256_and_ps((x), abs_mask), tiny, _CMP_LT_OQ), (x))
    for (uint32_t idx = 0; idx < n; idx += 8u) {
        const __m256i lanes = fw_lanes8(n - idx < 8u ? n - idx : 8u);
        const __m256 wi = _mm256_maskload_ps(w + idx, lanes);
        __m256 g = _mm256_mul_ps(_mm256_mask_i32gather_ps(_mm256_setzero_ps(), grad_scale, j,
                                                          _mm256_castsi256_ps(lanes), 4),
                                 _mm256_maskload_ps(acc + idx, lanes));
        g = _mm256_add_ps(g, _mm256_mul_ps(l2x2, wi));
        const __m256 mi = FLUSH(_mm256_add_ps(_mm256_mul_ps(v_b1, _mm256_maskload_ps(m + idx, lanes)),
                                              _mm256_mul_ps(one_b1, g)));
        const __m256 vi = FLUSH(_mm256_add_ps(_mm256_mul_ps(v_b2, _mm256_maskload_ps(v + idx, lanes)),
                                              _mm256_mul_ps(_mm256_mul_ps(one_b2, g), g)));
        const __m256 wn = FLUSH(_mm256_sub_ps(wi, _mm256_div_ps(_mm256_mul_ps(lr, mi),
                                                                _mm256_add_ps(_mm256_sqrt_ps(vi), eps))));
        _mm256_maskstore_ps(m + idx, lanes, mi);
        _mm256_maskstore_ps(v + idx, lanes, vi);
        _mm256_maskstore_ps(w + idx, lanes, wn);
        j = _mm256_add_epi32(j, eight);  /* (j + 8) mod stride: at most 8 subtractions (stride 1) */
        for (uint32_t r = 0; r < 8u && r < 8u / stride + 1u; ++r)
            j = _mm256_sub_epi32(j, _mm256_and_si256(_mm256_cmpgt_epi32(j, _mm256_sub_epi32(v_stride, _mm256_set1_epi32(1))), v_stride));
    }
#undef FLUSH
}

/* gradient_sparse on an AVX2 CPU: 8 entries at a time, L_j and r_j picked by the entries' columns (fw_pick8),
 * each lane with gradient_sparse's operations in its order (no FMA); the last entries one by one */
__attribute__((target("avx2")))
static void gradient_sparse_avx2(const fw_config_t *cfg, uint32_t nnz, const uint8_t *col, const float *L,
                                 const float *r, float *acc, const float *eb)
{
    const uint32_t nl = cfg->n_local;
    const float one_kappa = 1.0f - cfg->kappa, kappa = cfg->kappa;
    const __m256 v_one_kappa = _mm256_set1_ps(one_kappa), v_kappa = _mm256_set1_ps(kappa);
    const __m256 l_lo = fw_table8(L, nl, 0), l_hi = fw_table8(L, nl, 1);
    const __m256 r_lo = r ? fw_table8(r, nl, 0) : l_lo, r_hi = r ? fw_table8(r, nl, 1) : l_hi;
    uint32_t k = 0;
    for (; k + 8u <= nnz; k += 8u) {
        const __m256i j = fw_cols8(col + k);
        const __m256 a = _mm256_loadu_ps(acc + k);
        __m256 g = _mm256_mul_ps(fw_pick8(L, l_lo, l_hi, nl, j), a);
        if (r) {
            const __m256 sum_e = _mm256_add_ps(_mm256_mul_ps(v_one_kappa, a), _mm256_mul_ps(v_kappa, _mm256_loadu_ps(eb + k)));
            g = _mm256_add_ps(g, _mm256_mul_ps(fw_pick8(r, r_lo, r_hi, nl, j), sum_e));
        }
        _mm256_storeu_ps(acc + k, g);
    }
    gradient_sparse_from(cfg, k, nnz, col, L, r, acc, eb);
}
#endif

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
    else {
#ifdef FW_VEC_X86
        if (__builtin_cpu_supports("avx2")) { adam_block_avx2(cfg, lr_t, n, grad_scale, stride, acc, w, m, v); return; }
#endif
        adam_block(cfg, lr_t, n, grad_scale, stride, acc, w, m, v);
    }
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
 * the optimizer then reads it with scale 1 (1 x g is g: the dense path's bits). The native build on an AVX2 CPU
 * takes gradient_sparse_avx2 (the same bits). */
__attribute__((noinline)) static void gradient_sparse(const fw_config_t *cfg, uint32_t nnz, const uint8_t *col,
                                                      const float *L, const float *r, float *acc, const float *eb)
{
#ifdef FW_VEC_X86
    if (__builtin_cpu_supports("avx2")) { gradient_sparse_avx2(cfg, nnz, col, L, r, acc, eb); return; }
#endif
    gradient_sparse_from(cfg, 0, nnz, col, L, r, acc, eb);
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

/* Eligibility traces (reference notes section 10.5), per step and synapse i -> j:
 *   ev_i = alpha ev_i + pre_i                      (once per presynaptic neuron)
 *   ea   = (rho - (1-rho) beta psi_j) ea + psi_j ev_i (1-alpha)(1-rho)
 *   e    = psi_j ((1-alpha) ev_i - beta ea)
 *   eb   = kappa eb + e;   acc += eb               (acc: sum over the sample, used at the update)
 * The recurrent diagonal keeps no trace (its weight changes only through the L2 term). A LIF neuron
 * (network.n_regular) takes psi_a = 0 in the ea line: its ea stays 0 (trace_block_lif). */
#include "eprop_trace.h"
#include "fw_internal.h"

void eprop_trace_reset(fw_header_t *h, uint8_t *arena, fw_counts_t *c)
{
    const fw_layout_t *L = &h->layout;
    const uint32_t from = L->ea_in, to = L->ev_rec + h->config.n_rec * 4u;
    for (uint32_t *p = (uint32_t *)(arena + from); p < (uint32_t *)(arena + to); ++p) *p = 0u;
    c->words_cleared += (to - from) / 4u;
}

/* One synapse's trace step; every build computes each element with these operations in this order
 * (no contraction: -ffp-contract=off), so any loop shape over the synapses gives the same bits. */
static inline void trace_one(float ca, float psi, float evi, float oaor, float one_alpha, float beta, float kappa,
                             float *ea, float *eb, float *acc)
{
    const float ean = ca * *ea + psi * evi * oaor;
    const float e = psi * (one_alpha * evi - beta * ean);
    *ea = ean;
    *eb = *eb * kappa + e;
    *acc = *acc + *eb;
}

/* a self-connection keeps no trace: the loops run branch-free over it, then it is zeroed again */
static void zero_diagonal(uint32_t nl, uint32_t skip_lo, float *ea, float *eb, float *acc)
{
    for (uint32_t d = 0; d < nl; ++d) {
        const uint32_t k = (skip_lo + d) * nl + d;
        ea[k] = 0.0f;
        eb[k] = 0.0f;
        acc[k] = 0.0f;
    }
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#include "fw_vec_x86.h"
/* The native x86-64 build, on a CPU with AVX2, runs the block as one flat run of n_pre x n_local
 * synapses, eight at a time: a core's row of n_local neurons is shorter than two vectors, so by rows
 * most of the work would be scalar tails. A group of R rows (R x n_local a multiple of 8) has psi and
 * ca spread per synapse once per call, and each vector takes its synapses' ev from the group's R values
 * with one permute. Explicit multiplies and adds (no FMA), each element's operations in the order of
 * trace_one: the bits of the ARM build's loop (tested over the ISS). The rows left over go one by one. */
#define TRACE_GROUP_MAX 64u  /* synapses of a group; wider groups take the row loop (the stack stays small) */
__attribute__((target("avx2")))
static int trace_block_avx2(const fw_config_t *cfg, uint32_t n_pre, const float *ev, const float *psi,
                             const float *ca, float *ea, float *eb, float *acc)
{
    const uint32_t nl = cfg->n_local;
    const float oaor = cfg->one_alpha_x_one_rho, one_alpha = cfg->one_alpha;
    const float beta = cfg->beta, kappa = cfg->kappa;
    uint32_t rows = 1u;  /* the fewest rows that make a multiple of 8 synapses: at most 8 */
    while ((rows * nl) & 7u) rows <<= 1;
    const uint32_t len = rows * nl;
    if (len > TRACE_GROUP_MAX) return 0;
    float psi_g[TRACE_GROUP_MAX], ca_g[TRACE_GROUP_MAX];
    int32_t row_of[TRACE_GROUP_MAX];
    for (uint32_t r = 0; r < rows; ++r)
        for (uint32_t j = 0; j < nl; ++j) {
            psi_g[r * nl + j] = psi[j];
            ca_g[r * nl + j] = ca[j];
            row_of[r * nl + j] = (int32_t)r;
        }
    const __m256 v_oaor = _mm256_set1_ps(oaor), v_one_alpha = _mm256_set1_ps(one_alpha);
    const __m256 v_beta = _mm256_set1_ps(beta), v_kappa = _mm256_set1_ps(kappa);
    const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i first_rows = _mm256_cmpgt_epi32(_mm256_set1_epi32((int32_t)rows), lanes);
    uint32_t i = 0;
    for (; i + rows <= n_pre; i += rows) {
        const __m256 ev_rows = _mm256_maskload_ps(ev + i, first_rows);  /* ev[i .. i + rows - 1] */
        float *ea_g = ea + i * nl, *eb_g = eb + i * nl, *acc_g = acc + i * nl;
        for (uint32_t m = 0; m < len; m += 8u) {
            const __m256 evq = _mm256_permutevar8x32_ps(ev_rows, _mm256_loadu_si256((const __m256i *)(row_of + m)));
            const __m256 psq = _mm256_loadu_ps(psi_g + m);
            const __m256 ean = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(ca_g + m), _mm256_loadu_ps(ea_g + m)),
                                             _mm256_mul_ps(_mm256_mul_ps(psq, evq), v_oaor));
            const __m256 e = _mm256_mul_ps(psq, _mm256_sub_ps(_mm256_mul_ps(v_one_alpha, evq),
                                                              _mm256_mul_ps(v_beta, ean)));
            const __m256 ebn = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(eb_g + m), v_kappa), e);
            _mm256_storeu_ps(ea_g + m, ean);
            _mm256_storeu_ps(eb_g + m, ebn);
            _mm256_storeu_ps(acc_g + m, _mm256_add_ps(_mm256_loadu_ps(acc_g + m), ebn));
        }
    }
    for (; i < n_pre; ++i)
        for (uint32_t j = 0; j < nl; ++j)
            trace_one(ca[j], psi[j], ev[i], oaor, one_alpha, beta, kappa, ea + i * nl + j, eb + i * nl + j,
                      acc + i * nl + j);
    return 1;
}

/* decay_add_spikes' first n rounded down to 8 (the rest by the scalar loop): alpha ev + (0 or 1) per lane,
 * the bit spread to a lane mask that selects 1.0f or +0.0f, as (float)fw_bit gives */
__attribute__((target("avx2")))
static uint32_t decay_add_spikes_avx2(float *ev, const uint32_t *bits, uint32_t n, float alpha)
{
    const __m256 v_alpha = _mm256_set1_ps(alpha), one = _mm256_set1_ps(1.0f);
    const __m256i lane_bit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    uint32_t i = 0;
    for (; i + 8u <= n; i += 8u) {
        const __m256i byte = _mm256_set1_epi32((int32_t)((bits[i >> 5] >> (i & 31u)) & 0xffu));
        const __m256 spike = _mm256_and_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(_mm256_and_si256(byte, lane_bit),
                                                                                    lane_bit)), one);
        _mm256_storeu_ps(ev + i, _mm256_add_ps(_mm256_mul_ps(v_alpha, _mm256_loadu_ps(ev + i)), spike));
    }
    return i;
}

/* the entry of the next self-connection of a block (local neuron d or later, at most one a neuron, entries
 * ascending with d; *d advanced past it), or UINT32_MAX where none is left (the input block: diag_lo is past
 * every row) */
static uint32_t sparse_next_self(const uint16_t *row, const uint8_t *col, uint32_t n_pre, uint32_t diag_lo,
                                 uint32_t nl, uint32_t *d)
{
    for (; *d < nl && diag_lo + *d < n_pre; ++*d)
        for (uint32_t k = row[diag_lo + *d]; k < row[diag_lo + *d + 1u]; ++k)
            if (col[k] == *d) {
                ++*d;
                return k;
            }
    return UINT32_MAX;
}

/* trace_blocks_sparse's block on an AVX2 CPU (network.connectivity): the block's present synapses as one flat
 * run, 8 at a time, whatever the rows' lengths (a row holds 10 p synapses on the paper's partition): each chunk
 * of entries first takes its synapses' ev from fw_spread_rows8, then each vector picks ca, psi_a and psi by its
 * 8 columns (fw_pick8). Each lane runs the scalar loop's operations in its order (no FMA). A vector holding a
 * self-connection (found row by row as the run reaches it) keeps that lane's ea, eb and acc by a blend, as the
 * scalar loop skips it. The last entries (fewer than 8) go one by one. Returns the synapses updated. */
__attribute__((target("avx2")))
static uint32_t trace_sparse_avx2(const fw_config_t *cfg, uint32_t n_pre, uint32_t diag_lo, const uint16_t *row,
                                  const uint8_t *col, const float *ev, const float *psi, const float *psi_a,
                                  const float *ca, float *ea, float *eb, float *acc)
{
    const uint32_t nl = cfg->n_local, nnz = row[n_pre];
    const float oaor = cfg->one_alpha_x_one_rho, one_alpha = cfg->one_alpha;
    const float beta = cfg->beta, kappa = cfg->kappa;
    uint32_t d = 0, n_self = 0;
    uint32_t self_k = sparse_next_self(row, col, n_pre, diag_lo, nl, &d);
    const __m256 v_oaor = _mm256_set1_ps(oaor), v_one_alpha = _mm256_set1_ps(one_alpha);
    const __m256 v_beta = _mm256_set1_ps(beta), v_kappa = _mm256_set1_ps(kappa);
    const __m256 ca_lo = fw_table8(ca, nl, 0), ca_hi = fw_table8(ca, nl, 1);
    const __m256 psi_lo = fw_table8(psi, nl, 0), psi_hi = fw_table8(psi, nl, 1);
    const __m256 pa_lo = fw_table8(psi_a, nl, 0), pa_hi = fw_table8(psi_a, nl, 1);
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    float ev_k[FW_SPREAD_CHUNK + 8u];
    uint32_t i_row = 0;
    for (uint32_t k0 = 0; k0 < nnz; k0 += FW_SPREAD_CHUNK) {
        const uint32_t len = nnz - k0 < FW_SPREAD_CHUNK ? nnz - k0 : FW_SPREAD_CHUNK;
        fw_spread_rows8(row, &i_row, k0, k0 + len, ev, ev_k);
        uint32_t m = 0;
        for (; m + 8u <= len; m += 8u) {
            const uint32_t k = k0 + m;
            __m256i self = _mm256_setzero_si256();
            for (; self_k < k + 8u; n_self++, self_k = sparse_next_self(row, col, n_pre, diag_lo, nl, &d))
                self = _mm256_or_si256(self, _mm256_cmpeq_epi32(lane, _mm256_set1_epi32((int32_t)(self_k - k))));
            const __m256 keep = _mm256_castsi256_ps(self);
            const __m256i j = fw_cols8(col + k);
            const __m256 evq = _mm256_loadu_ps(ev_k + m);
            const __m256 caq = fw_pick8(ca, ca_lo, ca_hi, nl, j), paq = fw_pick8(psi_a, pa_lo, pa_hi, nl, j);
            const __m256 psq = fw_pick8(psi, psi_lo, psi_hi, nl, j);
            const __m256 ea0 = _mm256_loadu_ps(ea + k), eb0 = _mm256_loadu_ps(eb + k), acc0 = _mm256_loadu_ps(acc + k);
            const __m256 ean = _mm256_add_ps(_mm256_mul_ps(caq, ea0), _mm256_mul_ps(_mm256_mul_ps(paq, evq), v_oaor));
            const __m256 e = _mm256_mul_ps(psq, _mm256_sub_ps(_mm256_mul_ps(v_one_alpha, evq), _mm256_mul_ps(v_beta, ean)));
            const __m256 ebn = _mm256_add_ps(_mm256_mul_ps(eb0, v_kappa), e);
            _mm256_storeu_ps(ea + k, _mm256_blendv_ps(ean, ea0, keep));
            _mm256_storeu_ps(eb + k, _mm256_blendv_ps(ebn, eb0, keep));
            _mm256_storeu_ps(acc + k, _mm256_blendv_ps(_mm256_add_ps(acc0, ebn), acc0, keep));
        }
        for (; m < len; ++m) {
            const uint32_t k = k0 + m, j = col[k];
            if (k == self_k) {
                n_self++;
                self_k = sparse_next_self(row, col, n_pre, diag_lo, nl, &d);
                continue;
            }
            const float evi = ev_k[m];
            const float ean = ca[j] * ea[k] + psi_a[j] * evi * oaor;
            const float e = psi[j] * (one_alpha * evi - beta * ean);
            ea[k] = ean;
            eb[k] = eb[k] * kappa + e;
            acc[k] = acc[k] + eb[k];
        }
    }
    return nnz - n_self;
}
#define TRACE_HAS_AVX2 1
#endif

__attribute__((noinline)) static void trace_block(const fw_config_t *cfg, uint32_t n_pre, const float *ev, const float *psi,
                        const float *ca, float *ea, float *eb, float *acc)
{
    const uint32_t nl = cfg->n_local;
    const float oaor = cfg->one_alpha_x_one_rho, one_alpha = cfg->one_alpha;
    const float beta = cfg->beta, kappa = cfg->kappa;
    for (uint32_t i = 0; i < n_pre; ++i) {
        const float evi = ev[i];
        float *ea_r = ea + i * nl, *eb_r = eb + i * nl, *acc_r = acc + i * nl;
        for (uint32_t j = 0; j < nl; ++j)
            trace_one(ca[j], psi[j], evi, oaor, one_alpha, beta, kappa, ea_r + j, eb_r + j, acc_r + j);
    }
}

/* network.n_regular: a core with LIF neurons runs this loop (every build, so the bits agree): trace_one's
 * operations with psi_a in the eps_a line, psi_a 0 for a LIF neuron (its ea stays 0, so e = psi (1-alpha) ev)
 * and psi for an ALIF one */
__attribute__((noinline)) static void trace_block_lif(const fw_config_t *cfg, uint32_t n_pre, const float *ev,
                                                      const float *psi, const float *psi_a, const float *ca,
                                                      float *ea, float *eb, float *acc)
{
    const uint32_t nl = cfg->n_local;
    const float oaor = cfg->one_alpha_x_one_rho, one_alpha = cfg->one_alpha;
    const float beta = cfg->beta, kappa = cfg->kappa;
    for (uint32_t i = 0; i < n_pre; ++i) {
        const float evi = ev[i];
        for (uint32_t j = 0; j < nl; ++j) {
            const uint32_t k = i * nl + j;
            const float ean = ca[j] * ea[k] + psi_a[j] * evi * oaor;
            const float e = psi[j] * (one_alpha * evi - beta * ean);
            ea[k] = ean;
            eb[k] = eb[k] * kappa + e;
            acc[k] = acc[k] + eb[k];
        }
    }
}

/* the block by the fastest loop this CPU has (the same bits) */
static void trace_run(const fw_config_t *cfg, uint32_t n_pre, const float *ev, const float *psi,
                      const float *ca, float *ea, float *eb, float *acc)
{
#ifdef TRACE_HAS_AVX2
    if (__builtin_cpu_supports("avx2") && trace_block_avx2(cfg, n_pre, ev, psi, ca, ea, eb, acc)) return;
#endif
    trace_block(cfg, n_pre, ev, psi, ca, ea, eb, acc);
}

/* ev_i = alpha ev_i + spike_i for the n presynaptic neurons of a spike bitmap (recurrent spikes, spike
 * input). Not inlined: one copy keeps the ARM image small, so the arena, which starts on the next
 * 1 KiB boundary after the code, keeps its room (114,688 B with ABI 6) (GCC and Clang both take the attribute). */
__attribute__((noinline)) static void decay_add_spikes(float *ev, const uint32_t *bits, uint32_t n, float alpha)
{
    uint32_t i = 0;
#ifdef TRACE_HAS_AVX2
    if (__builtin_cpu_supports("avx2")) i = decay_add_spikes_avx2(ev, bits, n, alpha);
#endif
    for (; i < n; ++i) ev[i] = alpha * ev[i] + (float)fw_bit(bits, i);
}

/* network.connectivity: the present synapses of the input block, then of the recurrent one, row by row
 * (fw_abi.h: row, col), each element as trace_one with psi_a in the eps_a line (psi_a = psi for an ALIF neuron:
 * trace_one's bits; 0 for a LIF one: trace_block_lif's). The recurrent block's self-connections (local j of
 * presynaptic row neuron_lo + j) keep no trace: skipped, their ea, eb, acc stay the 0 of the sample's start.
 * The native build on an AVX2 CPU takes trace_sparse_avx2 (the same bits). Returns the synapses updated. */
__attribute__((noinline)) static uint32_t trace_blocks_sparse(const fw_header_t *h, uint8_t *arena, const float *ev_in,
                                                              const float *ev_rec, const float *psi, const float *psi_a,
                                                              const float *ca)
{
    const fw_config_t *cfg = &h->config;
    const fw_layout_t *L = &h->layout;
    const float oaor = cfg->one_alpha_x_one_rho, one_alpha = cfg->one_alpha;
    const float beta = cfg->beta, kappa = cfg->kappa;
    uint32_t n = 0;
    for (int rec = 0; rec < 2; ++rec) {  /* the input block, then the recurrent one */
        const float *ev = rec ? ev_rec : ev_in;
        const uint32_t n_pre = rec ? cfg->n_rec : cfg->n_in;
        const uint32_t diag_lo = rec ? cfg->neuron_lo : FW_MAX_REC + FW_MAX_IN;  /* the input block: no row reaches it */
        const uint16_t *row = (const uint16_t *)(arena + (rec ? L->row_rec : L->row_in));
        const uint8_t *col = arena + (rec ? L->col_rec : L->col_in);
        float *ea = (float *)(arena + (rec ? L->ea_rec : L->ea_in));
        float *eb = (float *)(arena + (rec ? L->eb_rec : L->eb_in));
        float *acc = (float *)(arena + (rec ? L->acc_rec : L->acc_in));
#ifdef TRACE_HAS_AVX2
        if (__builtin_cpu_supports("avx2")) {
            n += trace_sparse_avx2(cfg, n_pre, diag_lo, row, col, ev, psi, psi_a, ca, ea, eb, acc);
            continue;
        }
#endif
        for (uint32_t i = 0; i < n_pre; ++i) {
            const float evi = ev[i];
            const uint32_t self = i - diag_lo;  /* the local neuron of the self-connection (wraps past FW_MAX_LOCAL: none) */
            for (uint32_t k = row[i]; k < row[i + 1u]; ++k) {
                const uint32_t j = col[k];
                if (j == self) continue;
                const float ean = ca[j] * ea[k] + psi_a[j] * evi * oaor;
                const float e = psi[j] * (one_alpha * evi - beta * ean);
                ea[k] = ean;
                eb[k] = eb[k] * kappa + e;
                acc[k] = acc[k] + eb[k];
                n++;
            }
        }
    }
    return n;
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

    if (cfg->neuron_lo < cfg->n_regular || cfg->sparse) {  /* LIF neurons here (network.n_regular), or sparse */
        float psi_a[FW_MAX_LOCAL];
        for (uint32_t j = 0; j < nl; ++j) psi_a[j] = cfg->neuron_lo + j < cfg->n_regular ? 0.0f : psi[j];
        if (cfg->sparse) {  /* network.connectivity: the present synapses only, the diagonal skipped */
            c->trace_updates += trace_blocks_sparse(h, arena, ev_in, ev_rec, psi, psi_a, ca);
            return;
        }
        trace_block_lif(cfg, cfg->n_in, ev_in, psi, psi_a, ca, FW_F32(arena, h, ea_in), FW_F32(arena, h, eb_in),
                        FW_F32(arena, h, acc_in));
        trace_block_lif(cfg, cfg->n_rec, ev_rec, psi, psi_a, ca, FW_F32(arena, h, ea_rec), FW_F32(arena, h, eb_rec),
                        FW_F32(arena, h, acc_rec));
    } else {
        trace_run(cfg, cfg->n_in, ev_in, psi, ca, FW_F32(arena, h, ea_in), FW_F32(arena, h, eb_in),
                    FW_F32(arena, h, acc_in));
        trace_run(cfg, cfg->n_rec, ev_rec, psi, ca, FW_F32(arena, h, ea_rec), FW_F32(arena, h, eb_rec),
                    FW_F32(arena, h, acc_rec));
    }
    zero_diagonal(nl, cfg->neuron_lo, FW_F32(arena, h, ea_rec), FW_F32(arena, h, eb_rec), FW_F32(arena, h, acc_rec));
    c->trace_updates += (cfg->n_in + cfg->n_rec) * nl - nl;
}

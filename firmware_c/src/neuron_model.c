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
#include "fw_vec_x86.h"

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

#ifdef FW_VEC_X86
/* The native build, on an AVX2 CPU: the default multi-Gaussian psi of 8 neurons at a time, from v and a
 * as the step left them (u = v - A recomputed by the step's operations), each lane with surrogate()'s
 * and gaussian()'s operations in their order, fw_expf8 for fw_expf: the scalar bits (tested over the ISS). */
__attribute__((target("avx2")))
static __m256 gaussian8(__m256 u, float mu, float sigma)
{
    const float sqrt_2pi = 2.5066282746f;
    const __m256 d = _mm256_sub_ps(u, _mm256_set1_ps(mu));
    const __m256 neg_dd = _mm256_xor_ps(_mm256_mul_ps(d, d), _mm256_set1_ps(-0.0f));
    const __m256 arg = _mm256_div_ps(neg_dd, _mm256_set1_ps(2.0f * sigma * sigma));
    return _mm256_div_ps(_mm256_div_ps(fw_expf8(arg), _mm256_set1_ps(sqrt_2pi)), _mm256_set1_ps(sigma));
}

__attribute__((target("avx2")))
static void multi_gaussian_psi_avx2(const fw_config_t *cfg, const float *v, const float *a, float *psi, fw_counts_t *c)
{
    const uint32_t nl = cfg->n_local;
    const float s = cfg->mg_sigma, h = cfg->mg_height, wide = cfg->mg_scale * s;
    const __m256 tiny = _mm256_set1_ps(fw_float((127u - FW_TINY_EXP) << 23));
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    for (uint32_t j = 0; j < nl; j += 8u) {
        const __m256i lanes = fw_lanes8(nl - j < 8u ? nl - j : 8u);
        const __m256 A = _mm256_add_ps(_mm256_set1_ps(cfg->v_th),
                                       _mm256_mul_ps(_mm256_set1_ps(cfg->beta), _mm256_maskload_ps(a + j, lanes)));
        const __m256 u = _mm256_sub_ps(_mm256_maskload_ps(v + j, lanes), A);
        const __m256 g0 = _mm256_mul_ps(gaussian8(u, 0.0f, s), _mm256_set1_ps(1.0f + h));
        const __m256 g1 = _mm256_mul_ps(gaussian8(u, s, wide), _mm256_set1_ps(h));
        const __m256 g2 = _mm256_mul_ps(gaussian8(u, -s, wide), _mm256_set1_ps(h));
        const __m256 p = _mm256_mul_ps(_mm256_sub_ps(_mm256_sub_ps(g0, g1), g2), _mm256_set1_ps(cfg->mg_gamma));
        const __m256 small = _mm256_cmp_ps(_mm256_and_ps(p, abs_mask), tiny, _CMP_LT_OQ);
        _mm256_maskstore_ps(psi + j, lanes, _mm256_andnot_ps(small, p));  /* fw_flush_tiny */
    }
    c->exp_calls += 3u * nl;
}
#endif

/* whether the neuron step leaves psi to multi_gaussian_psi_avx2: the default surrogate, all ALIF */
static int psi_by_vectors(const fw_config_t *cfg)
{
#ifdef FW_VEC_X86
    return cfg->surrogate == FW_SURR_MULTI_GAUSSIAN && cfg->neuron_lo >= cfg->n_regular
        && __builtin_cpu_supports("avx2");
#else
    (void)cfg;
    return 0;
#endif
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

/* acc[j] += x_i w[i][j] over i in ascending order: the analog input current */
static void add_weighted_rows(const float *w, const float *x, uint32_t n_pre, uint32_t nl, float *acc)
{
    for (uint32_t i = 0; i < n_pre; ++i) {
        const float xi = x[i];
        const float *row = w + i * nl;
        for (uint32_t j = 0; j < nl; ++j) acc[j] += xi * row[j];
    }
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
/* The native x86-64 build, on a CPU with AVX2: the same sums, a core's row of n_local neurons as vectors
 * of 8 (the last one masked) held in registers over the presynaptic rows; each element's products and
 * additions in the same order, no FMA: the bits of the loops above (tested over the ISS). */
#define ROW_VECTORS_MAX 4u  /* up to 32 neurons a core in registers; more take the loops above */
__attribute__((target("avx2")))
static int add_rows_avx2(const float *w, const float *x, const uint32_t *bits, uint32_t n_pre, uint32_t nl,
                         float *acc, uint32_t *n_rows)
{
    const uint32_t nv = (nl + 7u) / 8u;
    if (nv > ROW_VECTORS_MAX) return 0;
    __m256 sum[ROW_VECTORS_MAX];
    __m256i mask[ROW_VECTORS_MAX];
    const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for (uint32_t v = 0; v < nv; ++v) {
        mask[v] = _mm256_cmpgt_epi32(_mm256_set1_epi32((int32_t)(nl - 8u * v)), lanes);
        sum[v] = _mm256_maskload_ps(acc + 8u * v, mask[v]);
    }
    uint32_t n = 0;
    if (bits) {  /* the set bits in ascending order, word by word (no branch per silent neuron) */
        for (uint32_t wd = 0; wd < fw_bitmap_words(n_pre); ++wd) {
            uint32_t word = bits[wd];
            if (32u * wd + 32u > n_pre) word &= (1u << (n_pre & 31u)) - 1u;  /* bits past n_pre are not rows */
            for (; word; word &= word - 1u) {
                const float *row = w + (32u * wd + (uint32_t)__builtin_ctz(word)) * nl;
                n++;
                for (uint32_t v = 0; v < nv; ++v)
                    sum[v] = _mm256_add_ps(sum[v], _mm256_maskload_ps(row + 8u * v, mask[v]));
            }
        }
    } else {
        for (uint32_t i = 0; i < n_pre; ++i) {
            const float *row = w + i * nl;
            const __m256 xi = _mm256_set1_ps(x[i]);
            for (uint32_t v = 0; v < nv; ++v)
                sum[v] = _mm256_add_ps(sum[v], _mm256_mul_ps(xi, _mm256_maskload_ps(row + 8u * v, mask[v])));
        }
    }
    for (uint32_t v = 0; v < nv; ++v) _mm256_maskstore_ps(acc + 8u * v, mask[v], sum[v]);
    *n_rows = n;
    return 1;
}
#define ROWS_HAVE_AVX2 1

/* add_rows_sparse's block on an AVX2 CPU (network.connectivity). Analog input: the products x_i w of a chunk of
 * entries as one flat run of 8-lane vectors (x_i spread per entry by fw_spread_rows8), then added to acc[col]
 * entry by entry in ascending order: rows ascending for each neuron, as the scalar loop. Spikes: the set bits
 * word by word (no test per silent row); a spiking row's entries 8 at a time as a gather of acc by column, the
 * adds, and 8 scalar stores (a row's columns are distinct), the rest one by one. Each element's operations are
 * the scalar loop's. Returns the synapses added. */
__attribute__((target("avx2")))
static uint32_t add_rows_sparse_avx2(int analog, uint32_t n_pre, const uint16_t *row, const uint8_t *col,
                                     const float *w, const uint32_t *in, float *acc)
{
    uint32_t n = 0;
    if (analog) {
        const uint32_t nnz = row[n_pre];
        float x_k[FW_SPREAD_CHUNK + 8u];  /* x_i, then x_i w in place */
        uint32_t i_row = 0;
        for (uint32_t k0 = 0; k0 < nnz; k0 += FW_SPREAD_CHUNK) {
            const uint32_t len = nnz - k0 < FW_SPREAD_CHUNK ? nnz - k0 : FW_SPREAD_CHUNK;
            fw_spread_rows8(row, &i_row, k0, k0 + len, (const float *)in, x_k);
            uint32_t m = 0;
            for (; m + 8u <= len; m += 8u)
                _mm256_storeu_ps(x_k + m, _mm256_mul_ps(_mm256_loadu_ps(x_k + m), _mm256_loadu_ps(w + k0 + m)));
            for (; m < len; ++m) x_k[m] = x_k[m] * w[k0 + m];
            for (m = 0; m < len; ++m) acc[col[k0 + m]] += x_k[m];
        }
        return nnz;
    }
    for (uint32_t wd = 0; wd < fw_bitmap_words(n_pre); ++wd) {
        uint32_t word = in[wd];
        if (32u * wd + 32u > n_pre) word &= (1u << (n_pre & 31u)) - 1u;  /* bits past n_pre are not rows */
        for (; word; word &= word - 1u) {
            const uint32_t i = 32u * wd + (uint32_t)__builtin_ctz(word), to = row[i + 1u];
            uint32_t k = row[i];
            n += to - k;
            for (; k + 8u <= to; k += 8u) {
                float sum[8];
                _mm256_storeu_ps(sum, _mm256_add_ps(_mm256_i32gather_ps(acc, fw_cols8(col + k), 4),
                                                    _mm256_loadu_ps(w + k)));
                for (uint32_t l = 0; l < 8u; ++l) acc[col[k + l]] = sum[l];
            }
            for (; k < to; ++k) acc[col[k]] += w[k];
        }
    }
    return n;
}
#define SPARSE_ROWS_HAVE_AVX2 1
#endif

/* the spike rows' sum by the fastest loop this CPU has (the same bits); returns the spikes */
static uint32_t spiking_rows(const float *w, const uint32_t *bits, uint32_t n_pre, uint32_t nl, float *acc)
{
#ifdef ROWS_HAVE_AVX2
    uint32_t n;
    if (__builtin_cpu_supports("avx2") && add_rows_avx2(w, 0, bits, n_pre, nl, acc, &n)) return n;
#endif
    return add_spiking_rows(w, bits, n_pre, nl, acc);
}

static void weighted_rows(const float *w, const float *x, uint32_t n_pre, uint32_t nl, float *acc)
{
#ifdef ROWS_HAVE_AVX2
    uint32_t n;
    if (__builtin_cpu_supports("avx2") && add_rows_avx2(w, x, 0, n_pre, nl, acc, &n)) return;
#endif
    add_weighted_rows(w, x, n_pre, nl, acc);
}

/* network.connectivity: the input currents over the present synapses (fw_abi.h: row, col) of the input block
 * (into i_in), then of the recurrent one (i_rec), rows in ascending order as the dense loops (an absent synapse
 * adds nothing there either): acc[col] += x_i w for analog input, or acc[col] += w for each row whose bit is set
 * (spike input, recurrent spikes). The native build on an AVX2 CPU takes add_rows_sparse_avx2 (the same bits).
 * Returns the synapses added. */
__attribute__((noinline)) static uint32_t add_rows_sparse(const fw_header_t *h, const uint8_t *arena, const uint32_t *input,
                                                          const uint32_t *z_prev, float *i_in, float *i_rec)
{
    const fw_config_t *cfg = &h->config;
    const fw_layout_t *L = &h->layout;
    uint32_t n = 0;
    for (int rec = 0; rec < 2; ++rec) {  /* the input block, then the recurrent one */
        const int analog = !rec && cfg->input_kind == FW_INPUT_ANALOG;
        const uint32_t n_pre = rec ? cfg->n_rec : cfg->n_in;
        const uint32_t *in = rec ? z_prev : input;
        const uint16_t *row = (const uint16_t *)(arena + (rec ? L->row_rec : L->row_in));
        const uint8_t *col = arena + (rec ? L->col_rec : L->col_in);
        const float *w = (const float *)(arena + (rec ? L->w_rec : L->w_in));
        float *acc = rec ? i_rec : i_in;
#ifdef SPARSE_ROWS_HAVE_AVX2
        if (__builtin_cpu_supports("avx2")) {  /* every synapse present (p = 1): a dense block's layout and sums */
            uint32_t spikes;
            if (row[n_pre] == n_pre * cfg->n_local
                && add_rows_avx2(w, analog ? (const float *)in : 0, analog ? 0 : in, n_pre, cfg->n_local, acc, &spikes))
                n += (analog ? n_pre : spikes) * cfg->n_local;
            else
                n += add_rows_sparse_avx2(analog, n_pre, row, col, w, in, acc);
            continue;
        }
#endif
        for (uint32_t i = 0; i < n_pre; ++i) {
            const uint32_t from = row[i], to = row[i + 1u];
            if (analog) {
                const float xi = ((const float *)in)[i];
                for (uint32_t k = from; k < to; ++k) acc[col[k]] += xi * w[k];
            } else {
                if (!fw_bit(in, i)) continue;
                for (uint32_t k = from; k < to; ++k) acc[col[k]] += w[k];
            }
            n += to - from;
        }
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
    if (cfg->sparse) {  /* network.connectivity: the present synapses only */
        c->synapse_mults += add_rows_sparse(h, arena, input, z_prev, i_in, i_rec);
    } else {
        uint32_t rows = cfg->n_in;  /* weight rows used: analog, every input's */
        if (cfg->input_kind == FW_INPUT_ANALOG) {
            weighted_rows(w_in, (const float *)input, cfg->n_in, nl, i_in);
        } else {  /* spike input: the work follows the input spikes */
            rows = spiking_rows(w_in, input, cfg->n_in, nl, i_in);
        }
        rows += spiking_rows(w_rec, z_prev, cfg->n_rec, nl, i_rec);
        c->synapse_mults += rows * nl;
    }
    const int vectors = psi_by_vectors(cfg);
    for (uint32_t j = 0; j < nl; ++j) {
        const float zp = (float)fw_bit(z_prev, lo + j);
        a[j] = cfg->rho * a[j] + cfg->one_rho * zp;
        const float beta = lo + j < cfg->n_regular ? 0.0f : cfg->beta;  /* LIF: no adaptation */
        const float A = cfg->v_th + beta * a[j];
        v[j] = cfg->alpha * v[j] + cfg->one_alpha * (i_in[j] + i_rec[j]) - zp * A;
        const float u = v[j] - A;
        z[j] = u > 0.0f ? 1.0f : 0.0f;
        if (!vectors) psi[j] = neuron_surrogate(cfg, u, c);
        if (z[j] != 0.0f) {
            if (zcount) zcount[j] = zcount[j] + 1.0f;  /* train.rate_reg: the neuron's spikes in the sample */
            hal_send_mc(h, key | (lo + j), 0u);
            h->state.spikes++;
            c->mc_sent++;
        }
    }
#ifdef FW_VEC_X86
    if (vectors) multi_gaussian_psi_avx2(cfg, v, a, psi, c);
#endif
    c->neuron_updates += nl;
}

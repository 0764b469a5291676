/* Arena layout: where each region of a core's data memory lies, from its config alone. The host reads
 * it through cffi to pack images, fw_init() recomputes it to check the image. */
#include "fw_abi.h"
#include "fw_internal.h"

static uint32_t take(uint32_t *cursor, uint32_t words)
{
    /* sizes are bounded by config_valid() (all products < 2^26 words), so this cannot wrap */
    uint32_t at = *cursor;
    *cursor += words * 4u;
    return at;
}

uint32_t fw_input_slot_words(uint32_t input_kind, uint32_t n_in)
{
    if (input_kind == FW_INPUT_ANALOG) return FW_FRAME_HEAD_WORDS + n_in;
    if (input_kind == FW_INPUT_SPIKES) return FW_FRAME_HEAD_WORDS + fw_bitmap_words(n_in);
    return 0u;
}

/* not inlined (nor masks_valid): one copy each keeps the ARM image small, so the arena room stays large */
__attribute__((noinline)) uint32_t fw_record_words(const fw_config_t *c, uint32_t stream)
{
    if (stream == FW_REC_READOUT) return (c->role & FW_ROLE_READOUT) && c->rec_out ? FW_FRAME_HEAD_WORDS + c->n_out : 0u;
    if (stream != FW_REC_NEURON || !(c->role & FW_ROLE_NEURON)) return 0u;
    const uint32_t nz = fw_popcount(c->rec_z_mask, FW_REC_MASK_WORDS), nv = fw_popcount(c->rec_v_mask, FW_REC_MASK_WORDS);
    return nz + nv ? FW_FRAME_HEAD_WORDS + fw_bitmap_words(nz) + nv : 0u;
}

_Static_assert(FW_REC_MASK_WORDS * 32u == FW_MAX_LOCAL, "a record mask has a bit per local neuron");

/* a record region of n_steps records must not wrap the 32-bit address space */
static int region_fits(uint32_t addr, uint32_t n_steps, uint32_t words)
{
    return (uint64_t)addr + (uint64_t)n_steps * 4u * words <= 0xffffffffu;
}

/* the masks name local neurons only: no bit at or past n_local (none on a core without neurons) */
__attribute__((noinline)) static int masks_valid(const fw_config_t *c)
{
    const uint32_t nl = (c->role & FW_ROLE_NEURON) ? c->n_local : 0u;
    for (uint32_t w = 0; w < FW_REC_MASK_WORDS; ++w) {
        const uint32_t lo = 32u * w;
        const uint32_t allowed = nl >= lo + 32u ? 0xffffffffu : nl > lo ? (1u << (nl - lo)) - 1u : 0u;
        if ((c->rec_z_mask[w] | c->rec_v_mask[w]) & ~allowed) return 0;
    }
    return 1;
}

__attribute__((noinline, cold)) static int config_valid(const fw_config_t *c)
{
    if (c->n_in == 0 || c->n_in > FW_MAX_IN || c->n_rec == 0 || c->n_rec > FW_MAX_REC) return 0;
    if (c->n_out == 0 || c->n_out > FW_MAX_OUT || c->n_steps == 0) return 0;
    if ((c->role & (FW_ROLE_NEURON | FW_ROLE_READOUT)) == 0) return 0;
    if (c->input_kind > FW_INPUT_SPIKES) return 0;  /* FW_INPUT_ANALOG 0 or FW_INPUT_SPIKES 1 */
    if (c->role & FW_ROLE_NEURON) {
        if (c->n_local == 0 || c->n_local > FW_MAX_LOCAL) return 0;
        if (c->neuron_lo > c->n_rec || c->n_local > c->n_rec - c->neuron_lo) return 0;
        if (c->ring_slots == 0 || c->ring_slots > FW_MAX_SLOTS) return 0;
        /* the ring must not wrap the 32-bit address space: slot bytes * slots < 2^32 */
        const uint64_t ring_end = (uint64_t)c->sdram_ring
                                  + (uint64_t)c->ring_slots * 4u * fw_input_slot_words(c->input_kind, c->n_in);
        if (ring_end > 0xffffffffu) return 0;
        /* every neuron core sends and receives spike counts: one sender of n_src, a bit each in counts_seen */
        if (c->src_index >= c->n_src) return 0;
    }
    /* n_src: the neuron cores, whose partial sums (readout role) and spike counts (neuron role) come */
    if (c->n_src == 0 || c->n_src > FW_MAX_CORES) return 0;
    if (c->outbox_words < 16u || c->outbox_words > FW_MAX_OUTBOX) return 0;
    /* key bases: the kind byte, an index offset (copies of a network on one chip differ in it) that
     * leaves room for every index, and a free tag field */
    if ((c->key_spike | c->key_partial | c->key_err | c->key_count) & (FW_KEY_TAG_MASK << FW_KEY_TAG_SHIFT)) return 0;
    const uint64_t n_partials = (c->role & FW_ROLE_READOUT) ? (uint64_t)c->n_src * c->n_out : 0u;
    if ((c->key_spike & FW_KEY_INDEX_MASK) + (uint64_t)c->n_rec > FW_KEY_INDEX_MASK + 1u
        || (c->key_partial & FW_KEY_INDEX_MASK) + n_partials > FW_KEY_INDEX_MASK + 1u
        || (c->key_err & FW_KEY_INDEX_MASK) + (uint64_t)c->n_out > FW_KEY_INDEX_MASK + 1u
        || (c->key_count & FW_KEY_INDEX_MASK) + (uint64_t)c->n_src > FW_KEY_INDEX_MASK + 1u) return 0;
    if (c->surrogate > FW_SURR_ARCTAN || c->feedback > FW_FEEDBACK_ADAPTIVE || c->optimizer > FW_OPT_SGD) return 0;
    if (c->n_regular > c->n_rec) return 0;
    /* sparse connectivity: a neuron core's present synapses, at most every synapse of its blocks and
     * FW_MAX_SPARSE per block (the uint16 row index); a dense core has none counted */
    if (c->sparse > 1u) return 0;
    if (c->sparse) {
        if (!(c->role & FW_ROLE_NEURON)) return 0;
        /* n_pre x n_local < 2^19: no overflow */
        if (c->nnz_in > c->n_in * c->n_local || c->nnz_rec > c->n_rec * c->n_local
            || c->nnz_in > FW_MAX_SPARSE || c->nnz_rec > FW_MAX_SPARSE) return 0;
    } else if (c->nnz_in | c->nnz_rec) {
        return 0;
    }
    if (c->rec_out > 1u || !masks_valid(c)) return 0;
    if (!region_fits(c->rec_sdram, c->n_steps, fw_record_words(c, FW_REC_NEURON))
        || !region_fits(c->rec_sdram_out, c->n_steps, fw_record_words(c, FW_REC_READOUT))) return 0;
    return 1;
}

uint32_t fw_layout(const fw_config_t *c, fw_layout_t *out)
{
    fw_layout_t L = {0};
    if (!config_valid(c)) { *out = L; return 0; }
    uint32_t cur = (uint32_t)((sizeof(fw_header_t) + 15u) & ~15u);
    uint32_t mark;
    const uint32_t nl = (c->role & FW_ROLE_NEURON) ? c->n_local : 0u;
    const uint32_t zw = fw_bitmap_words(c->n_rec);
    /* synapses stored per block: every one (dense), or the present ones (sparse, with their index) */
    const uint32_t syn_in = c->sparse ? c->nnz_in : c->n_in * nl, syn_rec = c->sparse ? c->nnz_rec : c->n_rec * nl;
    if (nl) {
        if (c->sparse) {
            mark = cur;
            L.row_in = take(&cur, (c->n_in + 2u) / 2u);    /* n_in + 1 uint16 */
            L.col_in = take(&cur, (c->nnz_in + 3u) / 4u);  /* nnz_in uint8 */
            L.row_rec = take(&cur, (c->n_rec + 2u) / 2u);
            L.col_rec = take(&cur, (c->nnz_rec + 3u) / 4u);
            L.index_bytes = cur - mark;
        }
        mark = cur;
        L.w_in = take(&cur, syn_in);
        L.w_rec = take(&cur, syn_rec);
        L.w_out = take(&cur, nl * c->n_out);
        if (c->feedback != FW_FEEDBACK_SYMMETRIC) L.fb = take(&cur, nl * c->n_out);
        L.weights_bytes = cur - mark;
        mark = cur;
        L.m_in = take(&cur, syn_in);
        L.v_in = take(&cur, syn_in);
        L.m_rec = take(&cur, syn_rec);
        L.v_rec = take(&cur, syn_rec);
        L.m_out = take(&cur, nl * c->n_out);
        L.v_out = take(&cur, nl * c->n_out);
        if (c->feedback == FW_FEEDBACK_ADAPTIVE) {
            L.m_fb = take(&cur, nl * c->n_out);
            L.v_fb = take(&cur, nl * c->n_out);
        }
        L.optimizer_bytes = cur - mark;
        mark = cur;
        L.ea_in = take(&cur, syn_in);
        L.eb_in = take(&cur, syn_in);
        L.acc_in = take(&cur, syn_in);
        L.ea_rec = take(&cur, syn_rec);
        L.eb_rec = take(&cur, syn_rec);
        L.acc_rec = take(&cur, syn_rec);
        L.ev_in = take(&cur, c->n_in);
        L.ev_rec = take(&cur, c->n_rec);
        L.trace_bytes = cur - mark;
    }
    mark = cur;
    if (nl) {
        L.v = take(&cur, nl);
        L.a = take(&cur, nl);
        L.psi = take(&cur, nl);
        L.zbar = take(&cur, nl);
        L.zsum = take(&cur, nl);
        L.z_local = take(&cur, nl);
        if (c->c_reg != 0.0f) L.zcount = take(&cur, nl);
    }
    L.z_prev = take(&cur, zw);
    L.z_rx = take(&cur, 2u * zw);
    L.neuron_bytes = cur - mark;
    mark = cur;
    if (nl) L.err = take(&cur, c->n_out);
    if (c->role & FW_ROLE_READOUT) {
        L.partials = take(&cur, 2u * c->n_src * c->n_out);
        L.out_sum = take(&cur, c->n_out);
        L.partial_seen = take(&cur, 2u * fw_bitmap_words(c->n_src * c->n_out));
    }
    L.readout_bytes = cur - mark;
    mark = cur;
    if (nl) L.dma_buf = take(&cur, 2u * fw_input_slot_words(c->input_kind, c->n_in));
    L.outbox = take(&cur, c->outbox_words);
    L.buffer_bytes = cur - mark;
    mark = cur;
    const uint32_t rec_words = fw_record_words(c, FW_REC_NEURON), rec_out_words = fw_record_words(c, FW_REC_READOUT);
    if (rec_words) L.rec_buf = take(&cur, 2u * rec_words);
    if (rec_out_words) L.rec_out_buf = take(&cur, 2u * rec_out_words);
    L.record_bytes = cur - mark;
    L.end = cur;
    *out = L;
    return cur;
}

/* one block's index: row[0] = 0, rows non-decreasing up to row[n_pre] = nnz, each row's local neurons
 * ascending and below n_local */
__attribute__((noinline, cold)) static int block_index_valid(const uint16_t *row, const uint8_t *col, uint32_t n_pre, uint32_t nnz, uint32_t nl)
{
    if (row[0] != 0u || row[n_pre] != nnz) return 0;
    for (uint32_t i = 0; i < n_pre; ++i)  /* first the rows: then every entry they name is below nnz */
        if (row[i] > row[i + 1u]) return 0;
    for (uint32_t i = 0; i < n_pre; ++i) {
        for (uint32_t k = row[i]; k < row[i + 1u]; ++k)
            if (col[k] >= nl || (k > row[i] && col[k] <= col[k - 1u])) return 0;
    }
    return 1;
}

uint32_t fw_index_valid(const uint8_t *arena)
{
    const fw_header_t *h = (const fw_header_t *)arena;
    const fw_config_t *c = &h->config;
    if (!c->sparse) return 1u;
    const fw_layout_t *L = &h->layout;
    return block_index_valid((const uint16_t *)(arena + L->row_in), arena + L->col_in, c->n_in, c->nnz_in, c->n_local)
           && block_index_valid((const uint16_t *)(arena + L->row_rec), arena + L->col_rec, c->n_rec, c->nnz_rec,
                                c->n_local) ? 1u : 0u;
}

/* Recording (fw_abi.h FW_REC_*): a record is assembled in one of two SRAM buffers per stream, by step
 * parity, and written to SDRAM by one DMA write; the buffer is free again at its DMA-done. */
#include "recording.h"
#include "fw_internal.h"
#include "hal.h"

static uint32_t busy_bit(uint32_t stream, uint32_t step) { return 1u << (2u * stream + (step & 1u)); }

/* the buffer of this stream and step with its header written, or 0 (counted) if it is still in a write */
static uint32_t *claim(fw_header_t *h, uint8_t *arena, uint32_t stream, uint32_t step, uint32_t words)
{
    fw_state_t *s = &h->state;
    if (s->rec_busy & busy_bit(stream, step)) { s->counters.record_overruns++; return 0; }
    uint32_t *buf = (stream == FW_REC_NEURON ? FW_U32(arena, h, rec_buf) : FW_U32(arena, h, rec_out_buf))
                    + (step & 1u) * words;
    buf[0] = stream == FW_REC_NEURON ? FW_REC_MAGIC : FW_REC_OUT_MAGIC;
    buf[1] = s->sample_id;
    buf[2] = step;
    return buf;
}

static void write_out(fw_header_t *h, uint32_t stream, uint32_t step, const uint32_t *buf, uint32_t words,
                      fw_counts_t *c)
{
    fw_state_t *s = &h->state;
    const uint32_t base = stream == FW_REC_NEURON ? h->config.rec_sdram : h->config.rec_sdram_out;
    const uint32_t tag = FW_DMA_WRITE_TAG | stream << 1 | (step & 1u);
    if (hal_dma_write(h, base + step * words * 4u, buf, words * 4u, tag)) s->rec_busy |= busy_bit(stream, step);
    else s->counters.record_overruns++;  /* outbox full (counted too) */
    c->dma_bytes += words * 4u;
}

void recording_neuron_step(fw_header_t *h, uint8_t *arena, uint32_t step, fw_counts_t *c)
{
    const fw_config_t *cfg = &h->config;
    const uint32_t words = fw_record_words(cfg, FW_REC_NEURON);
    if (!h->state.record || !words) return;
    uint32_t *buf = claim(h, arena, FW_REC_NEURON, step, words);
    if (!buf) return;
    const float *z = FW_F32(arena, h, z_local), *v = FW_F32(arena, h, v);
    const uint32_t nl = cfg->n_local;
    const uint32_t zw = fw_bitmap_words(fw_popcount(cfg->rec_z_mask, FW_REC_MASK_WORDS));
    uint32_t *bits = buf + FW_FRAME_HEAD_WORDS;
    float *vs = (float *)(bits + zw);
    for (uint32_t w = 0; w < zw; ++w) bits[w] = 0u;
    for (uint32_t j = 0, r = 0, q = 0; j < nl; ++j) {
        if (fw_bit(cfg->rec_z_mask, j)) {
            if (z[j] != 0.0f) bits[r >> 5] |= 1u << (r & 31u);
            r++;
        }
        if (fw_bit(cfg->rec_v_mask, j)) vs[q++] = v[j];
    }
    write_out(h, FW_REC_NEURON, step, buf, words, c);
}

void recording_readout_step(fw_header_t *h, uint8_t *arena, uint32_t step, const float *y, fw_counts_t *c)
{
    const uint32_t words = fw_record_words(&h->config, FW_REC_READOUT);
    if (!h->state.record || !words) return;
    uint32_t *buf = claim(h, arena, FW_REC_READOUT, step, words);
    if (!buf) return;
    float *out = (float *)(buf + FW_FRAME_HEAD_WORDS);
    for (uint32_t k = 0; k < h->config.n_out; ++k) out[k] = y[k];
    write_out(h, FW_REC_READOUT, step, buf, words, c);
}

void recording_dma_done(fw_header_t *h, uint32_t tag)
{
    h->state.rec_busy &= ~(1u << (tag & 3u));
}

/* HAL of the emulator: side effects are queued in the arena's outbox, which the emulator drains
 * (and empties) after every handler call. A full outbox drops the entry and counts it. */
#include "hal.h"
#include "fw_internal.h"

uint32_t hal_irq_disable(void)
{
#if defined(__arm__)
    uint32_t primask;
    __asm volatile("mrs %0, primask\n\tcpsid i" : "=r"(primask) : : "memory");
    return primask;
#else
    return 0u;  /* the native build runs every handler to completion */
#endif
}

void hal_irq_restore(uint32_t state)
{
#if defined(__arm__)
    __asm volatile("msr primask, %0" : : "r"(state) : "memory");
#else
    (void)state;
#endif
}

/* Space for one entry, or 0 (counted) when the outbox is full. The packet handler queues entries
 * too (a user event, when the last output error completes a sample), so each entry is reserved and
 * written with the packet interrupt masked (`irq`: what hal_irq_disable returned; the caller
 * restores it once the entry is whole), as spin1_send_mc_packet does on SpiNNaker. */
static uint32_t *outbox_reserve(fw_header_t *h, uint32_t n_words, uint32_t *irq)
{
    fw_state_t *s = &h->state;
    *irq = hal_irq_disable();
    if (s->outbox_count + n_words > h->config.outbox_words) {
        s->counters.outbox_overflows++;
        hal_irq_restore(*irq);
        return 0;
    }
    uint32_t *box = (uint32_t *)((uint8_t *)h + h->layout.outbox);
    uint32_t *at = box + s->outbox_count;
    s->outbox_count += n_words;
    return at;
}

int hal_send_mc(fw_header_t *h, uint32_t key, uint32_t payload)
{
    uint32_t irq, *at = outbox_reserve(h, 3u, &irq);
    if (!at) return 0;
    at[0] = HAL_OUT_MC;
    at[1] = key;
    at[2] = payload;
    hal_irq_restore(irq);
    return 1;
}

int hal_send_host(fw_header_t *h, const uint32_t *words, uint32_t n_words)
{
    uint32_t irq, *at = outbox_reserve(h, n_words + 1u, &irq);
    if (!at) return 0;
    at[0] = HAL_OUT_HOST | (n_words << 8);
    for (uint32_t i = 0; i < n_words; ++i) at[1u + i] = words[i];
    hal_irq_restore(irq);
    return 1;
}

static int dma_request(fw_header_t *h, uint32_t kind, uint32_t sdram_addr, const void *sram, uint32_t n_bytes,
                       uint32_t tag)
{
    uint32_t irq, *at = outbox_reserve(h, HAL_DMA_WORDS, &irq);
    if (!at) return 0;
    at[0] = kind;
    at[1] = sdram_addr;
    at[2] = (uint32_t)((const uint8_t *)sram - (const uint8_t *)h);
    at[3] = n_bytes;
    at[4] = tag;
    hal_irq_restore(irq);
    return 1;
}

int hal_dma_read(fw_header_t *h, uint32_t sdram_addr, void *dst, uint32_t n_bytes, uint32_t tag)
{
    return dma_request(h, HAL_OUT_DMA, sdram_addr, dst, n_bytes, tag);
}

int hal_dma_write(fw_header_t *h, uint32_t sdram_addr, const void *src, uint32_t n_bytes, uint32_t tag)
{
    return dma_request(h, HAL_OUT_DMA_WRITE, sdram_addr, src, n_bytes, tag);
}

int hal_user_event(fw_header_t *h)
{
    uint32_t irq, *at = outbox_reserve(h, 1u, &irq);
    if (!at) return 0;
    at[0] = HAL_OUT_USER;
    hal_irq_restore(irq);
    return 1;
}

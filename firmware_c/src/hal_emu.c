/* HAL of the emulator: side effects are queued in the arena's outbox, which the emulator drains
 * (and empties) after every handler call. A full outbox drops the entry and counts it. */
#include "hal.h"
#include "fw_internal.h"

static uint32_t *outbox_reserve(fw_header_t *h, uint32_t n_words)
{
    fw_state_t *s = &h->state;
    if (s->outbox_count + n_words > h->config.outbox_words) {
        s->outbox_overflows++;
        return 0;
    }
    uint32_t *box = (uint32_t *)((uint8_t *)h + h->layout.outbox);
    uint32_t *at = box + s->outbox_count;
    s->outbox_count += n_words;
    return at;
}

int hal_send_mc(fw_header_t *h, uint32_t key, uint32_t payload)
{
    uint32_t *at = outbox_reserve(h, 3u);
    if (!at) return 0;
    at[0] = HAL_OUT_MC;
    at[1] = key;
    at[2] = payload;
    return 1;
}

int hal_send_host(fw_header_t *h, const uint32_t *words, uint32_t n_words)
{
    uint32_t *at = outbox_reserve(h, n_words + 1u);
    if (!at) return 0;
    at[0] = HAL_OUT_HOST | (n_words << 8);
    for (uint32_t i = 0; i < n_words; ++i) at[1u + i] = words[i];
    return 1;
}

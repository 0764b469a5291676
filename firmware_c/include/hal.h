/* Hardware abstraction: every side effect of the firmware goes through here.
 * hal_emu.c writes to the arena's outbox that the emulator drains after each handler call;
 * a board build would write the comms-unit, DMA-controller and host-link registers instead. */
#ifndef HAL_H
#define HAL_H

#include <stdint.h>
#include "fw_abi.h"

/* outbox entry tags: the low byte of word 0 of an entry */
#define HAL_OUT_MC 1u    /* [tag, key, payload] */
#define HAL_OUT_HOST 2u  /* [tag | n_words << 8, n_words words] */
#define HAL_OUT_DMA 3u   /* [tag, sdram address, arena offset, n_bytes, dma tag]: SDRAM -> SRAM read */
#define HAL_OUT_USER 4u  /* [tag]: raise this core's user event (lowest priority) */
#define HAL_OUT_DMA_WRITE 5u /* [tag, sdram address, arena offset, n_bytes, dma tag]: SRAM -> SDRAM write */
#define HAL_DMA_WORDS 5u

/* queue a multicast packet; false (and a counted overflow) when the outbox is full */
int hal_send_mc(fw_header_t *h, uint32_t key, uint32_t payload);
/* queue a message to the host */
int hal_send_host(fw_header_t *h, const uint32_t *words, uint32_t n_words);
/* start a DMA read of n_bytes from SDRAM into dst (inside the arena); fw_on_dma_done(tag) follows */
int hal_dma_read(fw_header_t *h, uint32_t sdram_addr, void *dst, uint32_t n_bytes, uint32_t tag);
/* start a DMA write of n_bytes from src (inside the arena) to SDRAM; fw_on_dma_done(tag) follows */
int hal_dma_write(fw_header_t *h, uint32_t sdram_addr, const void *src, uint32_t n_bytes, uint32_t tag);
/* raise the user event: fw_on_user_event runs when no higher-priority event is pending */
int hal_user_event(fw_header_t *h);

#endif

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

/* The execution model (docs/chip.md section 10), as SpiNNaker's runtime has it: the handlers by
 * priority, 0 the highest. A pending event is served when its core is free, the highest priority
 * first (FIFO within one). Only the packet interrupt preempts: fw_on_mc_packet may start at any
 * instruction of any other handler where interrupts are not masked (SpiNNaker's FIQ, priority -1),
 * and runs to completion; packet handlers never nest in each other, and the other four never
 * preempt anything (SpiNNaker's queued callbacks). So at most two handlers are in flight: a packet
 * handler over one other (what `s2eprop memory` budgets the stack for). The host message sits
 * between DMA done and the timer, as the SDP callback does in sPyNNaker: it only writes the pending
 * sample (read by the timer, which it can never interrupt). fw_init runs before any interrupt. */
#define FW_PRIO_MC_PACKET 0u
#define FW_PRIO_DMA_DONE 1u
#define FW_PRIO_HOST_MSG 2u
#define FW_PRIO_TIMER 3u
#define FW_PRIO_USER_EVENT 4u
#define FW_PREEMPTING_PRIO FW_PRIO_MC_PACKET /* the only priority that preempts a running handler */
#define FW_MAX_NESTING 2u                     /* handlers in flight at once: a packet over one other */

/* Mask the preempting interrupt (ARM: PRIMASK, cpsid i) and return the previous mask; restore it.
 * Every read-modify-write of state that the packet handler also writes goes between the two, for
 * as few instructions as it takes (the list: docs/chip.md section 10). The native build never
 * preempts: both are plain calls that do nothing (and, being calls into another file, keep the
 * compiler from moving memory accesses across them, as the ARM build's "memory" clobber does). */
uint32_t hal_irq_disable(void);
void hal_irq_restore(uint32_t state);

#endif

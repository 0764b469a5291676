/* Hardware abstraction: every side effect of the firmware goes through here.
 * hal_emu.c writes to the arena's outbox ring that the emulator drains after each handler call;
 * a board build would write the comms-unit and host-link registers instead. */
#ifndef HAL_H
#define HAL_H

#include <stdint.h>
#include "fw_abi.h"

/* outbox entry tags: word 0 of an entry */
#define HAL_OUT_MC 1u    /* [tag, key, payload] */
#define HAL_OUT_HOST 2u  /* [tag | n_words << 8, n_words words] */

/* queue a multicast packet; false (and a counted overflow) when the outbox is full */
int hal_send_mc(fw_header_t *h, uint32_t key, uint32_t payload);
/* queue a message to the host */
int hal_send_host(fw_header_t *h, const uint32_t *words, uint32_t n_words);

#endif

/* Helpers shared by the functional (chip_loop.c) and the timed (timed_loop.c) event loops. */
#ifndef CHIP_INTERNAL_H
#define CHIP_INTERNAL_H

#include "chip_loop.h"

void emu_add_counts(fw_counts_t *acc, fw_counts_t c);
/* copy SDRAM -> SRAM; 0 for an address outside SDRAM or the core's SRAM (counted, no completion) */
int emu_dma_copy(emu_chip_t *chip, const emu_dma_t *d);
/* the first routing entry matching key, or 0 */
const emu_route_t *emu_route(emu_chip_t *chip, uint32_t key);

#endif

/* Leaky readout: per-core partial sums of zbar @ W_out, their reduction on the readout core,
 * softmax cross-entropy at the end of the sample and the broadcast of the output error. */
#ifndef READOUT_H
#define READOUT_H

#include "fw_abi.h"

void readout_send_partials(fw_header_t *h, uint8_t *arena, fw_counts_t *c);
void readout_on_partial(fw_header_t *h, uint8_t *arena, uint32_t index, uint32_t payload, fw_counts_t *c);
void readout_reduce_tick(fw_header_t *h, uint8_t *arena, fw_counts_t *c);

#endif

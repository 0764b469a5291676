/* Leaky readout: per-core partial sums of zbar @ W_out, their reduction on the readout core step by
 * step (tagged with the sender's tick), softmax cross-entropy at the end of the sample and the
 * broadcast of the output error. */
#ifndef READOUT_H
#define READOUT_H

#include "fw_abi.h"

void readout_send_partials(fw_header_t *h, uint8_t *arena, uint32_t tick, fw_counts_t *c);
void readout_on_partial(fw_header_t *h, uint8_t *arena, uint32_t tag, uint32_t index, uint32_t payload);
/* add the partial sums of the step run at `tick` to the output (counting missing ones), clear them */
/* adds the step run at `tick` into the output sum; y receives the step's output (n_out floats) */
void readout_reduce(fw_header_t *h, uint8_t *arena, uint32_t tick, float *y, fw_counts_t *c);
/* clear the partial sums of `tick` unused (counted as late: no step of a sample ran then) */
void readout_discard(fw_header_t *h, uint8_t *arena, uint32_t tick, fw_counts_t *c);
/* time-mean, loss, prediction: RESULT to the host, and the output errors when training */
void readout_finish(fw_header_t *h, uint8_t *arena, fw_counts_t *c);

#endif

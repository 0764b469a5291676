/* Eligibility traces of E-prop for ALIF: eps_v per presynaptic neuron, eps_a, the filtered trace
 * ebar and its sum over the sample per synapse; the recurrent diagonal has no trace. */
#ifndef EPROP_TRACE_H
#define EPROP_TRACE_H

#include "fw_abi.h"

void eprop_trace_reset(fw_header_t *h, uint8_t *arena, fw_counts_t *c);
/* `input`: an input slot's payload, as for neuron_step (analog values or the spike bitmap) */
void eprop_trace_step(fw_header_t *h, uint8_t *arena, const uint32_t *input, const uint32_t *z_prev, fw_counts_t *c);

#endif

/* ALIF neuron update (Yin-style (1-alpha), (1-rho) scaling, reset by the adaptive threshold) and
 * its surrogate derivative psi (multi-Gaussian or Bellec's triangle). */
#ifndef NEURON_MODEL_H
#define NEURON_MODEL_H

#include "fw_abi.h"

/* one 1 ms step of this core's neurons; `input` is an input slot's payload: n_in float32 values, or with
 * config.input_kind FW_INPUT_SPIKES the bitmap of the inputs that spiked; z_prev = bitmap of all spikes
 * of t-1; spikes are sent tagged with `tick`, the timer tick of this step */
void neuron_step(fw_header_t *h, uint8_t *arena, const uint32_t *input, const uint32_t *z_prev, uint32_t tick,
                 fw_counts_t *c);
float neuron_surrogate(const fw_config_t *cfg, float u, fw_counts_t *c);

#endif

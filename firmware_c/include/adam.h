/* End-of-sample learning: learning signals from the output error, gradients with the L2 term,
 * and one Adam step on this core's weights (authors' form: bias correction folded into lr_t). */
#ifndef ADAM_H
#define ADAM_H

#include "fw_abi.h"

void adam_apply_sample(fw_header_t *h, uint8_t *arena, fw_counts_t *c);

#endif

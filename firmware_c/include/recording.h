/* Recording: per-step records of spikes, voltages and outputs written into SDRAM by DMA (fw_abi.h FW_REC_*). */
#ifndef RECORDING_H
#define RECORDING_H

#include "fw_abi.h"

/* after neuron_step of step k: the record of the recorded neurons' spikes and v */
void recording_neuron_step(fw_header_t *h, uint8_t *arena, uint32_t step, fw_counts_t *c);
/* after the readout reduced step k into y (n_out floats) */
void recording_readout_step(fw_header_t *h, uint8_t *arena, uint32_t step, const float *y, fw_counts_t *c);
/* a record's DMA write is done (tag has FW_DMA_WRITE_TAG): its buffer is free again */
void recording_dma_done(fw_header_t *h, uint32_t tag);

#endif

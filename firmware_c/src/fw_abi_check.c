/* The ABI's byte layout, fixed: the size of every struct of fw_abi.h and the offset of each field.
 * Both builds compile these, so the host's packing (cffi on x86-64) and the Cortex-M4F build (32-bit
 * ARM, AAPCS) are proven to agree; tests/emulator/test_arm_abi.py checks that every field is listed
 * with cffi's offsets. A changed struct fails both builds here: update the numbers and FW_ABI_VERSION. */
#include <stddef.h>
#include "fw_abi.h"

#define FW_SIZE(T, n) _Static_assert(sizeof(T) == (n), "sizeof(" #T ") is " #n " B in the ABI")
#define FW_AT(T, f, n) _Static_assert(offsetof(T, f) == (n), #T "." #f " lies at byte " #n " in the ABI")

FW_SIZE(fw_config_t, 160);
FW_AT(fw_config_t, core_id, 0);
FW_AT(fw_config_t, role, 4);
FW_AT(fw_config_t, n_in, 8);
FW_AT(fw_config_t, n_rec, 12);
FW_AT(fw_config_t, n_out, 16);
FW_AT(fw_config_t, n_steps, 20);
FW_AT(fw_config_t, neuron_lo, 24);
FW_AT(fw_config_t, n_local, 28);
FW_AT(fw_config_t, src_index, 32);
FW_AT(fw_config_t, n_src, 36);
FW_AT(fw_config_t, key_spike, 40);
FW_AT(fw_config_t, key_partial, 44);
FW_AT(fw_config_t, key_err, 48);
FW_AT(fw_config_t, sdram_ring, 52);
FW_AT(fw_config_t, ring_slots, 56);
FW_AT(fw_config_t, outbox_words, 60);
FW_AT(fw_config_t, surrogate, 64);
FW_AT(fw_config_t, feedback, 68);
FW_AT(fw_config_t, alpha, 72);
FW_AT(fw_config_t, one_alpha, 76);
FW_AT(fw_config_t, rho, 80);
FW_AT(fw_config_t, one_rho, 84);
FW_AT(fw_config_t, one_alpha_x_one_rho, 88);
FW_AT(fw_config_t, kappa, 92);
FW_AT(fw_config_t, v_th, 96);
FW_AT(fw_config_t, beta, 100);
FW_AT(fw_config_t, mg_gamma, 104);
FW_AT(fw_config_t, mg_sigma, 108);
FW_AT(fw_config_t, mg_scale, 112);
FW_AT(fw_config_t, mg_height, 116);
FW_AT(fw_config_t, tri_gamma, 120);
FW_AT(fw_config_t, lr, 124);
FW_AT(fw_config_t, adam_b1, 128);
FW_AT(fw_config_t, adam_b2, 132);
FW_AT(fw_config_t, adam_eps, 136);
FW_AT(fw_config_t, l2x2, 140);
FW_AT(fw_config_t, adam_t0, 144);
FW_AT(fw_config_t, b1_pow0, 148);
FW_AT(fw_config_t, b2_pow0, 152);
FW_AT(fw_config_t, input_kind, 156);

FW_SIZE(fw_layout_t, 156);
FW_AT(fw_layout_t, w_in, 0);
FW_AT(fw_layout_t, w_rec, 4);
FW_AT(fw_layout_t, w_out, 8);
FW_AT(fw_layout_t, fb, 12);
FW_AT(fw_layout_t, m_in, 16);
FW_AT(fw_layout_t, v_in, 20);
FW_AT(fw_layout_t, m_rec, 24);
FW_AT(fw_layout_t, v_rec, 28);
FW_AT(fw_layout_t, m_out, 32);
FW_AT(fw_layout_t, v_out, 36);
FW_AT(fw_layout_t, ea_in, 40);
FW_AT(fw_layout_t, eb_in, 44);
FW_AT(fw_layout_t, acc_in, 48);
FW_AT(fw_layout_t, ea_rec, 52);
FW_AT(fw_layout_t, eb_rec, 56);
FW_AT(fw_layout_t, acc_rec, 60);
FW_AT(fw_layout_t, ev_in, 64);
FW_AT(fw_layout_t, ev_rec, 68);
FW_AT(fw_layout_t, v, 72);
FW_AT(fw_layout_t, a, 76);
FW_AT(fw_layout_t, psi, 80);
FW_AT(fw_layout_t, zbar, 84);
FW_AT(fw_layout_t, zsum, 88);
FW_AT(fw_layout_t, z_local, 92);
FW_AT(fw_layout_t, z_prev, 96);
FW_AT(fw_layout_t, z_rx, 100);
FW_AT(fw_layout_t, err, 104);
FW_AT(fw_layout_t, partials, 108);
FW_AT(fw_layout_t, out_sum, 112);
FW_AT(fw_layout_t, partial_seen, 116);
FW_AT(fw_layout_t, dma_buf, 120);
FW_AT(fw_layout_t, outbox, 124);
FW_AT(fw_layout_t, end, 128);
FW_AT(fw_layout_t, weights_bytes, 132);
FW_AT(fw_layout_t, optimizer_bytes, 136);
FW_AT(fw_layout_t, trace_bytes, 140);
FW_AT(fw_layout_t, neuron_bytes, 144);
FW_AT(fw_layout_t, readout_bytes, 148);
FW_AT(fw_layout_t, buffer_bytes, 152);

FW_SIZE(fw_counters_t, 36);
FW_AT(fw_counters_t, outbox_overflows, 0);
FW_AT(fw_counters_t, input_underruns, 4);
FW_AT(fw_counters_t, partials_incomplete, 8);
FW_AT(fw_counters_t, bad_host_msgs, 12);
FW_AT(fw_counters_t, unknown_keys, 16);
FW_AT(fw_counters_t, late_packets, 20);
FW_AT(fw_counters_t, early_packets, 24);
FW_AT(fw_counters_t, duplicate_packets, 28);
FW_AT(fw_counters_t, errors_missing, 32);

FW_SIZE(fw_state_t, 168);
FW_AT(fw_state_t, phase, 0);
FW_AT(fw_state_t, step, 4);
FW_AT(fw_state_t, tick, 8);
FW_AT(fw_state_t, sample_id, 12);
FW_AT(fw_state_t, label, 16);
FW_AT(fw_state_t, train, 20);
FW_AT(fw_state_t, slot0, 24);
FW_AT(fw_state_t, pending_valid, 28);
FW_AT(fw_state_t, pending_id, 32);
FW_AT(fw_state_t, pending_label, 36);
FW_AT(fw_state_t, pending_train, 40);
FW_AT(fw_state_t, pending_slot0, 44);
FW_AT(fw_state_t, dma_busy, 48);
FW_AT(fw_state_t, dma_step, 52);
FW_AT(fw_state_t, outbox_count, 56);
FW_AT(fw_state_t, err_received, 60);
FW_AT(fw_state_t, err_seen, 64);
FW_AT(fw_state_t, spikes, 72);
FW_AT(fw_state_t, samples_done, 76);
FW_AT(fw_state_t, adam_t, 80);
FW_AT(fw_state_t, lr, 84);
FW_AT(fw_state_t, b1_pow, 88);
FW_AT(fw_state_t, b2_pow, 92);
FW_AT(fw_state_t, counters, 96);
FW_AT(fw_state_t, reported, 132);

FW_SIZE(fw_header_t, 500);
FW_AT(fw_header_t, magic, 0);
FW_AT(fw_header_t, abi_version, 4);
FW_AT(fw_header_t, arena_bytes, 8);
FW_AT(fw_header_t, status, 12);
FW_AT(fw_header_t, config, 16);
FW_AT(fw_header_t, layout, 176);
FW_AT(fw_header_t, state, 332);

FW_SIZE(fw_counts_t, 56);
FW_AT(fw_counts_t, neuron_updates, 0);
FW_AT(fw_counts_t, synapse_mults, 4);
FW_AT(fw_counts_t, trace_updates, 8);
FW_AT(fw_counts_t, exp_calls, 12);
FW_AT(fw_counts_t, adam_updates, 16);
FW_AT(fw_counts_t, mc_sent, 20);
FW_AT(fw_counts_t, mc_received, 24);
FW_AT(fw_counts_t, host_words, 28);
FW_AT(fw_counts_t, dma_bytes, 32);
FW_AT(fw_counts_t, words_cleared, 36);
FW_AT(fw_counts_t, partials_reduced, 40);
FW_AT(fw_counts_t, w2_terms, 44);
FW_AT(fw_counts_t, spikes_received, 48);
FW_AT(fw_counts_t, partials_received, 52);

/* s2eprop firmware ABI: arena header, config, layout, state, host messages and handler entry points.
 * Shared by the firmware, the emulator (cffi) and the host, which reads offsets from fw_layout(),
 * never from hand-copied numbers. All fields are 32-bit words, little-endian. */
#ifndef FW_ABI_H
#define FW_ABI_H

#include <stdint.h>

#define FW_MAGIC 0x53324550u /* "S2EP" */
#define FW_ABI_VERSION 7u
#define FW_MAX_CORES 160u
#define FW_MAX_REC 1024u
#define FW_MAX_OUT 56u        /* a RESULT message (5 + n_out words) fits one host message */
#define FW_MAX_IN 1024u
#define FW_MAX_LOCAL 256u     /* neurons per core: bounds the per-core stack arrays */
#define FW_MAX_SLOTS 65536u   /* frame slots of the SDRAM input ring */
#define FW_MAX_OUTBOX 65536u  /* outbox words */

/* core roles (bit flags in fw_config_t.role) */
#define FW_ROLE_NEURON 1u
#define FW_ROLE_READOUT 2u

/* surrogate kinds (docs/options.md): u = v - A, NEST's beta (surr_beta) and gamma (surr_gamma) */
#define FW_SURR_MULTI_GAUSSIAN 0u /* Yin et al.: mg_* parameters */
#define FW_SURR_TRIANGLE 1u       /* NEST piecewise_linear: gamma max(0, 1 - beta |u / v_th|) / v_th */
#define FW_SURR_EXPONENTIAL 2u    /* gamma exp(-beta |u|) */
#define FW_SURR_FAST_SIGMOID 3u   /* NEST fast_sigmoid_derivative: gamma (1 + beta |u|)^-2 */
#define FW_SURR_ARCTAN 4u         /* gamma / pi / (1 + (beta pi u)^2) */
/* No subnormals: the surrogate derivative psi, Adam's moments and the weights are stored as 0
 * where their magnitude is below 2^-FW_TINY_EXP (docs/chip.md section 9) */
#define FW_TINY_EXP 64u
#define FW_FEEDBACK_SYMMETRIC 0u
#define FW_FEEDBACK_RANDOM 1u
#define FW_FEEDBACK_ADAPTIVE 2u   /* B starts random and learns as W_out does (its own optimizer moments) */
/* weight optimizers */
#define FW_OPT_ADAM 0u
#define FW_OPT_SGD 1u             /* m = momentum m + g;  W -= lr m */

/* Sparse connectivity (network.connectivity, docs/options.md). A core with fw_config_t.sparse = 1 stores only
 * the present synapses of its input and recurrent blocks, by presynaptic row: the synapses of presynaptic
 * neuron i are the entries row[i] .. row[i+1]-1 of every [pre][local] region of the block (w, m, v, ea, eb,
 * acc), and col[k] is the local neuron of entry k, ascending within a row. row: n_pre + 1 uint16 (row[0] = 0,
 * row[n_pre] = the block's present synapses, nnz_in or nnz_rec: at most FW_MAX_SPARSE), col: nnz uint8
 * (n_local <= FW_MAX_LOCAL = 256). fw_init and the emulator's core check refuse an index that breaks these
 * rules (fw_index_valid), so the loops never read outside their regions. */
#define FW_MAX_SPARSE 65535u

/* host -> core messages: word 0 is the type; none is longer than FW_MAX_HOST_WORDS */
#define FW_MAX_HOST_WORDS 64u /* 256 B: SpiNNaker's SDP payload */
/* [type, sample_id, label, flags (FW_SAMPLE_*), slot0]: run the next sample; its frame k lies in input
 * ring slot (slot0 + k) % ring_slots */
#define FW_MSG_SAMPLE 1u
#define FW_SAMPLE_TRAIN 1u   /* learn from it */
#define FW_SAMPLE_RECORD 2u  /* write its records (below) */
#define FW_MSG_SCALE_LR 3u  /* [type, factor(float)]: lr *= factor (learning-rate schedule) */
/* core -> host messages */
#define FW_MSG_RESULT 16u   /* readout: [type, sample_id, label, pred, loss(float), n_out floats of output mean] */
/* every core, after its update: [type, sample_id, sum of w^2 over its own weights (float), spikes it sent,
 * bitmask of the fw_counters_t fields that moved since its last SAMPLE_DONE] */
#define FW_MSG_SAMPLE_DONE 17u
#define FW_RESULT_HEAD_WORDS 5u
#define FW_SAMPLE_DONE_WORDS 5u

/* input frames in SDRAM: a ring of slots [FW_FRAME_MAGIC, sample_id, step, n_in float words], written by
 * the host ahead of the chip's clock; a neuron core fetches slot k by DMA at step k */
#define FW_FRAME_MAGIC 0x46524d45u /* "FRME" */
#define FW_FRAME_HEAD_WORDS 3u
/* input kinds (fw_config_t.input_kind). Analog: a slot holds n_in float32 values (FW_FRAME_MAGIC).
 * Spikes: a slot holds the step's active inputs as a bitmap of n_in bits, input i in bit i % 32 of word
 * i / 32, the bits past n_in zero ([FW_SPIKES_MAGIC, sample_id, step, (n_in + 31) / 32 words]); the core
 * adds the W_in rows of the set bits only, and the input traces take the spikes (0/1) as presynaptic
 * signal. Same ring, same DMA, same step checks as the analog frames. */
#define FW_INPUT_ANALOG 0u
#define FW_INPUT_SPIKES 1u
#define FW_SPIKES_MAGIC 0x53504b53u /* "SPKS" */

/* recording. For a sample marked FW_SAMPLE_RECORD a neuron core writes one record per step k into SDRAM
 * by DMA, at rec_sdram + 4 k fw_record_words(cfg, FW_REC_NEURON): [FW_REC_MAGIC, sample_id, k, the
 * spikes of the neurons set in rec_z_mask as a bitmap (bit r: the r-th set bit's neuron), then v after
 * the step of the neurons set in rec_v_mask (float32, in local order)]. The readout role with rec_out
 * writes [FW_REC_OUT_MAGIC, sample_id, k, y_k (n_out float32: the step's output, before the time mean)]
 * at rec_sdram_out + 4 k fw_record_words(cfg, FW_REC_READOUT). Two SRAM buffers per stream, by step
 * parity; a buffer whose DMA write of two steps before is not done yet loses its record (counted in
 * record_overruns). The host allocates (writes) the SDRAM regions before it starts the cores: a DMA
 * write to SDRAM never written is a DMA fault. */
#define FW_REC_NEURON 0u
#define FW_REC_READOUT 1u
#define FW_REC_MAGIC 0x52454344u     /* "RECD" */
#define FW_REC_OUT_MAGIC 0x5245434fu /* "RECO" */
#define FW_REC_MASK_WORDS 8u       /* FW_MAX_LOCAL / 32 */
#define FW_DMA_WRITE_TAG 0x80000000u /* tag of a record's DMA write: | stream << 1 | buffer */

/* multicast keys: base (top byte: the kind, routed by the table) | tag << 16 | index. The tag is the
 * low byte of the sender's timer tick (spikes, partial sums) or of the sample id (output errors), so a
 * receiver files every packet under its step and counts one of a step already run or too far ahead. */
/* Spike counts: at its last step of a sample a neuron core multicasts to every neuron core one packet
 * key_count | tag << 16 | src_index, payload the spikes it sent in the sample (fw_state_t.spikes). A
 * receiver adds up the counts (one per neuron core, n_src) and compares them at its own end of the
 * sample with the spikes it filed for the sample's steps: a difference counts spikes_missing, a count
 * that never came spike_counts_missing (docs/chip.md section 5). */
#define FW_COUNT_SEEN_WORDS 5u /* FW_MAX_CORES / 32: a bit per sender */
#define FW_KEY_TAG_SHIFT 16u
#define FW_KEY_TAG_MASK 0xffu
#define FW_KEY_INDEX_MASK 0xffffu

/* status (fw_header_t.status): only fw_init writes FW_RUNNING, so an unchecked image never runs */
#define FW_RUNNING 0x52554e21u /* "RUN!" */
#define FW_OK FW_RUNNING
#define FW_ERR_MAGIC 1u
#define FW_ERR_VERSION 2u
#define FW_ERR_SIZE 3u
#define FW_ERR_LAYOUT 4u
#define FW_ERR_CONFIG 5u

typedef struct {
    uint32_t core_id;
    uint32_t role;            /* FW_ROLE_* bits */
    uint32_t n_in, n_rec, n_out, n_steps;
    uint32_t neuron_lo;       /* first global neuron owned by this core */
    uint32_t n_local;         /* neurons owned (0 for a readout-only core) */
    uint32_t src_index;       /* this core's index among neuron cores (partial-sum key) */
    uint32_t n_src;           /* number of neuron cores (readout role: partials to reduce) */
    uint32_t key_spike;       /* spike key = key_spike + global neuron id */
    uint32_t key_partial;     /* partial key = key_partial + src_index * n_out + k */
    uint32_t key_err;         /* error key = key_err + k */
    uint32_t sdram_ring;      /* SDRAM address of the input ring (neuron role) */
    uint32_t ring_slots;      /* frame slots in the ring */
    uint32_t outbox_words;    /* outbox ring size in words */
    uint32_t surrogate;       /* FW_SURR_* */
    uint32_t feedback;        /* FW_FEEDBACK_* */
    /* neuron model, decays precomputed by the host (no exp of time constants on the core) */
    float alpha, one_alpha, rho, one_rho, one_alpha_x_one_rho, kappa;
    float v_th, beta;
    float mg_gamma, mg_sigma, mg_scale, mg_height, surr_gamma; /* surr_gamma: NEST's gamma */
    /* learning */
    float lr, adam_b1, adam_b2, adam_eps, l2x2; /* l2x2 = 2 * l2 coefficient */
    /* Adam state to resume from: steps taken, and beta1^(t+1), beta2^(t+1) */
    uint32_t adam_t0;
    float b1_pow0, b2_pow0;
    uint32_t input_kind;      /* FW_INPUT_*: what an input ring slot holds */
    /* recording (see FW_REC_*): SDRAM regions, and which local neurons' spikes and voltages */
    uint32_t rec_sdram, rec_sdram_out, rec_out;
    uint32_t rec_z_mask[FW_REC_MASK_WORDS], rec_v_mask[FW_REC_MASK_WORDS];
    uint32_t key_count;       /* spike count key = key_count + src_index (neuron role: needs src_index < n_src) */
    /* options (docs/options.md) */
    float surr_beta;          /* NEST's beta of the surrogate (width scaling; not the adaptation's beta) */
    uint32_t n_regular;       /* hidden neurons 0 .. n_regular-1 (global ids) are LIF: no adaptation */
    uint32_t optimizer;       /* FW_OPT_* */
    float momentum;           /* FW_OPT_SGD: momentum of m (0: plain gradient descent) */
    float c_reg, f_target;    /* firing-rate regularisation: coefficient (0: off), target in spikes per step */
    uint32_t sparse;          /* 1: the input and recurrent blocks hold the present synapses only (FW_MAX_SPARSE) */
    uint32_t nnz_in, nnz_rec; /* sparse: present synapses of the input and recurrent blocks (0 when dense) */
} fw_config_t;

/* byte offsets of the arena regions (0 = absent) and the total size */
typedef struct {
    uint32_t w_in, w_rec, w_out, fb;             /* [pre][local], [pre][local], [local][n_out], [local][n_out] */
    uint32_t m_in, v_in, m_rec, v_rec, m_out, v_out;
    uint32_t ea_in, eb_in, acc_in, ea_rec, eb_rec, acc_rec; /* per-synapse traces [pre][local] */
    uint32_t ev_in, ev_rec;                      /* eps_v, once per presynaptic neuron */
    uint32_t v, a, psi, zbar, zsum;              /* neuron state [local] */
    uint32_t z_local;                            /* own spikes of this step [local] */
    uint32_t z_prev;                             /* spikes of all neurons used by this step, n_rec bits */
    uint32_t z_rx;                               /* spikes received, [2][n_rec bits], by tag parity */
    uint32_t err;                                /* received output errors [n_out] */
    uint32_t partials, out_sum;                  /* readout: [2][n_src][n_out] by tag parity, [n_out] */
    uint32_t partial_seen;                       /* readout: [2][bitmap of n_src * n_out] by tag parity */
    uint32_t dma_buf;                            /* input slots: [2][fw_input_slot_words()] words */
    uint32_t rec_buf, rec_out_buf;               /* records: [2][fw_record_words()] words per stream */
    uint32_t outbox;                             /* outbox ring [outbox_words] */
    uint32_t m_fb, v_fb;                         /* adaptive feedback: optimizer moments of fb [local][n_out] */
    uint32_t zcount;                             /* rate regularisation: spikes of each neuron in the sample [local] */
    uint32_t row_in, col_in, row_rec, col_rec;   /* sparse index: uint16 [n_pre + 1], uint8 [nnz] per block */
    uint32_t end;                                /* total arena bytes */
    /* byte counts for memory accounting */
    uint32_t weights_bytes, optimizer_bytes, trace_bytes, neuron_bytes, readout_bytes, buffer_bytes;
    uint32_t record_bytes;
    uint32_t index_bytes;                        /* sparse index (row and col of both blocks) */
} fw_layout_t;

/* provenance counters: every loss the core can see, never silent (read by the host) */
typedef struct {
    uint32_t outbox_overflows;    /* side effects dropped: the outbox was full */
    uint32_t input_underruns;     /* steps run with zero input: frame missing, of another sample or late */
    uint32_t partials_incomplete; /* readout: partial sums missing when a step was reduced */
    uint32_t bad_host_msgs;       /* host messages of unknown type, wrong length or bad value */
    uint32_t unknown_keys;        /* packets whose key this core has no use for */
    uint32_t late_packets;        /* packets of a step (or sample) already run */
    uint32_t early_packets;       /* packets more than one step ahead */
    uint32_t duplicate_packets;   /* a second packet for the same step and index */
    uint32_t errors_missing;      /* a sample ended without all its output errors: no update */
    uint32_t record_overruns;     /* a step's record lost: its buffer still in a DMA write, or the outbox full */
    uint32_t spikes_missing;      /* neuron role: spikes the senders announced for a sample and this core did not
                                   * file (or filed and no sender announced: injected), by the difference */
    uint32_t spike_counts_missing; /* neuron role: senders whose spike count of a sample never came */
} fw_counters_t;

typedef struct {
    uint32_t phase;           /* FW_PHASE_* */
    uint32_t step;            /* step within the current sample (ticks since it started) */
    uint32_t tick;            /* the last timer tick handled */
    uint32_t sample_id, label, train, slot0;
    uint32_t pending_valid, pending_id, pending_label, pending_train, pending_slot0; /* next sample */
    uint32_t dma_busy, dma_step; /* a frame fetch in flight and the step it is for */
    uint32_t outbox_count;
    uint32_t err_received, err_seen[2], spikes; /* err_seen: bitmap of the n_out errors received */
    uint32_t samples_done, adam_t;
    float lr, b1_pow, b2_pow;
    fw_counters_t counters;
    fw_counters_t reported;   /* counters as of the last SAMPLE_DONE (what moved since) */
    uint32_t record, pending_record; /* this sample's records are written; the next sample's */
    uint32_t rec_busy;        /* record buffers in a DMA write: bit stream * 2 + parity */
    uint32_t spikes_rx[2];    /* spikes filed (new bits of z_rx) by tag parity, since that buffer was taken */
    uint32_t spikes_filed;    /* spikes filed for this sample's steps */
    uint32_t spikes_announced; /* sum of the spike counts received for this sample */
    uint32_t counts_seen[FW_COUNT_SEEN_WORDS]; /* senders (src_index) whose count of this sample came */
    uint32_t count_tag;       /* the tag this sample's spike counts carry (the tick of its step n_steps - 1),
                               * FW_COUNT_TAG_NONE while none is expected: one word the packet handler reads,
                               * set by the timer where phase and step change (docs/chip.md section 10, race 7) */
} fw_state_t;

#define FW_COUNT_TAG_NONE 0xffffffffu  /* never a tag (tags are FW_KEY_TAG_MASK wide) */

#define FW_PHASE_IDLE 0u
#define FW_PHASE_RUN 1u       /* steps 0 .. n_steps (the readout reduces step n_steps - 1 at n_steps) */
#define FW_PHASE_WAIT_ERR 2u  /* neuron role, training: waiting for the output errors */
#define FW_PHASE_UPDATE 3u    /* the weight update is queued as a user event */

typedef struct {
    uint32_t magic, abi_version, arena_bytes, status;
    fw_config_t config;
    fw_layout_t layout;
    fw_state_t state;
} fw_header_t;

/* work done by one handler call, for the emulator's cycle cost model */
typedef struct {
    uint32_t neuron_updates;   /* ALIF state updates */
    uint32_t synapse_mults;    /* forward pass: weight x input products; a spike's weights added (input, recurrent) */
    uint32_t trace_updates;    /* per-synapse eligibility-trace updates */
    uint32_t exp_calls;        /* fw_expf / fw_logf evaluations */
    uint32_t adam_updates;     /* weights updated by Adam */
    uint32_t mc_sent, mc_received, host_words;
    uint32_t dma_bytes;        /* bytes moved by DMA: input fetched, records written */
    uint32_t words_cleared;    /* state words zeroed when a sample starts (traces, neuron state, spikes) */
    uint32_t partials_reduced; /* readout: partial sums added (or cleared unused) at a step */
    uint32_t w2_terms;         /* weights squared and summed for the L2 term at a sample's end */
    uint32_t spikes_received;  /* of mc_received: spike packets (the rest: partial sums, errors) */
    uint32_t partials_received;
} fw_counts_t;

/* words of one input ring slot (header included) for an input kind and n_in; 0 for an unknown kind */
uint32_t fw_input_slot_words(uint32_t input_kind, uint32_t n_in);
/* words of one record of a stream (FW_REC_NEURON or FW_REC_READOUT), header included; 0 if the core
 * writes none (not its role, nothing selected) */
uint32_t fw_record_words(const fw_config_t *cfg, uint32_t stream);
/* layout of an arena for a config; returns total bytes (0 if the config is invalid) */
uint32_t fw_layout(const fw_config_t *cfg, fw_layout_t *out);
/* 1 if the arena's sparse index keeps the rules above (or the core is dense), else 0; the header's layout
 * must be its config's (fw_layout) and lie inside the arena */
uint32_t fw_index_valid(const uint8_t *arena);

/* handlers: the arena is the core's data memory, header first */
uint32_t fw_init(uint8_t *arena, uint32_t arena_bytes);
fw_counts_t fw_on_timer(uint8_t *arena, uint32_t tick);
fw_counts_t fw_on_mc_packet(uint8_t *arena, uint32_t key, uint32_t payload);
fw_counts_t fw_on_dma_done(uint8_t *arena, uint32_t tag);
fw_counts_t fw_on_host_msg(uint8_t *arena, const uint32_t *msg, uint32_t n_words);
fw_counts_t fw_on_user_event(uint8_t *arena);

#endif

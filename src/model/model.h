/* model.h: the in-memory model (weights as raw fp32 pointers) and the KV cache. */
#ifndef ROSA_MODEL_H
#define ROSA_MODEL_H

#include "io/safetensors.h"
#include "model/bf16.h"
#include "rosa.h"

/* One decoder layer.  Matrices are row-major [out][in] as Hugging Face stores
 * them (y = x W^T); biases are NULL when the architecture has none.
 * Shapes: D hidden, F intermediate, Q = H_q*hd, K = H_kv*hd. */
typedef struct {
    const float *attn_norm;          /* [D] input_layernorm */
    const float *wq, *wk, *wv, *wo;  /* [Q][D], [K][D], [K][D], [D][Q] */
    const float *bq, *bk, *bv, *bo;  /* [Q], [K], [K], [D] */
    const float *ffn_norm;           /* [D] post_attention_layernorm */
    const float *w_gate, *w_up;      /* [F][D] */
    const float *w_down;             /* [D][F] */
    const float *b_gate, *b_up, *b_down;
    /* --dtype bf16: packed copies of the seven projections, in the order
     * q, k, v, o, gate, up, down (the adapter's MOD_* order); NULL in FP32. */
    rosa_bf16_weight *packed[7];
} rosa_layer;

/* RoAE for inference (set from an adapter by rosa_model_apply_adapter). */
typedef struct {
    int on, rank, pre_rope, add_form, d_low;
    float alpha;
    int *low_dims;           /* [d_low] */
    const float *(*A)[2];    /* [L][q, k]: [r][D], NULL when the layer has none */
    const float *(*B)[2];    /* [L][q, k]: [H*d_low][r] */
} rosa_roae_hook;

struct rosa_model {
    rosa_config cfg;
    st_set weights;       /* the mapped safetensors files */
    const float *embed;   /* [V][D] */
    const float *norm;    /* [D] final norm */
    const float *lm_head; /* [V][D]; == embed when tied */
    rosa_layer *layers;   /* [L] */
    void **owned;         /* buffers converted from F16/BF16 or realigned */
    int n_owned;
    double *inv_freq;     /* [hd/2] RoPE inverse frequencies, scaling applied */
    rosa_tokenizer *tok;  /* NULL when the directory has no tokenizer.json */
    int64_t n_params, weight_bytes;
    int warned_positions; /* the past-max_position_embeddings warning is printed once */
    rosa_roae_hook roae;
    rosa_dtype compute;          /* ROSA_DTYPE_F32 (default) or ROSA_DTYPE_BF16 */
    rosa_bf16_weight *lm_packed; /* the LM head's packed copy in BF16 mode */
    int fp32_released;           /* BF16 mode dropped the FP32 projections: no way back */
};

/* Switches the frozen weights' matrix products to BF16 (packing every
 * projection and the LM head) or leaves them in FP32.  BF16 releases the FP32
 * projections (and an untied LM head) after packing, so the model cannot go
 * back to FP32 afterwards: apply LoRA merges before switching.  Returns -1
 * when the CPU or oneDNN cannot do BF16. */
int rosa_model_set_compute(rosa_model *m, rosa_dtype dtype);

/* The slot holding the FP32 weight of projection w (0..6 = q, k, v, o, gate,
 * up, down: the adapter's MOD_* order). */
static inline const float **rosa_layer_weight_slot(rosa_layer *L, int w) {
    const float **all[7] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
    return all[w];
}

struct rosa_kv_cache {
    int B, cap, len;       /* sequences, slots per sequence, slots used */
    int L, kv_dim;         /* layers, H_kv * hd */
    float *k, *v;          /* [L][B][cap][kv_dim], RoPE already applied to k */
    uint8_t *valid;        /* [B][cap] 1 = real token */
    int *pos;              /* [B][cap] position of each real slot */
    int *n_real;           /* [B] real tokens so far (= next position) */
    /* Scratch for one forward call, grown on demand. */
    float *scratch;
    size_t scratch_size;
};

/* Records a malloc'ed buffer the model owns (freed with the model); -1 when
 * out of memory (the buffer is then not recorded). */
int rosa_model_own(rosa_model *m, void *p);

/* A model with random weights (uniform +-0.02, norms 1) and the shapes of
 * config c, for benchmarks: speed and memory do not depend on the values. */
rosa_model *rosa_model_random(const rosa_config *c, uint64_t seed);

/* Inverse RoPE frequencies for head_dim hd with the config's scaling
 * (transformers' default / linear / llama3 rules), in double precision. */
void rosa_rope_inv_freq(const rosa_config *c, double *inv_freq);

#endif

/* model.h: the in-memory model (frozen weights, the attached hooks) and the KV cache. */
#ifndef ROSA_MODEL_H
#define ROSA_MODEL_H

#include "io/safetensors.h"
#include "arch/arch.h"
#include "model/block.h"
#include "model/weight.h"
#include "rosa.h"
#include "rosa_train.h" /* rosa_rope_low_dims */

/* One decoder layer.  Matrices are row-major [out][in] as Hugging Face stores
 * them (y = x W^T), behind rosa_weight; biases are NULL when the architecture
 * has none.  norm[] holds the architecture's n_norms RMSNorm weights [D].
 * Norm weights are the factor the norm multiplies by: for a (1 + w)
 * architecture (Gemma) the loader stores 1 + w, so one RMSNorm op serves all. */
typedef struct {
    const float *norm[MAX_NORMS];
    const float *xnorm[N_XNORMS]; /* arch.h's XNORM_*: NULL where the architecture has none */
    rosa_weight proj[N_PROJ];    /* q, k, v, o, gate, up, down (arch.h's PROJ_*) */
    const float *bias[N_PROJ];
    int window;                  /* attention window in tokens, 0 = full (arch.h's rosa_layer_props) */
    int rope;                    /* the model's RoPE table it uses */
} rosa_layer;

struct rosa_model {
    rosa_config cfg;
    st_set weights;       /* the mapped safetensors files */
    const float *embed;   /* [V][D] */
    const float *norm;    /* [D] final norm */
    rosa_weight lm_head;  /* [V][D]; its rows are embed's when tied */
    rosa_layer *layers;   /* [L] */
    void **owned;         /* buffers converted from F16/BF16 or realigned */
    int n_owned;
    double *inv_freq;     /* [n_rope][hd/2] RoPE inverse frequencies, scaling applied */
    int n_rope;           /* distinct RoPE tables over the layers (1 for the Llama family) */
    rosa_tokenizer *tok;  /* NULL when the directory has no tokenizer.json */
    int64_t n_params, weight_bytes;
    int warned_positions; /* the past-max_position_embeddings warning is printed once */
    rosa_hook hooks[ROSA_MAX_HOOKS]; /* attached at inference (rosa_model_attach_hook) */
    int n_hooks;
    rosa_dtype compute;          /* ROSA_DTYPE_F32 (default) or ROSA_DTYPE_BF16 */
    int fp32_released;           /* BF16 mode dropped the FP32 projections: no way back */
    int forward_only;            /* packed by rosa_model_set_compute_inference: no backward */
    rosa_quant quant;            /* ROSA_QUANT_INT8: the projections hold int8 blocks (rosa_model_quantize) */
};


/* Attaches a hook that every forward runs (an adapter that is not merged);
 * the hook's object must outlive the model's use. */
int rosa_model_attach_hook(rosa_model *m, rosa_hook h);

/* Replaces the FP32 rows of projection p of layer l by a copy of w (owned by
 * the model): merging an adapter.  FP32 mode only, never into int8 weights. */
int rosa_model_replace_weight(rosa_model *m, int layer, int p, const float *w);

/* Keys and values are kept by position, not by slot: padding slots store
 * nothing, and a sequence's cached keys are its positions [0, n_real).  A
 * layer keeps `rows` of them per sequence, the key of position p in row
 * p % rows: cap on a global layer (no wrap: positions never reach cap), and
 * min(window, cap) on a sliding-window layer, a ring of the last `window`
 * positions (older keys are out of every later query's window). */
struct rosa_kv_cache {
    int B, cap, len;       /* sequences, slots per sequence, slots used */
    int L, kv_dim;         /* layers, H_kv * hd */
    int *rows;             /* [L] rows per sequence of each layer */
    size_t *off;           /* [L] where layer l starts in k and v (floats) */
    float *k, *v;          /* layer l: [B][rows[l]][kv_dim] at off[l], RoPE already applied to k */
    int *n_real;           /* [B] real tokens so far (= next position) */
    /* Scratch for one forward call, grown on demand. */
    float *scratch;
    size_t scratch_size;
};

/* The rows layer l of a cache of `capacity` slots keeps per sequence (the
 * rule of struct rosa_kv_cache; also the memory plan's). */
int rosa_kv_rows(int window, int capacity);

/* Records a malloc'ed buffer the model owns (freed with the model); -1 when
 * out of memory (the buffer is then not recorded). */
int rosa_model_own(rosa_model *m, void *p);

/* A model with random weights (uniform +-0.02, norms 1) and the shapes of
 * config c, for benchmarks: speed and memory do not depend on the values. */
rosa_model *rosa_model_random(const rosa_config *c, uint64_t seed);

/* Inverse RoPE frequencies for head_dim hd with the config's scaling
 * (transformers' default / linear / llama3 rules), in double precision. */
void rosa_rope_inv_freq(const rosa_config *c, double *inv_freq);
/* The same for base theta, with the config's rope_scaling when scaled. */
void rosa_rope_inv_freq_base(const rosa_config *c, float theta, int scaled, double *inv_freq);

/* The RoPE tables of N rows at positions pos: cs[n_rope][N][hd] (rope_table). */
void rosa_model_rope_tables(const rosa_model *m, float *cs, const int *pos, int N);



#endif

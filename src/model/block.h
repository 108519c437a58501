/* block.h: the one Llama-family decoder layer, forward and backward, and the
 * hook points where adapters attach.
 *
 * Per layer l (N = B*T rows, row-major; shapes D hidden, F intermediate,
 * Q = Hq*hd, K = Hkv*hd):
 *   h1 = rmsnorm(x, norm[ATTN])
 *   q, k, v = proj(Q, h1), proj(K, h1), proj(V, h1)
 *   [QK-norm: q, k = rmsnorm over each head's hd values (xnorm[Q], xnorm[K])]
 *   qk hooks (stage PRE_ROPE);  RoPE on q, k;  qk hooks (stage POST_ROPE)
 *   att = causal_attention(q, k, v)       over whole sequences, or the KV cache,
 *                                         within the layer's window if it has one
 *   x2 = x + [rmsnorm(](proj(O, att))[, xnorm[POST_ATTN])]
 *   h2 = rmsnorm(x2, norm[FFN])
 *   x' = x2 + [rmsnorm(](proj(DOWN, act(proj(GATE, h2)) * proj(UP, h2)))[, xnorm[POST_FFN])]
 * where the bracketed parts are there when the architecture has those norms
 * (Qwen3: QK-norm; Gemma 3: all) and act is SiLU, or the tanh GELU (Gemma).
 * where proj(p, x) = x W_p^T + b_p, then each attached hook's proj_forward
 * (the analogue of llama.cpp's build_lora_mm).  Inference, training (with and
 * without recomputation, with a truncated backward) and the frequency
 * analysis all run this code; they differ in the rosa_block_ctx they pass. */
#ifndef ROSA_BLOCK_H
#define ROSA_BLOCK_H

#include <stddef.h>
#include <stdint.h>

#include "arch/arch.h"
#include "rosa.h"

struct rosa_model;
struct rosa_kv_cache;
typedef struct rosa_block_ctx rosa_block_ctx;

enum { HOOK_PRE_ROPE, HOOK_POST_ROPE };
#define ROSA_MAX_HOOKS 4

/* What an adapter method (or the analysis tap) does at the block's hook
 * points.  Every member may be NULL ("nothing at this point").  `self` is the
 * object the hook was attached with; `acts` is its region for layer l
 * (act_floats(self, l, N) floats, kept between forward and backward when
 * training, scratch otherwise).  Gradients of the hook's own parameters are
 * its business: it adds them when c->train and the layer is active
 * (rosa_block_layer_active). */
typedef struct {
    /* Floats of per-layer state for N rows, and of scratch shared by all layers. */
    size_t (*act_floats)(const void *self, int layer, int N);
    size_t (*scratch_floats)(const void *self, int N);
    /* The weight of norm `which` of layer l to use instead of the model's (NULL: the model's);
     * layer num_layers is the final norm. */
    const float *(*norm_weight)(const void *self, int layer, int which);
    /* y[N][out] += the hook's term for projection p with input x[N][in]. */
    int (*proj_forward)(void *self, const rosa_block_ctx *c, int layer, int p, float *acts, float *y, const float *x);
    /* dx[N][in] += its input gradient from dy[N][out]. */
    int (*proj_backward)(void *self, const rosa_block_ctx *c, int layer, int p, float *acts, float *dx,
                         const float *dy, const float *x);
    /* Modifies q[N][Hq*hd], k[N][Hkv*hd] in place, from the normed input h[N][D]. */
    int (*qk_forward)(void *self, const rosa_block_ctx *c, int layer, int stage, float *acts, const float *h, float *q,
                      float *k);
    /* dq, dk in place (gradient after -> before); dh[N][D] += its input gradient. */
    int (*qk_backward)(void *self, const rosa_block_ctx *c, int layer, int stage, float *acts, const float *h,
                       float *dq, float *dk, float *dh);
} rosa_hook_ops;

typedef struct {
    const rosa_hook_ops *ops;
    void *self;
} rosa_hook;

/* One layer's activations.  Training points these at the layer's own slice of
 * the arena; inference and analysis at one scratch set.  h1, h2 and
 * silu(gate)*up are not kept: the backward rebuilds them element-wise. */
typedef struct {
    float *x, *rstd1;      /* layer input [N][D], 1/rms [N] */
    float *q, *k, *v;      /* [N][Q], [N][K], [N][K] (after RoPE and hooks) */
    float *lse, *att;      /* log-sum-exp [N][Hq] (sequence attention), attention output [N][Q] */
    float *x2, *rstd2;     /* after attention [N][D] (== x when not kept), 1/rms [N] */
    float *gate, *up;      /* [N][F] */
    /* Kept for the backward of the extra norms (NULL: not kept, or none). */
    float *qn, *kn;        /* q, k before QK-norm [N][Q], [N][K] */
    float *rstdq, *rstdk;  /* their 1/rms per head [N][Hq], [N][Hkv] */
    float *o, *rstdo;      /* o_proj output before the post-attention norm [N][D], 1/rms [N] */
    float *mo, *rstdm;     /* down_proj output before the post-feedforward norm [N][D], 1/rms [N] */
    float *hook[ROSA_MAX_HOOKS]; /* each hook's state for this layer */
} rosa_block_acts;

struct rosa_block_ctx {
    const struct rosa_model *m;
    const rosa_hook *hooks;      /* attached hooks, in order */
    int n_hooks;
    int B, T, N;                 /* sequences, slots per sequence, rows */
    const float *rope_cs;        /* [n_rope][rope_rows][hd]: rosa_model_rope_tables */
    int rope_rows;               /* rows of each table (0: N) */
    /* Attention: over the KV cache when kv is set (inference), else over whole
     * sequences; either way this call's T slots have mask [B][T] (1 = real). */
    struct rosa_kv_cache *kv;
    const uint8_t *mask;
    const int *pos;              /* [B][T] the slots' positions (windows; the cache's rows) */
    float *scores;               /* attention scratch */
    float *h, *act, *tmp;        /* scratch: [N][D], [N][F], [N][max(D, F, Q)] (tmp: [N][D] at inference,
                                    for architectures with post norms) */
    float *hook_scratch[ROSA_MAX_HOOKS];
    int train;                   /* training: hooks keep state for the backward */
    rosa_rng *drop;              /* the adapters' dropout stream, NULL = no dropout */
    const uint8_t *layer_active; /* [L]: layers whose hooks add weight gradients (NULL = all) */
    /* backward */
    float *norm_grad;            /* [L][n_norms][D]: d loss / d norm weights (NULL = not wanted) */
    float *dx, *dh, *dq, *dk, *dv, *datt, *dgate, *dup, *dact; /* [N][D], [N][D], [N][Q], [N][K] x2, [N][Q], [N][F] x3 */
    int qk_only;                 /* forward stops after the POST_ROPE hooks (analysis of the last layer) */
};

static inline int rosa_block_layer_active(const rosa_block_ctx *c, int layer) {
    return !c->layer_active || c->layer_active[layer];
}

/* Whether an inference call of T slots on kv runs attention through GEMMs
 * (a prefill: the sequence attention's T x T scratch and lse). */
int rosa_block_prefill_gemm(const struct rosa_kv_cache *kv, int T);

/* The scratch of the hook attached with object self. */
float *rosa_block_hook_scratch(const rosa_block_ctx *c, const void *self);

/* Floats of hook state all hooks need for layer l with N rows, and the
 * most any of the L layers needs (the size of a region reused by all). */
size_t rosa_block_hook_floats(const rosa_hook *hooks, int n_hooks, int layer, int N);
size_t rosa_block_hook_floats_max(const rosa_hook *hooks, int n_hooks, int L, int N);
/* Points a->hook[i] at each hook's slice of layer l's state inside region,
 * in the order rosa_block_hook_floats counts them. */
void rosa_block_hook_slices(const rosa_hook *hooks, int n_hooks, int layer, int N, float *region, rosa_block_acts *a);

/* The norm weight layer l uses: a hook's override, else the model's. */
const float *rosa_block_norm(const rosa_block_ctx *c, int layer, int which);
/* The final norm's weight: a hook's norm_weight at layer num_layers (a
 * method that trains it, LN-Tuning), else the model's. */
const float *rosa_block_final_norm(const rosa_hook *hooks, int n_hooks, const struct rosa_model *m);

/* x[N][D] = the embeddings of ids, scaled for architectures that scale them
 * (Gemma: by sqrt(hidden)): the input of layer 0. */
void rosa_block_embed(const struct rosa_model *m, float *x, const int32_t *ids, int N);

/* Runs layer l forward on a->x, writing next[N][D] (the next layer's input;
 * may be a->x itself when nothing is kept).  Returns 0 or -1. */
int rosa_block_forward(const rosa_block_ctx *c, int layer, rosa_block_acts *a, float *next);
/* On entry c->dx holds d loss / d (layer output); on exit d / d (layer input).
 * a holds the layer's forward activations.  Adds the norm weight gradients
 * to c->norm_grad. */
int rosa_block_backward(const rosa_block_ctx *c, int layer, rosa_block_acts *a);

#endif

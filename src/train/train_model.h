/* train_model.h: the training forward and backward pass over a micro-batch:
 * frozen base weights, trainable adapter, activations kept for the backward. */
#ifndef ROSA_TRAIN_MODEL_H
#define ROSA_TRAIN_MODEL_H

#include "model/model.h"
#include "train/adapter.h"
#include "data/data.h"

/* Saved state of one low-rank branch out = s * (drop(x) A^T) B^T. */
typedef struct {
    float *u;       /* [N][r]: drop(x) A^T */
    float *xd;      /* [N][in]: the dropped-out input (NULL without dropout) */
    uint8_t *keep;  /* [N][in]: its mask, 1 = kept */
} branch_acts;

/* Activations of one decoder layer for N = B*T rows (see train_model.c).  The
 * normed inputs h1, h2 and silu(gate)*up are not kept: the backward rebuilds
 * them from x, x2 (with the saved 1/rms) and gate, up in one element-wise pass,
 * a third less memory for no matrix product. */
typedef struct {
    float *x, *rstd1;              /* layer input [N][D], 1/rms [N] */
    float *q, *k, *v;              /* after RoPE: [N][Q], [N][K], [N][K] */
    float *lse, *att;              /* softmax log-sum-exp [N][Hq], attention output [N][Q] */
    float *x2, *rstd2;             /* after attention [N][D]; its 1/rms */
    float *gate, *up;              /* MLP pre-activations [N][F] */
    branch_acts lora[N_MODULES];   /* LoRA branches */
    branch_acts roae[2];           /* RoAE branches of q and k */
    float *roae_z[2];              /* [N][H*d_low]: h A^T B^T */
    float *roae_low[2];            /* [N][H*d_low]: q/k at the dimensions D before modulation */
} layer_acts;

typedef struct {
    const rosa_model *m;
    rosa_adapter *a;
    int Bmax, Tmax;
    layer_acts *acts;              /* [L] */
    float *xf, *hf, *rstdf;        /* final norm input/output */
    /* backward scratch */
    float *dx, *dh, *dq, *dk, *dv, *datt, *dgate, *dup, *dact, *du, *dz, *dtmp;
    float *h;                      /* [N][D]: the normed input in use (h1 or h2) */
    float *scores;                 /* attention scratch */
    int *pos;
    float *rope_cs;                /* [N][hd]: RoPE cosines and sines of the micro-batch (rope_table) */
    int32_t *target;
    float *weight, *ce;
    float *norm_grad;              /* [L][2][D]: d loss / d input_layernorm, post_attention_layernorm */
    const uint8_t *active;         /* [L]: layers whose adapter gets weight gradients (NULL = all) */
    /* Activation checkpointing: every layer keeps only its input x; the others
     * share one set of activations, refilled by rerunning the layer's forward
     * in the backward.  layer_rng[l] is the dropout generator as layer l's
     * forward found it, so the rerun draws the same masks. */
    int recompute;
    rosa_rng *layer_rng;           /* [L] */
    float *arena;
    size_t arena_floats;
} rosa_train_model;

/* Allocates activations for micro-batches of up to Bmax x Tmax tokens; with
 * recompute, per-layer activation checkpointing (one extra forward per layer
 * in the backward, for a fraction of the memory). */
rosa_train_model *rosa_train_model_new(const rosa_model *m, rosa_adapter *a, int Bmax, int Tmax, int recompute);
void rosa_train_model_free(rosa_train_model *t);
/* Bytes that rosa_train_model_new would allocate (activations + scratch). */
size_t rosa_train_model_bytes(const rosa_model *m, const rosa_adapter *a, int Bmax, int Tmax, int recompute);

/* One micro-batch.  Each label token (the shifted target labels[b][t+1]) has
 * loss weight token_weight; returns sum(weight * CE) in *loss_sum and the
 * number of label tokens in *n_tokens.  With backward, adds d(loss_sum) to the
 * adapter gradients (a->g) and to norm_grad for layers >= stop_layer (the
 * backward pass stops there).  dropout_rng draws the adapter dropout masks
 * (NULL: no dropout, as in evaluation).  ce_out (may be NULL): per-token CE
 * [B][T] at the position that predicts it (0 elsewhere). */
int rosa_train_microbatch(rosa_train_model *t, const rosa_batch *b, float token_weight, int backward, int stop_layer,
                          rosa_rng *dropout_rng, double *loss_sum, int *n_tokens, float *ce_out);

#endif

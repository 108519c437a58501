/* train_ctx.h: the training pass over a micro-batch: the frozen model run
 * through the decoder block (model/block.c) with the adapter's hooks, the
 * activations kept for the backward in one arena, and the loss. */
#ifndef ROSA_TRAIN_CTX_H
#define ROSA_TRAIN_CTX_H

#include "data/data.h"
#include "model/model.h"
#include "peft/peft.h"
#include "rosa_train.h"

/* rosa_train_ctx_new/_free (with recompute: per-layer activation
 * checkpointing, one extra forward per layer in the backward for a fraction
 * of the memory) and rosa_eval_loss are public (rosa_train.h). */

/* What one micro-batch's pass does beyond the forward. */
typedef struct {
    int backward;                /* compute gradients */
    int stop_layer;              /* the backward stops at this layer (DLS truncation) */
    const uint8_t *layer_active; /* [L]: layers whose adapter gets weight gradients (NULL = all) */
} rosa_step_plan;

struct rosa_train_ctx {
    const rosa_model *m;
    rosa_adapter *a;               /* NULL: the base model alone (evaluation) */
    rosa_hook hooks[1];
    int n_hooks;
    int Bmax, Tmax;
    int n_norms;                   /* RMSNorms per layer (the architecture's) */
    rosa_block_acts *acts;         /* [L] */
    float *xf, *hf, *rstdf;        /* final norm input/output */
    /* scratch of the block, forward and backward */
    float *h, *tmp, *act, *dx, *dh, *dq, *dk, *dv, *datt, *dgate, *dup, *dact;
    float *scores;                 /* attention scratch */
    float *hook_scratch[ROSA_MAX_HOOKS];
    int *pos;
    float *rope_cs;                /* [N][hd]: RoPE cosines and sines of the micro-batch (rope_table) */
    int32_t *target;
    float *weight, *ce;
    float *norm_grad;              /* [L][n_norms][D] then the final norm's [D]: d loss / d norm weights, summed over a step */
    /* Activation checkpointing: every layer keeps only its input x; the others
     * share one set of activations, refilled by rerunning the layer's forward
     * in the backward.  layer_rng[l] is the dropout generator as layer l's
     * forward found it, so the rerun draws the same masks. */
    int recompute;
    rosa_rng *layer_rng;           /* [L] */
    float *arena;
    size_t arena_floats;
};

/* Bytes that rosa_train_ctx_new would allocate (activations + scratch). */
size_t rosa_train_ctx_bytes(const rosa_model *m, rosa_adapter *a, int Bmax, int Tmax, int recompute);
/* Zeroes the summed norm-weight gradients (at the start of a step). */
void rosa_train_zero_norm_grads(rosa_train_ctx *t);

/* One micro-batch.  Each label token (the shifted target labels[b][t+1]) has
 * loss weight token_weight; returns sum(weight * CE) in *loss_sum and the
 * number of label tokens in *n_tokens.  With plan->backward, adds d(loss_sum)
 * to the adapter gradients (a->g) and to norm_grad for layers >= stop_layer.
 * dropout_rng draws the adapter dropout masks (NULL: no dropout, as in
 * evaluation).  ce_out (may be NULL): per-token CE [B][T] at the position that
 * predicts it (0 elsewhere). */
int rosa_train_microbatch(rosa_train_ctx *t, const rosa_batch *b, float token_weight, const rosa_step_plan *plan,
                          rosa_rng *dropout_rng, double *loss_sum, int *n_tokens, float *ce_out);

#endif

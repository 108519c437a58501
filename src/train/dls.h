/* dls.h: dynamic layer selection (the DLS half of RoSA, docs/method.md).
 *
 * Layers are scored by the gradient norm of their RMSNorm weights (all the
 * norms a layer of the architecture has).  Every
 * `interval` steps after `warmup`, k layers become active: the top-k by score
 * with probability p_exploit, else k at random.  Only active layers train. */
#ifndef ROSA_DLS_H
#define ROSA_DLS_H

#include <stdint.h>

#include "peft/peft.h"

typedef struct {
    rosa_dls_options o;
    int L, k;
    rosa_rng rng;       /* the DLS stream: used for nothing else */
    float *scores;      /* [L] the scores selection uses (EMA when score_ema > 0) */
    int have_scores;
    uint8_t *active;    /* [L] */
    int64_t *counts;    /* [L] how many selections chose each layer */
    int *perm;          /* [L] scratch of the random draw */
} rosa_dls;

/* k = max(1, round(k_ratio * L)), round(x) = floor(x + 0.5). */
int rosa_dls_init(rosa_dls *d, const rosa_dls_options *o, int L);
void rosa_dls_free(rosa_dls *d);

/* At the start of optimizer step t (from 0): every layer during warm-up;
 * then at each selection step picks the active set.  Returns 1 when it
 * selected (*exploit tells how), else 0. */
int rosa_dls_begin_step(rosa_dls *d, int64_t t, int *exploit);
/* Whether step t must compute every layer's score (the step before a
 * selection, or every step with an EMA). */
int rosa_dls_scores_needed(const rosa_dls *d, int64_t t);
/* The lowest layer the backward of step t must reach. */
int rosa_dls_stop_layer(const rosa_dls *d, int64_t t);
/* Scores from the step's summed RMSNorm gradients norm_grad [L][n_norms][D]. */
void rosa_dls_update_scores(rosa_dls *d, const float *norm_grad, int n_norms, int D, float *raw_out);

#endif

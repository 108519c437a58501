/* miss.h: MiSS as PEFT computes it (src/peft/tuners/miss/, PEFT commit
 * 5d602fdbff04c33c1c4de55cda9d4ae1d7cb7e40; PEFT's successor of Bone, whose
 * own tuner that commit no longer has).  For an adapted linear layer with
 * input x [in] (zero-padded to a multiple of r):
 *   y = x W^T + b + (sum_j x[j r .. j r + r)) D,   D = miss_block [r, out];
 * with init_weights "mini", D [r, mini_r] repeated out / mini_r times along
 * out; miss_dropout is inverted dropout on x (the branch's input only).
 * D = 0 at init; merge adds D^T to every r-column block of W. */
#ifndef ROSA_PEFT_MISS_H
#define ROSA_PEFT_MISS_H

#include "peft/format.h"
#include "peft/peft.h"
#include "peft/targets.h"

typedef struct {
    int r;                     /* default 64 */
    int mini;                  /* init_weights "mini" */
    int mini_r;                /* default 1 */
    int random_init;           /* init_weights false: Kaiming-uniform D (a file's values replace it) */
    float dropout;             /* miss_dropout */
    rosa_peft_targets targets; /* NULL names: q_proj,v_proj */
    int *layers, n_layers;     /* layers_to_transform (NULL: all) */
} rosa_miss_options;

extern const rosa_peft_method rosa_peft_miss;
extern const rosa_peft_field rosa_miss_fields[];

/* s[N][r] = the sum of x's r-blocks (x [N][in], zero-padded). */
void miss_block_sum(float *s, const float *x, int N, int in, int r);
/* dx[N][in] += ds[N][r] at every r-block. */
void miss_block_sum_backward(float *dx, const float *ds, int N, int in, int r);

#endif

/* oft.h: OFT as PEFT computes it (src/peft/tuners/oft/, PEFT commit
 * 5d602fdbff04c33c1c4de55cda9d4ae1d7cb7e40, the layout of PEFT >= 0.14):
 * the input of each adapted linear layer is rotated block-wise,
 *   y = (x M) W^T + b,   M = blockdiag(R_0, ..., R_{r-1}),  R_j [bs][bs],
 * R_j from the strictly upper triangle vec_j (oft_R.weight [r, bs(bs-1)/2],
 * one row shared by all blocks with block_share) through S = vec - vec^T
 * and PEFT's truncated Cayley-Neumann series
 *   R = I + 2S + 2S^2 + ... + 2S^m + S^(m+1),   m = max(2, terms - 2)
 * (terms 2: I + 2S; 1: I), or with use_cayley_neumann false the exact
 * Cayley transform R = (I - S)(I + S)^-1.  COFT first clips each block's S
 * to Frobenius norm eps / sqrt(blocks), in place, at every forward (PEFT's
 * _project_batch under no_grad).  vec = 0 at init (R = I); merge: W' = W M^T. */
#ifndef ROSA_PEFT_OFT_H
#define ROSA_PEFT_OFT_H

#include "peft/format.h"
#include "peft/peft.h"
#include "peft/targets.h"

typedef struct {
    int r, block_size;         /* PEFT's r (blocks) and oft_block_size: exactly one non-zero */
    int block_share;
    int terms;                 /* num_cayley_neumann_terms */
    int exact;                 /* use_cayley_neumann false */
    int coft;
    float eps;                 /* COFT's radius (default 6e-5) */
    float module_dropout;      /* kept for the file: PEFT's Linear forward never applies it */
    rosa_peft_targets targets; /* NULL names: q_proj,v_proj */
    int *layers, n_layers;     /* layers_to_transform (NULL: all) */
} rosa_oft_options;

extern const rosa_peft_method rosa_peft_oft;
extern const rosa_peft_field rosa_oft_fields[];

/* R[nv][bs][bs] from vec[nv][bs(bs-1)/2]: the series of `terms` terms, or
 * with terms 0 the exact Cayley transform. */
void oft_rotation_forward(float *R, const float *vec, int nv, int bs, int terms, float *scratch);
/* dvec[nv][.] += d/dvec of sum(G * R) for G[nv][bs][bs]; scratch: oft_rotation_scratch floats. */
void oft_rotation_backward(float *dvec, const float *G, const float *vec, int nv, int bs, int terms, float *scratch);
size_t oft_rotation_scratch(int bs, int terms);
/* COFT's projection of vec[nv][.] in place (no gradient: PEFT's no_grad). */
void oft_project(float *vec, int nv, int bs, float eps);
/* out[N][nb*bs] (+= with add, else =) x M - x, with M^T instead of M when
 * transpose; R holds nb blocks, or one for all with share. */
void oft_rotate(float *out, const float *x, const float *R, int N, int nb, int bs, int share, int transpose, int add);
/* G[nv][bs][bs] = sum_n x_j^T u_j over the blocks j (summed into one with share). */
void oft_rotate_grad(float *G, const float *x, const float *u, int N, int nb, int bs, int share);

#endif

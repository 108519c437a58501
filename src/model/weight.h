/* weight.h: a frozen base weight, whatever its storage.
 *
 * Every product with a frozen matrix goes through these two functions, so the
 * decoder block never asks how a weight is stored: FP32 rows (memory-mapped
 * or converted at load), or, in --dtype bf16, oneDNN's packed BF16 copy, once
 * the FP32 rows are released.  A new storage format (BF16-resident, int8) is
 * a new member here and a branch in weight.c. */
#ifndef ROSA_WEIGHT_H
#define ROSA_WEIGHT_H

#include "model/bf16.h"

typedef struct {
    const float *f32;       /* [out][in] row-major; NULL once released in BF16 mode */
    rosa_bf16_weight *bf16; /* packed copy for --dtype bf16, else NULL */
    int out, in;
} rosa_weight;

/* y[N][out] = x[N][in] W^T + b (y += with accumulate); b may be NULL.
 * Returns 0, or -1 when a BF16 product fails (message set). */
int rosa_weight_forward(const rosa_weight *w, float *y, const float *x, const float *b, int N, int accumulate);
/* dx[N][in] = dy[N][out] W (dx += with accumulate): the input gradient. */
int rosa_weight_backward(const rosa_weight *w, float *dx, const float *dy, int N, int accumulate);
/* out[o] = ||W_o||^2 (DoRA's weight norms), of the rows the products use. */
int rosa_weight_row_sqnorms(const rosa_weight *w, double *out);
/* Packs the FP32 rows for BF16 products; -1 when oneDNN cannot. */
int rosa_weight_pack_bf16(rosa_weight *w);
void rosa_weight_drop_bf16(rosa_weight *w);

#endif

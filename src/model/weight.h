/* weight.h: a frozen base weight, whatever its storage.
 *
 * Every product with a frozen matrix goes through these functions, so the
 * decoder block never asks how a weight is stored: FP32 rows (memory-mapped
 * from an F32 checkpoint, or a merged copy); the checkpoint's own BF16/F16
 * rows in the mapping, widened to FP32 at each product into one reused
 * buffer per thread (exact: the result is bit for bit the product with rows
 * widened at load); or, in --dtype bf16, oneDNN's packed BF16 copy.  A new
 * storage format (int8) is a new member here and a branch in weight.c. */
#ifndef ROSA_WEIGHT_H
#define ROSA_WEIGHT_H

#include <stdint.h>

#include "model/bf16.h"

typedef struct {
    const float *f32;       /* [out][in] row-major; NULL when half holds the rows, or once packed */
    const uint16_t *half;   /* [out][in] the checkpoint's BF16 (or F16, half_f16) rows, mapped */
    int half_f16;
    rosa_bf16_weight *bf16; /* packed copy for --dtype bf16, else NULL */
    int out, in;
} rosa_weight;

/* y[N][out] = x[N][in] W^T + b (y += with accumulate); b may be NULL.
 * Returns 0, or -1 when a BF16 product fails or the widening buffer cannot be
 * had (message set). */
int rosa_weight_forward(const rosa_weight *w, float *y, const float *x, const float *b, int N, int accumulate);
/* dx[N][in] = dy[N][out] W (dx += with accumulate): the input gradient. */
int rosa_weight_backward(const rosa_weight *w, float *dx, const float *dy, int N, int accumulate);
/* out[o] = ||W_o||^2 (DoRA's weight norms), of the rows the products use. */
int rosa_weight_row_sqnorms(const rosa_weight *w, double *out);
/* The FP32 rows into out[out][in] (copied or widened); -1 when packed only. */
int rosa_weight_copy_f32(const rosa_weight *w, float *out);
/* Packs the rows for BF16 products (backward 0: for inference only, half the
 * memory); -1 when oneDNN cannot. */
int rosa_weight_pack_bf16(rosa_weight *w, int backward);
void rosa_weight_drop_bf16(rosa_weight *w);
/* Frees this thread's widening buffer (it is made again when needed). */
void rosa_weight_free_scratch(void);

#endif

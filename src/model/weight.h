/* weight.h: a frozen base weight, whatever its storage.
 *
 * Every product with a frozen matrix goes through these functions, so the
 * decoder block never asks how a weight is stored: FP32 rows (memory-mapped
 * from an F32 checkpoint, or a merged copy); the checkpoint's own BF16/F16
 * rows in the mapping, widened to FP32 at each product into one reused
 * buffer per thread (exact: the result is bit for bit the product with rows
 * widened at load); int8 blocks (--quantize int8, below), dequantised to
 * FP32 at each product the same way; or, in --dtype bf16, oneDNN's packed
 * BF16 copy.  A new storage format is a new member here and a branch in
 * weight.c. */
#ifndef ROSA_WEIGHT_H
#define ROSA_WEIGHT_H

#include <stdint.h>

#include "model/bf16.h"

typedef struct {
    const float *f32;       /* [out][in] row-major; NULL when half holds the rows, or once packed */
    const uint16_t *half;   /* [out][in] the checkpoint's BF16 (or F16, half_f16) rows, mapped */
    int half_f16;
    rosa_bf16_weight *bf16; /* packed copy for --dtype bf16, else NULL */
    /* --quantize int8 (llama.cpp's Q8_0 with FP32 scales): each row is cut
     * into blocks of ROSA_Q8_BLOCK along the input dimension (the last one
     * shorter when in is not a multiple); block b of row o holds
     * q8[o][32b + j] = round(W[o][32b + j] / d), d = q8_scale[o][b] =
     * absmax of the block / 127, so W ~ d q. */
    const int8_t *q8;      /* [out][in] */
    const float *q8_scale; /* [out][ceil(in / 32)] */
    int out, in;
} rosa_weight;

#define ROSA_Q8_BLOCK 32

/* Blocks of one row of n inputs. */
static inline int rosa_q8_blocks(int n) { return (n + ROSA_Q8_BLOCK - 1) / ROSA_Q8_BLOCK; }
/* One row x[n] into q[n] and scale[rosa_q8_blocks(n)]: per block d =
 * absmax / 127 and q = x / d rounded to nearest (0 for an all-zero block),
 * so |x - d q| <= d / 2. */
void rosa_q8_quantize_row(const float *x, int n, int8_t *q, float *scale);
/* out[n] = d q: the row as the products use it. */
void rosa_q8_dequantize_row(const int8_t *q, const float *scale, int n, float *out);

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
/* Replaces w's rows by their int8 blocks, in q8[out][in] and
 * scale[out][rosa_q8_blocks(in)] (the caller's buffers, which must outlive
 * w); -1 when w has no rows (packed only). */
int rosa_weight_quantize_q8(rosa_weight *w, int8_t *q8, float *scale);
/* Frees this thread's widening buffer (it is made again when needed). */
void rosa_weight_free_scratch(void);

#endif

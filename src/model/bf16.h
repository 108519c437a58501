/* bf16.h: frozen weights packed for oneDNN's BF16 matrix product (AMX or
 * AVX512-BF16 kernels), for the --dtype bf16 compute mode: weights and GEMM
 * inputs in BF16, FP32 accumulation and outputs.  Each weight W [out][in] is
 * packed twice, for y = x W^T (forward) and dx = dy W (input gradient), which
 * together take the memory of one FP32 copy; or, for inference, once.
 *
 * oneDNN's fast BF16 kernels need the row count M at primitive creation; M is
 * rounded up to a multiple of 64 and primitives are cached per rounded M, so a
 * run creates a handful.  Not thread-safe: call from one thread at a time
 * (rosa calls GEMMs from its main thread; oneDNN threads internally). */
#ifndef ROSA_BF16_H
#define ROSA_BF16_H

#include <stddef.h>
#include <stdint.h>

typedef struct rosa_bf16_weight rosa_bf16_weight;

/* Whether this CPU and oneDNN can run BF16 matrix products. */
int rosa_bf16_supported(void);
/* backward 0: the forward layout only (rosa_bf16_backward then fails). */
rosa_bf16_weight *rosa_bf16_weight_new(const float *W, int out, int in, int backward);
void rosa_bf16_weight_free(rosa_bf16_weight *w);
size_t rosa_bf16_weight_bytes(const rosa_bf16_weight *w);
/* y[M][out] = x W^T (y += with accumulate) */
int rosa_bf16_forward(rosa_bf16_weight *w, float *y, const float *x, int M, int accumulate);
/* y[M][out] = x W^T for x already in BF16 and M a multiple of 64: the bare
 * product, for measuring the BF16 ceiling (bench_train gemm). */
int rosa_bf16_forward_rows(rosa_bf16_weight *w, float *y, const uint16_t *x, int M);
/* dx[M][in] = dy W (dx += with accumulate) */
int rosa_bf16_backward(rosa_bf16_weight *w, float *dx, const float *dy, int M, int accumulate);
/* The oneDNN implementation chosen (e.g. "brg:avx512_core_amx_bf16"). */
const char *rosa_bf16_impl(void);

#endif

/* lowrank.c: the low-rank branch shared by LoRA and RoAE. */
#include "peft/lowrank.h"

#include <math.h>

#include "core/arena.h"
#include "model/gemm.h"
#include "model/ops.h"
#include "core/util.h"

void lowrank_init_a(float *A, int r, int in, rosa_rng *rng) {
    float bound = 1.0f / sqrtf((float)in);
    for (size_t k = 0, n = (size_t)r * (size_t)in; k < n; k++) A[k] = (2.0f * rosa_rng_uniform(rng) - 1.0f) * bound;
}

size_t lowrank_act_floats(int N, int in, int r, float p) {
    size_t n = ROSA_ARENA_ROUND((size_t)N * r);
    if (p > 0) n += ROSA_ARENA_ROUND((size_t)N * in) + ROSA_ARENA_ROUND((size_t)N * in / sizeof(float) + 1);
    return n;
}

lowrank_acts lowrank_carve(float **region, int N, int in, int r, float p) {
    lowrank_acts a = {0};
    a.u = *region;
    *region += ROSA_ARENA_ROUND((size_t)N * r);
    if (p > 0) {
        a.xd = *region;
        *region += ROSA_ARENA_ROUND((size_t)N * in);
        a.keep = (uint8_t *)*region;
        *region += ROSA_ARENA_ROUND((size_t)N * in / sizeof(float) + 1);
    }
    return a;
}

void lowrank_forward(lowrank_acts *ba, float *out, int accumulate, const float *x, const float *A, const float *B,
                     float s, int N, int in, int r, int od, float p, rosa_rng *drop) {
    const float *xd = x;
    if (p > 0) {
        int64_t n = (int64_t)N * in;
        float scale = 1.0f / (1.0f - p);
        for (int64_t i = 0; i < n; i++) {
            ba->keep[i] = drop ? rosa_rng_uniform(drop) >= p : 1; /* evaluation: identity */
            ba->xd[i] = ba->keep[i] ? x[i] * (drop ? scale : 1.0f) : 0.0f;
        }
        xd = ba->xd;
    }
    linear_forward(ba->u, xd, A, NULL, N, in, r, 0);
    rosa_gemm('N', 'T', N, od, r, s, ba->u, r, B, r, accumulate ? 1.0f : 0.0f, out, od);
}

void lowrank_backward(const lowrank_acts *ba, float *dx, const float *dout, const float *x, const float *A,
                      const float *B, float *dA, float *dB, float s, int N, int in, int r, int od, float p, float *du,
                      float *dtmp) {
    const float *xd = p > 0 ? ba->xd : x;
    /* dB += s dout^T u;  du = s dout B;  dA += du^T xd;  dx += du A (through the mask). */
    if (dB) rosa_gemm('T', 'N', od, r, N, s, dout, od, ba->u, r, 1.0f, dB, r);
    rosa_gemm('N', 'N', N, r, od, s, dout, od, B, r, 0.0f, du, r);
    if (dA) rosa_gemm('T', 'N', r, in, N, 1.0f, du, r, xd, in, 1.0f, dA, in);
    if (p > 0) {
        float scale = 1.0f / (1.0f - p);
        rosa_gemm('N', 'N', N, in, r, 1.0f, du, r, A, in, 0.0f, dtmp, in);
        int64_t n = (int64_t)N * in;
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < n; i++)
            if (ba->keep[i]) dx[i] += dtmp[i] * scale;
    } else {
        rosa_gemm('N', 'N', N, in, r, 1.0f, du, r, A, in, 1.0f, dx, in);
    }
}

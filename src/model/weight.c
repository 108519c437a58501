/* weight.c: products with frozen weights, by storage format. */
#include "model/weight.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef __F16C__
#include <immintrin.h>
#endif

#include "model/gemm.h"
#include "model/ops.h"
#include "core/util.h"

/* The widening buffer: one matrix at a time, per calling thread, grown to
 * the largest matrix met and reused. */
static _Thread_local float *scratch;
static _Thread_local size_t scratch_floats;

void rosa_weight_free_scratch(void) {
    free(scratch);
    scratch = NULL;
    scratch_floats = 0;
}

void rosa_q8_quantize_row(const float *x, int n, int8_t *q, float *scale) {
    for (int b = 0; b * ROSA_Q8_BLOCK < n; b++) {
        int j0 = b * ROSA_Q8_BLOCK, j1 = j0 + ROSA_Q8_BLOCK < n ? j0 + ROSA_Q8_BLOCK : n;
        float amax = 0.0f;
        for (int j = j0; j < j1; j++) amax = fmaxf(amax, fabsf(x[j]));
        float d = amax / 127.0f;
        scale[b] = d;
        /* x / d, not x times 1 / d: the rounding then never moves an element
         * past d / 2 of its value; |x / d| <= 127 so it fits. */
        for (int j = j0; j < j1; j++) q[j] = d > 0.0f ? (int8_t)lrintf(x[j] / d) : 0;
    }
}

void rosa_q8_dequantize_row(const int8_t *q, const float *scale, int n, float *out) {
    for (int b = 0; b * ROSA_Q8_BLOCK < n; b++) {
        int j0 = b * ROSA_Q8_BLOCK, j1 = j0 + ROSA_Q8_BLOCK < n ? j0 + ROSA_Q8_BLOCK : n;
        float d = scale[b];
        for (int j = j0; j < j1; j++) out[j] = d * (float)q[j];
    }
}

/* BF16 -> F32 is the 16 bits shifted up: inlined here so that the loop
 * vectorises (a call per element made decoding 5x slower).  F16 goes through
 * the hardware conversion where the CPU has one; int8 blocks are dequantised
 * row by row. */
static void widen(const rosa_weight *w, float *out) {
    size_t n = (size_t)w->out * (size_t)w->in;
    if (w->q8) {
        int OUT = w->out, IN = w->in, nb = rosa_q8_blocks(IN);
#pragma omp parallel for schedule(static)
        for (int o = 0; o < OUT; o++)
            rosa_q8_dequantize_row(w->q8 + (size_t)o * IN, w->q8_scale + (size_t)o * nb, IN, out + (size_t)o * IN);
        return;
    }
    const uint16_t *h = w->half;
    if (!w->half_f16) {
        uint32_t *o = (uint32_t *)out;
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < n; i++) o[i] = (uint32_t)h[i] << 16;
        return;
    }
#ifdef __F16C__
    size_t blocks = n / 8;
#pragma omp parallel for schedule(static)
    for (size_t b = 0; b < blocks; b++)
        _mm256_storeu_ps(out + 8 * b, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(h + 8 * b))));
    for (size_t i = 8 * blocks; i < n; i++) out[i] = rosa_f16_to_f32(h[i]);
#else
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) out[i] = rosa_f16_to_f32(h[i]);
#endif
}

/* The FP32 rows: the stored ones, or the 16-bit or int8 ones widened into
 * the buffer. */
static const float *rows(const rosa_weight *w) {
    if (w->f32 || (!w->half && !w->q8)) return w->f32;
    size_t n = (size_t)w->out * (size_t)w->in;
    if (n > scratch_floats) {
        float *p = rosa_realloc(scratch, sizeof(float) * n, "widened weight");
        if (!p) return NULL;
        scratch = p;
        scratch_floats = n;
    }
    widen(w, scratch);
    return scratch;
}

/* Decoding (a few rows) from 16-bit or int8 rows: the product runs tile by tile of
 * output rows, each widened into a thread's small buffer that stays in cache,
 * instead of the whole matrix widened to memory and read back. */
#define TILE_FLOATS (1 << 14)
#define TILE_MAX_ROWS 8

static _Thread_local float *tile; /* kept for the thread's life: 64 KiB */

static int forward_tiled(const rosa_weight *w, float *y, const float *x, int N, int accumulate) {
    int rows = TILE_FLOATS / w->in < 1 ? 1 : TILE_FLOATS / w->in, tiles = (w->out + rows - 1) / rows, failed = 0;
#pragma omp parallel for schedule(static) reduction(| : failed)
    for (int t = 0; t < tiles; t++) {
        if (!tile && !(tile = malloc(sizeof(float) * TILE_FLOATS))) {
            failed = 1;
            continue;
        }
        int o0 = t * rows, n = w->out - o0 < rows ? w->out - o0 : rows;
        rosa_weight part = {.out = n, .in = w->in, .half_f16 = w->half_f16};
        if (w->q8) {
            part.q8 = w->q8 + (size_t)o0 * w->in;
            part.q8_scale = w->q8_scale + (size_t)o0 * rosa_q8_blocks(w->in);
        } else {
            part.half = w->half + (size_t)o0 * w->in;
        }
        widen(&part, tile);
        rosa_gemm('N', 'T', N, n, w->in, 1.0f, x, w->in, tile, w->in, accumulate ? 1.0f : 0.0f, y + o0, w->out);
    }
    return failed ? rosa_fail("out of memory for a weight tile") : 0;
}

int rosa_weight_forward(const rosa_weight *w, float *y, const float *x, const float *b, int N, int accumulate) {
    if (!w->bf16 && !w->f32 && (w->half || w->q8) && N <= TILE_MAX_ROWS && w->in <= TILE_FLOATS) {
        if (forward_tiled(w, y, x, N, accumulate) < 0) return -1;
        if (b)
            for (int n = 0; n < N; n++)
                for (int o = 0; o < w->out; o++) y[(int64_t)n * w->out + o] += b[o];
        return 0;
    }
    if (!w->bf16) {
        const float *W = rows(w);
        if (!W) return -1;
        linear_forward(y, x, W, b, N, w->in, w->out, accumulate);
        return 0;
    }
    if (rosa_bf16_forward(w->bf16, y, x, N, accumulate) < 0) return -1;
    if (b) {
        int OUT = w->out;
#pragma omp parallel for schedule(static)
        for (int n = 0; n < N; n++)
            for (int o = 0; o < OUT; o++) y[(int64_t)n * OUT + o] += b[o];
    }
    return 0;
}

int rosa_weight_backward(const rosa_weight *w, float *dx, const float *dy, int N, int accumulate) {
    if (!w->bf16) {
        const float *W = rows(w);
        if (!W) return -1;
        linear_backward_input(dx, dy, W, N, w->in, w->out, accumulate);
        return 0;
    }
    return rosa_bf16_backward(w->bf16, dx, dy, N, accumulate);
}

int rosa_weight_copy_f32(const rosa_weight *w, float *out) {
    if (w->f32) memcpy(out, w->f32, sizeof(float) * (size_t)w->out * (size_t)w->in);
    else if (w->half || w->q8) widen(w, out);
    else return rosa_fail("a %d x %d weight has no FP32 or checkpoint rows (packed for --dtype bf16 only)", w->out, w->in);
    return 0;
}

int rosa_weight_pack_bf16(rosa_weight *w, int backward) {
    if (w->bf16) return 0;
    if (!w->f32 && !w->half && !w->q8) return rosa_fail("a %d x %d weight has no rows to pack", w->out, w->in);
    const float *W = rows(w);
    w->bf16 = W ? rosa_bf16_weight_new(W, w->out, w->in, backward) : NULL;
    return w->bf16 ? 0 : -1;
}

int rosa_weight_quantize_q8(rosa_weight *w, int8_t *q8, float *scale) {
    if (w->bf16 || w->q8 || (!w->f32 && !w->half))
        return rosa_fail("a %d x %d weight has no FP32 or checkpoint rows to quantise", w->out, w->in);
    int OUT = w->out, IN = w->in, nb = rosa_q8_blocks(IN), failed = 0;
    /* Row by row from the stored rows (16-bit ones widened one row at a
     * time), so that the matrix is never held in FP32. */
#pragma omp parallel reduction(| : failed)
    {
        float *row = w->f32 ? NULL : malloc(sizeof(float) * (size_t)IN);
        failed = !w->f32 && !row;
#pragma omp for schedule(static)
        for (int o = 0; o < OUT; o++) {
            if (failed) continue;
            const float *x = w->f32 ? w->f32 + (size_t)o * IN : row;
            if (!w->f32) {
                rosa_weight r = {.half = w->half + (size_t)o * IN, .half_f16 = w->half_f16, .out = 1, .in = IN};
                widen(&r, row);
            }
            rosa_q8_quantize_row(x, IN, q8 + (size_t)o * IN, scale + (size_t)o * nb);
        }
        free(row);
    }
    if (failed) return rosa_fail("out of memory for a row to quantise");
    w->q8 = q8;
    w->q8_scale = scale;
    w->f32 = NULL;
    w->half = NULL;
    return 0;
}

void rosa_weight_drop_bf16(rosa_weight *w) {
    rosa_bf16_weight_free(w->bf16);
    w->bf16 = NULL;
}

int rosa_weight_row_sqnorms(const rosa_weight *w, double *out) {
    int OUT = w->out, IN = w->in;
    if (w->f32 && !w->bf16) {
#pragma omp parallel for schedule(static)
        for (int o = 0; o < OUT; o++) {
            double s = 0;
            for (int i = 0; i < IN; i++) s += (double)w->f32[(int64_t)o * IN + i] * w->f32[(int64_t)o * IN + i];
            out[o] = s;
        }
        return 0;
    }
    if (w->q8 && !w->bf16) {
        int nb = rosa_q8_blocks(IN);
#pragma omp parallel for schedule(static)
        for (int o = 0; o < OUT; o++) {
            const int8_t *q = w->q8 + (int64_t)o * IN;
            double s = 0;
            for (int i = 0; i < IN; i++) {
                double v = (double)(w->q8_scale[(int64_t)o * nb + i / ROSA_Q8_BLOCK] * (float)q[i]);
                s += v * v;
            }
            out[o] = s;
        }
        return 0;
    }
    if (w->half && !w->bf16) {
#pragma omp parallel for schedule(static)
        for (int o = 0; o < OUT; o++) {
            const uint16_t *h = w->half + (int64_t)o * IN;
            double s = 0;
            for (int i = 0; i < IN; i++) {
                double v = w->half_f16 ? rosa_f16_to_f32(h[i]) : rosa_bf16_to_f32(h[i]);
                s += v * v;
            }
            out[o] = s;
        }
        return 0;
    }
    /* Packed only: its rows, as its products see them, through blocks of
     * the identity (I W^T = the columns of W), once per weight. */
    enum { BLOCK = 64 };
    float *e = rosa_calloc((size_t)BLOCK * IN, sizeof(float), "identity block");
    float *y = rosa_malloc(sizeof(float) * (size_t)BLOCK * OUT, "weight columns");
    int rc = e && y ? 0 : -1;
    for (int o = 0; o < OUT; o++) out[o] = 0;
    for (int i0 = 0; rc == 0 && i0 < IN; i0 += BLOCK) {
        int nb = IN - i0 < BLOCK ? IN - i0 : BLOCK;
        for (int k = 0; k < nb; k++) e[(size_t)k * IN + i0 + k] = 1.0f;
        rc = rosa_weight_forward(w, y, e, NULL, nb, 0);
        for (int k = 0; k < nb; k++) e[(size_t)k * IN + i0 + k] = 0.0f;
        for (int k = 0; rc == 0 && k < nb; k++)
            for (int o = 0; o < OUT; o++) out[o] += (double)y[(size_t)k * OUT + o] * y[(size_t)k * OUT + o];
    }
    free(e);
    free(y);
    return rc;
}

/* weight.c: products with frozen weights, by storage format. */
#include "model/weight.h"

#include <stdint.h>
#include <stdlib.h>

#include "model/ops.h"
#include "core/util.h"

int rosa_weight_forward(const rosa_weight *w, float *y, const float *x, const float *b, int N, int accumulate) {
    if (!w->bf16) {
        linear_forward(y, x, w->f32, b, N, w->in, w->out, accumulate);
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
        linear_backward_input(dx, dy, w->f32, N, w->in, w->out, accumulate);
        return 0;
    }
    return rosa_bf16_backward(w->bf16, dx, dy, N, accumulate);
}

int rosa_weight_pack_bf16(rosa_weight *w) {
    if (w->bf16) return 0;
    if (!w->f32) return rosa_fail("a %d x %d weight has no FP32 rows to pack", w->out, w->in);
    w->bf16 = rosa_bf16_weight_new(w->f32, w->out, w->in);
    return w->bf16 ? 0 : -1;
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
    /* Another storage: its rows, as its products see them, through blocks of
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

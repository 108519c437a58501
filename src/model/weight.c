/* weight.c: products with frozen weights, by storage format. */
#include "model/weight.h"

#include <stdint.h>

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

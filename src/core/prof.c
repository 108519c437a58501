/* prof.c: the counters of prof.h. */
#include "core/prof.h"

#include <omp.h>

static double seconds[PROF_N], flops[PROF_N];

double rosa_prof_now(void) { return omp_get_wtime(); }

void rosa_prof_add(rosa_prof_op op, double t0, double f) {
    seconds[op] += omp_get_wtime() - t0;
    flops[op] += f;
}

void rosa_prof_reset(void) {
    for (int i = 0; i < PROF_N; i++) seconds[i] = flops[i] = 0.0;
}

void rosa_prof_get(rosa_prof_op op, double *s, double *f) {
    *s = seconds[op];
    *f = flops[op];
}

const char *rosa_prof_name(rosa_prof_op op) {
    static const char *const names[PROF_N] = {"projections", "lm_head_gemm", "softmax_loss", "attention", "adapter",
                                              "rmsnorm",     "rope",         "swiglu",       "other"};
    return names[op];
}

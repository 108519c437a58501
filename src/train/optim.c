/* optim.c: AdamW, clipping and schedules, written to match PyTorch 1.13's
 * single-tensor AdamW and transformers' get_*_schedule_with_warmup. */
#include "optim.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

void rosa_adamw_options_default(rosa_adamw_options *o) {
    o->lr = 3e-4f;
    o->beta1 = 0.9f;
    o->beta2 = 0.999f;
    o->eps = 1e-8f;
    o->weight_decay = 0.0f;
}

int rosa_adamw_init(rosa_adamw *opt, const rosa_adapter *a) {
    memset(opt, 0, sizeof *opt);
    opt->n_floats = a->n_floats;
    opt->n_params = a->n_params;
    opt->m = rosa_calloc(a->n_floats, sizeof(float), "AdamW moments");
    opt->v = rosa_calloc(a->n_floats, sizeof(float), "AdamW moments");
    opt->step = rosa_calloc((size_t)a->n_params, sizeof(int64_t), "AdamW steps");
    if (!opt->m || !opt->v || !opt->step) {
        rosa_adamw_free(opt);
        return -1;
    }
    return 0;
}

void rosa_adamw_free(rosa_adamw *opt) {
    free(opt->m);
    free(opt->v);
    free(opt->step);
    memset(opt, 0, sizeof *opt);
}

void rosa_adamw_step(rosa_adamw *opt, rosa_adapter *a, const uint8_t *active, float lr, const rosa_adamw_options *o) {
    for (int i = 0; i < a->n_params; i++) {
        if (active && !active[i]) continue;
        const rosa_param *p = &a->params[i];
        int64_t t = ++opt->step[i];
        /* Scalars in double as Python computes them, applied in float. */
        double bc1 = 1.0 - pow(o->beta1, (double)t), bc2 = 1.0 - pow(o->beta2, (double)t);
        float step_size = (float)(lr / bc1), bc2_sqrt = (float)sqrt(bc2);
        float decay = (float)(1.0 - (double)lr * o->weight_decay);
        float b1 = o->beta1, b2 = o->beta2, omb1 = (float)(1.0 - o->beta1), omb2 = (float)(1.0 - o->beta2);
        size_t n = (size_t)p->rows * p->cols;
        float *w = a->w + p->offset, *g = a->g + p->offset, *m = opt->m + p->offset, *v = opt->v + p->offset;
#pragma omp parallel for schedule(static)
        for (size_t k = 0; k < n; k++) {
            w[k] *= decay;
            m[k] = m[k] * b1 + g[k] * omb1;
            v[k] = v[k] * b2 + g[k] * g[k] * omb2;
            float denom = sqrtf(v[k]) / bc2_sqrt + o->eps;
            w[k] -= step_size * (m[k] / denom);
        }
    }
}

int rosa_adamw_check(const rosa_adamw *opt, const rosa_adapter *a, int64_t max_step, char *what, size_t n) {
    for (int i = 0; i < a->n_params; i++) {
        const rosa_param *p = &a->params[i];
        size_t len = (size_t)p->rows * p->cols;
        const float *w = a->w + p->offset, *m = opt->m + p->offset, *v = opt->v + p->offset;
        for (size_t k = 0; k < len; k++) {
            static const char *const suffix[] = {"", ".exp_avg", ".exp_avg_sq"};
            int bad = !isfinite(w[k]) ? 0 : !isfinite(m[k]) ? 1 : !(v[k] >= 0.0f && isfinite(v[k])) ? 2 : -1;
            if (bad < 0) continue;
            float x = bad == 0 ? w[k] : bad == 1 ? m[k] : v[k];
            snprintf(what, n, "\"%s%s\" holds %g at [%zu] (must be finite%s)", p->name, suffix[bad], (double)x, k,
                     bad == 2 ? " and >= 0" : "");
            return -1;
        }
        /* a count past the run's steps would overflow ++step (undefined) long before pow() minded */
        if (opt->step[i] < 0 || opt->step[i] > max_step) {
            snprintf(what, n, "\"step\" of \"%s\" is %lld (must be in [0, %lld], the steps done)", p->name,
                     (long long)opt->step[i], (long long)max_step);
            return -1;
        }
    }
    return 0;
}

double rosa_grad_norm(const rosa_adapter *a, const uint8_t *active) {
    double total = 0.0;
    for (int i = 0; i < a->n_params; i++) {
        if (active && !active[i]) continue;
        const rosa_param *p = &a->params[i];
        const float *g = a->g + p->offset;
        double s = 0.0;
        for (size_t k = 0; k < (size_t)p->rows * p->cols; k++) s += (double)g[k] * g[k];
        total += s;
    }
    return sqrt(total);
}

void rosa_clip_grads(rosa_adapter *a, const uint8_t *active, double norm, float max_norm) {
    double coef = max_norm / (norm + 1e-6);
    if (coef >= 1.0) return; /* torch clamps the coefficient at 1 */
    float c = (float)coef;
    for (int i = 0; i < a->n_params; i++) {
        if (active && !active[i]) continue;
        const rosa_param *p = &a->params[i];
        float *g = a->g + p->offset;
        for (size_t k = 0; k < (size_t)p->rows * p->cols; k++) g[k] *= c;
    }
}

int rosa_parse_schedule(const char *s, rosa_schedule *out) {
    if (strcmp(s, "linear") == 0) *out = ROSA_SCHED_LINEAR;
    else if (strcmp(s, "cosine") == 0) *out = ROSA_SCHED_COSINE;
    else if (strcmp(s, "constant") == 0) *out = ROSA_SCHED_CONSTANT;
    else return rosa_fail("unknown lr scheduler \"%s\" (expected linear, cosine or constant)", s);
    return 0;
}

double rosa_lr_factor(rosa_schedule s, int64_t t, int64_t total, int64_t warmup) {
    if (t < warmup) return (double)t / (double)(warmup > 1 ? warmup : 1);
    double span = (double)(total - warmup > 1 ? total - warmup : 1);
    switch (s) {
    case ROSA_SCHED_LINEAR: {
        double f = (double)(total - t) / span;
        return f > 0.0 ? f : 0.0;
    }
    case ROSA_SCHED_COSINE: {
        double progress = (double)(t - warmup) / span;
        double f = 0.5 * (1.0 + cos(M_PI * progress));
        return f > 0.0 ? f : 0.0;
    }
    default:
        return 1.0;
    }
}

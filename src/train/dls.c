/* dls.c: layer scores, the selection schedule, exploit/explore. */
#include "dls.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

int rosa_dls_options_check(const rosa_dls_options *o) {
    if (o->interval < 1 || o->warmup < 1)
        return rosa_fail("DLS interval (%d) and warm-up (%d) must be at least 1", o->interval, o->warmup);
    if (!(o->k_ratio > 0.0f && o->k_ratio <= 1.0f)) return rosa_fail("DLS k_ratio %g must be in (0, 1]", o->k_ratio);
    if (!(o->p_exploit >= 0.0f && o->p_exploit <= 1.0f)) return rosa_fail("DLS p_exploit %g must be in [0, 1]", o->p_exploit);
    if (!(o->score_ema >= 0.0f && o->score_ema < 1.0f)) return rosa_fail("DLS score_ema %g must be in [0, 1)", o->score_ema);
    return 0;
}

int rosa_dls_init(rosa_dls *d, const rosa_dls_options *o, int L) {
    memset(d, 0, sizeof *d);
    if (rosa_dls_options_check(o) < 0) return -1;
    d->o = *o;
    d->L = L;
    d->k = (int)floor((double)o->k_ratio * L + 0.5);
    if (d->k < 1) d->k = 1;
    if (d->k > L) d->k = L;
    rosa_rng_seed(&d->rng, o->seed);
    d->scores = rosa_calloc((size_t)L, sizeof(float), "DLS scores");
    d->active = rosa_malloc((size_t)L, "DLS layers");
    d->counts = rosa_calloc((size_t)L, sizeof(int64_t), "DLS counts");
    d->perm = rosa_malloc(sizeof(int) * (size_t)L, "DLS scratch");
    if (!d->scores || !d->active || !d->counts || !d->perm) {
        rosa_dls_free(d);
        return -1;
    }
    memset(d->active, 1, (size_t)L);
    return 0;
}

void rosa_dls_free(rosa_dls *d) {
    free(d->scores);
    free(d->active);
    free(d->counts);
    free(d->perm);
    memset(d, 0, sizeof *d);
}

static int is_selection_step(const rosa_dls *d, int64_t t) {
    return t >= d->o.warmup && (t - d->o.warmup) % d->o.interval == 0;
}

int rosa_dls_begin_step(rosa_dls *d, int64_t t, int *exploit) {
    if (t < d->o.warmup) {
        memset(d->active, 1, (size_t)d->L);
        return 0;
    }
    if (!is_selection_step(d, t)) return 0;
    *exploit = rosa_rng_uniform(&d->rng) < d->o.p_exploit;
    memset(d->active, 0, (size_t)d->L);
    if (*exploit) {
        /* Top-k by score; the lower index wins ties. */
        for (int n = 0; n < d->k; n++) {
            int best = -1;
            for (int l = 0; l < d->L; l++)
                if (!d->active[l] && (best < 0 || d->scores[l] > d->scores[best])) best = l;
            d->active[best] = 1;
        }
    } else {
        /* k distinct layers uniformly: a partial Fisher-Yates shuffle. */
        int *perm = d->perm;
        for (int l = 0; l < d->L; l++) perm[l] = l;
        for (int n = 0; n < d->k; n++) {
            int j = n + (int)rosa_rng_below(&d->rng, (uint64_t)(d->L - n));
            int tmp = perm[n];
            perm[n] = perm[j];
            perm[j] = tmp;
            d->active[perm[n]] = 1;
        }
    }
    for (int l = 0; l < d->L; l++) d->counts[l] += d->active[l];
    return 1;
}

int rosa_dls_scores_needed(const rosa_dls *d, int64_t t) {
    return d->o.score_ema > 0.0f || is_selection_step(d, t + 1);
}

int rosa_dls_stop_layer(const rosa_dls *d, int64_t t) {
    if (d->o.full_backward || rosa_dls_scores_needed(d, t)) return 0;
    for (int l = 0; l < d->L; l++)
        if (d->active[l]) return l;
    return 0;
}

void rosa_dls_update_scores(rosa_dls *d, const float *norm_grad, int n_norms, int D, float *raw_out) {
    for (int l = 0; l < d->L; l++) {
        const float *g = norm_grad + (size_t)l * n_norms * D;
        double ss = 0.0;
        for (int i = 0; i < n_norms * D; i++) ss += (double)g[i] * g[i];
        float raw = (float)sqrt(ss);
        if (raw_out) raw_out[l] = raw;
        float beta = d->o.score_ema;
        d->scores[l] = d->have_scores && beta > 0.0f ? beta * d->scores[l] + (1.0f - beta) * raw : raw;
    }
    d->have_scores = 1;
}

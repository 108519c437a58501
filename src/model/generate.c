/* generate.c: sampling and single-sequence generation with a KV cache. */
#include <limits.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>


#include "core/util.h"
#include "model.h"

void rosa_gen_params_default(rosa_gen_params *p) {
    memset(p, 0, sizeof *p);
    p->max_new_tokens = 256;
    p->temperature = 0.0f;
    p->top_k = 0;
    p->top_p = 1.0f;
    p->seed = 0;
    p->stop_at_eos = 1;
}

static int32_t argmax(const float *x, int n) {
    int32_t best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i; /* strict: the lowest id wins ties */
    return best;
}

typedef struct {
    float p;
    int32_t id;
} prob_id;

static int by_prob_desc(const void *a, const void *b) {
    const prob_id *x = a, *y = b;
    if (x->p != y->p) return x->p < y->p ? 1 : -1;
    return x->id < y->id ? -1 : x->id > y->id;
}

int32_t rosa_sample(float *logits, int vocab, const rosa_gen_params *p, rosa_rng *r) {
    if (p->temperature <= 0.0f) return argmax(logits, vocab);
    prob_id *c = malloc(sizeof *c * (size_t)vocab);
    if (!c) return argmax(logits, vocab);
    float mx = -INFINITY;
    for (int i = 0; i < vocab; i++) {
        logits[i] /= p->temperature;
        if (logits[i] > mx) mx = logits[i];
    }
    for (int i = 0; i < vocab; i++) c[i] = (prob_id){logits[i], i};
    qsort(c, (size_t)vocab, sizeof *c, by_prob_desc);
    int n = vocab;
    if (p->top_k > 0 && p->top_k < n) n = p->top_k;
    double sum = 0.0;
    for (int i = 0; i < n; i++) {
        c[i].p = expf(c[i].p - mx);
        sum += c[i].p;
    }
    if (p->top_p < 1.0f) {
        /* Keep the smallest prefix whose mass reaches top_p (at least one). */
        double cum = 0.0;
        int keep = 0;
        while (keep < n && (keep == 0 || cum < p->top_p * sum)) cum += c[keep++].p;
        n = keep;
        sum = cum;
    }
    double u = (double)rosa_rng_uniform(r) * sum, acc = 0.0;
    int32_t pick = c[n - 1].id;
    for (int i = 0; i < n; i++) {
        acc += c[i].p;
        if (u < acc) {
            pick = c[i].id;
            break;
        }
    }
    free(c);
    return pick;
}

static int is_eos(const rosa_config *c, int32_t id) {
    for (int i = 0; i < c->n_eos; i++)
        if (c->eos_token_ids[i] == id) return 1;
    return 0;
}

int rosa_generate(rosa_model *m, const int32_t *prompt, int n_prompt, const rosa_gen_params *p,
                  rosa_token_fn on_token, void *user, int32_t *out, int *n_out) {
    const rosa_config *c = &m->cfg;
    if (n_out) *n_out = 0;
    if (n_prompt < 1) return rosa_fail("generate: the prompt has no tokens (add BOS for an empty prompt)");
    if (p->max_new_tokens < 0 || p->max_new_tokens > ROSA_MAX_NEW_TOKENS)
        return rosa_fail("generate: max_new_tokens %d must be in [0, %d]", p->max_new_tokens, ROSA_MAX_NEW_TOKENS);
    if (n_prompt > INT_MAX - p->max_new_tokens)
        return rosa_fail("generate: a prompt of %d tokens and %d new ones do not fit a KV cache", n_prompt,
                         p->max_new_tokens);
    if (p->max_new_tokens == 0) return 0;
    rosa_kv_cache *kv = rosa_kv_cache_new(m, 1, n_prompt + p->max_new_tokens);
    float *logits = kv ? rosa_malloc(sizeof(float) * (size_t)c->vocab_size, "logits") : NULL;
    if (!logits) {
        rosa_kv_cache_free(kv);
        return -1;
    }
    rosa_rng rng;
    rosa_rng_seed(&rng, p->seed);
    int rc = rosa_forward(m, kv, n_prompt, prompt, NULL, logits, 0);
    for (int i = 0; rc == 0 && i < p->max_new_tokens; i++) {
        int32_t id = rosa_sample(logits, c->vocab_size, p, &rng);
        if (out) out[i] = id;
        if (n_out) *n_out = i + 1;
        if (on_token && on_token(id, user)) break;
        if (p->stop_at_eos && is_eos(c, id)) break;
        if (i + 1 < p->max_new_tokens) rc = rosa_forward(m, kv, 1, &id, NULL, logits, 0);
    }
    free(logits);
    rosa_kv_cache_free(kv);
    return rc;
}

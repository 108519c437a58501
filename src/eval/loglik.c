/* loglik.c: log-likelihood scoring of the answer options (rosa's addition,
 * not the paper's protocol; docs/eval.md).
 *
 * For each option the text prompt + "the correct answer is <option>" is
 * encoded as a whole (as training saw it); the scored tokens are those after
 * the longest common prefix with the prompt's own encoding.  The prefix the
 * options share is computed once and its KV cache copied into one row per
 * option. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "eval/eval.h"
#include "model/kv_ops.h"
#include "model/model.h"

static double token_logprob(const float *x, int V, int32_t t) {
    float mx = x[0];
    for (int i = 1; i < V; i++)
        if (x[i] > mx) mx = x[i];
    double s = 0.0;
    for (int i = 0; i < V; i++) s += exp((double)x[i] - (double)mx);
    return (double)x[t] - ((double)mx + log(s));
}

static int common_prefix(const int32_t *a, int na, const int32_t *b, int nb) {
    int n = na < nb ? na : nb, i = 0;
    while (i < n && a[i] == b[i]) i++;
    return i;
}

int rosa_loglik_options(rosa_model *m, const char *prompt, const char *const *options, int n_options,
                        double *scores) {
    const rosa_tokenizer *tok = rosa_model_tokenizer(m);
    if (!tok) return rosa_fail("loglik: the model has no tokenizer");
    if (n_options < 1) return rosa_fail("loglik: no options");
    int V = m->cfg.vocab_size, rc = -1;
    static const char lead[] = "the correct answer is ";
    int32_t *pids = NULL, **oids = rosa_calloc((size_t)n_options, sizeof(int32_t *), "options");
    int *olen = rosa_calloc((size_t)n_options, sizeof(int), "options"), *ostart = rosa_calloc((size_t)n_options,
                                                                                          sizeof(int), "options");
    rosa_kv_cache *pre = NULL, *rows = NULL;
    float *logits = NULL, *shared = NULL;
    int32_t *ids = NULL;
    uint8_t *mask = NULL;
    size_t np;
    if (!oids || !olen || !ostart) goto out;
    if (rosa_tokenizer_encode(tok, prompt, strlen(prompt), 1, &pids, &np) < 0) goto out;
    size_t plen = strlen(prompt);
    int P = 1 << 30, maxlen = 0;
    for (int o = 0; o < n_options; o++) {
        size_t ol = strlen(options[o]), n;
        char *text = rosa_malloc(plen + sizeof lead + ol, "loglik text");
        if (!text) goto out;
        memcpy(text, prompt, plen);
        memcpy(text + plen, lead, sizeof lead - 1);
        memcpy(text + plen + sizeof lead - 1, options[o], ol + 1);
        int e = rosa_tokenizer_encode(tok, text, strlen(text), 1, &oids[o], &n);
        free(text);
        if (e < 0) goto out;
        olen[o] = (int)n;
        ostart[o] = common_prefix(pids, (int)np, oids[o], olen[o]);
        if (ostart[o] < 1) ostart[o] = 1; /* the first token has no context to be scored in */
        if (ostart[o] >= olen[o]) {
            rosa_fail("loglik: option \"%s\" adds no tokens to the prompt", options[o]);
            goto out;
        }
        if (ostart[o] < P) P = ostart[o];
        if (olen[o] > maxlen) maxlen = olen[o];
    }
    /* S: the tokens every option shares, leaving each at least one to feed */
    int S = olen[0] - 1;
    for (int o = 1; o < n_options; o++) {
        int c = common_prefix(oids[0], olen[0], oids[o], olen[o]);
        if (c < S) S = c;
        if (olen[o] - 1 < S) S = olen[o] - 1;
    }
    if (S < P) S = P;
    pre = rosa_kv_cache_new(m, 1, S);
    rows = rosa_kv_cache_new(m, n_options, maxlen);
    shared = rosa_malloc(sizeof(float) * (size_t)V * (size_t)(S - P + 1), "loglik logits");
    int Tr = maxlen - 1 - S; /* tokens fed per option row (right-padded) */
    if (Tr < 1) Tr = 1;
    logits = rosa_malloc(sizeof(float) * (size_t)n_options * (size_t)Tr * (size_t)V, "loglik logits");
    ids = rosa_calloc((size_t)n_options * (size_t)Tr, sizeof(int32_t), "loglik ids");
    mask = rosa_calloc((size_t)n_options * (size_t)Tr, 1, "loglik mask");
    if (!pre || !rows || !shared || !logits || !ids || !mask) goto out;
    /* shared[0] predicts token P; shared[k] (slot P + k - 1) predicts token P + k */
    if (rosa_forward(m, pre, P, oids[0], NULL, shared, 0) < 0) goto out;
    if (S > P && rosa_forward(m, pre, S - P, oids[0] + P, NULL, shared + V, 1) < 0) goto out;
    int any = 0;
    for (int o = 0; o < n_options; o++) {
        if (rosa_kv_cache_copy_seq(rows, o, pre, 0) < 0) goto out;
        for (int t = 0; t < olen[o] - 1 - S; t++) {
            ids[o * Tr + t] = oids[o][S + t];
            mask[o * Tr + t] = 1;
            any = 1;
        }
    }
    if (any && rosa_forward(m, rows, Tr, ids, mask, logits, 1) < 0) goto out;
    for (int o = 0; o < n_options; o++) {
        double sum = 0.0;
        for (int t = ostart[o]; t < olen[o]; t++) {
            /* the logits of slot t - 1 predict token t */
            const float *x = t <= S ? shared + (size_t)(t - P) * V : logits + ((size_t)o * Tr + (size_t)(t - 1 - S)) * V;
            sum += token_logprob(x, V, oids[o][t]);
        }
        scores[o] = sum;
    }
    rc = 0;
out:
    if (oids)
        for (int o = 0; o < n_options; o++) free(oids[o]);
    free(oids);
    free(olen);
    free(ostart);
    free(pids);
    rosa_kv_cache_free(pre);
    rosa_kv_cache_free(rows);
    free(logits);
    free(shared);
    free(ids);
    free(mask);
    return rc;
}

/* beam.c: greedy and beam search for evaluation (see beam.h and docs/eval.md).
 *
 * Each prompt is one "group" of num_beams cache rows.  Its prompt is run alone
 * through a one-row cache (positions from 0), then copied into the group's
 * rows; every step runs one slot for all rows of the batch and each group
 * applies its rule to its own rows' logits.  A group never sees another
 * group's scores, so the tokens chosen for a prompt do not depend on what it
 * is batched with.
 *
 * The rules follow the transformers sources closely (scores are kept in double
 * precision; transformers keeps them in float32):
 *   - llm-adapters: transformers 4.28 GenerationMixin.beam_search with
 *     BeamSearchScorer.process/finalize and BeamHypotheses.add/is_done
 *     (src/transformers/generation/beam_search.py, utils.py).
 *   - hf: transformers >= 4.50 GenerationMixin._beam_search with
 *     _get_top_k_continuations, _get_running_beams_for_next_iteration,
 *     _update_finished_beams and the early-stop heuristic, for a batch of one. */
#include "beam.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "model/kv_ops.h"
#include "model/model.h"

#define NEG_INF_SCORE (-1.0e9) /* transformers' "very large negative value" */

const char *rosa_beam_rule_name(rosa_beam_rule r) { return r == ROSA_BEAM_HF ? "hf" : "llm-adapters"; }

int rosa_beam_rule_parse(const char *s, rosa_beam_rule *out) {
    if (strcmp(s, "llm-adapters") == 0) *out = ROSA_BEAM_LLM_ADAPTERS;
    else if (strcmp(s, "hf") == 0) *out = ROSA_BEAM_HF;
    else return -1;
    return 0;
}

void rosa_decode_params_default(rosa_decode_params *p) {
    memset(p, 0, sizeof *p);
    p->num_beams = 4;
    p->rule = ROSA_BEAM_LLM_ADAPTERS;
    p->max_new_tokens = 32;
    p->length_penalty = 1.0;
}

void rosa_decode_result_free(rosa_decode_result *r) {
    if (!r) return;
    free(r->ids);
    r->ids = NULL;
    r->n = 0;
}

/* ------------------------------------------------------------ per prompt */

typedef struct {
    double score;  /* normalised */
    int32_t *ids;  /* generated ids ([max_new]) */
    int n;
    int real;      /* hf: a finished sequence (is_sent_finished) */
    int ended_eos;
} hyp;

typedef struct {
    double score;
    int beam;      /* source beam */
    int32_t tok;
    int flat;      /* beam * V + tok, the tie-break */
} cand;

typedef struct {
    int active, index, prompt_len, gen, row0;
    double *run_score;   /* [nb] */
    int32_t *run_ids;    /* [nb][max_new] */
    int32_t *new_ids;    /* [nb][max_new] scratch */
    double *new_score;   /* [nb] */
    int32_t *next_tok;   /* [nb] the tokens to feed next */
    int *src;            /* [nb] source beam of each new beam */
    hyp *hyps;           /* llm-adapters: [nb + 1] finished; hf: [nb] slots */
    hyp *hscratch;       /* hf: [nb + K] merge scratch */
    int32_t *hyp_block;  /* the ids buffers of hyps */
    int n_hyps;
    double worst;        /* llm-adapters BeamHypotheses.worst_score */
    double greedy_sum;
} group;

typedef struct {
    rosa_model *m;
    const rosa_decode_params *p;
    int V, nb, K, max_new;
    const int32_t *eos;
    int n_eos;
    double *lp;          /* [V] scratch */
    cand *cands;         /* [nb * K] */
} ctx;

static int is_eos(const ctx *c, int32_t t) {
    for (int i = 0; i < c->n_eos; i++)
        if (c->eos[i] == t) return 1;
    return 0;
}

/* log_softmax of one row in double precision; returns the row's log-sum-exp. */
static double row_lse(const float *x, int V) {
    float mx = x[0];
    for (int i = 1; i < V; i++)
        if (x[i] > mx) mx = x[i];
    double s = 0.0;
    for (int i = 0; i < V; i++) s += exp((double)x[i] - (double)mx);
    return (double)mx + log(s);
}

static int cand_cmp(const void *a, const void *b) {
    const cand *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return (x->flat > y->flat) - (x->flat < y->flat);
}

/* The top K of run_score[b] + logprob[b][v] over all beams and tokens, best
 * first (ties: the lower beam * V + token, as a stable top-k would give).
 * Row b's logits are logits + b * stride. Returns the number found. */
static int top_candidates(ctx *c, group *g, const float *logits, size_t stride, int K) {
    int V = c->V, n = 0;
    int k_row = K < V ? K : V;
    for (int b = 0; b < c->nb; b++) {
        const float *x = logits + (size_t)b * stride;
        double lse = row_lse(x, V);
        /* The row's best k_row tokens by logit (the lower id first on ties). */
        cand *row = c->cands + n;
        int have = 0;
        for (int v = 0; v < V; v++) {
            if (have == k_row && !(x[v] > x[row[have - 1].tok])) continue;
            int at = have < k_row ? have++ : have - 1;
            while (at > 0 && x[v] > x[row[at - 1].tok]) {
                row[at] = row[at - 1];
                at--;
            }
            row[at].tok = v;
        }
        for (int i = 0; i < have; i++) {
            row[i].beam = b;
            row[i].flat = b * V + row[i].tok;
            row[i].score = g->run_score[b] + ((double)x[row[i].tok] - lse);
        }
        n += have;
    }
    qsort(c->cands, (size_t)n, sizeof(cand), cand_cmp);
    return n < K ? n : K;
}

static double len_pow(double len, double lp) { return pow(len, lp); }

/* BeamHypotheses.add (transformers 4.28): keeps the num_beams best. */
static void hyps_add(ctx *c, group *g, const int32_t *ids, int n_gen, int total_len, double sum_logprobs, int eos) {
    int nb = c->nb;
    double score = sum_logprobs / len_pow((double)total_len, c->p->length_penalty);
    if (!(g->n_hyps < nb || score > g->worst)) return;
    hyp *h = &g->hyps[g->n_hyps++];
    memcpy(h->ids, ids, sizeof(int32_t) * (size_t)n_gen);
    h->n = n_gen;
    h->score = score;
    h->ended_eos = eos;
    if (g->n_hyps > nb) {
        /* sorted([(s, idx) ...]): delete the first, the new worst is the second */
        int i0 = 0;
        for (int i = 1; i < g->n_hyps; i++)
            if (g->hyps[i].score < g->hyps[i0].score) i0 = i;
        int i1 = -1;
        for (int i = 0; i < g->n_hyps; i++)
            if (i != i0 && (i1 < 0 || g->hyps[i].score < g->hyps[i1].score)) i1 = i;
        g->worst = g->hyps[i1].score;
        hyp gone = g->hyps[i0];
        memmove(&g->hyps[i0], &g->hyps[i0 + 1], sizeof(hyp) * (size_t)(g->n_hyps - i0 - 1));
        g->hyps[g->n_hyps - 1] = gone; /* keep its buffer */
        g->n_hyps--;
    } else if (score < g->worst) {
        g->worst = score;
    }
}

/* Moves the new beams (src, tokens, scores in new_*) into the running beams. */
static void commit_beams(ctx *c, group *g) {
    int nb = c->nb, M = c->max_new;
    for (int j = 0; j < nb; j++) {
        memcpy(g->new_ids + (size_t)j * M, g->run_ids + (size_t)g->src[j] * M, sizeof(int32_t) * (size_t)g->gen);
        g->new_ids[(size_t)j * M + g->gen] = g->next_tok[j];
    }
    int32_t *t = g->run_ids;
    g->run_ids = g->new_ids;
    g->new_ids = t;
    memcpy(g->run_score, g->new_score, sizeof(double) * (size_t)nb);
    g->gen++;
}

/* One step of the llm-adapters rule.  Returns 1 when the prompt is finished. */
static int step_llm_adapters(ctx *c, group *g, const float *logits, size_t stride) {
    int nb = c->nb, M = c->max_new;
    int cur_len = g->prompt_len + g->gen; /* input_ids.shape[-1] before this token */
    int n = top_candidates(c, g, logits, stride, 2 * nb);
    int beam_idx = 0;
    for (int rank = 0; rank < n && beam_idx < nb; rank++) {
        const cand *k = &c->cands[rank];
        if (is_eos(c, k->tok)) {
            if (rank >= nb) continue; /* not among the top num_beams: not added */
            hyps_add(c, g, g->run_ids + (size_t)k->beam * M, g->gen, cur_len, k->score, 1);
        } else {
            g->new_score[beam_idx] = k->score;
            g->next_tok[beam_idx] = k->tok;
            g->src[beam_idx] = k->beam;
            beam_idx++;
        }
    }
    if (beam_idx < nb) return rosa_fail("beam search: fewer than %d non-EOS candidates (vocabulary too small)", nb);
    /* BeamHypotheses.is_done(next_scores.max(), cur_len), early_stopping False */
    int done = g->n_hyps >= nb &&
               g->worst >= c->cands[0].score / len_pow((double)cur_len, c->p->length_penalty);
    commit_beams(c, g);
    if (done) return 1;
    if (g->gen < M) return 0;
    /* finalize: all open beams are added (their length is the whole sequence) */
    for (int j = 0; j < nb; j++)
        hyps_add(c, g, g->run_ids + (size_t)j * M, g->gen, g->prompt_len + g->gen, g->run_score[j], 0);
    return 1;
}

/* One step of the hf rule.  Returns 1 when the prompt is finished. */
static int step_hf(ctx *c, group *g, const float *logits, size_t stride) {
    int nb = c->nb, M = c->max_new;
    int n = top_candidates(c, g, logits, stride, c->K);
    int last = g->gen + 1 >= M; /* MaxLengthCriteria on the sequences with the new token */
    /* running beams for the next step: the best candidates that did not stop */
    int j = 0, n_hit = 0;
    for (int r = 0; r < n; r++) n_hit += last || is_eos(c, c->cands[r].tok);
    for (int pass = 0; pass < 2 && j < nb; pass++)
        for (int r = 0; r < n && j < nb; r++) {
            const cand *k = &c->cands[r];
            int hit = last || is_eos(c, k->tok);
            if (hit != pass) continue;
            g->src[j] = k->beam;
            g->next_tok[j] = k->tok;
            g->new_score[j] = k->score + (hit ? NEG_INF_SCORE : 0.0);
            j++;
        }
    /* finished beams: the old slots merged with the top num_beams candidates
     * that stopped, normalised by the generated length (EOS included) */
    double norm = len_pow((double)(g->gen + 1), c->p->length_penalty);
    int n_real = 0;
    hyp *merged = g->hscratch;
    for (int i = 0; i < nb; i++)
        if (g->hyps[i].real) merged[n_real++] = g->hyps[i];
    for (int r = 0; r < n && r < nb; r++) {
        const cand *k = &c->cands[r];
        int eos = is_eos(c, k->tok);
        if (!(last || eos)) continue;
        hyp *h = &merged[n_real++];
        h->ids = NULL; /* filled below once selected */
        h->n = -1 - r; /* remembers the candidate */
        h->score = k->score / norm;
        h->real = 1;
        h->ended_eos = eos;
    }
    /* stable sort by score, best first: old slots before new candidates on ties */
    for (int a = 1; a < n_real; a++) {
        hyp t = merged[a];
        int b = a;
        while (b > 0 && merged[b - 1].score < t.score) {
            merged[b] = merged[b - 1];
            b--;
        }
        merged[b] = t;
    }
    if (n_real > nb) n_real = nb;
    /* Rebuild the slots: old ones keep their ids, new ones copy theirs.  Old
     * buffers are reused, so collect the selected ids first. */
    int32_t *tmp = g->new_ids; /* scratch [nb][M] */
    for (int s = 0; s < n_real; s++) {
        hyp *h = &merged[s];
        int32_t *dst = tmp + (size_t)s * M;
        if (h->n < 0) {
            const cand *k = &c->cands[-1 - h->n];
            memcpy(dst, g->run_ids + (size_t)k->beam * M, sizeof(int32_t) * (size_t)g->gen);
            dst[g->gen] = k->tok;
            h->n = g->gen + 1;
        } else {
            memcpy(dst, h->ids, sizeof(int32_t) * (size_t)h->n);
        }
    }
    for (int s = 0; s < nb; s++) {
        hyp *slot = &g->hyps[s];
        if (s < n_real) {
            memcpy(slot->ids, tmp + (size_t)s * M, sizeof(int32_t) * (size_t)merged[s].n);
            slot->n = merged[s].n;
            slot->score = merged[s].score;
            slot->real = 1;
            slot->ended_eos = merged[s].ended_eos;
        } else {
            slot->real = 0;
            slot->score = NEG_INF_SCORE;
            slot->n = 0;
        }
    }
    commit_beams(c, g);
    /* _check_early_stop_heuristic (early_stopping False): can the best running
     * beam, normalised by the generated length so far, beat the worst finished? */
    double best_running = g->run_score[0] / len_pow((double)g->gen, c->p->length_penalty);
    int improvement;
    if (n_real < nb) {
        improvement = best_running > NEG_INF_SCORE;
    } else {
        double worst = g->hyps[0].score;
        for (int s = 1; s < nb; s++)
            if (g->hyps[s].score < worst) worst = g->hyps[s].score;
        improvement = best_running > worst;
    }
    int valid_continuations = n_hit < n;
    return !(improvement && valid_continuations);
}

/* One greedy step: argmax (the lower id on ties), stop at EOS or max_new. */
static int step_greedy(ctx *c, group *g, const float *logits) {
    int V = c->V;
    int32_t best = 0;
    for (int v = 1; v < V; v++)
        if (logits[v] > logits[best]) best = v;
    g->greedy_sum += (double)logits[best] - row_lse(logits, V);
    g->src[0] = 0;
    g->next_tok[0] = best;
    g->new_score[0] = g->greedy_sum;
    commit_beams(c, g);
    return is_eos(c, best) || g->gen >= c->max_new;
}

static int group_step(ctx *c, group *g, const float *logits, size_t stride) {
    if (c->nb == 1) return step_greedy(c, g, logits);
    return c->p->rule == ROSA_BEAM_HF ? step_hf(c, g, logits, stride) : step_llm_adapters(c, g, logits, stride);
}

/* The prompt's result as transformers returns it. */
static int group_result(ctx *c, group *g, rosa_decode_result *r) {
    int M = c->max_new;
    const int32_t *ids;
    int n, eos;
    double score;
    if (c->nb == 1) {
        ids = g->run_ids;
        n = g->gen;
        eos = is_eos(c, ids[n - 1]);
        score = g->greedy_sum;
    } else if (c->p->rule == ROSA_BEAM_HF) {
        ids = g->hyps[0].ids;
        n = g->hyps[0].n;
        eos = g->hyps[0].ended_eos;
        score = g->hyps[0].score;
    } else {
        /* sorted(beams, key=score).pop(): the best, the last added on ties */
        int best = 0;
        for (int i = 1; i < g->n_hyps; i++)
            if (g->hyps[i].score >= g->hyps[best].score) best = i;
        ids = g->hyps[best].ids;
        n = g->hyps[best].n;
        eos = g->hyps[best].ended_eos;
        score = g->hyps[best].score;
    }
    r->ids = rosa_malloc(sizeof(int32_t) * (size_t)(M + 1), "decode result");
    if (!r->ids) return -1;
    memcpy(r->ids, ids, sizeof(int32_t) * (size_t)n);
    r->n = n;
    /* finalize appends eos_token_id[0] after a hypothesis shorter than max_length */
    if (c->nb > 1 && c->p->rule == ROSA_BEAM_LLM_ADAPTERS && eos) r->ids[r->n++] = c->eos[0];
    r->score = score;
    r->ended_eos = eos;
    return 0;
}

static void group_free(group *g) {
    free(g->run_score);
    free(g->run_ids);
    free(g->new_ids);
    free(g->new_score);
    free(g->next_tok);
    free(g->src);
    free(g->hyps);
    free(g->hscratch);
    free(g->hyp_block);
    memset(g, 0, sizeof *g);
}

static int group_alloc(ctx *c, group *g) {
    int nb = c->nb, M = c->max_new;
    size_t ids = (size_t)nb * (size_t)M;
    g->run_score = rosa_malloc(sizeof(double) * (size_t)nb, "beams");
    g->new_score = rosa_malloc(sizeof(double) * (size_t)nb, "beams");
    g->run_ids = rosa_malloc(sizeof(int32_t) * ids, "beams");
    g->new_ids = rosa_malloc(sizeof(int32_t) * ids, "beams");
    g->next_tok = rosa_malloc(sizeof(int32_t) * (size_t)nb, "beams");
    g->src = rosa_malloc(sizeof(int) * (size_t)nb, "beams");
    g->hyps = rosa_calloc((size_t)nb + 1, sizeof(hyp), "beam hypotheses");
    g->hscratch = rosa_calloc((size_t)(nb + c->K), sizeof(hyp), "beam hypotheses");
    g->hyp_block = rosa_malloc(sizeof(int32_t) * (size_t)(nb + 1) * (size_t)M, "beam hypotheses");
    if (!g->run_score || !g->new_score || !g->run_ids || !g->new_ids || !g->next_tok || !g->src || !g->hyps ||
        !g->hscratch || !g->hyp_block) {
        group_free(g);
        return -1;
    }
    return 0;
}

/* Starts prompt `index` in g: beam 0 at score 0, the others at -1e9. */
static void group_start(ctx *c, group *g, int index, int prompt_len) {
    g->index = index;
    g->prompt_len = prompt_len;
    g->gen = 0;
    g->n_hyps = c->p->rule == ROSA_BEAM_HF ? c->nb : 0;
    g->worst = 1e9;
    g->greedy_sum = 0.0;
    for (int j = 0; j < c->nb; j++) g->run_score[j] = j == 0 ? 0.0 : NEG_INF_SCORE;
    for (int j = 0; j <= c->nb; j++) {
        g->hyps[j].ids = g->hyp_block + (size_t)j * c->max_new;
        g->hyps[j].n = 0;
        g->hyps[j].real = 0;
        g->hyps[j].score = NEG_INF_SCORE;
        g->hyps[j].ended_eos = 0;
    }
}

/* ------------------------------------------------------------ scheduler */

int rosa_decode(rosa_model *m, int n, const int32_t *const *prompts, const int *lens, const rosa_decode_params *p,
                int batch, rosa_decode_fn on_done, void *user) {
    const rosa_config *cfg = &m->cfg;
    if (n <= 0) return 0;
    if (p->num_beams < 1 || p->num_beams > ROSA_MAX_BEAMS)
        return rosa_fail("decode: num_beams %d must be in [1, %d]", p->num_beams, ROSA_MAX_BEAMS);
    if (p->max_new_tokens < 1 || p->max_new_tokens > ROSA_MAX_NEW_TOKENS)
        return rosa_fail("decode: max_new_tokens %d must be in [1, %d]", p->max_new_tokens, ROSA_MAX_NEW_TOKENS);
    if (batch > ROSA_MAX_BATCH) return rosa_fail("decode: batch %d is above the limit %d", batch, ROSA_MAX_BATCH);
    if (batch < 1) batch = 1;
    ctx c = {0};
    c.m = m;
    c.p = p;
    c.V = cfg->vocab_size;
    c.nb = p->num_beams;
    c.max_new = p->max_new_tokens;
    c.eos = p->eos ? p->eos : cfg->eos_token_ids;
    c.n_eos = p->eos ? p->n_eos : cfg->n_eos;
    /* 4.28: 2 * num_beams candidates; >= 4.50: max(2, 1 + n_eos) * num_beams */
    int mult = p->rule == ROSA_BEAM_HF && 1 + c.n_eos > 2 ? 1 + c.n_eos : 2;
    c.K = mult * c.nb;
    int maxT = 1;
    for (int i = 0; i < n; i++) {
        if (lens[i] < 1) return rosa_fail("decode: prompt %d has no tokens", i);
        if (lens[i] > maxT) maxT = lens[i];
    }
    int G = batch < n ? batch : n, nb = c.nb, B = G * nb, V = c.V;
    /* A refilled group starts at the current length; with several groups
     * leave room for max_new more slots before the cache has to drain. */
    int64_t cap64 = (int64_t)maxT + c.max_new - 1 + (G > 1 ? c.max_new : 0);
    if (cap64 > INT_MAX)
        return rosa_fail("decode: prompts of up to %d tokens and %d new ones do not fit a KV cache", maxT, c.max_new);
    int cap = cap64 < 1 ? 1 : (int)cap64;
    int rc = -1, next = 0, n_active = 0;
    rosa_decode_result res = {0};
    group *groups = rosa_calloc((size_t)G, sizeof(group), "decode groups");
    rosa_kv_cache *kv = rosa_kv_cache_new(m, B, cap), *pre = rosa_kv_cache_new(m, 1, maxT);
    float *logits = rosa_malloc(sizeof(float) * (size_t)B * (size_t)V, "logits");
    float *plogits = rosa_malloc(sizeof(float) * (size_t)V, "logits");
    int32_t *ids = rosa_malloc(sizeof(int32_t) * (size_t)B, "decode ids");
    uint8_t *mask = rosa_malloc((size_t)B, "decode mask");
    int *src_rows = rosa_malloc(sizeof(int) * (size_t)B, "decode rows");
    c.cands = rosa_malloc(sizeof(cand) * (size_t)nb * (size_t)(c.K < V ? c.K : V), "beam candidates");
    if (!groups || !kv || !pre || !logits || !plogits || !ids || !mask || !src_rows || !c.cands) goto out;
    for (int gi = 0; gi < G; gi++) {
        if (group_alloc(&c, &groups[gi]) < 0) goto out;
        groups[gi].row0 = gi * nb;
    }
    for (;;) {
        /* admit prompts into free groups */
        for (int gi = 0; gi < G && next < n; gi++) {
            group *g = &groups[gi];
            if (g->active) continue;
            int T = lens[next];
            if (n_active > 0 && (kv->len > T ? kv->len : T) + c.max_new - 1 > cap) break; /* drain first */
            if (n_active == 0) rosa_kv_cache_reset(kv);
            rosa_kv_cache_reset(pre);
            if (rosa_forward(m, pre, T, prompts[next], NULL, plogits, 0) < 0) goto out;
            group_start(&c, g, next, T);
            next++;
            int fin = group_step(&c, g, plogits, 0); /* every beam starts from the prompt's logits */
            if (fin < 0) goto out;
            if (fin) {
                if (group_result(&c, g, &res) < 0) goto out;
                int u = on_done ? on_done(g->index, &res, user) : 0;
                rosa_decode_result_free(&res);
                if (u) {
                    rc = u;
                    goto out;
                }
                gi--; /* the group is still free */
                continue;
            }
            for (int j = 0; j < nb; j++)
                if (rosa_kv_cache_copy_seq(kv, g->row0 + j, pre, 0) < 0) goto out;
            g->active = 1;
            n_active++;
        }
        if (n_active == 0) {
            if (next >= n) break;
            continue;
        }
        for (int r = 0; r < B; r++) {
            ids[r] = 0;
            mask[r] = 0;
            src_rows[r] = r;
        }
        for (int gi = 0; gi < G; gi++) {
            group *g = &groups[gi];
            if (!g->active) continue;
            for (int j = 0; j < nb; j++) {
                ids[g->row0 + j] = g->next_tok[j];
                mask[g->row0 + j] = 1;
            }
        }
        if (rosa_forward(m, kv, 1, ids, mask, logits, 0) < 0) goto out;
        for (int gi = 0; gi < G; gi++) {
            group *g = &groups[gi];
            if (!g->active) continue;
            int fin = group_step(&c, g, logits + (size_t)g->row0 * V, (size_t)V);
            if (fin < 0) goto out;
            if (fin) {
                g->active = 0;
                n_active--;
                if (group_result(&c, g, &res) < 0) goto out;
                int u = on_done ? on_done(g->index, &res, user) : 0;
                rosa_decode_result_free(&res);
                if (u) {
                    rc = u;
                    goto out;
                }
                continue;
            }
            /* the beams' rows follow their new parents; only the positions
             * after the prompt, which all of them share, differ */
            int moved = 0;
            for (int j = 0; j < nb; j++) {
                src_rows[g->row0 + j] = g->row0 + g->src[j];
                moved |= g->src[j] != j;
            }
            if (moved && rosa_kv_cache_reorder_from(kv, src_rows, g->prompt_len) < 0) goto out;
            for (int j = 0; j < nb; j++) src_rows[g->row0 + j] = g->row0 + j;
        }
    }
    rc = 0;
out:
    if (groups)
        for (int gi = 0; gi < G; gi++) group_free(&groups[gi]);
    free(groups);
    rosa_kv_cache_free(kv);
    rosa_kv_cache_free(pre);
    free(logits);
    free(plogits);
    free(ids);
    free(mask);
    free(src_rows);
    free(c.cands);
    return rc;
}

typedef struct {
    rosa_decode_result *out;
} collect_state;

static int collect(int index, const rosa_decode_result *res, void *user) {
    collect_state *s = user;
    rosa_decode_result *r = &s->out[index];
    r->ids = rosa_malloc(sizeof(int32_t) * (size_t)(res->n ? res->n : 1), "decode result");
    if (!r->ids) return -1;
    memcpy(r->ids, res->ids, sizeof(int32_t) * (size_t)res->n);
    r->n = res->n;
    r->score = res->score;
    r->ended_eos = res->ended_eos;
    return 0;
}

int rosa_decode_all(rosa_model *m, int n, const int32_t *const *prompts, const int *lens, const rosa_decode_params *p,
                    int batch, rosa_decode_result *out) {
    memset(out, 0, sizeof *out * (size_t)(n > 0 ? n : 0));
    collect_state s = {out};
    int rc = rosa_decode(m, n, prompts, lens, p, batch, collect, &s);
    if (rc != 0) {
        for (int i = 0; i < n; i++) rosa_decode_result_free(&out[i]);
        return -1;
    }
    return 0;
}

/* analyze.c: per-dimension statistics of the RoPE-rotated Q and K states.
 *
 * Each record runs alone through the decoder block (model/block.c), stopping
 * after the last layer's Q and K; a tap hook accumulates their sums of
 * squares in double precision. */
#include "analyze.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "model/block.h"
#include "model/ops.h"
#include "core/log.h"
#include "core/util.h"

void rosa_analysis_free(rosa_analysis *a) {
    if (!a) return;
    free(a->dims);
    free(a->inv_freq);
    free(a->layer_inv_freq);
    free(a->q_norm);
    free(a->k_norm);
    free(a->q_band);
    free(a->k_band);
    free(a->q_share);
    free(a->k_share);
    free(a->q_sumsq);
    free(a->k_sumsq);
    memset(a, 0, sizeof *a);
}

/* sumsq[c] += sum_t z[t][c]^2 for the C columns of z [T][C]. */
static void accumulate(double *sumsq, const float *z, int T, int C) {
#pragma omp parallel for schedule(static) if ((int64_t)T * C >= 1 << 16)
    for (int col = 0; col < C; col++) {
        double s = 0;
        for (int t = 0; t < T; t++) {
            double v = z[(size_t)t * C + col];
            s += v * v;
        }
        sumsq[col] += s;
    }
}

/* The tap: a hook after every other at the POST_ROPE point, so it sees Q
 * and K as attention will (after RoPE and any adapter's modulation). */
typedef struct {
    rosa_analysis *out;
    int N;
} tap_state;

static int tap_qk(void *self, const rosa_block_ctx *c, int l, int stage, float *acts, const float *h, float *q,
                  float *k) {
    (void)acts, (void)h;
    if (stage != HOOK_POST_ROPE) return 0;
    tap_state *t = self;
    const rosa_config *cf = &c->m->cfg;
    int Q = cf->num_heads * cf->head_dim, K = cf->num_kv_heads * cf->head_dim;
    accumulate(t->out->q_sumsq + (size_t)l * Q, q, t->N, Q);
    accumulate(t->out->k_sumsq + (size_t)l * K, k, t->N, K);
    return 0;
}

static const rosa_hook_ops tap_ops = {.qk_forward = tap_qk};

int rosa_analyze(rosa_model *m, const int32_t *const *ids, const int *lens, int n, float r_low,
                 rosa_analyze_progress progress, void *user, rosa_analysis *out) {
    memset(out, 0, sizeof *out);
    if (m->fp32_released) return rosa_fail("analyze runs in FP32: load the model without --dtype bf16");
    const rosa_config *c = &m->cfg;
    int L = c->num_layers, D = c->hidden_size, F = c->intermediate_size, hd = c->head_dim, Hq = c->num_heads,
        Hkv = c->num_kv_heads, Q = Hq * hd, K = Hkv * hd, V = c->vocab_size;
    int mm = rosa_rope_low_dims(hd, r_low, NULL);
    if (mm < 0) return -1;
    int Tmax = 0;
    for (int i = 0; i < n; i++) {
        if (lens[i] > Tmax) Tmax = lens[i];
        for (int t = 0; t < lens[i]; t++)
            if (ids[i][t] < 0 || ids[i][t] >= V)
                return rosa_fail("analyze: record %d: token id %d out of range [0, %d)", i, ids[i][t], V);
    }
    if (Tmax == 0) return rosa_fail("analyze: no tokens to analyse");
    if (Tmax > c->max_position_embeddings)
        rosa_log(ROSA_LOG_WARN, "records of %d tokens are past max_position_embeddings (%d)", Tmax,
                c->max_position_embeddings);
    out->L = L, out->Hq = Hq, out->Hkv = Hkv, out->hd = hd, out->r_low = r_low, out->m = mm;
    out->dims = rosa_malloc(sizeof(int) * 2 * (size_t)mm, "analysis");
    out->inv_freq = rosa_malloc(sizeof(double) * (size_t)(hd / 2), "analysis");
    out->layer_inv_freq = rosa_malloc(sizeof(double) * (size_t)L * (size_t)(hd / 2), "analysis");
    out->q_norm = rosa_calloc((size_t)L * hd, sizeof(double), "analysis");
    out->k_norm = rosa_calloc((size_t)L * hd, sizeof(double), "analysis");
    out->q_band = rosa_calloc((size_t)L * (hd / 2), sizeof(double), "analysis");
    out->k_band = rosa_calloc((size_t)L * (hd / 2), sizeof(double), "analysis");
    out->q_share = rosa_calloc((size_t)L, sizeof(double), "analysis");
    out->k_share = rosa_calloc((size_t)L, sizeof(double), "analysis");
    out->q_sumsq = rosa_calloc((size_t)L * Q, sizeof(double), "analysis");
    out->k_sumsq = rosa_calloc((size_t)L * K, sizeof(double), "analysis");
    if (m->n_hooks == ROSA_MAX_HOOKS) return rosa_fail("analyze: no room for its tap beside %d hooks", m->n_hooks);
    /* One record at a time through the decoder block, attention over the
     * whole record; nothing is kept, so the residual stream is updated in
     * place.  One arena, carved by a size table. */
    size_t T = (size_t)Tmax, threads = (size_t)omp_get_max_threads(), off = 0,
           hook = rosa_block_hook_floats_max(m->hooks, m->n_hooks, L, Tmax);
    rosa_hook hooks[ROSA_MAX_HOOKS];
    memcpy(hooks, m->hooks, sizeof(rosa_hook) * (size_t)m->n_hooks);
    tap_state tap = {out, 0};
    hooks[m->n_hooks] = (rosa_hook){&tap_ops, &tap};
    rosa_block_acts A = {0};
    rosa_block_ctx bc = {.m = m, .hooks = hooks, .n_hooks = m->n_hooks + 1, .B = 1};
    size_t scratch[ROSA_MAX_HOOKS] = {0};
    for (int i = 0; i < m->n_hooks; i++)
        if (hooks[i].ops->scratch_floats) scratch[i] = hooks[i].ops->scratch_floats(hooks[i].self, (int)T);
    float *rope_cs = NULL, *hook_region = NULL, *arena = NULL;
    uint8_t *valid = NULL;
    int *pos = NULL;
    for (int pass = 0; pass < 2; pass++) {
#define TAKE(ptr, n) ROSA_ARENA_TAKE(arena, off, ptr, n)
        off = 0;
        TAKE(A.x, T * D);
        TAKE(bc.h, T * D);
        TAKE(bc.tmp, T * D);
        TAKE(A.q, T * Q);
        TAKE(A.k, T * K);
        TAKE(A.v, T * K);
        TAKE(A.att, T * Q);
        TAKE(A.lse, T * Hq);
        TAKE(A.gate, T * F);
        TAKE(A.up, T * F);
        TAKE(bc.scores, threads * 2 * T * T);
        TAKE(rope_cs, (size_t)m->n_rope * T * (size_t)hd);
        TAKE(hook_region, hook);
        for (int i = 0; i < m->n_hooks; i++) TAKE(bc.hook_scratch[i], scratch[i]);
        TAKE(pos, T);
        TAKE(valid, T);
#undef TAKE
        if (pass == 0) arena = rosa_malloc(sizeof(float) * off, "analysis activations");
        if (!arena) break;
    }
    int status = -1;
    if (!out->dims || !out->inv_freq || !out->layer_inv_freq || !out->q_norm || !out->k_norm || !out->q_band || !out->k_band ||
        !out->q_share || !out->k_share || !out->q_sumsq || !out->k_sumsq || !arena)
        goto done;
    A.x2 = A.x;
    rosa_rope_low_dims(hd, r_low, out->dims);
    memcpy(out->inv_freq, m->inv_freq, sizeof(double) * (size_t)(hd / 2));
    for (int l = 0; l < L; l++)
        memcpy(out->layer_inv_freq + (size_t)l * (hd / 2), m->inv_freq + (size_t)m->layers[l].rope * (hd / 2),
               sizeof(double) * (size_t)(hd / 2));
    for (size_t t = 0; t < T; t++) pos[t] = (int)t, valid[t] = 1;
    rosa_model_rope_tables(m, rope_cs, pos, (int)T); /* every record starts at position 0 */
    bc.rope_cs = rope_cs;
    bc.rope_rows = (int)T; /* the tables are made once for the longest record */
    bc.mask = valid;
    bc.pos = pos;
    for (int r = 0; r < n; r++) {
        int N = lens[r];
        if (N <= 0) continue;
        bc.T = bc.N = tap.N = N;
        rosa_block_embed(m, A.x, ids[r], N);
        for (int l = 0; l < L; l++) {
            rosa_block_hook_slices(hooks, m->n_hooks, l, N, hook_region, &A);
            bc.qk_only = l == L - 1; /* nothing after the last layer's Q and K is needed */
            if (rosa_block_forward(&bc, l, &A, A.x) < 0) goto done;
        }
        out->n_records++;
        out->n_tokens += N;
        if (progress) progress(user, r + 1, n, out->n_tokens);
    }
    double inv_n = 1.0 / (double)out->n_tokens;
    for (int l = 0; l < L; l++) {
        for (int w = 0; w < 2; w++) {
            int H = w ? Hkv : Hq;
            const double *s = w ? out->k_sumsq + (size_t)l * K : out->q_sumsq + (size_t)l * Q;
            double *norm = (w ? out->k_norm : out->q_norm) + (size_t)l * hd;
            double *band = (w ? out->k_band : out->q_band) + (size_t)l * (hd / 2);
            double total = 0, sel = 0;
            for (int hh = 0; hh < H; hh++) {
                const double *sh = s + (size_t)hh * hd;
                for (int j = 0; j < hd; j++) {
                    norm[j] += sqrt(sh[j] * inv_n) / H;
                    total += sh[j];
                }
                for (int j = 0; j < hd / 2; j++) band[j] += sqrt((sh[j] + sh[j + hd / 2]) * inv_n) / H;
                for (int d = 0; d < 2 * mm; d++) sel += sh[out->dims[d]];
            }
            (w ? out->k_share : out->q_share)[l] = total > 0 ? sel / total : 0.0;
        }
    }
    status = 0;
done:
    free(arena);
    if (status < 0) rosa_analysis_free(out);
    return status;
}

/* forward.c: the inference forward pass over a KV cache.
 *
 * A call runs T new slots for each of the cache's B sequences.  Slots may be
 * padding (mask 0): they are computed like any row but are never attended to,
 * and take no position, so a sequence's positions count only its real tokens. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "model/block.h"
#include "model/model.h"
#include "model/ops.h"
#include "core/log.h"
#include "core/util.h"

int rosa_kv_rows(int window, int capacity) { return window > 0 && window < capacity ? window : capacity; }

rosa_kv_cache *rosa_kv_cache_new(const rosa_model *m, int batch, int capacity) {
    const rosa_config *c = &m->cfg;
    if (batch < 1 || capacity < 1) {
        rosa_fail("kv cache: batch (%d) and capacity (%d) must be positive", batch, capacity);
        return NULL;
    }
    rosa_kv_cache *kv = rosa_calloc(1, sizeof *kv, "kv cache");
    if (!kv) return NULL;
    kv->B = batch;
    kv->cap = capacity;
    kv->L = c->num_layers;
    kv->kv_dim = c->num_kv_heads * c->head_dim;
    kv->rows = rosa_calloc((size_t)kv->L, sizeof(int), "kv cache");
    kv->off = kv->rows ? rosa_calloc((size_t)kv->L, sizeof(size_t), "kv cache") : NULL;
    kv->n_real = kv->off ? rosa_calloc((size_t)batch, sizeof(int), "kv cache") : NULL;
    if (!kv->n_real) {
        rosa_kv_cache_free(kv);
        return NULL;
    }
    size_t elems = 0, n;
    for (int l = 0; l < kv->L; l++) {
        kv->rows[l] = rosa_kv_rows(m->layers[l].window, capacity);
        kv->off[l] = elems;
        if (!rosa_mul_size((size_t)batch * (size_t)kv->rows[l], (size_t)kv->kv_dim, &n) || elems + n < elems) {
            rosa_fail("kv cache: %d x %d slots is too large", batch, capacity);
            rosa_kv_cache_free(kv);
            return NULL;
        }
        elems += n;
    }
    kv->k = rosa_calloc(elems, sizeof(float), "kv cache keys");
    kv->v = kv->k ? rosa_calloc(elems, sizeof(float), "kv cache values") : NULL;
    if (!kv->v) {
        rosa_kv_cache_free(kv);
        return NULL;
    }
    return kv;
}

void rosa_kv_cache_free(rosa_kv_cache *kv) {
    if (!kv) return;
    free(kv->k);
    free(kv->v);
    free(kv->rows);
    free(kv->off);
    free(kv->n_real);
    free(kv->scratch);
    free(kv);
}

void rosa_kv_cache_reset(rosa_kv_cache *kv) {
    kv->len = 0;
    memset(kv->n_real, 0, sizeof(int) * (size_t)kv->B);
}

int rosa_kv_cache_length(const rosa_kv_cache *kv) { return kv->len; }

/* Scratch of one call with N = B*T rows, carved from the cache's buffer by
 * one walk (with base NULL it only counts floats). */
typedef struct {
    rosa_block_acts acts;
    float *h, *tmp, *scores, *rope_cs;
    float *hook_region;  /* the hooks' per-layer state (scratch here: nothing is kept) */
    float *hook_scratch[ROSA_MAX_HOOKS];
    int *pos;      /* [N] each slot's position (0 at padding) */
    uint8_t *valid; /* [N] 1 = real slot */
    int32_t *rows; /* logits rows to compute */
} fwd_buffers;

static size_t layout(const rosa_kv_cache *kv, const rosa_model *m, int T, fwd_buffers *b, float *base) {
    const rosa_config *c = &m->cfg;
    size_t N = (size_t)kv->B * (size_t)T, D = (size_t)c->hidden_size, F = (size_t)c->intermediate_size,
           Q = (size_t)c->num_heads * (size_t)c->head_dim, K = (size_t)kv->kv_dim, off = 0;
    size_t S = (size_t)kv->len + (size_t)T, threads = (size_t)omp_get_max_threads();
    /* A prefill uses the GEMM attention (a T x T score block per thread). */
    int gemm = rosa_block_prefill_gemm(kv, T);
    size_t hook = rosa_block_hook_floats_max(m->hooks, m->n_hooks, c->num_layers, (int)N);
#define TAKE(ptr, n) ROSA_ARENA_TAKE(base, off, ptr, n)
    rosa_block_acts *A = &b->acts;
    TAKE(A->x, N * D);
    TAKE(b->h, N * D);
    /* The sandwich norms need the projection apart from the residual stream. */
    if (rosa_arch_of(c)->xnorm_names[XNORM_POST_ATTN]) TAKE(b->tmp, N * D);
    TAKE(A->q, N * Q);
    TAKE(A->k, N * K);
    TAKE(A->v, N * K);
    TAKE(A->att, N * Q);
    TAKE(A->gate, N * F);
    TAKE(A->up, N * F);
    TAKE(b->scores, gemm ? threads * 2 * (size_t)T * T : threads * S);
    TAKE(A->lse, gemm ? (size_t)T * c->num_heads : 0);
    TAKE(b->rope_cs, (size_t)m->n_rope * N * (size_t)c->head_dim);
    TAKE(b->hook_region, hook);
    for (int i = 0; i < m->n_hooks; i++)
        if (m->hooks[i].ops->scratch_floats) TAKE(b->hook_scratch[i], m->hooks[i].ops->scratch_floats(m->hooks[i].self, (int)N));
    TAKE(b->pos, N);
    TAKE(b->valid, (N + sizeof(float) - 1) / sizeof(float));
    TAKE(b->rows, N);
#undef TAKE
    A->x2 = A->x; /* the residual stream is updated in place */
    return off;
}

static int carve(rosa_kv_cache *kv, const rosa_model *m, int T, fwd_buffers *b) {
    size_t total = layout(kv, m, T, b, NULL);
    if (total > kv->scratch_size) {
        float *p = rosa_realloc(kv->scratch, total * sizeof(float), "forward scratch");
        if (!p) return -1;
        kv->scratch = p;
        kv->scratch_size = total;
    }
    memset(b, 0, sizeof *b);
    layout(kv, m, T, b, kv->scratch);
    return 0;
}

int rosa_forward(rosa_model *m, rosa_kv_cache *kv, int T, const int32_t *ids, const uint8_t *mask, float *logits,
                 int all_logits) {
    const rosa_config *c = &m->cfg;
    int B = kv->B, D = c->hidden_size, V = c->vocab_size, N = B * T;
    if (T < 1) return rosa_fail("forward: no new slots");
    if (T > kv->cap - kv->len)
        return rosa_fail("forward: %d new slots do not fit the KV cache (%d of %d used)", T, kv->len, kv->cap);
    for (int i = 0; i < N; i++)
        if (ids[i] < 0 || ids[i] >= V) return rosa_fail("forward: token id %d out of range [0, %d)", ids[i], V);

    fwd_buffers b;
    if (carve(kv, m, T, &b) < 0) return -1;

    /* Positions: each real token takes the next position of its sequence. */
    int max_pos = 0;
    for (int s = 0; s < B; s++) {
        int next = kv->n_real[s];
        for (int t = 0; t < T; t++) {
            int real = mask ? mask[s * T + t] != 0 : 1;
            b.pos[s * T + t] = real ? next : 0;
            b.valid[s * T + t] = (uint8_t)real;
            next += real;
        }
        if (next > max_pos) max_pos = next;
    }
    if (max_pos > c->max_position_embeddings && !m->warned_positions) {
        rosa_log(ROSA_LOG_WARN, "sequence length %d is past max_position_embeddings (%d); "
                        "results may be degraded", max_pos, c->max_position_embeddings);
        m->warned_positions = 1;
    }

    rosa_block_embed(m, b.acts.x, ids, N);
    rosa_model_rope_tables(m, b.rope_cs, b.pos, N);
    rosa_block_ctx bc = {.m = m, .hooks = m->hooks, .n_hooks = m->n_hooks, .B = B, .T = T, .N = N,
                         .rope_cs = b.rope_cs, .kv = kv, .mask = b.valid, .pos = b.pos, .scores = b.scores, .h = b.h, .tmp = b.tmp};
    memcpy(bc.hook_scratch, b.hook_scratch, sizeof bc.hook_scratch);
    for (int l = 0; l < c->num_layers; l++) {
        rosa_block_hook_slices(m->hooks, m->n_hooks, l, N, b.hook_region, &b.acts);
        if (rosa_block_forward(&bc, l, &b.acts, b.acts.x) < 0) return -1;
    }
    kv->len += T;
    for (int s = 0; s < B; s++)
        for (int t = 0; t < T; t++) kv->n_real[s] += mask ? mask[s * T + t] != 0 : 1;

    float *x = b.acts.x, *h = b.h;
    if (all_logits) {
        rmsnorm_forward(h, NULL, x, rosa_block_final_norm(m->hooks, m->n_hooks, m), N, D, c->rms_norm_eps);
        return rosa_weight_forward(&m->lm_head, logits, h, NULL, N, 0);
    }
    /* Only each sequence's last real slot of this call needs logits. */
    int n_rows = 0;
    for (int s = 0; s < B; s++) {
        int last = -1;
        for (int t = 0; t < T; t++)
            if (!mask || mask[s * T + t]) last = t;
        if (last < 0) continue;
        memcpy(h + (size_t)n_rows * D, x + ((size_t)s * T + last) * D, sizeof(float) * (size_t)D);
        b.rows[n_rows++] = s;
    }
    if (n_rows == 0) return 0;
    rmsnorm_forward(x, NULL, h, rosa_block_final_norm(m->hooks, m->n_hooks, m), n_rows, D, c->rms_norm_eps);
    if (n_rows == B) /* the usual case: one GEMM straight into logits */
        return rosa_weight_forward(&m->lm_head, logits, x, NULL, B, 0);
    for (int r = 0; r < n_rows; r++)
        if (rosa_weight_forward(&m->lm_head, logits + (size_t)b.rows[r] * V, x + (size_t)r * D, NULL, 1, 0) < 0)
            return -1;
    return 0;
}

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

#include "model.h"
#include "ops.h"
#include "core/util.h"
#include "core/log.h"

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
    size_t n = (size_t)kv->L * (size_t)batch * (size_t)capacity, elems;
    if (!rosa_mul_size(n, (size_t)kv->kv_dim, &elems)) {
        rosa_fail("kv cache: %d x %d slots is too large", batch, capacity);
        free(kv);
        return NULL;
    }
    kv->k = rosa_calloc(elems, sizeof(float), "kv cache keys");
    kv->v = kv->k ? rosa_calloc(elems, sizeof(float), "kv cache values") : NULL;
    kv->valid = kv->v ? rosa_calloc((size_t)batch * (size_t)capacity, 1, "kv cache mask") : NULL;
    kv->pos = kv->valid ? rosa_calloc((size_t)batch * (size_t)capacity, sizeof(int), "kv cache positions") : NULL;
    kv->n_real = kv->pos ? rosa_calloc((size_t)batch, sizeof(int), "kv cache") : NULL;
    if (!kv->n_real) {
        rosa_kv_cache_free(kv);
        return NULL;
    }
    return kv;
}

void rosa_kv_cache_free(rosa_kv_cache *kv) {
    if (!kv) return;
    free(kv->k);
    free(kv->v);
    free(kv->valid);
    free(kv->pos);
    free(kv->n_real);
    free(kv->scratch);
    free(kv);
}

void rosa_kv_cache_reset(rosa_kv_cache *kv) {
    kv->len = 0;
    memset(kv->n_real, 0, sizeof(int) * (size_t)kv->B);
}

int rosa_kv_cache_length(const rosa_kv_cache *kv) { return kv->len; }

/* A call that starts an empty cache with several slots computes attention
 * with GEMMs (attention_seq_forward), up to a bounded score block. */
static int prefill_gemm(const rosa_kv_cache *kv, int T) { return kv->len == 0 && T > 1 && T <= 2048; }

/* Scratch layout for one call with N = B*T rows. */
typedef struct {
    float *x, *h, *q, *k, *v, *att, *gate, *up, *scores, *roae_u, *roae_g, *lse, *rope_cs;
    int *pos;
    int32_t *rows; /* logits rows to compute */
} fwd_buffers;

static int carve(rosa_kv_cache *kv, const rosa_model *m, int T, fwd_buffers *b) {
    const rosa_config *c = &m->cfg;
    size_t N = (size_t)kv->B * (size_t)T, D = (size_t)c->hidden_size, F = (size_t)c->intermediate_size,
           Q = (size_t)c->num_heads * (size_t)c->head_dim, K = (size_t)kv->kv_dim;
    size_t S = (size_t)kv->len + (size_t)T, threads = (size_t)omp_get_max_threads();
    size_t R = m->roae.on ? (size_t)m->roae.rank : 0, G = m->roae.on ? (size_t)c->num_heads * m->roae.d_low : 0;
    /* A prefill uses the GEMM attention (a T x T score block per thread). */
    size_t score_floats = threads * S, lse = 0;
    if (prefill_gemm(kv, T)) {
        score_floats = threads * 2 * (size_t)T * T;
        lse = (size_t)T * c->num_heads;
    }
    size_t sizes[] = {N * D, N * D, N * Q, N * K, N * K, N * Q, N * F, N * F, score_floats, N * R, N * G, lse,
                      N * (size_t)c->head_dim, N, N};
    size_t total = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) total += (sizes[i] + 15) & ~(size_t)15;
    if (total > kv->scratch_size) {
        float *p = rosa_realloc(kv->scratch, total * sizeof(float), "forward scratch");
        if (!p) return -1;
        kv->scratch = p;
        kv->scratch_size = total;
    }
    float *p = kv->scratch;
    float **slots[] = {&b->x,      &b->h,      &b->q,      &b->k,      &b->v,      &b->att,   &b->gate,
                       &b->up,     &b->scores, &b->roae_u, &b->roae_g, &b->lse,    &b->rope_cs};
    size_t i = 0;
    for (; i < sizeof slots / sizeof slots[0]; i++) {
        *slots[i] = p;
        p += (sizes[i] + 15) & ~(size_t)15;
    }
    b->pos = (int *)p;
    p += (sizes[i++] + 15) & ~(size_t)15;
    b->rows = (int32_t *)p;
    return 0;
}

/* RoAE of layer l on b->q and b->k from the normed input b->h. */
static void roae_apply(const rosa_model *m, int l, fwd_buffers *b, int N) {
    const rosa_roae_hook *ro = &m->roae;
    const rosa_config *c = &m->cfg;
    for (int w = 0; w < 2; w++) {
        if (!ro->A[l][w]) continue;
        int H = w ? c->num_kv_heads : c->num_heads, G = H * ro->d_low;
        linear_forward(b->roae_u, b->h, ro->A[l][w], NULL, N, c->hidden_size, ro->rank, 0);
        linear_forward(b->roae_g, b->roae_u, ro->B[l][w], NULL, N, ro->rank, G, 0);
        roae_modulate_forward(w ? b->k : b->q, NULL, b->roae_g, ro->low_dims, N, H, c->head_dim, ro->d_low, ro->alpha,
                              ro->add_form);
    }
}

int rosa_forward(rosa_model *m, rosa_kv_cache *kv, int T, const int32_t *ids, const uint8_t *mask, float *logits,
                 int all_logits) {
    const rosa_config *c = &m->cfg;
    int B = kv->B, D = c->hidden_size, F = c->intermediate_size, V = c->vocab_size, hd = c->head_dim;
    int Hq = c->num_heads, Hkv = c->num_kv_heads, Q = Hq * hd, K = kv->kv_dim, N = B * T;
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
            int real = mask ? mask[s * T + t] != 0 : 1, slot = kv->len + t;
            b.pos[s * T + t] = real ? next : 0;
            kv->valid[(size_t)s * kv->cap + slot] = (uint8_t)real;
            kv->pos[(size_t)s * kv->cap + slot] = real ? next : 0;
            next += real;
        }
        if (c->sliding_window > 0 && next > c->sliding_window)
            return rosa_fail("forward: a sequence of %d tokens is longer than %s's sliding_window (%d); "
                             "sliding-window attention is not supported", next, c->architecture, c->sliding_window);
        if (next > max_pos) max_pos = next;
    }
    if (max_pos > c->max_position_embeddings && !m->warned_positions) {
        rosa_log(ROSA_LOG_WARN, "sequence length %d is past max_position_embeddings (%d); "
                        "results may be degraded", max_pos, c->max_position_embeddings);
        m->warned_positions = 1;
    }

    embedding_forward(b.x, ids, m->embed, N, D);
    rope_table(b.rope_cs, b.pos, m->inv_freq, N, hd);
    size_t layer_stride = (size_t)B * (size_t)kv->cap * (size_t)K;
    for (int l = 0; l < c->num_layers; l++) {
        const rosa_layer *L = &m->layers[l];
        rmsnorm_forward(b.h, NULL, b.x, L->attn_norm, N, D, c->rms_norm_eps);
        frozen_linear_forward(b.q, b.h, L->wq, L->packed[0], L->bq, N, D, Q, 0);
        frozen_linear_forward(b.k, b.h, L->wk, L->packed[1], L->bk, N, D, K, 0);
        frozen_linear_forward(b.v, b.h, L->wv, L->packed[2], L->bv, N, D, K, 0);
        const rosa_roae_hook *ro = &m->roae;
        if (ro->on && ro->pre_rope) roae_apply(m, l, &b, N);
        rope_apply(b.q, b.rope_cs, N, Hq, hd, 1.0f);
        rope_apply(b.k, b.rope_cs, N, Hkv, hd, 1.0f);
        if (ro->on && !ro->pre_rope) roae_apply(m, l, &b, N); /* the cache keeps the modulated K */
        float *kc = kv->k + (size_t)l * layer_stride, *vc = kv->v + (size_t)l * layer_stride;
        for (int s = 0; s < B; s++) {
            float *ks = kc + (size_t)s * kv->cap * K, *vs = vc + (size_t)s * kv->cap * K;
            memcpy(ks + (size_t)kv->len * K, b.k + (size_t)s * T * K, sizeof(float) * (size_t)T * K);
            memcpy(vs + (size_t)kv->len * K, b.v + (size_t)s * T * K, sizeof(float) * (size_t)T * K);
            if (prefill_gemm(kv, T)) /* the cache rows of this sequence are contiguous from slot 0 */
                attention_seq_forward(b.att + (size_t)s * T * Q, b.lse, b.q + (size_t)s * T * Q, ks, vs,
                                      kv->valid + (size_t)s * kv->cap, 1, T, Hq, Hkv, hd, b.scores);
            else
                attention_forward(b.att + (size_t)s * T * Q, b.q + (size_t)s * T * Q, ks, vs,
                                  kv->valid + (size_t)s * kv->cap, kv->len, T, Hq, Hkv, hd, K, b.scores);
        }
        frozen_linear_forward(b.x, b.att, L->wo, L->packed[3], L->bo, N, Q, D, 1);
        rmsnorm_forward(b.h, NULL, b.x, L->ffn_norm, N, D, c->rms_norm_eps);
        frozen_linear_forward(b.gate, b.h, L->w_gate, L->packed[4], L->b_gate, N, D, F, 0);
        frozen_linear_forward(b.up, b.h, L->w_up, L->packed[5], L->b_up, N, D, F, 0);
        swiglu_forward(b.gate, b.gate, b.up, N, F);
        frozen_linear_forward(b.x, b.gate, L->w_down, L->packed[6], L->b_down, N, F, D, 1);
    }
    if (rosa_bf16_take_error()) return -1;
    kv->len += T;
    for (int s = 0; s < B; s++)
        for (int t = 0; t < T; t++) kv->n_real[s] += mask ? mask[s * T + t] != 0 : 1;

    if (all_logits) {
        rmsnorm_forward(b.h, NULL, b.x, m->norm, N, D, c->rms_norm_eps);
        return frozen_linear_forward(logits, b.h, m->lm_head, m->lm_packed, NULL, N, D, V, 0);
    }
    /* Only each sequence's last real slot of this call needs logits. */
    int n_rows = 0;
    for (int s = 0; s < B; s++) {
        int last = -1;
        for (int t = 0; t < T; t++)
            if (!mask || mask[s * T + t]) last = t;
        if (last < 0) continue;
        memcpy(b.h + (size_t)n_rows * D, b.x + ((size_t)s * T + last) * D, sizeof(float) * (size_t)D);
        b.rows[n_rows++] = s;
    }
    if (n_rows == 0) return 0;
    rmsnorm_forward(b.x, NULL, b.h, m->norm, n_rows, D, c->rms_norm_eps);
    if (n_rows == B) { /* the usual case: one GEMM straight into logits */
        return frozen_linear_forward(logits, b.x, m->lm_head, m->lm_packed, NULL, B, D, V, 0);
    }
    for (int r = 0; r < n_rows; r++)
        if (frozen_linear_forward(logits + (size_t)b.rows[r] * V, b.x + (size_t)r * D, m->lm_head, m->lm_packed, NULL, 1,
                                  D, V, 0) < 0)
            return -1;
    return 0;
}

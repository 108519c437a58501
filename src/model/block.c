/* block.c: the decoder layer (see block.h for the equations).
 *
 * The base weights are frozen: the backward computes input gradients through
 * them, never their weight gradients.  The RMSNorm weight gradients are
 * computed (not applied) because layer selection scores layers by them. */
#include "model/block.h"

#include <math.h>
#include <string.h>

#include "core/arena.h"
#include "model/model.h"
#include "model/ops.h"
#include "core/prof.h"

/* A prefill (first call on an empty cache, several slots) runs attention
 * through GEMMs over one T x T score block per thread; above this many slots
 * that block would outgrow the scratch a decode step needs by too much. */
#define PREFILL_GEMM_MAX_T 2048

int rosa_block_prefill_gemm(const rosa_kv_cache *kv, int T) { return kv->len == 0 && T > 1 && T <= PREFILL_GEMM_MAX_T; }

/* Floats of hook i's state for layer l, rounded as the arenas carve. */
static size_t hook_floats(const rosa_hook *h, int layer, int N) {
    return h->ops->act_floats ? ROSA_ARENA_ROUND(h->ops->act_floats(h->self, layer, N)) : 0;
}

size_t rosa_block_hook_floats(const rosa_hook *hooks, int n_hooks, int layer, int N) {
    size_t n = 0;
    for (int i = 0; i < n_hooks; i++) n += hook_floats(&hooks[i], layer, N);
    return n;
}

size_t rosa_block_hook_floats_max(const rosa_hook *hooks, int n_hooks, int L, int N) {
    size_t most = 0;
    for (int l = 0; l < L; l++) {
        size_t n = rosa_block_hook_floats(hooks, n_hooks, l, N);
        if (n > most) most = n;
    }
    return most;
}

void rosa_block_hook_slices(const rosa_hook *hooks, int n_hooks, int layer, int N, float *region, rosa_block_acts *a) {
    for (int i = 0; i < n_hooks; i++) {
        a->hook[i] = region;
        region += hook_floats(&hooks[i], layer, N);
    }
}

float *rosa_block_hook_scratch(const rosa_block_ctx *c, const void *self) {
    for (int i = 0; i < c->n_hooks; i++)
        if (c->hooks[i].self == self) return c->hook_scratch[i];
    return NULL;
}

const float *rosa_block_norm(const rosa_block_ctx *c, int layer, int which) {
    for (int i = c->n_hooks - 1; i >= 0; i--) {
        const rosa_hook *h = &c->hooks[i];
        const float *w = h->ops->norm_weight ? h->ops->norm_weight(h->self, layer, which) : NULL;
        if (w) return w;
    }
    return c->m->layers[layer].norm[which];
}

const float *rosa_block_final_norm(const rosa_hook *hooks, int n_hooks, const struct rosa_model *m) {
    for (int i = n_hooks - 1; i >= 0; i--) {
        const float *w = hooks[i].ops->norm_weight ? hooks[i].ops->norm_weight(hooks[i].self, m->cfg.num_layers, 0) : NULL;
        if (w) return w;
    }
    return m->norm;
}

/* y = x W_p^T + b_p (y += with accumulate), then every hook's term. */
static int proj_forward(const rosa_block_ctx *c, int l, int p, rosa_block_acts *a, float *y, const float *x,
                        int accumulate) {
    const rosa_layer *L = &c->m->layers[l];
    const rosa_weight *w = &L->proj[p];
    int rc;
    PROF(PROF_PROJ, 2.0 * c->N * w->in * w->out, rc = rosa_weight_forward(w, y, x, L->bias[p], c->N, accumulate));
    for (int i = 0; rc == 0 && i < c->n_hooks; i++)
        if (c->hooks[i].ops->proj_forward)
            rc = c->hooks[i].ops->proj_forward(c->hooks[i].self, c, l, p, a->hook[i], y, x);
    return rc;
}

/* dx (=, or += with accumulate) from dy through proj_forward; x is its input. */
static int proj_backward(const rosa_block_ctx *c, int l, int p, rosa_block_acts *a, float *dx, int accumulate,
                         const float *dy, const float *x) {
    const rosa_weight *w = &c->m->layers[l].proj[p];
    int rc;
    PROF(PROF_PROJ, 2.0 * c->N * w->in * w->out, rc = rosa_weight_backward(w, dx, dy, c->N, accumulate));
    for (int i = 0; rc == 0 && i < c->n_hooks; i++)
        if (c->hooks[i].ops->proj_backward)
            rc = c->hooks[i].ops->proj_backward(c->hooks[i].self, c, l, p, a->hook[i], dx, dy, x);
    return rc;
}

static int qk_forward(const rosa_block_ctx *c, int l, int stage, rosa_block_acts *a, const float *h) {
    for (int i = 0; i < c->n_hooks; i++)
        if (c->hooks[i].ops->qk_forward &&
            c->hooks[i].ops->qk_forward(c->hooks[i].self, c, l, stage, a->hook[i], h, a->q, a->k) < 0)
            return -1;
    return 0;
}

static int qk_backward(const rosa_block_ctx *c, int l, int stage, rosa_block_acts *a, const float *h) {
    for (int i = c->n_hooks - 1; i >= 0; i--)
        if (c->hooks[i].ops->qk_backward &&
            c->hooks[i].ops->qk_backward(c->hooks[i].self, c, l, stage, a->hook[i], h, c->dq, c->dk, c->dh) < 0)
            return -1;
    return 0;
}

/* Attention of the T new slots of each sequence over the KV cache, then
 * this call's real keys and values into the cache's rows of layer l (only
 * the last `rows` of them on a ring).  A prefill attends over this call's
 * keys alone, which hold the whole prompt even where the ring keeps only its
 * last window: a prompt longer than the window needs no chunking, and its
 * older keys live only in the forward's activations. */
static void attention_cached(const rosa_block_ctx *c, int l, rosa_block_acts *a) {
    const rosa_config *cf = &c->m->cfg;
    rosa_kv_cache *kv = c->kv;
    int T = c->T, Hq = cf->num_heads, Hkv = cf->num_kv_heads, hd = cf->head_dim, Q = Hq * hd, K = kv->kv_dim;
    int rows = kv->rows[l], window = c->m->layers[l].window;
    for (int s = 0; s < c->B; s++) {
        float *ks = kv->k + kv->off[l] + (size_t)s * rows * K, *vs = kv->v + kv->off[l] + (size_t)s * rows * K;
        const float *k = a->k + (size_t)s * T * K, *v = a->v + (size_t)s * T * K;
        const uint8_t *valid = c->mask + (size_t)s * T;
        const int *pos = c->pos + (size_t)s * T;
        int n_old = kv->n_real[s];
        if (rosa_block_prefill_gemm(kv, T))
            attention_seq_forward(a->att + (size_t)s * T * Q, a->lse, a->q + (size_t)s * T * Q, k, v, valid, pos, 1,
                                  T, Hq, Hkv, hd, cf->attn_scale, window, c->scores);
        else
            attention_cached_forward(a->att + (size_t)s * T * Q, a->q + (size_t)s * T * Q, k, v, valid, pos, T, ks,
                                     vs, rows, n_old, Hq, Hkv, hd, cf->attn_scale, window, c->scores);
        int n_new = 0;
        for (int t = 0; t < T; t++) n_new += valid[t];
        for (int t = 0; t < T; t++) {
            if (!valid[t] || pos[t] < n_old + n_new - rows) continue; /* padding, or overwritten in this call */
            memcpy(ks + (size_t)(pos[t] % rows) * K, k + (size_t)t * K, sizeof(float) * (size_t)K);
            memcpy(vs + (size_t)(pos[t] % rows) * K, v + (size_t)t * K, sizeof(float) * (size_t)K);
        }
    }
}

void rosa_block_embed(const rosa_model *m, float *x, const int32_t *ids, int N) {
    int D = m->cfg.hidden_size;
    embedding_forward(x, ids, m->embed, N, D);
    if (!rosa_arch_of(&m->cfg)->embed_scale) return;
    /* transformers multiplies by sqrt(hidden) as a float32 tensor. */
    float scale = (float)sqrt((double)D);
    for (int64_t i = 0; i < (int64_t)N * D; i++) x[i] *= scale;
}

/* dst = base + y, where y is a projection's output: straight into dst when
 * dst is base (nothing kept), else through the scratch row block.  With a
 * post norm (xnorm index post, Gemma's sandwich), y = rmsnorm(projection):
 * the projection goes to keep (training) or the scratch, its 1/rms to rstd. */
static int residual_proj(const rosa_block_ctx *c, int l, int p, rosa_block_acts *a, float *dst, const float *base,
                         const float *x, int post, float *keep, float *rstd) {
    int D = c->m->cfg.hidden_size;
    const float *w = c->m->layers[l].xnorm[post];
    if (w) {
        float *y = keep ? keep : c->tmp;
        if (proj_forward(c, l, p, a, y, x, 0) < 0) return -1;
        PROF(PROF_NORM, 0, rmsnorm_forward(c->tmp, rstd, y, w, c->N, D, c->m->cfg.rms_norm_eps));
        PROF(PROF_OTHER, 0, if (dst != base) memcpy(dst, base, sizeof(float) * (size_t)c->N * D);
                            residual_forward(dst, c->tmp, (int64_t)c->N * D));
        return 0;
    }
    if (dst == base) return proj_forward(c, l, p, a, dst, x, 1);
    if (proj_forward(c, l, p, a, c->tmp, x, 0) < 0) return -1;
    PROF(PROF_OTHER, 0, memcpy(dst, base, sizeof(float) * (size_t)c->N * D);
                        residual_forward(dst, c->tmp, (int64_t)c->N * D));
    return 0;
}

/* act = silu(gate) * up, or gelu_tanh(gate) * up (GeGLU architectures). */
static void mlp_act_forward(const rosa_config *cf, float *act, const float *gate, const float *up, int N, int F) {
    if (rosa_arch_of(cf)->geglu)
        geglu_forward(act, gate, up, N, F);
    else
        swiglu_forward(act, gate, up, N, F);
}

/* dy[N][D] = the gradient before the post norm xnorm[post] of layer l (input
 * y, 1/rms rstd) from dx; returns dx itself when the layer has no such norm. */
static const float *post_norm_backward(const rosa_block_ctx *c, int l, int post, float *dy, const float *y,
                                       const float *rstd) {
    const float *w = c->m->layers[l].xnorm[post];
    int N = c->N, D = c->m->cfg.hidden_size;
    if (!w) return c->dx;
    memset(dy, 0, sizeof(float) * (size_t)N * D);
    rmsnorm_backward(dy, NULL, c->dx, y, w, rstd, N, D);
    return dy;
}

int rosa_block_forward(const rosa_block_ctx *c, int l, rosa_block_acts *a, float *next) {
    const rosa_config *cf = &c->m->cfg;
    int N = c->N, D = cf->hidden_size, F = cf->intermediate_size, hd = cf->head_dim, Hq = cf->num_heads,
        Hkv = cf->num_kv_heads;
    const rosa_layer *Ly = &c->m->layers[l];
    float eps = cf->rms_norm_eps, *h = c->h, *act = c->act ? c->act : a->gate;
    const float *cs = c->rope_cs + (size_t)Ly->rope * (c->rope_rows ? c->rope_rows : N) * hd;
    PROF(PROF_NORM, 0, rmsnorm_forward(h, a->rstd1, a->x, rosa_block_norm(c, l, NORM_ATTN), N, D, eps));
    /* With QK-norm the projections land in qn, kn when kept (else in place). */
    float *q = a->qn ? a->qn : a->q, *k = a->kn ? a->kn : a->k;
    if (proj_forward(c, l, PROJ_Q, a, q, h, 0) < 0 || proj_forward(c, l, PROJ_K, a, k, h, 0) < 0 ||
        proj_forward(c, l, PROJ_V, a, a->v, h, 0) < 0)
        return -1;
    /* QK-norm: one RMSNorm over each head's hd values, its weight shared by
     * the heads; K's KV heads before attention shares them across a group. */
    if (Ly->xnorm[XNORM_Q])
        PROF(PROF_NORM, 0, rmsnorm_forward(a->q, a->rstdq, q, Ly->xnorm[XNORM_Q], N * Hq, hd, eps);
                           rmsnorm_forward(a->k, a->rstdk, k, Ly->xnorm[XNORM_K], N * Hkv, hd, eps));
    if (qk_forward(c, l, HOOK_PRE_ROPE, a, h) < 0) return -1;
    PROF(PROF_ROPE, 0, rope_apply(a->q, cs, N, Hq, hd, 1.0f); rope_apply(a->k, cs, N, Hkv, hd, 1.0f));
    if (qk_forward(c, l, HOOK_POST_ROPE, a, h) < 0) return -1; /* a cache keeps the modified K */
    if (c->qk_only) return 0;
    if (c->kv)
        PROF(PROF_ATTN, 0, attention_cached(c, l, a));
    else
        PROF(PROF_ATTN, 4.0 * c->B * attention_pairs(c->T) * Hq * hd,
             attention_seq_forward(a->att, a->lse, a->q, a->k, a->v, c->mask, c->pos, c->B, c->T, Hq, Hkv, hd,
                                   cf->attn_scale, Ly->window, c->scores));
    if (residual_proj(c, l, PROJ_O, a, a->x2, a->x, a->att, XNORM_POST_ATTN, a->o, a->rstdo) < 0) return -1;
    PROF(PROF_NORM, 0, rmsnorm_forward(h, a->rstd2, a->x2, rosa_block_norm(c, l, NORM_FFN), N, D, eps));
    if (proj_forward(c, l, PROJ_GATE, a, a->gate, h, 0) < 0 || proj_forward(c, l, PROJ_UP, a, a->up, h, 0) < 0)
        return -1;
    PROF(PROF_SWIGLU, 0, mlp_act_forward(cf, act, a->gate, a->up, N, F));
    return residual_proj(c, l, PROJ_DOWN, a, next, a->x2, act, XNORM_POST_FFN, a->mo, a->rstdm);
}

int rosa_block_backward(const rosa_block_ctx *c, int l, rosa_block_acts *a) {
    const rosa_config *cf = &c->m->cfg;
    int N = c->N, D = cf->hidden_size, F = cf->intermediate_size, hd = cf->head_dim, Hq = cf->num_heads,
        Hkv = cf->num_kv_heads, K = Hkv * hd, n_norms = rosa_arch_of(cf)->n_norms;
    float *g_in = c->norm_grad ? c->norm_grad + ((size_t)l * n_norms + NORM_ATTN) * D : NULL;
    float *g_post = c->norm_grad ? c->norm_grad + ((size_t)l * n_norms + NORM_FFN) * D : NULL;
    const float *w_in = rosa_block_norm(c, l, NORM_ATTN), *w_post = rosa_block_norm(c, l, NORM_FFN);

    /* MLP: x' = x2 + [post norm](down(act(gate) * up)).  act(gate) * up is
     * rebuilt in dgate, free until the activation's backward overwrites it;
     * dh holds the gradient before the post norm until gate's backward. */
    const rosa_layer *Ly = &c->m->layers[l];
    PROF(PROF_SWIGLU, 0, mlp_act_forward(cf, c->dgate, a->gate, a->up, N, F));
    const float *dy;
    PROF(PROF_NORM, 0, dy = post_norm_backward(c, l, XNORM_POST_FFN, c->dh, a->mo, a->rstdm));
    if (proj_backward(c, l, PROJ_DOWN, a, c->dact, 0, dy, c->dgate) < 0) return -1;
    if (rosa_arch_of(cf)->geglu)
        PROF(PROF_SWIGLU, 0, geglu_backward(c->dgate, c->dup, c->dact, a->gate, a->up, N, F));
    else
        PROF(PROF_SWIGLU, 0, swiglu_backward(c->dgate, c->dup, c->dact, a->gate, a->up, N, F));
    PROF(PROF_NORM, 0, rmsnorm_apply(c->h, a->x2, a->rstd2, w_post, N, D));
    if (proj_backward(c, l, PROJ_GATE, a, c->dh, 0, c->dgate, c->h) < 0 ||
        proj_backward(c, l, PROJ_UP, a, c->dh, 1, c->dup, c->h) < 0)
        return -1;
    PROF(PROF_NORM, 0, rmsnorm_backward(c->dx, g_post, c->dh, a->x2, w_post, a->rstd2, N, D));

    /* Attention: x2 = x + [post norm](o(att(rope([qk-norm](q)), rope([qk-norm](k)), v))) */
    PROF(PROF_NORM, 0, dy = post_norm_backward(c, l, XNORM_POST_ATTN, c->dh, a->o, a->rstdo));
    if (proj_backward(c, l, PROJ_O, a, c->datt, 0, dy, a->att) < 0) return -1;
    PROF(PROF_ATTN, 10.0 * c->B * attention_pairs(c->T) * Hq * hd,
         memset(c->dk, 0, sizeof(float) * (size_t)N * K);
         memset(c->dv, 0, sizeof(float) * (size_t)N * K);
         attention_seq_backward(c->dq, c->dk, c->dv, c->datt, a->att, a->lse, a->q, a->k, a->v, c->mask, c->pos,
                                c->B, c->T, Hq, Hkv, hd, cf->attn_scale, Ly->window, c->scores));
    float *h1 = c->h;
    PROF(PROF_NORM, 0, rmsnorm_apply(h1, a->x, a->rstd1, w_in, N, D));
    memset(c->dh, 0, sizeof(float) * (size_t)N * D);
    if (qk_backward(c, l, HOOK_POST_ROPE, a, h1) < 0) return -1;
    const float *cs = c->rope_cs + (size_t)Ly->rope * (c->rope_rows ? c->rope_rows : N) * hd;
    PROF(PROF_ROPE, 0, rope_apply(c->dq, cs, N, Hq, hd, -1.0f); rope_apply(c->dk, cs, N, Hkv, hd, -1.0f));
    if (qk_backward(c, l, HOOK_PRE_ROPE, a, h1) < 0) return -1;
    /* Through QK-norm into datt and tmp (free now): the projections' gradients. */
    const float *dq = c->dq, *dk = c->dk;
    if (Ly->xnorm[XNORM_Q]) {
        PROF(PROF_NORM, 0, memset(c->datt, 0, sizeof(float) * (size_t)N * Hq * hd);
                           memset(c->tmp, 0, sizeof(float) * (size_t)N * K);
                           rmsnorm_backward(c->datt, NULL, c->dq, a->qn, Ly->xnorm[XNORM_Q], a->rstdq, N * Hq, hd);
                           rmsnorm_backward(c->tmp, NULL, c->dk, a->kn, Ly->xnorm[XNORM_K], a->rstdk, N * Hkv, hd));
        dq = c->datt;
        dk = c->tmp;
    }
    if (proj_backward(c, l, PROJ_Q, a, c->dh, 1, dq, h1) < 0 || proj_backward(c, l, PROJ_K, a, c->dh, 1, dk, h1) < 0 ||
        proj_backward(c, l, PROJ_V, a, c->dh, 1, c->dv, h1) < 0)
        return -1;
    PROF(PROF_NORM, 0, rmsnorm_backward(c->dx, g_in, c->dh, a->x, w_in, a->rstd1, N, D));
    return 0;
}

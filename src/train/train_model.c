/* train_model.c: forward with saved activations, and the hand-derived backward.
 *
 * Per layer (N = B*T rows, all row-major; h1, h2 and act are rebuilt in the
 * backward rather than kept, see layer_acts):
 *   h1 = rmsnorm(x, g_in)
 *   q, k, v = h1 Wq^T, h1 Wk^T, h1 Wv^T  (+ biases, + LoRA)     then RoPE on q, k
 *   att = causal_attention(q, k, v)                              per sequence, padding masked
 *   x2 = x + att Wo^T (+ LoRA)
 *   h2 = rmsnorm(x2, g_post)
 *   gate, up = h2 Wg^T, h2 Wu^T (+ LoRA);  act = silu(gate) * up
 *   x' = x2 + act Wd^T (+ LoRA)
 * LoRA on a projection y = x W^T adds s * (drop(x) A^T) B^T.  Base weights are
 * frozen: the backward computes input gradients through them but never their
 * weight gradients.  The RMSNorm weight gradients are computed (not applied)
 * because layer selection reads them. */
#include "train_model.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "model/ops.h"
#include "model/gemm.h"
#include "core/prof.h"
#include "core/util.h"

typedef struct {
    int D, F, Q, K, Hq, Hkv, hd, V, L, r;
} dims;

static dims get_dims(const rosa_model *m, const rosa_adapter *a) {
    const rosa_config *c = &m->cfg;
    return (dims){c->hidden_size,  c->intermediate_size, c->num_heads * c->head_dim, c->num_kv_heads * c->head_dim,
                  c->num_heads,    c->num_kv_heads,      c->head_dim,                c->vocab_size,
                  c->num_layers,   a->method == ROSA_METHOD_ROAE ? a->roae.rank : a->lora.rank};
}

static int module_in(const dims *d, int m) { return m == MOD_O ? d->Q : m == MOD_DOWN ? d->F : d->D; }

/* Whether layer l's activations need a buffer for branch j of a [L][width]
 * index table (LoRA modules, RoAE q/k): with recompute the one shared set
 * serves every layer, so it needs the branch when any layer has it. */
static int has_branch(const rosa_train_model *t, const int *idx, int width, int l, int j) {
    if (!t->recompute) return idx[l * width + j] >= 0;
    for (int k = 0; k < t->m->cfg.num_layers; k++)
        if (idx[k * width + j] >= 0) return 1;
    return 0;
}

/* Walks the arena layout: with base == NULL it only counts floats. */
static size_t layout(rosa_train_model *t, const rosa_model *m, const rosa_adapter *a, float *base) {
    dims d = get_dims(m, a);
    size_t N = (size_t)t->Bmax * (size_t)t->Tmax, off = 0;
#define TAKE(ptr, n)                                                     \
    do {                                                                 \
        if (base) (ptr) = (void *)(base + off);                          \
        off += ((size_t)(n) + 15) & ~(size_t)15;                         \
    } while (0)
    for (int l = 0; l < d.L; l++) {
        layer_acts *A = base ? &t->acts[l] : &(layer_acts){0};
        TAKE(A->x, N * d.D);
        if (t->recompute && l > 0) { /* share layer 0's set, keep an own input */
            if (base) {
                float *x = A->x;
                *A = t->acts[0];
                A->x = x;
            }
            continue;
        }
        TAKE(A->rstd1, N);
        TAKE(A->q, N * d.Q);
        TAKE(A->k, N * d.K);
        TAKE(A->v, N * d.K);
        TAKE(A->lse, N * d.Hq);
        TAKE(A->att, N * d.Q);
        TAKE(A->x2, N * d.D);
        TAKE(A->rstd2, N);
        TAKE(A->gate, N * d.F);
        TAKE(A->up, N * d.F);
        for (int mod = 0; a->method == ROSA_METHOD_LORA && mod < N_MODULES; mod++) {
            if (!has_branch(t, &a->lora_idx[0][0], N_MODULES, l, mod)) continue;
            TAKE(A->lora[mod].u, N * d.r);
            if (a->lora.dropout > 0) {
                TAKE(A->lora[mod].xd, N * module_in(&d, mod));
                TAKE(A->lora[mod].keep, N * module_in(&d, mod) / sizeof(float) + 1);
            }
        }
        for (int w = 0; a->method == ROSA_METHOD_ROAE && w < 2; w++) {
            if (!has_branch(t, &a->roae_idx[0][0], 2, l, w)) continue;
            size_t zn = N * (size_t)(w ? d.Hkv : d.Hq) * a->d_low;
            TAKE(A->roae[w].u, N * d.r);
            TAKE(A->roae_z[w], zn);
            TAKE(A->roae_low[w], zn);
            if (a->roae.dropout > 0) {
                TAKE(A->roae[w].xd, N * d.D);
                TAKE(A->roae[w].keep, N * d.D / sizeof(float) + 1);
            }
        }
    }
    TAKE(t->xf, N * d.D);
    TAKE(t->hf, N * d.D);
    TAKE(t->rstdf, N);
    TAKE(t->dx, N * d.D);
    TAKE(t->dh, N * d.D);
    TAKE(t->dq, N * d.Q);
    TAKE(t->dk, N * d.K);
    TAKE(t->dv, N * d.K);
    TAKE(t->datt, N * d.Q);
    TAKE(t->dgate, N * d.F);
    TAKE(t->dup, N * d.F);
    TAKE(t->dact, N * d.F);
    TAKE(t->h, N * d.D);
    TAKE(t->du, N * d.r);
    if (a->method == ROSA_METHOD_ROAE) TAKE(t->dz, N * (size_t)d.Hq * a->d_low);
    size_t widest = (size_t)(d.F > d.Q ? (d.F > d.D ? d.F : d.D) : (d.Q > d.D ? d.Q : d.D));
    TAKE(t->dtmp, N * widest);
    TAKE(t->scores, (size_t)omp_get_max_threads() * 2 * (size_t)t->Tmax * (size_t)t->Tmax);
    TAKE(t->pos, N);
    TAKE(t->rope_cs, N * d.hd);
    TAKE(t->target, N);
    TAKE(t->weight, N);
    TAKE(t->ce, N);
    TAKE(t->norm_grad, (size_t)d.L * 2 * d.D);
#undef TAKE
    return off;
}

size_t rosa_train_model_bytes(const rosa_model *m, const rosa_adapter *a, int Bmax, int Tmax, int recompute) {
    rosa_train_model t = {.m = m, .Bmax = Bmax, .Tmax = Tmax, .recompute = recompute};
    return layout(&t, m, a, NULL) * sizeof(float);
}

rosa_train_model *rosa_train_model_new(const rosa_model *m, rosa_adapter *a, int Bmax, int Tmax, int recompute) {
    if (Bmax < 1 || Tmax < 1) {
        rosa_fail("training batch %d x %d must be positive", Bmax, Tmax);
        return NULL;
    }
    rosa_train_model *t = rosa_calloc(1, sizeof *t, "training state");
    if (!t) return NULL;
    t->m = m;
    t->a = a;
    t->Bmax = Bmax;
    t->Tmax = Tmax;
    t->recompute = recompute;
    t->acts = rosa_calloc((size_t)m->cfg.num_layers, sizeof(layer_acts), "activations");
    t->layer_rng = rosa_calloc((size_t)m->cfg.num_layers, sizeof(rosa_rng), "dropout state");
    t->arena_floats = layout(t, m, a, NULL);
    t->arena = t->acts && t->layer_rng ? rosa_calloc(t->arena_floats, sizeof(float), "activations") : NULL;
    if (!t->arena) {
        rosa_train_model_free(t);
        return NULL;
    }
    layout(t, m, a, t->arena);
    return t;
}

void rosa_train_model_free(rosa_train_model *t) {
    if (!t) return;
    free(t->arena);
    free(t->acts);
    free(t->layer_rng);
    free(t);
}

/* -------------------------------------------------- low-rank branches */

static const float *param(const rosa_adapter *a, int idx) { return a->w + a->params[idx].offset; }
static float *param_grad(const rosa_adapter *a, int idx) { return a->g + a->params[idx].offset; }

/* out[N][od] (=, or += with accumulate) s * (drop(x) A^T) B^T, with A [r][in],
 * B [od][r]; inverted dropout with probability p (one mask per branch, as
 * torch.nn.Dropout) when drop is not NULL. */
static void branch_forward(branch_acts *ba, float *out, int accumulate, const float *x, const float *A, const float *B,
                           float s, int N, int in, int r, int od, float p, rosa_rng *drop) {
    const float *xd = x;
    if (p > 0) {
        int64_t n = (int64_t)N * in;
        float scale = 1.0f / (1.0f - p);
        for (int64_t i = 0; i < n; i++) {
            ba->keep[i] = drop ? rosa_rng_uniform(drop) >= p : 1; /* evaluation: identity */
            ba->xd[i] = ba->keep[i] ? x[i] * (drop ? scale : 1.0f) : 0.0f;
        }
        xd = ba->xd;
    }
    linear_forward(ba->u, xd, A, NULL, N, in, r, 0);
    rosa_gemm('N', 'T', N, od, r, s, ba->u, r, B, r, accumulate ? 1.0f : 0.0f, out,
                od);
}

/* Backward of branch_forward: dx[N][in] += d/dx; dA, dB (may be NULL: no
 * weight gradients, for a frozen layer) accumulate. */
static void branch_backward(rosa_train_model *t, const branch_acts *ba, float *dx, const float *dout, const float *x,
                            const float *A, const float *B, float *dA, float *dB, float s, int N, int in, int r, int od,
                            float p) {
    const float *xd = p > 0 ? ba->xd : x;
    /* dB += s dout^T u;  du = s dout B;  dA += du^T xd;  dx += du A (through the mask). */
    if (dB) rosa_gemm('T', 'N', od, r, N, s, dout, od, ba->u, r, 1.0f, dB, r);
    rosa_gemm('N', 'N', N, r, od, s, dout, od, B, r, 0.0f, t->du, r);
    if (dA) rosa_gemm('T', 'N', r, in, N, 1.0f, t->du, r, xd, in, 1.0f, dA, in);
    if (p > 0) {
        float scale = 1.0f / (1.0f - p);
        rosa_gemm('N', 'N', N, in, r, 1.0f, t->du, r, A, in, 0.0f, t->dtmp, in);
        int64_t n = (int64_t)N * in;
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < n; i++)
            if (ba->keep[i]) dx[i] += t->dtmp[i] * scale;
    } else {
        rosa_gemm('N', 'N', N, in, r, 1.0f, t->du, r, A, in, 1.0f, dx, in);
    }
}

static int layer_active(const rosa_train_model *t, int l) { return !t->active || t->active[l]; }

/* y[N][out] = x W^T + b, plus the LoRA branch when module m of layer l has one. */
static void proj_forward(rosa_train_model *t, int l, int m, float *y, const float *x, const float *W, const float *b,
                         int N, int in, int out, rosa_rng *drop) {
    PROF(PROF_PROJ, 2.0 * N * in * out, frozen_linear_forward(y, x, W, t->m->layers[l].packed[m], b, N, in, out, 0));
    const rosa_adapter *a = t->a;
    int idx = a->method == ROSA_METHOD_LORA ? a->lora_idx[l][m] : -1;
    if (idx < 0) return;
    int r = a->lora.rank;
    PROF(PROF_ADAPTER, 2.0 * N * r * (in + out),
         branch_forward(&t->acts[l].lora[m], y, 1, x, param(a, idx), param(a, idx + 1), a->scaling, N, in, r, out,
                        a->lora.dropout, drop));
}

/* dx[N][in] (=, or += with accumulate) from dy[N][out] through y = x W^T + LoRA;
 * adds the LoRA weight gradients of an active layer.  x is the module input. */
static void proj_backward(rosa_train_model *t, int l, int m, float *dx, int accumulate, const float *dy,
                          const float *x, const float *W, int N, int in, int out) {
    PROF(PROF_PROJ, 2.0 * N * in * out,
         frozen_linear_backward(dx, dy, W, t->m->layers[l].packed[m], N, in, out, accumulate));
    const rosa_adapter *a = t->a;
    int idx = a->method == ROSA_METHOD_LORA ? a->lora_idx[l][m] : -1;
    if (idx < 0) return;
    int act = layer_active(t, l), r = a->lora.rank;
    PROF(PROF_ADAPTER, (act ? 4.0 : 2.0) * N * r * (in + out),
         branch_backward(t, &t->acts[l].lora[m], dx, dy, x, param(a, idx), param(a, idx + 1),
                         act ? param_grad(a, idx) : NULL, act ? param_grad(a, idx + 1) : NULL, a->scaling, N, in, r,
                         out, a->lora.dropout));
}

/* ---------------------------------------------------------------- RoAE */

/* RoAE on q (w = 0) or k (w = 1) of layer l: z [N][H][hd] modulated from h1. */
static void roae_forward(rosa_train_model *t, int l, int w, float *z, const float *h1, int N, rosa_rng *drop) {
    const rosa_adapter *a = t->a;
    int idx = a->roae_idx[l][w];
    if (idx < 0) return;
    dims d = get_dims(t->m, a);
    int H = w ? d.Hkv : d.Hq;
    layer_acts *A = &t->acts[l];
    double t0 = rosa_prof_now();
    branch_forward(&A->roae[w], A->roae_z[w], 0, h1, param(a, idx), param(a, idx + 1), 1.0f, N, d.D, a->roae.rank,
                   H * a->d_low, a->roae.dropout, drop);
    roae_modulate_forward(z, A->roae_low[w], A->roae_z[w], a->low_dims, N, H, d.hd, a->d_low, a->roae.alpha, a->roae.add_form);
    rosa_prof_add(PROF_ADAPTER, t0, 2.0 * N * a->roae.rank * (d.D + H * a->d_low));
}

/* Its backward: dz in place, dh [N][D] += the branch's input gradient. */
static void roae_backward(rosa_train_model *t, int l, int w, float *dz, float *dh, const float *h1, int N) {
    const rosa_adapter *a = t->a;
    int idx = a->roae_idx[l][w];
    if (idx < 0) return;
    dims d = get_dims(t->m, a);
    int H = w ? d.Hkv : d.Hq, act = layer_active(t, l);
    layer_acts *A = &t->acts[l];
    double t0 = rosa_prof_now();
    roae_modulate_backward(dz, t->dz, A->roae_low[w], A->roae_z[w], a->low_dims, N, H, d.hd, a->d_low, a->roae.alpha,
                           a->roae.add_form);
    branch_backward(t, &A->roae[w], dh, t->dz, h1, param(a, idx), param(a, idx + 1), act ? param_grad(a, idx) : NULL,
                    act ? param_grad(a, idx + 1) : NULL, 1.0f, N, d.D, a->roae.rank, H * a->d_low, a->roae.dropout);
    rosa_prof_add(PROF_ADAPTER, t0, (act ? 4.0 : 2.0) * N * a->roae.rank * (d.D + H * a->d_low));
}

/* The RMSNorm weights of layer l: the adapter's copies when it trains them. */
static const float *norm_weight(const rosa_train_model *t, int l, int post) {
    const rosa_adapter *a = t->a;
    if (a->method == ROSA_METHOD_ROAE && a->norm_idx[l] >= 0) return param(a, a->norm_idx[l] + post);
    return post ? t->m->layers[l].ffn_norm : t->m->layers[l].attn_norm;
}

/* ------------------------------------------------------------- forward */

static void layer_forward(rosa_train_model *t, int l, const rosa_batch *b, rosa_rng *drop) {
    const rosa_model *m = t->m;
    const rosa_layer *W = &m->layers[l];
    dims d = get_dims(m, t->a);
    int B = b->B, T = b->T, N = B * T;
    float eps = m->cfg.rms_norm_eps;
    layer_acts *A = &t->acts[l];
    int roae = t->a->method == ROSA_METHOD_ROAE, pre = roae && t->a->roae.pre_rope;
    float *h = t->h, *act = t->dact; /* scratch: kept by neither pass */
    double att_flops = 4.0 * B * attention_pairs(T) * d.Q;
    PROF(PROF_NORM, 0, rmsnorm_forward(h, A->rstd1, A->x, norm_weight(t, l, 0), N, d.D, eps));
    proj_forward(t, l, MOD_Q, A->q, h, W->wq, W->bq, N, d.D, d.Q, drop);
    proj_forward(t, l, MOD_K, A->k, h, W->wk, W->bk, N, d.D, d.K, drop);
    proj_forward(t, l, MOD_V, A->v, h, W->wv, W->bv, N, d.D, d.K, drop);
    if (pre) {
        roae_forward(t, l, 0, A->q, h, N, drop);
        roae_forward(t, l, 1, A->k, h, N, drop);
    }
    PROF(PROF_ROPE, 0, rope_apply(A->q, t->rope_cs, N, d.Hq, d.hd, 1.0f);
                       rope_apply(A->k, t->rope_cs, N, d.Hkv, d.hd, 1.0f));
    if (roae && !pre) {
        roae_forward(t, l, 0, A->q, h, N, drop);
        roae_forward(t, l, 1, A->k, h, N, drop);
    }
    PROF(PROF_ATTN, att_flops,
         attention_seq_forward(A->att, A->lse, A->q, A->k, A->v, b->mask, B, T, d.Hq, d.Hkv, d.hd, t->scores));
    /* o_proj output goes to a scratch buffer, then into the residual. */
    proj_forward(t, l, MOD_O, t->dtmp, A->att, W->wo, W->bo, N, d.Q, d.D, drop);
    PROF(PROF_OTHER, 0, memcpy(A->x2, A->x, sizeof(float) * (size_t)N * d.D);
                        residual_forward(A->x2, t->dtmp, (int64_t)N * d.D));
    PROF(PROF_NORM, 0, rmsnorm_forward(h, A->rstd2, A->x2, norm_weight(t, l, 1), N, d.D, eps));
    proj_forward(t, l, MOD_GATE, A->gate, h, W->w_gate, W->b_gate, N, d.D, d.F, drop);
    proj_forward(t, l, MOD_UP, A->up, h, W->w_up, W->b_up, N, d.D, d.F, drop);
    PROF(PROF_SWIGLU, 0, swiglu_forward(act, A->gate, A->up, N, d.F));
    proj_forward(t, l, MOD_DOWN, t->dtmp, act, W->w_down, W->b_down, N, d.F, d.D, drop);
    float *next = l + 1 < d.L ? t->acts[l + 1].x : t->xf;
    PROF(PROF_OTHER, 0, memcpy(next, A->x2, sizeof(float) * (size_t)N * d.D);
                        residual_forward(next, t->dtmp, (int64_t)N * d.D));
}

/* ------------------------------------------------------------ backward */

/* On entry t->dx holds d loss / d (output of layer l); on exit, d / d (input). */
static void layer_backward(rosa_train_model *t, int l, const rosa_batch *b) {
    const rosa_model *m = t->m;
    const rosa_layer *W = &m->layers[l];
    dims d = get_dims(m, t->a);
    int T = b->T, N = b->B * T;
    layer_acts *A = &t->acts[l];
    float *g_in = t->norm_grad + (size_t)l * 2 * d.D, *g_post = g_in + d.D;

    /* MLP: x' = x2 + down(silu(gate) * up).  silu(gate) * up is rebuilt in
     * dgate, free until swiglu_backward overwrites it. */
    PROF(PROF_SWIGLU, 0, swiglu_forward(t->dgate, A->gate, A->up, N, d.F));
    proj_backward(t, l, MOD_DOWN, t->dact, 0, t->dx, t->dgate, W->w_down, N, d.F, d.D);
    PROF(PROF_SWIGLU, 0, swiglu_backward(t->dgate, t->dup, t->dact, A->gate, A->up, N, d.F));
    PROF(PROF_NORM, 0, rmsnorm_apply(t->h, A->x2, A->rstd2, norm_weight(t, l, 1), N, d.D));
    proj_backward(t, l, MOD_GATE, t->dh, 0, t->dgate, t->h, W->w_gate, N, d.D, d.F);
    proj_backward(t, l, MOD_UP, t->dh, 1, t->dup, t->h, W->w_up, N, d.D, d.F);
    PROF(PROF_NORM, 0, rmsnorm_backward(t->dx, g_post, t->dh, A->x2, norm_weight(t, l, 1), A->rstd2, N, d.D));

    /* Attention: x2 = x + o(att(rope(q), rope(k), v)) */
    proj_backward(t, l, MOD_O, t->datt, 0, t->dx, A->att, W->wo, N, d.Q, d.D);
    PROF(PROF_ATTN, 10.0 * b->B * attention_pairs(T) * d.Q,
         memset(t->dk, 0, sizeof(float) * (size_t)N * d.K);
         memset(t->dv, 0, sizeof(float) * (size_t)N * d.K);
         attention_seq_backward(t->dq, t->dk, t->dv, t->datt, A->att, A->lse, A->q, A->k, A->v, b->mask, b->B, T, d.Hq,
                                d.Hkv, d.hd, t->scores));
    int roae = t->a->method == ROSA_METHOD_ROAE, pre = roae && t->a->roae.pre_rope;
    float *h1 = t->h;
    PROF(PROF_NORM, 0, rmsnorm_apply(h1, A->x, A->rstd1, norm_weight(t, l, 0), N, d.D));
    memset(t->dh, 0, sizeof(float) * (size_t)N * d.D);
    if (roae && !pre) {
        roae_backward(t, l, 0, t->dq, t->dh, h1, N);
        roae_backward(t, l, 1, t->dk, t->dh, h1, N);
    }
    PROF(PROF_ROPE, 0, rope_apply(t->dq, t->rope_cs, N, d.Hq, d.hd, -1.0f);
                       rope_apply(t->dk, t->rope_cs, N, d.Hkv, d.hd, -1.0f));
    if (pre) {
        roae_backward(t, l, 0, t->dq, t->dh, h1, N);
        roae_backward(t, l, 1, t->dk, t->dh, h1, N);
    }
    proj_backward(t, l, MOD_Q, t->dh, 1, t->dq, h1, W->wq, N, d.D, d.Q);
    proj_backward(t, l, MOD_K, t->dh, 1, t->dk, h1, W->wk, N, d.D, d.K);
    proj_backward(t, l, MOD_V, t->dh, 1, t->dv, h1, W->wv, N, d.D, d.K);
    PROF(PROF_NORM, 0, rmsnorm_backward(t->dx, g_in, t->dh, A->x, norm_weight(t, l, 0), A->rstd1, N, d.D));
}

int rosa_train_microbatch(rosa_train_model *t, const rosa_batch *b, float token_weight, int backward, int stop_layer,
                          rosa_rng *dropout_rng, double *loss_sum, int *n_tokens, float *ce_out) {
    const rosa_model *m = t->m;
    dims d = get_dims(m, t->a);
    int B = b->B, T = b->T, N = B * T;
    if (B > t->Bmax || T > t->Tmax)
        return rosa_fail("micro-batch %d x %d exceeds the allocated %d x %d", B, T, t->Bmax, t->Tmax);
    for (int i = 0; i < N; i++)
        if (b->ids[i] < 0 || b->ids[i] >= d.V) return rosa_fail("token id %d out of range [0, %d)", b->ids[i], d.V);
    /* Positions count real tokens; targets are the next token's label. */
    int count = 0;
    for (int s = 0; s < B; s++) {
        int p = 0;
        for (int k = 0; k < T; k++) {
            int n = s * T + k;
            t->pos[n] = b->mask[n] ? p++ : 0;
            int32_t lab = k + 1 < T ? b->labels[n + 1] : ROSA_IGNORE_INDEX;
            t->target[n] = lab >= 0 && b->mask[n] ? lab : -1;
            if (t->target[n] >= d.V) return rosa_fail("label %d out of range [0, %d)", t->target[n], d.V);
            t->weight[n] = token_weight;
            count += t->target[n] >= 0;
        }
    }
    *n_tokens = count;
    PROF(PROF_ROPE, 0, rope_table(t->rope_cs, t->pos, m->inv_freq, N, d.hd));
    PROF(PROF_OTHER, 0, embedding_forward(t->acts[0].x, b->ids, m->embed, N, d.D));
    for (int l = 0; l < d.L; l++) {
        if (dropout_rng) t->layer_rng[l] = *dropout_rng;
        layer_forward(t, l, b, dropout_rng);
    }
    rmsnorm_forward(t->hf, t->rstdf, t->xf, m->norm, N, d.D, m->cfg.rms_norm_eps);
    double loss = lm_head_loss(backward ? t->dh : NULL, t->ce, t->hf, m->lm_head, m->lm_packed, t->target, t->weight, N, d.D, d.V);
    if (rosa_bf16_take_error()) return -1;
    *loss_sum = loss;
    if (ce_out) memcpy(ce_out, t->ce, sizeof(float) * (size_t)N);
    /* A non-finite loss is the caller's to report; its gradient is useless. */
    if (!backward || count == 0 || !isfinite(loss)) return 0;
    memset(t->dx, 0, sizeof(float) * (size_t)N * d.D);
    rmsnorm_backward(t->dx, NULL, t->dh, t->xf, m->norm, t->rstdf, N, d.D);
    if (stop_layer < 0) stop_layer = 0;
    for (int l = d.L - 1; l >= stop_layer; l--) {
        /* The shared set still holds the last layer's activations. */
        if (t->recompute && l < d.L - 1) {
            rosa_rng r = t->layer_rng[l];
            layer_forward(t, l, b, dropout_rng ? &r : NULL);
        }
        layer_backward(t, l, b);
    }
    return rosa_bf16_take_error() ? -1 : 0;
}

/* test_grad_ops.c: finite-difference checks of every backward op.
 *
 * Each check builds a scalar L = sum(r * op(inputs)) with a fixed random r,
 * takes the analytic gradient from the *_backward function, and compares it
 * with central differences (float32, step 1e-3).  A sign error or a missing
 * term gives an error of order 1; round-off stays near 1e-3. */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "model/ops.h"
#include "test.h"

static void fill(float *x, int n, rosa_rng *r, float scale) {
    for (int i = 0; i < n; i++) x[i] = (rosa_rng_uniform(r) * 2.0f - 1.0f) * scale;
}

static double dotd(const float *a, const float *b, int n) {
    double s = 0.0;
    for (int i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

/* The op under test, as a scalar function of its inputs. */
typedef double (*scalar_fn)(void *ctx);

/* Compares grad[i] with the central difference of f in x[i] for every i.
 * Returns the worst error relative to max(max|numeric|, 0.1). */
static double gradcheck(scalar_fn f, void *ctx, float *x, const float *grad, int n) {
    const float eps = 1e-3f;
    double worst = 0.0, scale = 0.1;
    double *num = malloc(sizeof(double) * (size_t)n);
    for (int i = 0; i < n; i++) {
        float keep = x[i];
        x[i] = keep + eps;
        double up = f(ctx);
        x[i] = keep - eps;
        double down = f(ctx);
        x[i] = keep;
        num[i] = (up - down) / (2.0 * eps);
        if (fabs(num[i]) > scale) scale = fabs(num[i]);
    }
    for (int i = 0; i < n; i++) {
        double e = fabs(num[i] - grad[i]);
        if (e > worst) worst = e;
    }
    free(num);
    return worst / scale;
}

#define GRAD_TOL 1e-2

/* ---- RMSNorm */
typedef struct {
    float *x, *w, *r, *out, *rstd;
    int N, D;
} norm_ctx;

static double norm_f(void *p) {
    norm_ctx *c = p;
    rmsnorm_forward(c->out, c->rstd, c->x, c->w, c->N, c->D, 1e-5f);
    return dotd(c->out, c->r, c->N * c->D);
}

TEST(grad_rmsnorm) {
    int N = 3, D = 16;
    rosa_rng rng;
    rosa_rng_seed(&rng, 1);
    float x[48], w[16], r[48], out[48], rstd[3], dx[48] = {0}, dw[16] = {0};
    fill(x, N * D, &rng, 1.0f);
    fill(w, D, &rng, 1.0f);
    fill(r, N * D, &rng, 1.0f);
    norm_ctx c = {x, w, r, out, rstd, N, D};
    norm_f(&c);
    rmsnorm_backward(dx, dw, r, x, w, rstd, N, D);
    double ex = gradcheck(norm_f, &c, x, dx, N * D), ew = gradcheck(norm_f, &c, w, dw, D);
    CHECK_MSG(ex < GRAD_TOL, "dx error %g", ex);
    CHECK_MSG(ew < GRAD_TOL, "dw error %g", ew);
}

/* ---- RoPE */
typedef struct {
    float *x, *tmp, *r, *cs;
    int N, H, hd;
} rope_ctx;

static double rope_f(void *p) {
    rope_ctx *c = p;
    memcpy(c->tmp, c->x, sizeof(float) * (size_t)(c->N * c->H * c->hd));
    rope_apply(c->tmp, c->cs, c->N, c->H, c->hd, 1.0f);
    return dotd(c->tmp, c->r, c->N * c->H * c->hd);
}

TEST(grad_rope) {
    int N = 4, H = 2, hd = 8, n = N * H * hd;
    rosa_rng rng;
    rosa_rng_seed(&rng, 2);
    float x[64], tmp[64], r[64], dx[64], cs[32];
    int pos[4] = {0, 3, 17, 250};
    double inv[4];
    for (int j = 0; j < 4; j++) inv[j] = pow(10000.0, -2.0 * j / hd);
    fill(x, n, &rng, 1.0f);
    fill(r, n, &rng, 1.0f);
    rope_table(cs, pos, inv, N, hd);
    rope_ctx c = {x, tmp, r, cs, N, H, hd};
    memcpy(dx, r, sizeof dx);
    rope_apply(dx, cs, N, H, hd, -1.0f);
    double e = gradcheck(rope_f, &c, x, dx, n);
    CHECK_MSG(e < GRAD_TOL, "dx error %g", e);
}

/* ---- SwiGLU */
typedef struct {
    float *g, *u, *out, *r;
    int n;
} swiglu_ctx;

static double swiglu_f(void *p) {
    swiglu_ctx *c = p;
    swiglu_forward(c->out, c->g, c->u, 1, c->n);
    return dotd(c->out, c->r, c->n);
}

TEST(grad_swiglu) {
    int n = 40;
    rosa_rng rng;
    rosa_rng_seed(&rng, 3);
    float g[40], u[40], out[40], r[40], dg[40], du[40];
    fill(g, n, &rng, 4.0f);
    fill(u, n, &rng, 1.0f);
    fill(r, n, &rng, 1.0f);
    swiglu_ctx c = {g, u, out, r, n};
    swiglu_backward(dg, du, r, g, u, 1, n);
    double eg = gradcheck(swiglu_f, &c, g, dg, n), eu = gradcheck(swiglu_f, &c, u, du, n);
    CHECK_MSG(eg < GRAD_TOL, "dgate error %g", eg);
    CHECK_MSG(eu < GRAD_TOL, "dup error %g", eu);
}

/* ---- Linear (input gradient; frozen weights get none) */
typedef struct {
    float *x, *W, *b, *out, *r;
    int N, IN, OUT;
} linear_ctx;

static double linear_f(void *p) {
    linear_ctx *c = p;
    linear_forward(c->out, c->x, c->W, c->b, c->N, c->IN, c->OUT, 0);
    return dotd(c->out, c->r, c->N * c->OUT);
}

TEST(grad_linear_input) {
    int N = 3, IN = 8, OUT = 5;
    rosa_rng rng;
    rosa_rng_seed(&rng, 4);
    float x[24], W[40], b[5], out[15], r[15], dx[24];
    fill(x, N * IN, &rng, 1.0f);
    fill(W, IN * OUT, &rng, 1.0f);
    fill(b, OUT, &rng, 1.0f);
    fill(r, N * OUT, &rng, 1.0f);
    linear_ctx c = {x, W, b, out, r, N, IN, OUT};
    linear_backward_input(dx, r, W, N, IN, OUT, 0);
    double e = gradcheck(linear_f, &c, x, dx, N * IN);
    CHECK_MSG(e < GRAD_TOL, "dx error %g", e);
}

/* ---- Attention */
typedef struct {
    float *q, *k, *v, *out, *lse, *r, *scratch;
    uint8_t *valid;
    int *pos;
    int B, T, Hq, Hkv, hd, window;
    float scale;
} att_ctx;

static double att_f(void *p) {
    att_ctx *c = p;
    attention_seq_forward(c->out, c->lse, c->q, c->k, c->v, c->valid, c->pos, c->B, c->T, c->Hq, c->Hkv, c->hd,
                          c->scale, c->window, c->scratch);
    return dotd(c->out, c->r, c->B * c->T * c->Hq * c->hd);
}

/* Gradients by finite differences, a row that sees nothing, and the KV-cache
 * path of inference (an independent implementation) on the same inputs.
 * Positions count the valid slots, as the model's do; window 0 = none. */
static void check_attention_w(int B, int T, int Hq, int Hkv, int hd, const uint8_t *valid, int window, float scale,
                              uint64_t seed) {
    int NQ = B * T * Hq * hd, NK = B * T * Hkv * hd;
    rosa_rng rng;
    rosa_rng_seed(&rng, seed);
    float *q = malloc(sizeof(float) * NQ), *k = malloc(sizeof(float) * NK), *v = malloc(sizeof(float) * NK),
          *out = malloc(sizeof(float) * NQ), *lse = malloc(sizeof(float) * B * T * Hq), *r = malloc(sizeof(float) * NQ),
          *dq = malloc(sizeof(float) * NQ), *dk = calloc((size_t)NK, sizeof(float)), *dv = calloc((size_t)NK, sizeof(float)),
          *out2 = malloc(sizeof(float) * NQ);
    float *scratch = malloc(sizeof(float) * (size_t)omp_get_max_threads() * 2 * T * T);
    fill(q, NQ, &rng, 1.5f);
    fill(k, NK, &rng, 1.5f);
    fill(v, NK, &rng, 1.0f);
    fill(r, NQ, &rng, 1.0f);
    int *pos = malloc(sizeof(int) * (size_t)B * T);
    for (int b = 0; b < B; b++)
        for (int t = 0, p = 0; t < T; t++) pos[b * T + t] = valid[b * T + t] ? p++ : 0;
    att_ctx c = {q, k, v, out, lse, r, scratch, (uint8_t *)valid, pos, B, T, Hq, Hkv, hd, window, scale};
    att_f(&c);
    attention_seq_backward(dq, dk, dv, r, out, lse, q, k, v, valid, pos, B, T, Hq, Hkv, hd, scale, window, scratch);
    double eq = gradcheck(att_f, &c, q, dq, NQ), ek = gradcheck(att_f, &c, k, dk, NK), ev = gradcheck(att_f, &c, v, dv, NK);
    CHECK_MSG(eq < GRAD_TOL, "T %d: dq error %g", T, eq);
    CHECK_MSG(ek < GRAD_TOL, "T %d: dk error %g", T, ek);
    CHECK_MSG(ev < GRAD_TOL, "T %d: dv error %g", T, ev);
    /* Row 0 of sequence 0 sees no valid key (valid[0] == 0): zero output, zero gradient. */
    for (int i = 0; i < Hq * hd; i++) CHECK(out[i] == 0.0f && dq[i] == 0.0f);
    att_f(&c); /* out as of the unperturbed inputs (gradcheck's last call moved one) */
    for (int b = 0; b < B; b++)
        attention_cached_forward(out2 + b * T * Hq * hd, q + b * T * Hq * hd, k + b * T * Hkv * hd,
                                 v + b * T * Hkv * hd, valid + b * T, pos + b * T, T, NULL, NULL, 1, 0, Hq, Hkv, hd,
                                 scale, window, scratch);
    double worst = 0.0; /* over real query rows (inference gives padding rows zeros) */
    for (int i = 0; i < NQ; i++)
        if (valid[i / (Hq * hd)]) worst = fmax(worst, fabs(out[i] - out2[i]));
    /* float sums over up to T keys in different orders: about T ulps apart */
    CHECK_MSG(worst < 1e-6 + 1e-7 * T, "T %d: the two attention paths differ by %g", T, worst);
    free(q), free(k), free(v), free(out), free(lse), free(r), free(dq), free(dk), free(dv), free(out2), free(scratch);
    free(pos);
}

static void check_attention(int B, int T, int Hq, int Hkv, int hd, const uint8_t *valid, uint64_t seed) {
    check_attention_w(B, T, Hq, Hkv, hd, valid, 0, 1.0f / sqrtf((float)hd), seed);
}

/* GQA, causal, two sequences; one has a padding slot in the middle and a
 * leading padded row that sees nothing. */
TEST(grad_attention_gqa_with_masks) {
    const uint8_t valid[12] = {0, 1, 1, 0, 1, 1, 1, 1, 1, 1, 0, 0};
    check_attention(2, 6, 4, 2, 4, valid, 5);
}

/* Longer than one block of query rows (64): three blocks, the last partial,
 * padding inside the first and the second. */
TEST(grad_attention_across_causal_blocks) {
    uint8_t valid[150];
    for (int t = 0; t < 150; t++) valid[t] = t != 0 && t != 70 && t != 71;
    check_attention(1, 150, 2, 1, 4, valid, 8);
}

/* Sliding window (Gemma 3's local layers, Mistral): each query sees its last
 * `window` positions, counted over real tokens across a padding slot; with
 * a scale other than hd^-0.5 (query_pre_attn_scalar). */
TEST(grad_attention_sliding_window) {
    const uint8_t valid[16] = {0, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0};
    check_attention_w(2, 8, 4, 2, 4, valid, 3, 0.3f, 9);
    uint8_t longer[150];
    for (int t = 0; t < 150; t++) longer[t] = t != 0 && t != 70;
    check_attention_w(1, 150, 2, 1, 4, longer, 40, 0.5f, 10);
}

/* A key outside the window has no effect on the output; inside it does. */
TEST(attention_window_excludes_old_keys) {
    int T = 6, hd = 4, W = 3;
    rosa_rng rng;
    rosa_rng_seed(&rng, 11);
    float q[24], k[24], v[24], out[24], out2[24], lse[6], scratch[2 * 36 * 64];
    uint8_t valid[6] = {1, 1, 1, 1, 1, 1};
    int pos[6] = {0, 1, 2, 3, 4, 5};
    fill(q, 24, &rng, 1.0f), fill(k, 24, &rng, 1.0f), fill(v, 24, &rng, 1.0f);
    CHECK(omp_get_max_threads() <= 64);
    attention_seq_forward(out, lse, q, k, v, valid, pos, 1, T, 1, 1, hd, 0.5f, W, scratch);
    v[2 * hd] += 1.0f; /* slot 2: outside the window of slot 5 (5 - 2 = W), inside that of slot 4 */
    attention_seq_forward(out2, lse, q, k, v, valid, pos, 1, T, 1, 1, hd, 0.5f, W, scratch);
    for (int i = 0; i < hd; i++) CHECK(out[5 * hd + i] == out2[5 * hd + i]);
    CHECK(out[4 * hd] != out2[4 * hd]);
    attention_seq_forward(out, lse, q, k, v, valid, pos, 1, T, 1, 1, hd, 0.5f, 0, scratch);
    v[2 * hd] -= 1.0f;
    attention_seq_forward(out2, lse, q, k, v, valid, pos, 1, T, 1, 1, hd, 0.5f, 0, scratch);
    CHECK(out[5 * hd] != out2[5 * hd]); /* no window: every earlier key counts */
}

/* ---- QK-norm: RMSNorm over each head's hd values, one weight for all heads
 * (rmsnorm over N*H rows of hd), then RoPE: the composite Qwen3 and Gemma 3
 * apply to q and k. */
typedef struct {
    float *x, *w, *r, *out, *rstd, *cs;
    int N, H, hd;
} qkn_ctx;

static double qkn_f(void *p) {
    qkn_ctx *c = p;
    rmsnorm_forward(c->out, c->rstd, c->x, c->w, c->N * c->H, c->hd, 1e-6f);
    rope_apply(c->out, c->cs, c->N, c->H, c->hd, 1.0f);
    return dotd(c->out, c->r, c->N * c->H * c->hd);
}

TEST(grad_qk_norm) {
    enum { N = 3, H = 2, HD = 8 };
    rosa_rng rng;
    rosa_rng_seed(&rng, 12);
    float x[N * H * HD], w[HD], r[N * H * HD], out[N * H * HD], rstd[N * H], cs[N * HD], dx[N * H * HD] = {0},
          dw[HD] = {0}, dy[N * H * HD];
    double inv[HD / 2];
    int pos[N] = {0, 3, 7};
    for (int j = 0; j < HD / 2; j++) inv[j] = pow(100.0, -2.0 * j / HD);
    rope_table(cs, pos, inv, N, HD);
    fill(x, N * H * HD, &rng, 1.0f);
    fill(w, HD, &rng, 1.0f);
    fill(r, N * H * HD, &rng, 1.0f);
    qkn_ctx c = {x, w, r, out, rstd, cs, N, H, HD};
    qkn_f(&c);
    /* Backward: RoPE's inverse rotation, then the per-head norm. */
    memcpy(dy, r, sizeof dy);
    rope_apply(dy, cs, N, H, HD, -1.0f);
    rmsnorm_backward(dx, dw, dy, x, w, rstd, N * H, HD);
    double ex = gradcheck(qkn_f, &c, x, dx, N * H * HD), ew = gradcheck(qkn_f, &c, w, dw, HD);
    CHECK_MSG(ex < GRAD_TOL, "dx error %g", ex);
    CHECK_MSG(ew < GRAD_TOL, "dw error %g", ew);
}

/* ---- GeGLU: gelu_tanh(gate) * up (Gemma's MLP) */
typedef struct {
    float *g, *u, *r, *out;
    int N, F;
} geglu_ctx;

static double geglu_f(void *p) {
    geglu_ctx *c = p;
    geglu_forward(c->out, c->g, c->u, c->N, c->F);
    return dotd(c->out, c->r, c->N * c->F);
}

TEST(grad_geglu) {
    enum { N = 3, F = 10 };
    rosa_rng rng;
    rosa_rng_seed(&rng, 13);
    float g[N * F], u[N * F], r[N * F], out[N * F], dg[N * F], du[N * F];
    fill(g, N * F, &rng, 3.0f);
    fill(u, N * F, &rng, 1.0f);
    fill(r, N * F, &rng, 1.0f);
    geglu_ctx c = {g, u, r, out, N, F};
    geglu_backward(dg, du, r, g, u, N, F);
    double eg = gradcheck(geglu_f, &c, g, dg, N * F), eu = gradcheck(geglu_f, &c, u, du, N * F);
    CHECK_MSG(eg < GRAD_TOL, "dgate error %g", eg);
    CHECK_MSG(eu < GRAD_TOL, "dup error %g", eu);
    /* gelu_tanh(1) = 0.841191990... (PyTorch's tanh approximation) */
    float one = 1.0f, o;
    geglu_forward(&o, &one, &one, 1, 1);
    CHECK_MSG(fabsf(o - 0.8411920f) < 1e-6f, "gelu_tanh(1) = %.9g", o);
}

/* ---- LM head + cross-entropy */
typedef struct {
    float *h, *W, *weight;
    int32_t *target;
    int N, D, V;
} ce_ctx;

static double ce_f(void *p) {
    ce_ctx *c = p;
    rosa_weight w = {.f32 = c->W, .out = c->V, .in = c->D};
    double loss = NAN;
    lm_head_loss(&loss, NULL, NULL, c->h, &w, c->target, c->weight, c->N, c->D, c->V);
    return loss;
}

TEST(grad_lm_head_cross_entropy) {
    int N = 300, D = 6, V = 11; /* N > one chunk of 256 rows */
    rosa_rng rng;
    rosa_rng_seed(&rng, 6);
    float *h = malloc(sizeof(float) * N * D), *dh = malloc(sizeof(float) * N * D), W[66], weight[300];
    int32_t target[300];
    float ce[300];
    fill(h, N * D, &rng, 1.0f);
    fill(W, V * D, &rng, 1.0f);
    for (int n = 0; n < N; n++) {
        target[n] = n % 5 == 0 ? -1 : (int32_t)(rosa_rng_next(&rng) % (uint64_t)V);
        weight[n] = 0.5f + rosa_rng_uniform(&rng);
    }
    ce_ctx c = {h, W, weight, target, N, D, V};
    rosa_weight w = {.f32 = W, .out = V, .in = D};
    double total = NAN;
    REQUIRE(lm_head_loss(&total, dh, ce, h, &w, target, weight, N, D, V) == 0);
    double again = 0.0;
    for (int n = 0; n < N; n++) again += target[n] >= 0 ? weight[n] * ce[n] : 0.0;
    CHECK(fabs(total - again) < 1e-4 * fabs(total));
    CHECK(ce[0] == 0.0f && ce[1] > 0.0f);
    double e = gradcheck(ce_f, &c, h, dh, N * D);
    CHECK_MSG(e < GRAD_TOL, "dh error %g", e);
    free(h);
    free(dh);
}

/* exp_vec, the vectorizable exponential of softmax and SiLU: within 2 ulp of
 * exp over the whole float range it returns normal numbers for, within one
 * denormal step below, and IEEE at the edges. */
TEST(exp_vec_is_within_2_ulp) {
    double worst = 0.0;
    for (int i = 0; i <= 2000000; i++) {
        float x = -87.3f + 176.0f * (float)i / 2000000.0f;
        double e = exp((double)x);
        if (e > 3.4e38) continue;
        float got = exp_vec(x), ef = (float)e;
        double ulp = (double)nextafterf(ef, INFINITY) - (double)ef;
        double err = fabs((double)got - e) / ulp;
        if (err > worst) worst = err;
    }
    CHECK_MSG(worst <= 2.0, "exp_vec is %g ulp off", worst);
    for (float x = -103.0f; x < -87.3f; x += 0.01f) /* denormal results */
        CHECK(fabs((double)exp_vec(x) - exp((double)x)) <= 1.5e-45);
    CHECK(exp_vec(0.0f) == 1.0f);
    CHECK(exp_vec(-200.0f) == 0.0f);
    CHECK(isinf(exp_vec(89.0f)) && isinf(exp_vec(INFINITY)));
    CHECK(exp_vec(-INFINITY) == 0.0f);
    CHECK(isnan(exp_vec(NAN)));
}

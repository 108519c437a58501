/* ops.h: the forward and backward ops of a Llama decoder, as plain functions over raw fp32
 * pointers.  Row-major throughout; N is the number of token rows. */
#ifndef ROSA_OPS_H
#define ROSA_OPS_H

#include <math.h>
#include <stdint.h>

#include "model/weight.h"

/* exp(x) for float x, within 2 ulp of the exact value (normal results; a
 * denormal result is within 1e-45), inf above 88.72, NaN for NaN.  Unlike
 * libm's expf it inlines and vectorizes: softmax and SiLU loops call it.
 * Cephes' method: x = n ln2 + r, |r| <= ln2/2, a degree-6 polynomial for
 * exp(r), and 2^n applied as two halves so denormal results stay exact. */
static inline float exp_vec(float x) {
    /* Clamped so that n below fits an int; a NaN becomes -104 here (comparisons
     * with NaN are false), then NaN again at the end. */
    float xc = x > -104.0f ? x : -104.0f;
    xc = xc < 88.8f ? xc : 88.8f;
    /* Round to nearest by the 1.5 * 2^23 trick: floorf would not vectorize. */
    float n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = xc - n * 0.693359375f;
    r = r + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    float y = p * r * r + r + 1.0f;
    int32_t ni = (int32_t)n, n1 = ni >> 1, n2 = ni - n1;
    union {
        int32_t i;
        float f;
    } s1 = {.i = (n1 + 127) * (1 << 23)}, s2 = {.i = (n2 + 127) * (1 << 23)};
    y = y * s1.f * s2.f;
    y = x > 88.72283f ? (float)INFINITY : y;
    return x != x ? x : y;
}

/* out[N][D] = embed[ids[n]][D] */
void embedding_forward(float *out, const int32_t *ids, const float *embed, int N, int D);

/* out[N][D] = x / sqrt(mean(x^2) + eps) * w   (rstd[N] saved when not NULL) */
void rmsnorm_forward(float *out, float *rstd, const float *x, const float *w, int N, int D, float eps);
/* out[N][D] = x * rstd * w with a saved rstd: rmsnorm_forward's output, bit for bit. */
void rmsnorm_apply(float *out, const float *x, const float *rstd, const float *w, int N, int D);

/* out[N][OUT] = x[N][IN] W[OUT][IN]^T + b[OUT]  (b may be NULL); accumulate adds to out. */
void linear_forward(float *out, const float *x, const float *W, const float *b, int N, int IN, int OUT,
                    int accumulate);

/* RoPE, rotate_half layout, from a table made once per pass and shared by
 * every layer: cs[N][hd] holds cos(pos[n] * inv_freq[j]) at j and the sine at
 * hd/2 + j.  rope_apply rotates x[N][H][hd] in place, each pair (j, j + hd/2)
 * by the angle (sign 1) or, for a gradient, by its opposite (sign -1). */
void rope_table(float *cs, const int *pos, const double *inv_freq, int N, int hd);
void rope_apply(float *x, const float *cs, int N, int H, int hd, float sign);

/* out[N][F] = silu(gate) * up */
void swiglu_forward(float *out, const float *gate, const float *up, int N, int F);
/* out[N][F] = gelu_tanh(gate) * up (Gemma's MLP) */
void geglu_forward(float *out, const float *gate, const float *up, int N, int F);

/* Causal attention of the T new slots of one sequence over its cached keys
 * and this call's (inference).
 *   q     [T][Hq][hd]     this call's queries (RoPE applied)
 *   k, v  [T][Hkv*hd]     this call's keys (RoPE applied) and values
 *   valid [T], pos [T]    1 = real slot; the real slots' positions n_old, n_old + 1, ...
 *   ck, cv [rows][Hkv*hd] the cached keys and values of positions [0, n_old),
 *                         position p in row p % rows: all of them (window 0),
 *                         or at least the last window - 1 (a ring)
 *   out   [T][Hq][hd]
 * A real query at position p sees the keys of positions in (p - window, p]
 * (window 0: [0, p]): the cached ones and this call's real slots up to its
 * own (transformers' causal and sliding-window masks); a padding query gets
 * zeros.  Scores are scale * q.k.  Query head h uses KV head h / (Hq / Hkv).
 *   scratch [omp_get_max_threads()][n_old + T]   one score row per thread */
void attention_cached_forward(float *out, const float *q, const float *k, const float *v, const uint8_t *valid,
                              const int *pos, int T, const float *ck, const float *cv, int rows, int n_old, int Hq,
                              int Hkv, int hd, float scale, int window, float *scratch);

/* Query-key pairs the causal attention of one T-token sequence computes per
 * head (block-causal: the diagonal blocks in full, nothing above them), for
 * FLOP counts: the products take 4 * pairs * hd FLOPs forward. */
double attention_pairs(int T);

/* Causal attention over B whole sequences through GEMMs (training, where the
 * backward needs the log-sum-exp).  Per sequence b (row offset b*T):
 *   q [T][Hq][hd], k, v [T][Hkv][hd], valid [T], pos [T]  ->  out [T][Hq][hd], lse [T][Hq]
 * where slot t sees the real slots s <= t with pos[t] - pos[s] < window (all
 * when window is 0; pos may then be NULL), scores scale * q.k, query head h
 * uses KV head h / (Hq / Hkv), and a row with no visible key gets zeros.
 *   scratch [omp_get_max_threads()][2][T][T] */
void attention_seq_forward(float *out, float *lse, const float *q, const float *k, const float *v,
                           const uint8_t *valid, const int *pos, int B, int T, int Hq, int Hkv, int hd, float scale,
                           int window, float *scratch);

/* Its backward: recomputes the probabilities from q, k and lse (no T x T
 * storage between the passes), O(T^2 hd) per head.  Writes dq and
 * accumulates into dk, dv (zero them first).  Same scratch. */
void attention_seq_backward(float *dq, float *dk, float *dv, const float *dout, const float *out, const float *lse,
                            const float *q, const float *k, const float *v, const uint8_t *valid, const int *pos,
                            int B, int T, int Hq, int Hkv, int hd, float scale, int window, float *scratch);

/* dx[N][D] += d(rmsnorm)/dx . dout;  dw[D] += sum_n dout * x * rstd  (dw may be NULL) */
void rmsnorm_backward(float *dx, float *dw, const float *dout, const float *x, const float *w, const float *rstd,
                      int N, int D);

/* dx[N][IN] (+)= dout[N][OUT] W[OUT][IN]   (the input gradient of linear_forward) */
void linear_backward_input(float *dx, const float *dout, const float *W, int N, int IN, int OUT, int accumulate);

/* dgate, dup [N][F] from dout of swiglu_forward. */
void swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate, const float *up, int N, int F);
/* dgate, dup [N][F] from dout of geglu_forward. */
void geglu_backward(float *dgate, float *dup, const float *dout, const float *gate, const float *up, int N, int F);

/* Cross-entropy of rows of h [N][D] through the LM head W [V][D], in chunks so
 * that the [N][V] logits are never all alive.  Row n has target[n] (negative
 * = no loss) and weight[n]; sets *loss = sum_n weight[n] * CE_n, and when dh is not
 * NULL writes dh[N][D] = d(sum)/dh.  ce (may be NULL) receives CE_n (0 where
 * no target).  Returns 0, or -1 (out of memory, a failed BF16 product). */
/* Rows of logits lm_head_loss computes at once for vocabulary V (the memory plan counts them). */
int lm_chunk_rows(int V);
int lm_head_loss(double *loss, float *dh, float *ce, const float *h, const rosa_weight *W, const int32_t *target,
                 const float *weight, int N, int D, int V);

/* y[N][D] += x[N][D] */
void residual_forward(float *y, const float *x, int64_t n);

#endif

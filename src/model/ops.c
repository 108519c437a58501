/* ops.c: forward and backward ops.  GEMMs go to rosa_gemm (gemm.h: oneDNN, or
 * OpenBLAS with ROSA_GEMM=openblas), which runs single-threaded inside a parallel
 * region; the rest is OpenMP over rows, so GEMM and OpenMP threads never multiply. */
#include "ops.h"

#include "core/prof.h"
#include "gemm.h"
#include "core/util.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

void embedding_forward(float *out, const int32_t *ids, const float *embed, int N, int D) {
    for (int n = 0; n < N; n++) memcpy(out + (int64_t)n * D, embed + (int64_t)ids[n] * D, sizeof(float) * (size_t)D);
}

void rmsnorm_forward(float *out, float *rstd, const float *x, const float *w, int N, int D, float eps) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *xr = x + (int64_t)n * D;
        float *o = out + (int64_t)n * D;
        float ss = 0.0f;
        for (int i = 0; i < D; i++) ss += xr[i] * xr[i];
        float r = 1.0f / sqrtf(ss / (float)D + eps);
        if (rstd) rstd[n] = r;
        for (int i = 0; i < D; i++) o[i] = (xr[i] * r) * w[i];
    }
}

void rmsnorm_apply(float *out, const float *x, const float *rstd, const float *w, int N, int D) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *xr = x + (int64_t)n * D;
        float *o = out + (int64_t)n * D, r = rstd[n];
        for (int i = 0; i < D; i++) o[i] = (xr[i] * r) * w[i];
    }
}

void linear_forward(float *out, const float *x, const float *W, const float *b, int N, int IN, int OUT,
                    int accumulate) {
    rosa_gemm('N', 'T', N, OUT, IN, 1.0f, x, IN, W, IN, accumulate ? 1.0f : 0.0f, out, OUT);
    if (b) {
#pragma omp parallel for schedule(static)
        for (int n = 0; n < N; n++)
            for (int o = 0; o < OUT; o++) out[(int64_t)n * OUT + o] += b[o];
    }
}

/* Turns the rotary pairs (j, j + hd/2) of the H heads of one row by the angles
 * whose cosines and sines are c[j], s[j], or by their opposites (sign -1). */
static inline void rotate_row(float *x, const float *c, const float *s, int H, int hd, float sign) {
    int half = hd / 2;
    for (int h = 0; h < H; h++) {
        float *v = x + (int64_t)h * hd;
        for (int j = 0; j < half; j++) {
            float x1 = v[j], x2 = v[j + half], sn = sign * s[j];
            v[j] = x1 * c[j] - x2 * sn;
            v[j + half] = x2 * c[j] + x1 * sn;
        }
    }
}

void rope_table(float *cs, const int *pos, const double *inv_freq, int N, int hd) {
    int half = hd / 2;
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++)
        for (int j = 0; j < half; j++) {
            double angle = (double)pos[n] * inv_freq[j];
            cs[(int64_t)n * hd + j] = (float)cos(angle);
            cs[(int64_t)n * hd + half + j] = (float)sin(angle);
        }
}

void rope_apply(float *x, const float *cs, int N, int H, int hd, float sign) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++)
        rotate_row(x + (int64_t)n * H * hd, cs + (int64_t)n * hd, cs + (int64_t)n * hd + hd / 2, H, hd, sign);
}

static float silu(float x) { return x / (1.0f + exp_vec(-x)); }

void swiglu_forward(float *out, const float *gate, const float *up, int N, int F) {
    int64_t n = (int64_t)N * F;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) out[i] = silu(gate[i]) * up[i];
}

/* Whether query slot t sees key slot s <= t: a real key, and within the
 * window (positions pos[t] - pos[s] < window) when there is one. */
static inline int att_visible(const uint8_t *valid, const int *pos, int window, int s, int t) {
    return valid[s] && (window <= 0 || pos[t] - pos[s] < window);
}

/* The tanh approximation of GELU (PyTorch's gelu(approximate="tanh")). */
#define GELU_K 0.7978845608028654f /* sqrt(2 / pi) */
static inline float gelu_tanh(float x) { return 0.5f * x * (1.0f + tanhf(GELU_K * (x + 0.044715f * x * x * x))); }

void geglu_forward(float *out, const float *gate, const float *up, int N, int F) {
    int64_t n = (int64_t)N * F;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) out[i] = gelu_tanh(gate[i]) * up[i];
}

void geglu_backward(float *dgate, float *dup, const float *dout, const float *gate, const float *up, int N, int F) {
    int64_t n = (int64_t)N * F;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        float g = gate[i], th = tanhf(GELU_K * (g + 0.044715f * g * g * g));
        float dgelu = 0.5f * (1.0f + th) + 0.5f * g * (1.0f - th * th) * GELU_K * (1.0f + 3.0f * 0.044715f * g * g);
        dup[i] = dout[i] * 0.5f * g * (1.0f + th);
        dgate[i] = dout[i] * up[i] * dgelu;
    }
}

void attention_cached_forward(float *out, const float *q, const float *k, const float *v, const uint8_t *valid,
                              const int *pos, int T, const float *ck, const float *cv, int rows, int n_old, int Hq,
                              int Hkv, int hd, float scale, int window, float *scratch) {
    int group = Hq / Hkv, K = Hkv * hd;
#pragma omp parallel
    {
        float *scores = scratch + (int64_t)omp_get_thread_num() * (n_old + T);
        /* Interleaved: later query slots see more keys. */
#pragma omp for collapse(2) schedule(static, 1)
        for (int t = 0; t < T; t++) {
            for (int h = 0; h < Hq; h++) {
                const float *qv = q + ((int64_t)t * Hq + h) * hd;
                float *o = out + ((int64_t)t * Hq + h) * hd;
                memset(o, 0, sizeof(float) * (size_t)hd);
                if (!valid[t]) continue; /* padding: nothing is read from it */
                /* Keys in position order: the cached positions [lo, n_old),
                 * then this call's real slots up to t within the window
                 * (the order of the full-length cache, so the same sums). */
                int kvh = h / group, p = pos[t], lo = window > 0 && p - window + 1 > 0 ? p - window + 1 : 0;
                int n_c = n_old > lo ? n_old - lo : 0;
                float mx = -INFINITY;
                for (int j = 0; j < n_c + t + 1; j++) {
                    const float *kv;
                    if (j < n_c)
                        kv = ck + (int64_t)((lo + j) % rows) * K + (int64_t)kvh * hd;
                    else if (att_visible(valid, pos, window, j - n_c, t))
                        kv = k + (int64_t)(j - n_c) * K + (int64_t)kvh * hd;
                    else
                        continue;
                    float dot = 0.0f;
                    for (int i = 0; i < hd; i++) dot += qv[i] * kv[i];
                    scores[j] = dot * scale;
                    if (scores[j] > mx) mx = scores[j];
                }
                float sum = 0.0f;
                for (int j = 0; j < n_c + t + 1; j++) {
                    if (j >= n_c && !att_visible(valid, pos, window, j - n_c, t)) continue;
                    scores[j] = exp_vec(scores[j] - mx);
                    sum += scores[j];
                }
                float inv = 1.0f / sum;
                for (int j = 0; j < n_c + t + 1; j++) {
                    const float *vv;
                    if (j < n_c)
                        vv = cv + (int64_t)((lo + j) % rows) * K + (int64_t)kvh * hd;
                    else if (att_visible(valid, pos, window, j - n_c, t))
                        vv = v + (int64_t)(j - n_c) * K + (int64_t)kvh * hd;
                    else
                        continue;
                    float pr = scores[j] * inv;
                    for (int i = 0; i < hd; i++) o[i] += pr * vv[i];
                }
            }
        }
    }
}

void residual_forward(float *y, const float *x, int64_t n) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) y[i] += x[i];
}

/* Causal attention works in blocks of ATT_BLOCK query rows: the block of rows
 * [r0, r1) sees keys [0, r1) only, so the products skip the masked upper
 * triangle beyond the diagonal blocks (about 3/8 of the work at T = 256). */
#define ATT_BLOCK 64

/* The end of the block of query rows that starts at r0. */
static inline int att_block_end(int r0, int T) { return r0 + ATT_BLOCK < T ? r0 + ATT_BLOCK : T; }

double attention_pairs(int T) {
    double n = 0.0;
    for (int r0 = 0; r0 < T; r0 += ATT_BLOCK) {
        int r1 = att_block_end(r0, T);
        n += (double)(r1 - r0) * r1;
    }
    return n;
}

/* S[r0..r1)[k0..r1) = scale * q_h k_g^T, row stride T, for one sequence, head
 * h of KV group g (the rest of S is left alone). */
static void attention_scores(float *S, const float *q, const float *k, int T, int r0, int r1, int k0, int Hq, int Hkv,
                             int hd, int h, int g, float scale) {
    rosa_gemm('N', 'T', r1 - r0, r1 - k0, hd, scale, q + (int64_t)r0 * Hq * hd + (int64_t)h * hd, Hq * hd,
              k + (int64_t)k0 * Hkv * hd + (int64_t)g * hd, Hkv * hd, 0.0f, S + (int64_t)r0 * T + k0, T);
}

/* The first key slot any query row of [r0, r1) sees (0 without a window):
 * with one, the scores of the keys before it are never computed. */
static int att_first_key(const uint8_t *valid, const int *pos, int window, int r0, int r1) {
    if (window <= 0) return 0;
    int k0 = r0;
    for (int t = r0; t < r1; t++)
        for (int s = 0; s < k0; s++)
            if (att_visible(valid, pos, window, s, t)) {
                k0 = s;
                break;
            }
    return k0;
}

void attention_seq_forward(float *out, float *lse, const float *q, const float *k, const float *v,
                           const uint8_t *valid, const int *pos, int B, int T, int Hq, int Hkv, int hd, float scale,
                           int window, float *scratch) {
    int group = Hq / Hkv, Q = Hq * hd, K = Hkv * hd;
#pragma omp parallel for schedule(dynamic, 1)
    for (int task = 0; task < B * Hq; task++) {
        int b = task / Hq, h = task % Hq, g = h / group;
        float *P = scratch + (int64_t)omp_get_thread_num() * 2 * T * T;
        const float *qb = q + (int64_t)b * T * Q, *kb = k + (int64_t)b * T * K, *vb = v + (int64_t)b * T * K;
        const uint8_t *vm = valid + (int64_t)b * T;
        const int *pb = pos ? pos + (int64_t)b * T : NULL;
        float *lb = lse + (int64_t)b * T * Hq;
        for (int r0 = 0; r0 < T; r0 += ATT_BLOCK) {
            int r1 = att_block_end(r0, T), k0 = att_first_key(vm, pb, window, r0, r1); /* keys [k0, r1) */
            attention_scores(P, qb, kb, T, r0, r1, k0, Hq, Hkv, hd, h, g, scale);
            for (int t = r0; t < r1; t++) {
                float *row = P + (int64_t)t * T, mx = -INFINITY;
                for (int s = k0; s <= t; s++)
                    if (att_visible(vm, pb, window, s, t) && row[s] > mx) mx = row[s];
                if (mx == -INFINITY) { /* nothing visible: zero output */
                    memset(row + k0, 0, sizeof(float) * (size_t)(r1 - k0));
                    lb[(int64_t)t * Hq + h] = -INFINITY;
                    continue;
                }
                for (int s = k0; s < r1; s++)
                    row[s] = s <= t && att_visible(vm, pb, window, s, t) ? exp_vec(row[s] - mx) : 0.0f;
                float sum = 0.0f;
                for (int s = k0; s < r1; s++) sum += row[s];
                float inv = 1.0f / sum;
                for (int s = k0; s <= t; s++) row[s] *= inv;
                lb[(int64_t)t * Hq + h] = mx + logf(sum);
            }
            rosa_gemm('N', 'N', r1 - r0, hd, r1 - k0, 1.0f, P + (int64_t)r0 * T + k0, T, vb + (int64_t)k0 * K + (int64_t)g * hd,
                      K, 0.0f, out + ((int64_t)b * T + r0) * Q + (int64_t)h * hd, Q);
        }
    }
}

void attention_seq_backward(float *dq, float *dk, float *dv, const float *dout, const float *out, const float *lse,
                            const float *q, const float *k, const float *v, const uint8_t *valid, const int *pos,
                            int B, int T, int Hq, int Hkv, int hd, float scale, int window, float *scratch) {
    int group = Hq / Hkv, Q = Hq * hd, K = Hkv * hd;
    /* One task per (sequence, KV head): its dk/dv rows have a single writer. */
#pragma omp parallel for schedule(dynamic, 1)
    for (int task = 0; task < B * Hkv; task++) {
        int b = task / Hkv, g = task % Hkv;
        float *P = scratch + (int64_t)omp_get_thread_num() * 2 * T * T, *dP = P + (int64_t)T * T;
        const float *qb = q + (int64_t)b * T * Q, *kb = k + (int64_t)b * T * K, *vb = v + (int64_t)b * T * K,
                    *ob = out + (int64_t)b * T * Q, *dob = dout + (int64_t)b * T * Q;
        float *dkb = dk + (int64_t)b * T * K + (int64_t)g * hd, *dvb = dv + (int64_t)b * T * K + (int64_t)g * hd;
        const uint8_t *vm = valid + (int64_t)b * T;
        const int *pb = pos ? pos + (int64_t)b * T : NULL;
        const float *lb = lse + (int64_t)b * T * Hq;
        for (int h = g * group; h < (g + 1) * group; h++) {
            for (int r0 = 0; r0 < T; r0 += ATT_BLOCK) {
                int r1 = att_block_end(r0, T), rows = r1 - r0, k0 = att_first_key(vm, pb, window, r0, r1), nk = r1 - k0;
                const float *qr = qb + (int64_t)r0 * Q + (int64_t)h * hd, *dor = dob + (int64_t)r0 * Q + (int64_t)h * hd;
                float *Pr = P + (int64_t)r0 * T + k0, *dPr = dP + (int64_t)r0 * T + k0;
                attention_scores(P, qb, kb, T, r0, r1, k0, Hq, Hkv, hd, h, g, scale);
                /* dP = dout_h v_g^T */
                rosa_gemm('N', 'T', rows, nk, hd, 1.0f, dor, Q, vb + (int64_t)k0 * K + (int64_t)g * hd, K, 0.0f, dPr, T);
                for (int t = r0; t < r1; t++) {
                    float *p = P + (int64_t)t * T, *dp = dP + (int64_t)t * T, l = lb[(int64_t)t * Hq + h];
                    const float *o = ob + (int64_t)t * Q + (int64_t)h * hd, *d = dob + (int64_t)t * Q + (int64_t)h * hd;
                    float delta = 0.0f; /* sum_s p_s dp_s = dout . out */
                    for (int i = 0; i < hd; i++) delta += d[i] * o[i];
                    for (int s = k0; s < r1; s++) {
                        float ps = s <= t && att_visible(vm, pb, window, s, t) && l != -INFINITY ? exp_vec(p[s] - l) : 0.0f;
                        p[s] = ps;
                        dp[s] = ps * (dp[s] - delta) * scale; /* dS, pre-scaled for the q.k product */
                    }
                }
                /* dq_h = dS k_g;  dk_g += dS^T q_h;  dv_g += P^T dout_h  (keys [k0, r1)) */
                rosa_gemm('N', 'N', rows, hd, nk, 1.0f, dPr, T, kb + (int64_t)k0 * K + (int64_t)g * hd, K, 0.0f,
                          dq + ((int64_t)b * T + r0) * Q + (int64_t)h * hd, Q);
                rosa_gemm('T', 'N', nk, hd, rows, 1.0f, dPr, T, qr, Q, 1.0f, dkb + (int64_t)k0 * K, K);
                rosa_gemm('T', 'N', nk, hd, rows, 1.0f, Pr, T, dor, Q, 1.0f, dvb + (int64_t)k0 * K, K);
            }
        }
    }
}

void rmsnorm_backward(float *dx, float *dw, const float *dout, const float *x, const float *w, const float *rstd,
                      int N, int D) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *xr = x + (int64_t)n * D, *dy = dout + (int64_t)n * D;
        float *dxr = dx + (int64_t)n * D, r = rstd[n];
        float dot = 0.0f; /* sum_j dy_j w_j x_j */
        for (int i = 0; i < D; i++) dot += dy[i] * w[i] * xr[i];
        float c = dot * r * r * r / (float)D;
        for (int i = 0; i < D; i++) dxr[i] += dy[i] * w[i] * r - xr[i] * c;
    }
    if (dw) {
        /* Summed over rows in a fixed order, so the result is deterministic. */
#pragma omp parallel for schedule(static)
        for (int i = 0; i < D; i++) {
            float acc = 0.0f;
            for (int n = 0; n < N; n++) acc += dout[(int64_t)n * D + i] * x[(int64_t)n * D + i] * rstd[n];
            dw[i] += acc;
        }
    }
}

void linear_backward_input(float *dx, const float *dout, const float *W, int N, int IN, int OUT, int accumulate) {
    rosa_gemm('N', 'N', N, IN, OUT, 1.0f, dout, OUT, W, IN, accumulate ? 1.0f : 0.0f, dx, IN);
}

void swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate, const float *up, int N, int F) {
    int64_t n = (int64_t)N * F;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        float g = gate[i], sig = 1.0f / (1.0f + exp_vec(-g));
        dup[i] = dout[i] * g * sig;
        dgate[i] = dout[i] * up[i] * sig * (1.0f + g * (1.0f - sig));
    }
}

/* Rows per chunk of the LM head: about 64 MiB of logits alive at once, in
 * multiples of 64 rows, and at least 256 rows: below that the GEMMs of a
 * large vocabulary lose a fifth of their speed (measured, docs/performance.md). */
int lm_chunk_rows(int V) {
    int rows = (1 << 24) / V / 64 * 64;
    return rows < 256 ? 256 : rows > 1024 ? 1024 : rows;
}

int lm_head_loss(double *loss, float *dh, float *ce, const float *h, const rosa_weight *W, const int32_t *target,
                 const float *weight, int N, int D, int V) {
    int chunk = lm_chunk_rows(V);
    float *logits = rosa_malloc(sizeof(float) * (size_t)chunk * (size_t)V, "LM head logits");
    double *row_loss = rosa_malloc(sizeof(double) * (size_t)chunk, "LM head losses");
    double total = 0.0;
    if (!logits || !row_loss) {
        free(logits);
        free(row_loss);
        return -1;
    }
    for (int n0 = 0; n0 < N; n0 += chunk) {
        int rows = N - n0 < chunk ? N - n0 : chunk;
        /* Skip chunks without any target: no loss, zero gradient. */
        int any = 0;
        for (int r = 0; r < rows; r++) any |= target[n0 + r] >= 0;
        if (!any) {
            if (dh) memset(dh + (int64_t)n0 * D, 0, sizeof(float) * (size_t)rows * (size_t)D);
            for (int r = 0; ce && r < rows; r++) ce[n0 + r] = 0.0f;
            continue;
        }
        double t0 = rosa_prof_now();
        int rc = rosa_weight_forward(W, logits, h + (int64_t)n0 * D, NULL, rows, 0);
        rosa_prof_add(PROF_HEAD, t0, 2.0 * rows * V * D);
        if (rc < 0) {
            free(logits);
            free(row_loss);
            return -1;
        }
        t0 = rosa_prof_now();
#pragma omp parallel for schedule(static)
        for (int r = 0; r < rows; r++) {
            row_loss[r] = 0.0;
            float *row = logits + (int64_t)r * V;
            int32_t tg = target[n0 + r];
            if (tg < 0) {
                if (ce) ce[n0 + r] = 0.0f;
                memset(row, 0, sizeof(float) * (size_t)V);
                continue;
            }
            float mx = row[0];
            for (int i = 1; i < V; i++)
                if (row[i] > mx) mx = row[i];
            float target_logit = row[tg];
            for (int i = 0; i < V; i++) row[i] = exp_vec(row[i] - mx); /* vectorizes; the sum below keeps its order */
            double sum = 0.0;
            for (int i = 0; i < V; i++) sum += row[i];
            double l = log(sum) + mx - target_logit;
            if (ce) ce[n0 + r] = (float)l;
            row_loss[r] = weight[n0 + r] * l;
            /* d/dlogits of weight * CE = weight * (softmax - onehot). */
            float scale = (float)(weight[n0 + r] / sum);
            for (int i = 0; i < V; i++) row[i] *= scale;
            row[tg] -= weight[n0 + r];
        }
        for (int r = 0; r < rows; r++) total += row_loss[r]; /* fixed order: reproducible */
        rosa_prof_add(PROF_LOSS, t0, 0);
        if (!dh) continue;
        t0 = rosa_prof_now();
        rc = rosa_weight_backward(W, dh + (int64_t)n0 * D, logits, rows, 0);
        rosa_prof_add(PROF_HEAD, t0, 2.0 * rows * V * D);
        if (rc < 0) {
            free(logits);
            free(row_loss);
            return -1;
        }
    }
    free(logits);
    free(row_loss);
    *loss = total;
    return 0;
}

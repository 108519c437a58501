/* analyze.c: per-dimension statistics of the RoPE-rotated Q and K states.
 *
 * The forward replicates forward.c layer by layer with the ops of ops.h (one
 * record at a time, no KV cache), stopping after the last layer's Q and K, and
 * accumulates sums of squares in double precision. */
#include "analyze.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"
#include "core/util.h"
#include "core/log.h"

int rosa_roae_m(int hd, float r_low) {
    if (!(r_low > 0.0f && r_low <= 1.0f)) return rosa_fail("--r-low %g must be in (0, 1]", r_low);
    int m = (int)floor((double)hd * r_low / 2.0 + 0.5);
    if (m < 1) m = 1;
    if (m > hd / 2) return rosa_fail("r_low %g selects %d dimensions per half of a %d-dimensional head", r_low, m, hd);
    return m;
}

void rosa_analysis_free(rosa_analysis *a) {
    if (!a) return;
    free(a->dims);
    free(a->inv_freq);
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

/* RoAE of layer l on q and k from the normed input h (as forward.c's roae_apply). */
static void roae_apply(const rosa_model *m, int l, const float *h, float *q, float *k, float *u, float *g, int N) {
    const rosa_roae_hook *ro = &m->roae;
    const rosa_config *c = &m->cfg;
    for (int w = 0; w < 2; w++) {
        if (!ro->A[l][w]) continue;
        int H = w ? c->num_kv_heads : c->num_heads, G = H * ro->d_low;
        linear_forward(u, h, ro->A[l][w], NULL, N, c->hidden_size, ro->rank, 0);
        linear_forward(g, u, ro->B[l][w], NULL, N, ro->rank, G, 0);
        roae_modulate_forward(w ? k : q, NULL, g, ro->low_dims, N, H, c->head_dim, ro->d_low, ro->alpha, ro->add_form);
    }
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

int rosa_analyze(rosa_model *m, const int32_t *const *ids, const int *lens, int n, float r_low,
                 rosa_analyze_progress progress, void *user, rosa_analysis *out) {
    memset(out, 0, sizeof *out);
    if (m->fp32_released) return rosa_fail("analyze runs in FP32: load the model without --dtype bf16");
    const rosa_config *c = &m->cfg;
    int L = c->num_layers, D = c->hidden_size, F = c->intermediate_size, hd = c->head_dim, Hq = c->num_heads,
        Hkv = c->num_kv_heads, Q = Hq * hd, K = Hkv * hd, V = c->vocab_size;
    int mm = rosa_roae_m(hd, r_low);
    if (mm < 0) return -1;
    int Tmax = 0;
    for (int i = 0; i < n; i++) {
        if (lens[i] > Tmax) Tmax = lens[i];
        for (int t = 0; t < lens[i]; t++)
            if (ids[i][t] < 0 || ids[i][t] >= V)
                return rosa_fail("analyze: record %d: token id %d out of range [0, %d)", i, ids[i][t], V);
        if (c->sliding_window > 0 && lens[i] > c->sliding_window)
            return rosa_fail("analyze: record %d has %d tokens, more than %s's sliding_window (%d); sliding-window "
                             "attention is not supported (lower --cutoff-len)", i, lens[i], c->architecture,
                             c->sliding_window);
    }
    if (Tmax == 0) return rosa_fail("analyze: no tokens to analyse");
    if (Tmax > c->max_position_embeddings)
        rosa_log(ROSA_LOG_WARN, "records of %d tokens are past max_position_embeddings (%d)", Tmax,
                c->max_position_embeddings);
    out->L = L, out->Hq = Hq, out->Hkv = Hkv, out->hd = hd, out->r_low = r_low, out->m = mm;
    out->dims = rosa_malloc(sizeof(int) * 2 * (size_t)mm, "analysis");
    out->inv_freq = rosa_malloc(sizeof(double) * (size_t)(hd / 2), "analysis");
    out->q_norm = rosa_calloc((size_t)L * hd, sizeof(double), "analysis");
    out->k_norm = rosa_calloc((size_t)L * hd, sizeof(double), "analysis");
    out->q_band = rosa_calloc((size_t)L * (hd / 2), sizeof(double), "analysis");
    out->k_band = rosa_calloc((size_t)L * (hd / 2), sizeof(double), "analysis");
    out->q_share = rosa_calloc((size_t)L, sizeof(double), "analysis");
    out->k_share = rosa_calloc((size_t)L, sizeof(double), "analysis");
    out->q_sumsq = rosa_calloc((size_t)L * Q, sizeof(double), "analysis");
    out->k_sumsq = rosa_calloc((size_t)L * K, sizeof(double), "analysis");
    size_t T = (size_t)Tmax, threads = (size_t)omp_get_max_threads();
    size_t R = m->roae.on ? (size_t)m->roae.rank : 1, G = m->roae.on ? (size_t)Hq * m->roae.d_low : 1;
    float *x = rosa_malloc(sizeof(float) * T * D, "analysis activations");
    float *h = rosa_malloc(sizeof(float) * T * D, "analysis activations");
    float *q = rosa_malloc(sizeof(float) * T * Q, "analysis activations");
    float *k = rosa_malloc(sizeof(float) * T * K, "analysis activations");
    float *v = rosa_malloc(sizeof(float) * T * K, "analysis activations");
    float *att = rosa_malloc(sizeof(float) * T * Q, "analysis activations");
    float *gate = rosa_malloc(sizeof(float) * T * F, "analysis activations");
    float *up = rosa_malloc(sizeof(float) * T * F, "analysis activations");
    float *scores = rosa_malloc(sizeof(float) * threads * T, "analysis activations");
    float *ru = rosa_malloc(sizeof(float) * T * R, "analysis activations");
    float *rg = rosa_malloc(sizeof(float) * T * G, "analysis activations");
    float *rope_cs = rosa_malloc(sizeof(float) * T * (size_t)hd, "analysis activations");
    int *pos = rosa_malloc(sizeof(int) * T, "analysis activations");
    uint8_t *valid = rosa_malloc(T, "analysis activations");
    int status = -1;
    if (!out->dims || !out->inv_freq || !out->q_norm || !out->k_norm || !out->q_band || !out->k_band ||
        !out->q_share || !out->k_share || !out->q_sumsq || !out->k_sumsq || !x || !h || !q || !k || !v || !att ||
        !gate || !up || !scores || !ru || !rg || !rope_cs || !pos || !valid)
        goto done;
    for (int i = 0; i < mm; i++) {
        out->dims[i] = hd / 2 - mm + i;
        out->dims[mm + i] = hd - mm + i;
    }
    memcpy(out->inv_freq, m->inv_freq, sizeof(double) * (size_t)(hd / 2));
    for (size_t t = 0; t < T; t++) pos[t] = (int)t, valid[t] = 1;
    rope_table(rope_cs, pos, m->inv_freq, (int)T, hd); /* every record starts at position 0 */
    const rosa_roae_hook *ro = &m->roae;
    for (int r = 0; r < n; r++) {
        int N = lens[r];
        if (N <= 0) continue;
        embedding_forward(x, ids[r], m->embed, N, D);
        for (int l = 0; l < L; l++) {
            const rosa_layer *Ly = &m->layers[l];
            rmsnorm_forward(h, NULL, x, Ly->attn_norm, N, D, c->rms_norm_eps);
            linear_forward(q, h, Ly->wq, Ly->bq, N, D, Q, 0);
            linear_forward(k, h, Ly->wk, Ly->bk, N, D, K, 0);
            if (ro->on && ro->pre_rope) roae_apply(m, l, h, q, k, ru, rg, N);
            rope_apply(q, rope_cs, N, Hq, hd, 1.0f);
            rope_apply(k, rope_cs, N, Hkv, hd, 1.0f);
            if (ro->on && !ro->pre_rope) roae_apply(m, l, h, q, k, ru, rg, N);
            accumulate(out->q_sumsq + (size_t)l * Q, q, N, Q);
            accumulate(out->k_sumsq + (size_t)l * K, k, N, K);
            if (l == L - 1) break; /* nothing after the last layer's Q and K is needed */
            linear_forward(v, h, Ly->wv, Ly->bv, N, D, K, 0);
            attention_forward(att, q, k, v, valid, 0, N, Hq, Hkv, hd, K, scores);
            linear_forward(x, att, Ly->wo, Ly->bo, N, Q, D, 1);
            rmsnorm_forward(h, NULL, x, Ly->ffn_norm, N, D, c->rms_norm_eps);
            linear_forward(gate, h, Ly->w_gate, Ly->b_gate, N, D, F, 0);
            linear_forward(up, h, Ly->w_up, Ly->b_up, N, D, F, 0);
            swiglu_forward(gate, gate, up, N, F);
            linear_forward(x, gate, Ly->w_down, Ly->b_down, N, F, D, 1);
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
    free(x);
    free(h);
    free(q);
    free(k);
    free(v);
    free(att);
    free(gate);
    free(up);
    free(scores);
    free(ru);
    free(rg);
    free(rope_cs);
    free(pos);
    free(valid);
    if (status < 0) rosa_analysis_free(out);
    return status;
}

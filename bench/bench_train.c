/* bench_train.c: one benchmark case on a model with random weights and the
 * exact shapes of a real model (speed and memory do not depend on values).
 *
 *   bench_train CONFIG.json CASE [STEPS [fp32|bf16 [recompute]]]
 *   CASE: gemm | lora | roae | rosa | generate | prefill
 *
 * Prints one JSON object.  Training cases run optimizer steps of a batch of
 * 4 x 256 tokens (one micro-batch); "rosa" is a step between two DLS
 * selections: the upper half of the layers active, the backward truncated
 * at the lowest active layer; "recompute" turns on activation checkpointing.
 * Every case reports the median of STEPS timed runs after a warm-up.  "gemm"
 * measures the FP32 and BF16 GEMM ceilings.  FLOPs (stated in docs): see
 * count_flops(). */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "peft/lora.h"
#include "peft/roae.h"
#include "arch/config.h"
#include "model/bf16.h"
#include "model/gemm.h"
#include "model/model.h"
#include "model/ops.h"
#include "train/optim.h"
#include "train/train_ctx.h"
#include "core/prof.h"
#include "core/util.h"

#define BATCH 4
#define SEQ 256

static double peak_rss_mib(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024.0;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

#define CEIL_M 1024
#define CEIL_N 2048
#define CEIL_K 2048

/* Best GFLOP/s of C = A B^T over about 2 s after a warm-up call: FP32 through
 * rosa_gemm, or BF16 through the packed weight P with A already in BF16 (Ab):
 * the bare products, the ceilings a step's products are measured against. */
static double best_gflops(rosa_bf16_weight *P, const float *A, const uint16_t *Ab, const float *B, float *C) {
    int M = CEIL_M, N = CEIL_N, K = CEIL_K;
    double best = 0.0, t_end = 0.0;
    for (int call = 0; call == 0 || rosa_now() < t_end; call++) {
        double t0 = rosa_now();
        if (P) rosa_bf16_forward_rows(P, C, Ab, M);
        else rosa_gemm('N', 'T', M, N, K, 1.0f, A, K, B, K, 0.0f, C, N);
        double g = 2.0 * M * N * K / (rosa_now() - t0) / 1e9;
        if (call == 0) t_end = rosa_now() + 2.0; /* the first call warms up */
        else if (g > best) best = g;
    }
    return best;
}

/* The measured GEMM ceilings of both dtypes; BF16 is 0 without BF16 support. */
static void gemm_ceilings(double *fp32, double *bf16) {
    float *A = malloc(sizeof(float) * CEIL_M * CEIL_K), *B = malloc(sizeof(float) * CEIL_N * CEIL_K),
          *C = malloc(sizeof(float) * CEIL_M * CEIL_N);
    uint16_t *Ab = malloc(sizeof(uint16_t) * CEIL_M * CEIL_K);
    for (size_t i = 0; i < (size_t)CEIL_M * CEIL_K; i++) {
        A[i] = (float)(i % 7) * 0.1f;
        Ab[i] = rosa_f32_to_bf16(A[i]);
    }
    for (size_t i = 0; i < (size_t)CEIL_N * CEIL_K; i++) B[i] = (float)(i % 5) * 0.1f;
    *fp32 = best_gflops(NULL, A, NULL, B, C);
    rosa_bf16_weight *P = rosa_bf16_supported() ? rosa_bf16_weight_new(B, CEIL_N, CEIL_K, 1) : NULL;
    *bf16 = P ? best_gflops(P, A, Ab, B, C) : 0.0;
    rosa_bf16_weight_free(P);
    free(A);
    free(Ab);
    free(B);
    free(C);
}

/* FLOPs of one training step of B x T tokens whose backward reaches layers
 * [stop, L): 2 per multiply-add; frozen weights get no weight gradient.
 *   linear:    2 N P_lin per layer forward, the same again backward (input grads)
 *   attention: 4 B pairs Hq hd forward (scores and values; pairs = the query-key
 *              pairs computed, attention_pairs(T): block-causal, 0.625 T^2 at T = 256),
 *              10 B pairs Hq hd backward (recomputed scores, dP, dQ, dK, dV)
 *   LM head:   2 N V D forward and 2 N V D backward
 *   adapter:   6 N r (in + out) per adapted projection (forward, weight and input grads) */
static double count_flops(const rosa_config *c, const rosa_adapter *a, int B, int T, int stop, int backward) {
    double N = (double)B * T, D = c->hidden_size, F = c->intermediate_size, Q = (double)c->num_heads * c->head_dim,
           K = (double)c->num_kv_heads * c->head_dim, L = c->num_layers;
    double lin = 2 * N * (Q * D + 2 * K * D + D * Q + 3 * F * D);
    double att = 4.0 * B * attention_pairs(T) * Q;
    double head = 2 * N * c->vocab_size * D;
    double adapter = 0;
    for (int i = 0; a && i < a->n_params; i += 2) {
        const rosa_param *A = &a->params[i], *Bp = &a->params[i + 1];
        if (A->ndim == 1) continue;
        adapter += 6 * N * A->rows * (A->cols + Bp->rows);
    }
    double f = L * (lin + att) + head;
    if (!backward) return f;
    double frac = (L - stop) / L;
    return f + frac * L * (lin + 2.5 * att) + head + adapter * frac + adapter * (1 - frac) / 3;
}

static void random_batch(rosa_batch *b, int32_t *ids, int32_t *labels, uint8_t *mask, int V, uint64_t seed) {
    rosa_rng r;
    rosa_rng_seed(&r, seed);
    for (int i = 0; i < BATCH * SEQ; i++) {
        ids[i] = labels[i] = (int32_t)rosa_rng_below(&r, (uint64_t)V);
        mask[i] = 1;
    }
    *b = (rosa_batch){.B = BATCH, .T = SEQ, .ids = ids, .labels = labels, .mask = mask};
}

static int train_case(rosa_model *m, const char *name, int steps, int recompute) {
    const rosa_config *c = &m->cfg;
    rosa_adapter *a;
    if (strcmp(name, "lora") == 0) {
        rosa_lora_options o;
        rosa_lora_options_default(&o);
        o.rank = 8;
        o.dropout = 0.0f;
        o.targets = (1u << N_PROJ) - 1;
        a = rosa_adapter_new_lora(c, &o, 1);
    } else {
        rosa_roae_options o;
        rosa_roae_options_default(&o);
        o.rank = 8;
        a = rosa_adapter_new_roae(m, &o, 1);
    }
    if (!a) return -1;
    for (size_t i = 0; i < a->n_floats; i++) /* B != 0: the same work as mid-training */
        if (a->w[i] == 0.0f) a->w[i] = 1e-3f;
    rosa_train_ctx *t = rosa_train_ctx_new(m, a, BATCH, SEQ, recompute);
    rosa_adamw opt;
    if (!t || rosa_adamw_init(&opt, a) < 0) return -1;
    rosa_adamw_options ao;
    rosa_adamw_options_default(&ao);
    int L = c->num_layers, stop = 0;
    uint8_t *active = NULL, *param_active = NULL;
    if (strcmp(name, "rosa") == 0) {
        active = malloc((size_t)L);
        param_active = malloc((size_t)a->n_params);
        for (int l = 0; l < L; l++) active[l] = l >= L / 2;
        for (int i = 0; i < a->n_params; i++) param_active[i] = active[a->params[i].layer];
        stop = L / 2;
    }
    int32_t *ids = malloc(sizeof(int32_t) * BATCH * SEQ), *labels = malloc(sizeof(int32_t) * BATCH * SEQ);
    uint8_t *mask = malloc(BATCH * SEQ);
    rosa_batch b;
    random_batch(&b, ids, labels, mask, c->vocab_size, 7);
    double *times = malloc(sizeof(double) * (size_t)(steps + 1)), optim = 0.0;
    for (int s = 0; s <= steps; s++) { /* step 0 warms up */
        if (s == 1) rosa_prof_reset();
        double t0 = rosa_now(), loss;
        int n;
        memset(a->g, 0, sizeof(float) * a->n_floats);
        if (rosa_train_microbatch(t, &b, 1.0f / (BATCH * (SEQ - 1)), &(rosa_step_plan){.backward = 1, .stop_layer = stop, .layer_active = active}, NULL, &loss, &n, NULL) < 0) return -1;
        double t1 = rosa_now(), gn = rosa_grad_norm(a, param_active);
        rosa_clip_grads(a, param_active, gn, 1.0f);
        rosa_adamw_step(&opt, a, param_active, 1e-4f, &ao);
        times[s] = rosa_now() - t0;
        if (s > 0) optim += rosa_now() - t1;
    }
    /* The profile by op: seconds per step (mean of the timed steps) and the
     * GFLOP/s of the counted products. */
    char prof[2048];
    int k = snprintf(prof, sizeof prof, "{");
    for (int op = 0; op < PROF_N; op++) {
        double sec, fl;
        rosa_prof_get((rosa_prof_op)op, &sec, &fl);
        k += snprintf(prof + k, sizeof prof - (size_t)k, "\"%s\": {\"seconds\": %.4f, \"gflops\": %.1f}, ",
                      rosa_prof_name((rosa_prof_op)op), sec / steps, fl > 0 && sec > 0 ? fl / sec / 1e9 : 0.0);
    }
    snprintf(prof + k, sizeof prof - (size_t)k, "\"optimizer\": {\"seconds\": %.4f, \"gflops\": 0}}", optim / steps);

    qsort(times + 1, (size_t)steps, sizeof(double), cmp_double);
    double sec = times[1 + steps / 2], flops = count_flops(c, a, BATCH, SEQ, stop, 1);
    /* The recomputed forward is extra work, not counted as useful FLOPs. */
    printf("{\"case\": \"%s\", \"dtype\": \"%s\", \"recompute\": %s, \"tokens_per_second\": %.1f, "
           "\"seconds_per_step\": %.4f, \"gflops\": %.1f, \"trainable\": %lld, \"peak_rss_mib\": %.0f, "
           "\"profile\": %s}\n",
           name, m->compute == ROSA_DTYPE_BF16 ? "bf16" : "fp32", recompute ? "true" : "false", BATCH * SEQ / sec, sec,
           flops / sec / 1e9, (long long)rosa_adapter_num_params(a), peak_rss_mib(), prof);
    return 0;
}

static int generate_case(rosa_model *m, int prefill_only, int steps) {
    const rosa_config *c = &m->cfg;
    if (prefill_only) {
        rosa_kv_cache *kv = rosa_kv_cache_new(m, BATCH, SEQ);
        float *logits = malloc(sizeof(float) * (size_t)BATCH * c->vocab_size);
        int32_t *ids = malloc(sizeof(int32_t) * BATCH * SEQ), *labels = malloc(sizeof(int32_t) * BATCH * SEQ);
        uint8_t *mask = malloc(BATCH * SEQ);
        rosa_batch b;
        random_batch(&b, ids, labels, mask, c->vocab_size, 9);
        double *times = malloc(sizeof(double) * (size_t)(steps + 1));
        for (int s = 0; s <= steps; s++) {
            rosa_kv_cache_reset(kv);
            double t0 = rosa_now();
            if (rosa_forward(m, kv, SEQ, ids, NULL, logits, 0) < 0) return -1;
            times[s] = rosa_now() - t0;
        }
        qsort(times + 1, (size_t)steps, sizeof(double), cmp_double);
        double sec = times[1 + steps / 2], flops = count_flops(c, NULL, BATCH, SEQ, 0, 0);
        /* Only the last position of each sequence goes through the LM head. */
        flops -= 2.0 * BATCH * (SEQ - 1) * c->vocab_size * c->hidden_size;
        printf("{\"case\": \"prefill\", \"tokens_per_second\": %.1f, \"seconds_per_step\": %.4f, \"gflops\": %.1f, "
               "\"peak_rss_mib\": %.0f}\n", BATCH * SEQ / sec, sec, flops / sec / 1e9, peak_rss_mib());
        return 0;
    }
    int32_t prompt[128], out[128];
    rosa_rng r;
    rosa_rng_seed(&r, 3);
    for (int i = 0; i < 128; i++) prompt[i] = (int32_t)rosa_rng_below(&r, (uint64_t)c->vocab_size);
    rosa_gen_params p;
    rosa_gen_params_default(&p);
    p.stop_at_eos = 0;
    int n;
    p.max_new_tokens = 8; /* warm-up: the prompt and a few tokens (as tools/bench_torch.py) */
    if (rosa_generate(m, prompt, 128, &p, NULL, NULL, out, &n) < 0) return -1;
    p.max_new_tokens = 128;
    double *times = malloc(sizeof(double) * (size_t)steps);
    for (int s = 0; s < steps; s++) {
        double t0 = rosa_now();
        if (rosa_generate(m, prompt, 128, &p, NULL, NULL, out, &n) < 0) return -1;
        times[s] = rosa_now() - t0;
    }
    qsort(times, (size_t)steps, sizeof(double), cmp_double);
    double sec = times[steps / 2];
    printf("{\"case\": \"generate\", \"tokens_per_second\": %.1f, \"seconds_per_step\": %.4f, \"peak_rss_mib\": %.0f}\n",
           n / sec, sec, peak_rss_mib());
    free(times);
    return 0;
}

int main(int argc, char **argv) {
    /* The same OpenMP settings as the rosa tool (cli/main.c). */
    if (!getenv("OMP_WAIT_POLICY") && !getenv("GOMP_SPINCOUNT")) {
        setenv("GOMP_SPINCOUNT", "10000", 1);
        execv("/proc/self/exe", argv);
    }
    rosa_set_threads(0);
    if (argc < 3) {
        fprintf(stderr, "usage: bench_train CONFIG.json gemm|lora|roae|rosa|generate|prefill [STEPS [fp32|bf16 [recompute]]]\n");
        return 2;
    }
    const char *cas = argv[2];
    int steps = argc > 3 ? atoi(argv[3]) : 3;
    int bf16 = argc > 4 && strcmp(argv[4], "bf16") == 0, recompute = argc > 5 && strcmp(argv[5], "recompute") == 0;
    if (steps < 1) steps = 1;
    if (strcmp(cas, "gemm") == 0) {
        double fp32, bf;
        gemm_ceilings(&fp32, &bf);
        printf("{\"case\": \"gemm\", \"backend\": \"%s\", \"gflops\": %.1f, \"gflops_bf16\": %.1f, \"bf16_impl\": \"%s\", "
               "\"threads\": %d}\n", rosa_gemm_backend(), fp32, bf, rosa_bf16_impl(), omp_get_max_threads());
        return 0;
    }
    size_t len;
    char *text = rosa_read_file(argv[1], &len);
    rosa_config c;
    if (!text || rosa_config_parse(text, len, argv[1], &c) < 0) {
        fprintf(stderr, "bench_train: %s\n", rosa_last_error());
        return 1;
    }
    free(text);
    rosa_model *m = rosa_model_random(&c, 1);
    if (m && bf16 && rosa_model_set_compute(m, ROSA_DTYPE_BF16) < 0) m = NULL;
    if (!m) {
        fprintf(stderr, "bench_train: %s\n", rosa_last_error());
        return 1;
    }
    int rc;
    if (strcmp(cas, "generate") == 0) rc = generate_case(m, 0, steps);
    else if (strcmp(cas, "prefill") == 0) rc = generate_case(m, 1, steps);
    else rc = train_case(m, cas, steps, recompute);
    if (rc < 0) fprintf(stderr, "bench_train: %s\n", rosa_last_error());
    return rc < 0 ? 1 : 0;
}

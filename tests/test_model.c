/* test_model.c: the forward pass against the shipped model's vectors and the
 * PyTorch reference (tools/ref_llama.py), KV-cache and padding invariance. */
#include <cjson/cJSON.h>
#include <stdlib.h>

#include "core/util.h"
#include "io/json.h"
#include "model/model.h"
#include "test.h"

/* "Agree to eps": max|ours - ref| <= eps * max(1, max|ref|). */
static double rel_err(const float *ours, const float *ref, size_t n) {
    double mx = 1.0, err = 0.0;
    for (size_t i = 0; i < n; i++) {
        if (fabs(ref[i]) > mx) mx = fabs(ref[i]);
        double d = fabs((double)ours[i] - (double)ref[i]);
        if (!(d <= err)) err = d; /* NaN propagates as failure */
    }
    return err / mx;
}

static int32_t *json_ids(const cJSON *arr, int *n) {
    *n = cJSON_GetArraySize(arr);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)(*n ? *n : 1));
    for (int i = 0; i < *n; i++) ids[i] = (int32_t)cJSON_GetArrayItem(arr, i)->valuedouble;
    return ids;
}

static const char *stories(void) { return shared_path("models/stories260K"); }

TEST(stories_greedy_from_bos_reproduces_256_ids) {
    cJSON *v = rosa_json_load(shared_path("models/stories260K/vectors.json"));
    REQUIRE(v);
    rosa_model *m = rosa_model_load(stories());
    REQUIRE(m);
    const cJSON *g = cJSON_GetObjectItem(v, "greedy");
    int n_expect, n_prompt;
    int32_t *expect = json_ids(cJSON_GetObjectItem(g, "ids"), &n_expect);
    int32_t *prompt = json_ids(cJSON_GetObjectItem(g, "input_ids"), &n_prompt);
    CHECK_EQ_INT(n_expect, 256);
    rosa_gen_params p;
    rosa_gen_params_default(&p);
    p.max_new_tokens = n_expect;
    p.stop_at_eos = 0; /* the vectors have no stop tokens */
    int32_t out[256];
    int n_out = 0;
    CHECK(rosa_generate(m, prompt, n_prompt, &p, NULL, NULL, out, &n_out) == 0);
    CHECK_EQ_INT(n_out, n_expect);
    int first_bad = -1;
    for (int i = 0; i < n_out && i < n_expect; i++)
        if (out[i] != expect[i] && first_bad < 0) first_bad = i;
    CHECK_MSG(first_bad < 0, "greedy ids differ first at step %d", first_bad);
    free(expect);
    free(prompt);
    rosa_model_free(m);
    cJSON_Delete(v);
}

/* Mean next-token cross-entropy of a sequence from all-position logits. */
static double mean_ce(const float *logits, const int32_t *ids, int n, int V) {
    double total = 0.0;
    for (int t = 0; t + 1 < n; t++) {
        const float *row = logits + (size_t)t * V;
        double mx = row[0], s = 0.0;
        for (int i = 1; i < V; i++)
            if (row[i] > mx) mx = row[i];
        for (int i = 0; i < V; i++) s += exp(row[i] - mx);
        total += -(row[ids[t + 1]] - mx - log(s));
    }
    return total / (n - 1);
}

TEST(stories_prompt_logits_and_cross_entropy) {
    cJSON *v = rosa_json_load(shared_path("models/stories260K/vectors.json"));
    REQUIRE(v);
    rosa_model *m = rosa_model_load(stories());
    REQUIRE(m);
    int V = m->cfg.vocab_size;
    const cJSON *pr;
    int count = 0;
    cJSON_ArrayForEach(pr, cJSON_GetObjectItem(v, "prompts")) {
        int n_in, n_seq, n_cont;
        int32_t *in = json_ids(cJSON_GetObjectItem(pr, "input_ids"), &n_in);
        int32_t *seq = json_ids(cJSON_GetObjectItem(pr, "sequence_ids"), &n_seq);
        int32_t *cont = json_ids(cJSON_GetObjectItem(pr, "continuation_ids"), &n_cont);
        float ref16[16], ref_seq16[16];
        for (int i = 0; i < 16; i++) {
            ref16[i] = (float)cJSON_GetArrayItem(cJSON_GetObjectItem(pr, "last_logits_first16"), i)->valuedouble;
            ref_seq16[i] =
                (float)cJSON_GetArrayItem(cJSON_GetObjectItem(pr, "sequence_last_logits_first16"), i)->valuedouble;
        }
        /* Last-position logits of the prompt. */
        rosa_kv_cache *kv = rosa_kv_cache_new(m, 1, n_seq);
        float *logits = malloc(sizeof(float) * (size_t)V * (size_t)n_seq);
        REQUIRE(kv && logits);
        CHECK(rosa_forward(m, kv, n_in, in, NULL, logits, 0) == 0);
        double e = rel_err(logits, ref16, 16);
        CHECK_MSG(e <= 1e-4, "prompt %d: last logits differ by %g", count, e);
        /* The whole sequence: last logits and mean cross-entropy. */
        rosa_kv_cache_reset(kv);
        CHECK(rosa_forward(m, kv, n_seq, seq, NULL, logits, 1) == 0);
        e = rel_err(logits + (size_t)(n_seq - 1) * V, ref_seq16, 16);
        CHECK_MSG(e <= 1e-4, "prompt %d: sequence last logits differ by %g", count, e);
        double ce = mean_ce(logits, seq, n_seq, V), ref_ce = cJSON_GetObjectItem(pr, "mean_ce")->valuedouble;
        CHECK_MSG(fabs(ce - ref_ce) <= 1e-4, "prompt %d: mean CE %.7f, expected %.7f", count, ce, ref_ce);
        /* Greedy continuation. */
        rosa_gen_params p;
        rosa_gen_params_default(&p);
        p.max_new_tokens = n_cont;
        p.stop_at_eos = 0;
        int32_t out[64];
        int n_out;
        CHECK(n_cont <= 64);
        CHECK(rosa_generate(m, in, n_in, &p, NULL, NULL, out, &n_out) == 0);
        CHECK(n_out == n_cont && memcmp(out, cont, sizeof(int32_t) * (size_t)n_cont) == 0);
        free(logits);
        rosa_kv_cache_free(kv);
        free(in);
        free(seq);
        free(cont);
        count++;
    }
    CHECK_EQ_INT(count, 3);
    rosa_model_free(m);
    cJSON_Delete(v);
}

static float *read_f32(const char *path, size_t n) {
    size_t len;
    char *data = rosa_read_file(path, &len);
    if (!data) return NULL;
    if (len != n * sizeof(float)) {
        free(data);
        return NULL;
    }
    return (float *)data;
}

/* Runs every batch of testdata/<case>/ref.json through rosa_forward (fresh
 * cache, all logits) and compares the real positions. */
static void check_case(const char *name) {
    char rel[256];
    snprintf(rel, sizeof rel, "%s/ref.json", name);
    cJSON *ref = rosa_json_load(testdata_path(rel));
    REQUIRE(ref);
    snprintf(rel, sizeof rel, "%s", name);
    rosa_model *m = rosa_model_load(testdata_path(rel));
    REQUIRE(m);
    int V = m->cfg.vocab_size, batches = 0;
    const cJSON *b;
    cJSON_ArrayForEach(b, cJSON_GetObjectItem(ref, "batches")) {
        int B = cJSON_GetObjectItem(b, "B")->valueint, T = cJSON_GetObjectItem(b, "T")->valueint;
        int32_t *ids = malloc(sizeof(int32_t) * (size_t)(B * T));
        uint8_t *mask = malloc((size_t)(B * T));
        for (int s = 0; s < B; s++)
            for (int t = 0; t < T; t++) {
                ids[s * T + t] = cJSON_GetArrayItem(cJSON_GetArrayItem(cJSON_GetObjectItem(b, "ids"), s), t)->valueint;
                mask[s * T + t] =
                    (uint8_t)cJSON_GetArrayItem(cJSON_GetArrayItem(cJSON_GetObjectItem(b, "mask"), s), t)->valueint;
            }
        snprintf(rel, sizeof rel, "%s/%s", name, cJSON_GetObjectItem(b, "logits")->valuestring);
        size_t n = (size_t)B * T * V;
        float *want = read_f32(testdata_path(rel), n), *got = malloc(sizeof(float) * n);
        REQUIRE(want);
        rosa_kv_cache *kv = rosa_kv_cache_new(m, B, T);
        REQUIRE(kv);
        CHECK(rosa_forward(m, kv, T, ids, mask, got, 1) == 0);
        double worst = 0.0;
        for (int s = 0; s < B; s++)
            for (int t = 0; t < T; t++) {
                if (!mask[s * T + t]) continue;
                size_t off = ((size_t)s * T + t) * V;
                double e = rel_err(got + off, want + off, (size_t)V);
                if (!(e <= worst)) worst = e;
            }
        CHECK_MSG(worst <= 1e-4, "%s/%s: logits differ from the reference by %g (relative)", name,
                  cJSON_GetObjectItem(b, "name")->valuestring, worst);
        rosa_kv_cache_free(kv);
        free(ids);
        free(mask);
        free(want);
        free(got);
        batches++;
    }
    CHECK(batches >= 3);
    rosa_model_free(m);
    cJSON_Delete(ref);
}

TEST(parity_llama_gqa) { check_case("llama_gqa"); }
TEST(parity_llama_mha_tied) { check_case("llama_mha_tied"); }
TEST(parity_qwen2_bias) { check_case("qwen2_bias"); }
TEST(parity_llama3_rope) { check_case("llama3_rope"); }
TEST(parity_linear_rope) { check_case("linear_rope"); }
TEST(parity_head_dim_32) { check_case("head_dim_32"); }
TEST(parity_llama_bias) { check_case("llama_bias"); }
TEST(parity_f16) { check_case("f16"); }
TEST(parity_bf16) { check_case("bf16"); }
TEST(parity_sharded) { check_case("sharded"); }
TEST(parity_mistral) { check_case("mistral"); }
TEST(parity_qwen3_tiny) { check_case("qwen3-tiny"); }
TEST(parity_qwen3_tiny_tied_bias) { check_case("qwen3-tiny-tied-bias"); }
TEST(parity_qwen3_window_tiny) { check_case("qwen3-window-tiny"); }
TEST(parity_gemma3_tiny) { check_case("gemma3-tiny"); }
TEST(parity_gemma3_mm_tiny) { check_case("gemma3-mm-tiny"); }
TEST(parity_mistral_window_tiny) { check_case("mistral-window-tiny"); }

/* Decoding one token at a time through the cache gives the logits of a full
 * recompute over the same tokens. */
TEST(kv_cache_matches_full_recompute) {
    rosa_model *m = rosa_model_load(testdata_path("llama3_rope"));
    REQUIRE(m);
    int V = m->cfg.vocab_size, n = 40, prefill = 7;
    int32_t ids[40];
    for (int i = 0; i < n; i++) ids[i] = 3 + (i * 37) % (V - 3);
    float *full = malloc(sizeof(float) * (size_t)n * V), *step = malloc(sizeof(float) * (size_t)V);
    rosa_kv_cache *kv = rosa_kv_cache_new(m, 1, n);
    REQUIRE(kv && full && step);
    CHECK(rosa_forward(m, kv, n, ids, NULL, full, 1) == 0);
    rosa_kv_cache_reset(kv);
    CHECK(rosa_forward(m, kv, prefill, ids, NULL, step, 0) == 0);
    double worst = rel_err(step, full + (size_t)(prefill - 1) * V, (size_t)V);
    for (int t = prefill; t < n; t++) {
        CHECK(rosa_forward(m, kv, 1, &ids[t], NULL, step, 0) == 0);
        double e = rel_err(step, full + (size_t)t * V, (size_t)V);
        if (e > worst) worst = e;
    }
    CHECK_MSG(worst <= 1e-5, "cached decoding differs from recompute by %g", worst);
    CHECK_EQ_INT(rosa_kv_cache_length(kv), n);
    free(full);
    free(step);
    rosa_kv_cache_free(kv);
    rosa_model_free(m);
}

/* Batched decoding after a padded prefill: every sequence gets the logits it
 * gets alone, and positions start at 0 at its first real token. */
static void batch_vs_alone(int left_pad) {
    rosa_model *m = rosa_model_load(testdata_path("qwen2_bias"));
    REQUIRE(m);
    int V = m->cfg.vocab_size, B = 3, T = 9, steps = 5;
    int lens[3] = {9, 4, 6};
    int32_t ids[27] = {0}, extra[3][5];
    uint8_t mask[27] = {0};
    for (int s = 0; s < B; s++) {
        int off = left_pad ? T - lens[s] : 0;
        for (int t = 0; t < lens[s]; t++) {
            ids[s * T + off + t] = 3 + (s * 51 + t * 13) % (V - 3);
            mask[s * T + off + t] = 1;
        }
        for (int k = 0; k < steps; k++) extra[s][k] = 3 + (s * 7 + k * 29) % (V - 3);
    }
    float *batch = malloc(sizeof(float) * (size_t)B * V), *alone = malloc(sizeof(float) * (size_t)V);
    rosa_kv_cache *kv = rosa_kv_cache_new(m, B, T + steps);
    REQUIRE(kv && batch && alone);
    CHECK(rosa_forward(m, kv, T, ids, mask, batch, 0) == 0);
    /* Each sequence's next position is its real-token count, whatever the
     * padding side (the logits against each alone check the positions). */
    for (int s = 0; s < B; s++) CHECK_EQ_INT(kv->n_real[s], lens[s]);
    float *batch_steps = malloc(sizeof(float) * (size_t)B * V * (steps + 1));
    memcpy(batch_steps, batch, sizeof(float) * (size_t)B * V);
    for (int k = 0; k < steps; k++) {
        int32_t col[3] = {extra[0][k], extra[1][k], extra[2][k]};
        CHECK(rosa_forward(m, kv, 1, col, NULL, batch_steps + (size_t)(k + 1) * B * V, 0) == 0);
    }
    double worst = 0.0;
    for (int s = 0; s < B; s++) {
        rosa_kv_cache *one = rosa_kv_cache_new(m, 1, lens[s] + steps);
        int off = left_pad ? T - lens[s] : 0;
        CHECK(rosa_forward(m, one, lens[s], ids + s * T + off, NULL, alone, 0) == 0);
        double e = rel_err(batch_steps + (size_t)s * V, alone, (size_t)V);
        if (e > worst) worst = e;
        for (int k = 0; k < steps; k++) {
            CHECK(rosa_forward(m, one, 1, &extra[s][k], NULL, alone, 0) == 0);
            e = rel_err(batch_steps + (size_t)(k + 1) * B * V + (size_t)s * V, alone, (size_t)V);
            if (e > worst) worst = e;
        }
        rosa_kv_cache_free(one);
    }
    CHECK_MSG(worst <= 1e-5, "batched logits differ from alone by %g", worst);
    free(batch);
    free(batch_steps);
    free(alone);
    rosa_kv_cache_free(kv);
    rosa_model_free(m);
}

TEST(padded_batch_decoding_matches_alone_right_pad) { batch_vs_alone(0); }
TEST(padded_batch_decoding_matches_alone_left_pad) { batch_vs_alone(1); }

/* Decoding through the cache past the window (Gemma 3's sliding layers,
 * Mistral) gives the logits of a full recompute. */
static void cached_vs_full(const char *name) {
    rosa_model *m = rosa_model_load(testdata_path(name));
    REQUIRE(m);
    int V = m->cfg.vocab_size, n = 20, prefill = 3;
    CHECK(m->cfg.sliding_window > 0 && m->cfg.sliding_window < n);
    int32_t ids[20];
    for (int i = 0; i < n; i++) ids[i] = 3 + (i * 41) % (V - 3);
    float *full = malloc(sizeof(float) * (size_t)n * V), *step = malloc(sizeof(float) * (size_t)V);
    rosa_kv_cache *kv = rosa_kv_cache_new(m, 1, n);
    REQUIRE(kv && full && step);
    CHECK(rosa_forward(m, kv, n, ids, NULL, full, 1) == 0);
    rosa_kv_cache_reset(kv);
    CHECK(rosa_forward(m, kv, prefill, ids, NULL, step, 0) == 0);
    double worst = rel_err(step, full + (size_t)(prefill - 1) * V, (size_t)V);
    for (int t = prefill; t < n; t++) {
        CHECK(rosa_forward(m, kv, 1, &ids[t], NULL, step, 0) == 0);
        double e = rel_err(step, full + (size_t)t * V, (size_t)V);
        if (e > worst) worst = e;
    }
    CHECK_MSG(worst <= 1e-5, "%s: cached decoding differs from recompute by %g", name, worst);
    free(full);
    free(step);
    rosa_kv_cache_free(kv);
    rosa_model_free(m);
}

TEST(kv_cache_past_the_window_gemma3) { cached_vs_full("gemma3-tiny"); }
TEST(kv_cache_past_the_window_mistral) { cached_vs_full("mistral-window-tiny"); }

/* The ring (issue 14): with the cache's sliding layers keeping only the last
 * `window` keys, a left- or right-padded batch decoded far past the window
 * (window 4; prompts of 4-9 tokens, 12 more: the ring wraps several times)
 * gives, at every step, the logits of each sequence recomputed in full in
 * one call (the prefill path, which never reads the ring). */
static void ring_batch_vs_full(const char *name, int left_pad) {
    rosa_model *m = rosa_model_load(testdata_path(name));
    REQUIRE(m);
    int V = m->cfg.vocab_size, B = 3, T = 9, steps = 12, W = m->cfg.sliding_window;
    REQUIRE(W > 0 && 3 * W < T + steps);
    int lens[3] = {9, 4, 6};
    int32_t ids[27] = {0}, seq[3][21];
    uint8_t mask[27] = {0};
    for (int s = 0; s < B; s++) {
        int off = left_pad ? T - lens[s] : 0;
        for (int t = 0; t < lens[s] + steps; t++) seq[s][t] = 3 + (s * 51 + t * 13) % (V - 3);
        for (int t = 0; t < lens[s]; t++) {
            ids[s * T + off + t] = seq[s][t];
            mask[s * T + off + t] = 1;
        }
    }
    rosa_kv_cache *kv = rosa_kv_cache_new(m, B, T + steps);
    float *batch = malloc(sizeof(float) * (size_t)(steps + 1) * B * V), *full = malloc(sizeof(float) * 21 * (size_t)V);
    REQUIRE(kv && batch && full);
    for (int l = 0; l < m->cfg.num_layers; l++) /* window-sized rings on sliding layers only */
        CHECK_EQ_INT(kv->rows[l], m->layers[l].window ? W : T + steps);
    CHECK(rosa_forward(m, kv, T, ids, mask, batch, 0) == 0);
    for (int k = 0; k < steps; k++) {
        int32_t col[3];
        for (int s = 0; s < B; s++) col[s] = seq[s][lens[s] + k];
        CHECK(rosa_forward(m, kv, 1, col, NULL, batch + (size_t)(k + 1) * B * V, 0) == 0);
    }
    double worst = 0.0;
    for (int s = 0; s < B; s++) {
        int n = lens[s] + steps;
        rosa_kv_cache *one = rosa_kv_cache_new(m, 1, n);
        REQUIRE(one);
        CHECK(rosa_forward(m, one, n, seq[s], NULL, full, 1) == 0);
        for (int k = 0; k <= steps; k++) {
            double e = rel_err(batch + ((size_t)k * B + s) * V, full + (size_t)(lens[s] - 1 + k) * V, (size_t)V);
            if (e > worst) worst = e;
        }
        rosa_kv_cache_free(one);
    }
    CHECK_MSG(worst <= 1e-5, "%s: ring decoding differs from the full recompute by %g", name, worst);
    free(batch);
    free(full);
    rosa_kv_cache_free(kv);
    rosa_model_free(m);
}

TEST(kv_ring_padded_batch_matches_full_gemma3_left_pad) { ring_batch_vs_full("gemma3-tiny", 1); }
TEST(kv_ring_padded_batch_matches_full_gemma3_right_pad) { ring_batch_vs_full("gemma3-tiny", 0); }
TEST(kv_ring_padded_batch_matches_full_mistral_left_pad) { ring_batch_vs_full("mistral-window-tiny", 1); }

/* Greedy generation through the ring (rosa_generate: a 10-token prompt,
 * 30 new tokens, window 4) picks the tokens of greedy decoding that
 * recomputes the whole sequence at every step. */
static void ring_greedy_vs_recompute(const char *name) {
    rosa_model *m = rosa_model_load(testdata_path(name));
    REQUIRE(m);
    int V = m->cfg.vocab_size, n_prompt = 10, n_new = 30;
    int32_t seq[40], out[30];
    for (int t = 0; t < n_prompt; t++) seq[t] = 3 + (t * 29) % (V - 3);
    rosa_gen_params p;
    rosa_gen_params_default(&p);
    p.max_new_tokens = n_new;
    p.stop_at_eos = 0;
    int n_out = 0;
    CHECK(rosa_generate(m, seq, n_prompt, &p, NULL, NULL, out, &n_out) == 0);
    CHECK_EQ_INT(n_out, n_new);
    float *logits = malloc(sizeof(float) * (size_t)V);
    int first_bad = -1;
    for (int i = 0; i < n_new && i < n_out; i++) {
        rosa_kv_cache *kv = rosa_kv_cache_new(m, 1, n_prompt + i);
        REQUIRE(kv && logits);
        CHECK(rosa_forward(m, kv, n_prompt + i, seq, NULL, logits, 0) == 0);
        int32_t best = 0;
        for (int v = 1; v < V; v++)
            if (logits[v] > logits[best]) best = v;
        seq[n_prompt + i] = best;
        if (best != out[i] && first_bad < 0) first_bad = i;
        rosa_kv_cache_free(kv);
    }
    CHECK_MSG(first_bad < 0, "%s: greedy tokens through the ring differ first at step %d", name, first_bad);
    free(logits);
    rosa_model_free(m);
}

TEST(kv_ring_greedy_matches_recompute_gemma3) { ring_greedy_vs_recompute("gemma3-tiny"); }
TEST(kv_ring_greedy_matches_recompute_mistral) { ring_greedy_vs_recompute("mistral-window-tiny"); }

/* The memory plan counts a sliding layer's cache as min(window, n_ctx) rows,
 * as the cache allocates them: gemma3-tiny (S, S, F, S, S, window 4) at 100
 * positions holds 4 * 4 + 100 rows a sequence, a fifth of the full length. */
TEST(kv_plan_counts_window_sized_rings) {
    rosa_model_info mi;
    REQUIRE(rosa_model_inspect(testdata_path("gemma3-tiny"), &mi) == 0);
    rosa_model *m = rosa_model_load(testdata_path("gemma3-tiny"));
    REQUIRE(m);
    int B = 2, n_ctx = 100, W = m->cfg.sliding_window;
    REQUIRE(W == 4 && m->cfg.num_layers == 5);
    rosa_kv_cache *kv = rosa_kv_cache_new(m, B, n_ctx);
    REQUIRE(kv);
    int rows = 0;
    for (int l = 0; l < kv->L; l++) rows += kv->rows[l];
    CHECK_EQ_INT(rows, 4 * W + n_ctx);
    size_t floats = kv->off[kv->L - 1] + (size_t)B * kv->rows[kv->L - 1] * kv->kv_dim; /* of k, as of v */
    CHECK_EQ_INT((int)floats, B * rows * kv->kv_dim);
    rosa_memory_plan p;
    rosa_plan_generate(&mi, ROSA_DTYPE_F32, ROSA_QUANT_NONE, B, 10, n_ctx, &p);
    CHECK_EQ_INT((int)p.kv_cache, (int)(2 * sizeof(float) * floats + sizeof(int) * (size_t)B));
    rosa_kv_cache_free(kv);
    rosa_model_free(m);
}

/* Layer outputs of gemma3-tiny (S, S, F, S, S; window W): changing a token
 * just out of a sliding layer's window leaves that layer's output at the
 * last position unchanged, while a global layer's changes. */
TEST(window_token_out_of_reach_has_no_effect) {
    rosa_model *m = rosa_model_load(testdata_path("gemma3-tiny"));
    REQUIRE(m);
    int W = m->cfg.sliding_window, n = 3 * W, D = m->cfg.hidden_size;
    REQUIRE(m->layers[0].window == W && m->layers[2].window == 0);
    int32_t a[64], b[64];
    for (int i = 0; i < n; i++) a[i] = b[i] = 3 + (i * 17) % 100;
    b[n - 1 - W] = a[n - 1 - W] + 1; /* just out of layer 0's window of the last token */
    float *out[2];
    for (int r = 0; r < 2; r++) {
        /* The model cut after layer 0, then after layer 2: its logits are a
         * function of that layer's output at the last token. */
        out[r] = malloc(sizeof(float) * 2 * (size_t)D);
        for (int depth = 1; depth <= 3; depth += 2) {
            rosa_model t = *m;
            t.cfg.num_layers = depth;
            rosa_kv_cache *kv = rosa_kv_cache_new(&t, 1, n);
            REQUIRE(kv);
            float *logits = malloc(sizeof(float) * (size_t)t.cfg.vocab_size);
            CHECK(rosa_forward(&t, kv, n, r ? b : a, NULL, logits, 0) == 0);
            memcpy(out[r] + (depth / 2) * D, logits, sizeof(float) * (size_t)(D < t.cfg.vocab_size ? D : t.cfg.vocab_size));
            free(logits);
            rosa_kv_cache_free(kv);
        }
    }
    int vd = D < m->cfg.vocab_size ? D : m->cfg.vocab_size;
    CHECK_MSG(memcmp(out[0], out[1], sizeof(float) * (size_t)vd) == 0, "sliding layer 0 saw a token out of its window");
    CHECK_MSG(memcmp(out[0] + D, out[1] + D, sizeof(float) * (size_t)vd) != 0, "global layer 2 did not see it");
    free(out[0]);
    free(out[1]);
    rosa_model_free(m);
}

TEST(forward_rejects_bad_ids_and_overflowing_cache) {
    rosa_model *m = rosa_model_load(testdata_path("llama_gqa"));
    REQUIRE(m);
    float *logits = malloc(sizeof(float) * (size_t)m->cfg.vocab_size);
    rosa_kv_cache *kv = rosa_kv_cache_new(m, 1, 2);
    REQUIRE(kv);
    int32_t bad[1] = {m->cfg.vocab_size}, ok[3] = {5, 6, 7};
    CHECK(rosa_forward(m, kv, 1, bad, NULL, logits, 0) < 0);
    CHECK_ERROR_HAS("out of range");
    CHECK(rosa_forward(m, kv, 3, ok, NULL, logits, 0) < 0);
    CHECK_ERROR_HAS("KV cache");
    free(logits);
    rosa_kv_cache_free(kv);
    rosa_model_free(m);
}

TEST(sampling_is_seeded_and_respects_top_k) {
    rosa_model *m = rosa_model_load(stories());
    REQUIRE(m);
    rosa_gen_params p;
    rosa_gen_params_default(&p);
    p.max_new_tokens = 40;
    p.temperature = 1.0f;
    p.seed = 42;
    int32_t bos = 1, a[40], b[40], c[40];
    int na, nb, nc;
    CHECK(rosa_generate(m, &bos, 1, &p, NULL, NULL, a, &na) == 0);
    CHECK(rosa_generate(m, &bos, 1, &p, NULL, NULL, b, &nb) == 0);
    CHECK(na == nb && memcmp(a, b, sizeof(int32_t) * (size_t)na) == 0);
    p.seed = 43;
    CHECK(rosa_generate(m, &bos, 1, &p, NULL, NULL, c, &nc) == 0);
    CHECK(na != nc || memcmp(a, c, sizeof(int32_t) * (size_t)na) != 0);
    /* top_k = 1 is greedy whatever the temperature. */
    rosa_gen_params g;
    rosa_gen_params_default(&g);
    g.max_new_tokens = 40;
    p.top_k = 1;
    CHECK(rosa_generate(m, &bos, 1, &p, NULL, NULL, a, &na) == 0);
    CHECK(rosa_generate(m, &bos, 1, &g, NULL, NULL, b, &nb) == 0);
    CHECK(na == nb && memcmp(a, b, sizeof(int32_t) * (size_t)na) == 0);
    rosa_model_free(m);
}

TEST(sample_top_p_keeps_the_smallest_nucleus) {
    /* probabilities ~ 0.5, 0.3, 0.2: top_p 0.6 keeps the first two only. */
    rosa_gen_params p;
    rosa_gen_params_default(&p);
    p.temperature = 1.0f;
    p.top_p = 0.6f;
    rosa_rng r;
    rosa_rng_seed(&r, 7);
    int seen[3] = {0};
    for (int i = 0; i < 2000; i++) {
        float l[3] = {logf(0.5f), logf(0.3f), logf(0.2f)};
        seen[rosa_sample(l, 3, &p, &r)]++;
    }
    CHECK(seen[2] == 0);
    CHECK(seen[0] > 1100 && seen[0] < 1400); /* 0.5/0.8 = 62.5% */
    CHECK(seen[1] > 600);
}

/* --dtype bf16 packs the projections and the LM head, then releases the FP32
 * copies (here a widened-from-F32 mapped file and an untied LM head): the
 * logits stay close to FP32, nothing points at the released memory any more,
 * and going back to FP32 is refused with a reason instead of reading zeros. */
TEST(bf16_compute_releases_the_fp32_weights) {
    rosa_model *m = rosa_model_load(testdata_path("llama_gqa"));
    REQUIRE(m);
    REQUIRE(m->lm_head.f32 != m->embed);
    int V = m->cfg.vocab_size, n = 12;
    int32_t ids[12];
    for (int i = 0; i < n; i++) ids[i] = 3 + (i * 29) % (V - 3);
    float *f32 = malloc(sizeof(float) * (size_t)n * V), *b16 = malloc(sizeof(float) * (size_t)n * V);
    rosa_kv_cache *kv = rosa_kv_cache_new(m, 1, n);
    REQUIRE(kv && f32 && b16);
    REQUIRE(rosa_forward(m, kv, n, ids, NULL, f32, 1) == 0);
    int64_t before = rosa_model_weight_bytes(m);
    REQUIRE(rosa_model_set_compute(m, ROSA_DTYPE_BF16) == 0);
    for (int l = 0; l < m->cfg.num_layers; l++)
        for (int w = 0; w < N_PROJ; w++) CHECK(m->layers[l].proj[w].f32 == NULL);
    CHECK(m->lm_head.f32 == NULL && m->embed != NULL);
    CHECK(rosa_model_weight_bytes(m) != before);
    rosa_kv_cache_reset(kv);
    REQUIRE(rosa_forward(m, kv, n, ids, NULL, b16, 1) == 0);
    double e = rel_err(b16, f32, (size_t)n * V);
    CHECK_MSG(e > 0 && e < 0.05, "BF16 logits differ from FP32 by %g", e);
    CHECK(rosa_model_set_compute(m, ROSA_DTYPE_F32) < 0 && strstr(rosa_last_error(), "released"));
    CHECK(rosa_model_set_compute(m, ROSA_DTYPE_BF16) == 0);
    free(f32);
    free(b16);
    rosa_kv_cache_free(kv);
    rosa_model_free(m);
}

/* test_weight_storage.c: frozen weights in the checkpoint's format.  BF16/F16
 * matrices used from the mapping (widened one at a time at each product) give
 * bit for bit the logits, losses and gradients of matrices widened at load,
 * in FP32; in BF16 compute, packing from the mapping gives the packing of
 * the widened rows. */
#include <stdlib.h>

#include "peft/lora.h"
#include "model/model.h"
#include "peft/peft.h"
#include "test.h"
#include "train/train_ctx.h"
#include "core/util.h"

/* The old path: every matrix widened to an owned FP32 copy at load. */
static void widen_at_load(rosa_model *m) {
    const rosa_config *c = &m->cfg;
    for (int l = 0; l < c->num_layers; l++)
        for (int p = 0; p < N_PROJ; p++) {
            rosa_weight *w = &m->layers[l].proj[p];
            size_t n = (size_t)w->out * w->in;
            float *f = malloc(sizeof(float) * n);
            for (size_t i = 0; i < n; i++) f[i] = w->half_f16 ? rosa_f16_to_f32(w->half[i]) : rosa_bf16_to_f32(w->half[i]);
            rosa_model_replace_weight(m, l, p, f);
            free(f);
        }
    rosa_weight *h = &m->lm_head;
    if (h->half) {
        size_t n = (size_t)h->out * h->in;
        float *f = malloc(sizeof(float) * n);
        for (size_t i = 0; i < n; i++) f[i] = h->half_f16 ? rosa_f16_to_f32(h->half[i]) : rosa_bf16_to_f32(h->half[i]);
        rosa_model_own(m, f);
        h->f32 = f;
        h->half = NULL;
    }
}

static void logits_of(rosa_model *m, float *out, int n) {
    int32_t ids[16];
    for (int i = 0; i < n; i++) ids[i] = 3 + (i * 29) % (m->cfg.vocab_size - 3);
    rosa_kv_cache *kv = rosa_kv_cache_new(m, 1, n);
    CHECK(kv && rosa_forward(m, kv, n, ids, NULL, out, 1) == 0);
    rosa_kv_cache_free(kv);
}

/* One LoRA micro-batch (B != 0): its loss and the adapter's gradients. */
static double step_of(rosa_model *m, float **grads, size_t *n_floats) {
    rosa_lora_options o;
    rosa_lora_options_default(&o);
    o.rank = 2;
    o.dropout = 0.0f;
    o.targets = (1u << N_PROJ) - 1;
    rosa_adapter *a = rosa_adapter_new_lora(&m->cfg, &o, 5);
    for (int i = 1; a && i < a->n_params; i += 2)
        for (int k = 0; k < a->params[i].rows * a->params[i].cols; k++) a->w[a->params[i].offset + k] = 0.01f * (k % 7);
    rosa_train_ctx *t = a ? rosa_train_ctx_new(m, a, 2, 8, 0) : NULL;
    double loss = NAN;
    int n;
    int32_t ids[16], labels[16];
    uint8_t mask[16];
    for (int i = 0; i < 16; i++) ids[i] = labels[i] = 3 + (i * 13) % (m->cfg.vocab_size - 3), mask[i] = 1;
    rosa_batch b = {.B = 2, .T = 8, .ids = ids, .labels = labels, .mask = mask};
    if (t) {
        memset(a->g, 0, sizeof(float) * a->n_floats);
        rosa_train_microbatch(t, &b, 0.5f, &(rosa_step_plan){.backward = 1, .stop_layer = 0}, NULL, &loss, &n, NULL);
        *n_floats = a->n_floats;
        *grads = malloc(sizeof(float) * a->n_floats);
        memcpy(*grads, a->g, sizeof(float) * a->n_floats);
    }
    rosa_train_ctx_free(t);
    rosa_adapter_free(a);
    return loss;
}

/* Decoding one token at a time (the tiled product of weight.c): logits of
 * every step. */
static void decode_logits(rosa_model *m, float *out, int n) {
    rosa_kv_cache *kv = rosa_kv_cache_new(m, 1, n);
    for (int i = 0; kv && i < n; i++) {
        int32_t id = 3 + (i * 29) % (m->cfg.vocab_size - 3);
        CHECK(rosa_forward(m, kv, 1, &id, NULL, out + (size_t)i * m->cfg.vocab_size, 1) == 0);
    }
    rosa_kv_cache_free(kv);
}

static void check_same_dir(const char *dir, const char *name, rosa_dtype compute) {
    rosa_model *lazy = rosa_model_load(dir), *old = rosa_model_load(dir);
    REQUIRE(lazy && old);
    /* The matrices are the mapped 16-bit rows, not copies. */
    CHECK(lazy->layers[0].proj[PROJ_Q].half && !lazy->layers[0].proj[PROJ_Q].f32);
    CHECK(lazy->cfg.tie_word_embeddings || lazy->lm_head.half);
    widen_at_load(old);
    REQUIRE(rosa_model_set_compute(lazy, compute) == 0 && rosa_model_set_compute(old, compute) == 0);
    int n = 12, V = lazy->cfg.vocab_size;
    float *a = malloc(sizeof(float) * (size_t)n * V), *b = malloc(sizeof(float) * (size_t)n * V);
    logits_of(lazy, a, n);
    logits_of(old, b, n);
    CHECK_MSG(memcmp(a, b, sizeof(float) * (size_t)n * V) == 0, "%s: logits differ between the two paths", name);
    decode_logits(lazy, a, n);
    decode_logits(old, b, n);
    CHECK_MSG(memcmp(a, b, sizeof(float) * (size_t)n * V) == 0, "%s: decoding logits differ between the two paths",
              name);
    float *ga = NULL, *gb = NULL;
    size_t na = 0, nb = 0;
    double la = step_of(lazy, &ga, &na), lb = step_of(old, &gb, &nb);
    CHECK_MSG(la == lb && isfinite(la), "%s: loss %.17g against %.17g", name, la, lb);
    CHECK(na == nb && na > 0 && ga && gb && memcmp(ga, gb, sizeof(float) * na) == 0);
    free(ga);
    free(gb);
    free(a);
    free(b);
    rosa_model_free(lazy);
    rosa_model_free(old);
}

static void check_same(const char *name, rosa_dtype compute) { check_same_dir(testdata_path(name), name, compute); }

TEST(weights_bf16_mapped_match_widened_at_load_bit_for_bit) { check_same("bf16", ROSA_DTYPE_F32); }
TEST(weights_bf16_mapped_match_bit_for_bit_on_many_tiles) {
    /* Matrices of up to 704 x 256 and an untied 4096 x 256 LM head: many
     * tiles of weight.c's decoding product.  Random weights. */
    const char *dir = test_tmp_path("tiles-bf16");
    char cfg[4096];
    snprintf(cfg, sizeof cfg, "%s.json", dir);
    FILE *f = fopen(cfg, "w");
    REQUIRE(f);
    fputs("{\"architectures\": [\"Qwen2ForCausalLM\"], \"model_type\": \"qwen2\", \"hidden_size\": 256, "
          "\"intermediate_size\": 704, \"num_hidden_layers\": 2, \"num_attention_heads\": 8, \"num_key_value_heads\": 2, "
          "\"vocab_size\": 4096, \"max_position_embeddings\": 1024, \"rms_norm_eps\": 1e-06, \"rope_theta\": 10000.0, "
          "\"tie_word_embeddings\": false}", f);
    fclose(f);
    REQUIRE(run_shellf(NULL, "/usr/bin/python3 tools/make_random_model.py --config '%s' --out '%s'", cfg, dir) == 0);
    check_same_dir(dir, "tiles-bf16", ROSA_DTYPE_F32);
}
TEST(weights_f16_mapped_match_widened_at_load_bit_for_bit) { check_same("f16", ROSA_DTYPE_F32); }
TEST(weights_bf16_packed_from_the_mapping_match_bit_for_bit) {
    if (!rosa_bf16_supported()) return test_skip("no BF16 matrix product on this CPU");
    check_same("bf16", ROSA_DTYPE_BF16);
}

TEST(weights_packed_for_inference_hold_one_layout) {
    /* rosa_model_set_compute_inference packs the forward layout alone: the
     * same logits as the training packing, half its bytes, and no way to
     * train on it. */
    if (!rosa_bf16_supported()) return test_skip("no BF16 matrix product on this CPU");
    rosa_model *inf = rosa_model_load(testdata_path("bf16")), *tr = rosa_model_load(testdata_path("bf16"));
    REQUIRE(inf && tr);
    int64_t before = rosa_model_weight_bytes(inf);
    REQUIRE(rosa_model_set_compute_inference(inf, ROSA_DTYPE_BF16) == 0 && rosa_model_set_compute(tr, ROSA_DTYPE_BF16) == 0);
    CHECK(rosa_bf16_weight_bytes(inf->layers[0].proj[PROJ_Q].bf16) * 2 == rosa_bf16_weight_bytes(tr->layers[0].proj[PROJ_Q].bf16));
    CHECK(rosa_model_weight_bytes(inf) < rosa_model_weight_bytes(tr) && before > 0);
    int n = 12, V = inf->cfg.vocab_size;
    float *a = malloc(sizeof(float) * (size_t)n * V), *b = malloc(sizeof(float) * (size_t)n * V);
    logits_of(inf, a, n);
    logits_of(tr, b, n);
    CHECK(memcmp(a, b, sizeof(float) * (size_t)n * V) == 0);
    CHECK(rosa_model_set_compute_inference(inf, ROSA_DTYPE_BF16) == 0);
    CHECK(rosa_model_set_compute(inf, ROSA_DTYPE_BF16) < 0 && strstr(rosa_last_error(), "inference only"));
    CHECK(rosa_model_set_compute_inference(tr, ROSA_DTYPE_BF16) == 0); /* the training packing serves inference */
    free(a);
    free(b);
    rosa_model_free(inf);
    rosa_model_free(tr);
}

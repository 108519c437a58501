/* test_grad_model.c: finite-difference check of the whole model's adapter
 * gradients (LoRA on all seven projections, B != 0) and of the RMSNorm weight
 * gradients, on random tiny models of both families with a padded batch. */
#include <stdlib.h>

#include "peft/lora.h"
#include "peft/roae.h"
#include "model/model.h"
#include "test.h"
#include "train/train_ctx.h"
#include "core/util.h"

/* Two sequences, right-padded: lengths 9 and 6 (T = 9). */
static void make_batch(rosa_batch *b, int V, int32_t *ids, int32_t *labels, uint8_t *mask) {
    int lens[2] = {9, 6}, T = 9;
    for (int s = 0; s < 2; s++)
        for (int t = 0; t < T; t++) {
            int n = s * T + t, real = t < lens[s];
            ids[n] = real ? 3 + (s * 31 + t * 17) % (V - 3) : 0;
            labels[n] = real && t >= 2 ? ids[n] : ROSA_IGNORE_INDEX; /* the first tokens are "prompt" */
            mask[n] = (uint8_t)real;
        }
    *b = (rosa_batch){.B = 2, .T = T, .ids = ids, .labels = labels, .mask = mask};
}

static double loss_of(rosa_train_ctx *t, const rosa_batch *b) {
    double loss;
    int n;
    rosa_train_microbatch(t, b, 0.25f, &(rosa_step_plan){.backward = 0, .stop_layer = 0}, NULL, &loss, &n, NULL);
    return loss;
}

/* Central differences on up to `max_checks` entries (the largest analytic
 * gradients, where a missing term would show). */
static double check_entries(rosa_train_ctx *t, const rosa_batch *b, float *x, const float *grad, size_t n,
                            float eps) {
    double worst = 0.0, gmax = 1e-3;
    for (size_t i = 0; i < n; i++)
        if (fabs(grad[i]) > gmax) gmax = fabs(grad[i]);
    size_t stride = n > 16 ? n / 16 : 1;
    for (size_t i = 0; i < n; i += stride) {
        float keep = x[i];
        x[i] = keep + eps;
        double up = loss_of(t, b);
        x[i] = keep - eps;
        double down = loss_of(t, b);
        x[i] = keep;
        double num = (up - down) / (2.0 * eps), e = fabs(num - grad[i]) / gmax;
        if (e > worst) worst = e;
    }
    return worst;
}

static void check_model(const char *name, int check_norms) {
    rosa_model *m = rosa_model_load(testdata_path(name));
    REQUIRE(m);
    rosa_lora_options o;
    rosa_lora_options_default(&o);
    o.rank = 3;
    o.alpha = 6.0f;
    o.dropout = 0.0f;
    o.targets = (1u << N_PROJ) - 1;
    rosa_adapter *a = rosa_adapter_new_lora(&m->cfg, &o, 11);
    REQUIRE(a);
    rosa_rng rng;
    rosa_rng_seed(&rng, 12);
    for (int i = 1; i < a->n_params; i += 2) { /* B != 0 so that A gets gradients */
        float *B = a->w + a->params[i].offset;
        for (int k = 0; k < a->params[i].rows * a->params[i].cols; k++) B[k] = 0.2f * (rosa_rng_uniform(&rng) - 0.5f);
    }
    rosa_train_ctx *t = rosa_train_ctx_new(m, a, 2, 9, 0);
    REQUIRE(t);
    int32_t ids[18], labels[18];
    uint8_t mask[18];
    rosa_batch b;
    make_batch(&b, m->cfg.vocab_size, ids, labels, mask);
    memset(a->g, 0, sizeof(float) * a->n_floats);
    memset(t->norm_grad, 0, sizeof(float) * (size_t)m->cfg.num_layers * 2 * m->cfg.hidden_size);
    double loss;
    int n_tok;
    REQUIRE(rosa_train_microbatch(t, &b, 0.25f, &(rosa_step_plan){.backward = 1, .stop_layer = 0}, NULL, &loss, &n_tok, NULL) == 0);
    CHECK_EQ_INT(n_tok, 7 + 4);
    double worst = 0.0;
    for (int i = 0; i < a->n_params; i++) {
        const rosa_param *p = &a->params[i];
        double e = check_entries(t, &b, a->w + p->offset, a->g + p->offset, (size_t)p->rows * p->cols, 1e-2f);
        CHECK_MSG(e < 2e-2, "%s: %s gradient off by %g (relative to its largest entry)", name, p->name, e);
        if (e > worst) worst = e;
    }
    if (check_norms) {
        /* This model's weights were converted from F16 into owned buffers, so
         * perturbing the (frozen) norm weights in place is allowed here. */
        int D = m->cfg.hidden_size;
        for (int l = 0; l < m->cfg.num_layers; l++) {
            float *g_in = (float *)m->layers[l].norm[NORM_ATTN], *g_post = (float *)m->layers[l].norm[NORM_FFN];
            double e1 = check_entries(t, &b, g_in, t->norm_grad + (size_t)l * 2 * D, (size_t)D, 1e-2f);
            double e2 = check_entries(t, &b, g_post, t->norm_grad + (size_t)l * 2 * D + D, (size_t)D, 1e-2f);
            CHECK_MSG(e1 < 2e-2 && e2 < 2e-2, "%s layer %d: norm gradients off by %g, %g", name, l, e1, e2);
        }
    }
    /* The backward told to stop at layer 1 leaves layer 0's gradients alone. */
    memset(a->g, 0, sizeof(float) * a->n_floats);
    REQUIRE(rosa_train_microbatch(t, &b, 0.25f, &(rosa_step_plan){.backward = 1, .stop_layer = 1}, NULL, &loss, &n_tok, NULL) == 0);
    int touched0 = 0, touched1 = 0;
    for (int i = 0; i < a->n_params; i++) {
        const rosa_param *p = &a->params[i];
        for (int k = 0; k < p->rows * p->cols; k++)
            if (a->g[p->offset + k] != 0.0f) *(p->layer == 0 ? &touched0 : &touched1) = 1;
    }
    CHECK(!touched0 && touched1);
    rosa_train_ctx_free(t);
    rosa_adapter_free(a);
    rosa_model_free(m);
}

TEST(grad_model_lora_llama_gqa) { check_model("llama_gqa", 0); }
TEST(grad_model_lora_qwen2_bias) { check_model("qwen2_bias", 0); }
TEST(grad_model_lora_and_norms_f16) { check_model("f16", 1); }
/* Qwen3: QK-norm, head_dim != hidden / heads, q/k/v/o biases, tied head. */
TEST(grad_model_lora_qwen3_tied_bias) { check_model("qwen3-tiny-tied-bias", 0); }
TEST(grad_model_lora_qwen3_window) { check_model("qwen3-window-tiny", 0); }
/* Gemma 3: sandwich and (1+w) norms, GeGLU, windows shorter than the batch,
 * the scale query_pre_attn_scalar^-0.5; its norm weights are owned (1 + w)
 * copies, so the pre-sublayer norms' gradients are checked as well. */
TEST(grad_model_lora_and_norms_gemma3) { check_model("gemma3-tiny", 1); }
TEST(grad_model_lora_mistral_window) { check_model("mistral-window-tiny", 0); }

/* Dropout: the same mask in forward and backward; checked by comparing the
 * analytic gradient with differences taken under the same mask (reseeded rng). */
TEST(lora_dropout_masks_forward_and_backward_alike) {
    rosa_model *m = rosa_model_load(testdata_path("llama_gqa"));
    REQUIRE(m);
    rosa_lora_options o;
    rosa_lora_options_default(&o);
    o.rank = 2;
    o.dropout = 0.3f;
    o.targets = (1u << PROJ_Q) | (1u << PROJ_DOWN);
    rosa_adapter *a = rosa_adapter_new_lora(&m->cfg, &o, 3);
    REQUIRE(a);
    for (int i = 1; i < a->n_params; i += 2)
        for (int k = 0; k < a->params[i].rows * a->params[i].cols; k++) a->w[a->params[i].offset + k] = 0.05f * (k % 7 - 3);
    rosa_train_ctx *t = rosa_train_ctx_new(m, a, 2, 9, 0);
    REQUIRE(t);
    int32_t ids[18], labels[18];
    uint8_t mask[18];
    rosa_batch b;
    make_batch(&b, m->cfg.vocab_size, ids, labels, mask);
    rosa_rng r;
    double loss, l2;
    int n;
    memset(a->g, 0, sizeof(float) * a->n_floats);
    rosa_rng_seed(&r, 99);
    REQUIRE(rosa_train_microbatch(t, &b, 0.25f, &(rosa_step_plan){.backward = 1, .stop_layer = 0}, &r, &loss, &n, NULL) == 0);
    double worst = 0.0, gmax = 1e-3;
    const rosa_param *p = &a->params[0]; /* layer 0 q_proj lora_A */
    for (int k = 0; k < p->rows * p->cols; k++)
        if (fabs(a->g[p->offset + k]) > gmax) gmax = fabs(a->g[p->offset + k]);
    for (int k = 0; k < p->rows * p->cols; k += 7) {
        float *x = &a->w[p->offset + k], keep = *x;
        *x = keep + 1e-2f;
        rosa_rng_seed(&r, 99);
        rosa_train_microbatch(t, &b, 0.25f, &(rosa_step_plan){.backward = 0, .stop_layer = 0}, &r, &loss, &n, NULL);
        *x = keep - 1e-2f;
        rosa_rng_seed(&r, 99);
        rosa_train_microbatch(t, &b, 0.25f, &(rosa_step_plan){.backward = 0, .stop_layer = 0}, &r, &l2, &n, NULL);
        *x = keep;
        double e = fabs((loss - l2) / 2e-2 - a->g[p->offset + k]) / gmax;
        if (e > worst) worst = e;
    }
    CHECK_MSG(worst < 2e-2, "dropout gradient off by %g", worst);
    rosa_train_ctx_free(t);
    rosa_adapter_free(a);
    rosa_model_free(m);
}

/* RoAE: gradients of A and B through RoPE, GQA and the softmax, for both
 * placements and both forms; B != 0 so that every path carries gradient. */
static void check_roae(const char *name, int pre_rope, int add_form, int target_q, int target_k, int train_norms) {
    rosa_model *m = rosa_model_load(testdata_path(name));
    REQUIRE(m);
    rosa_roae_options o;
    rosa_roae_options_default(&o);
    o.rank = 3;
    o.alpha = 0.7f;
    o.r_low = 0.5f;
    o.pre_rope = pre_rope;
    o.add_form = add_form;
    o.target_q = target_q;
    o.target_k = target_k;
    o.train_norms = train_norms;
    rosa_adapter *a = rosa_adapter_new_roae(m, &o, 21);
    REQUIRE(a);
    int hd = m->cfg.head_dim, mm = hd / 4; /* r_low 0.5: a quarter of the dims per half (head_dim 16: 4) */
    CHECK_EQ_INT(rosa_roae_state_of(a)->d_low, 2 * mm);
    CHECK_EQ_INT(rosa_roae_state_of(a)->low_dims[0], hd / 2 - mm);
    CHECK_EQ_INT(rosa_roae_state_of(a)->low_dims[mm], hd - mm);
    rosa_rng rng;
    rosa_rng_seed(&rng, 22);
    for (int i = 0; i < a->n_params; i++) {
        if (!strstr(a->params[i].name, "lora_B")) continue;
        float *B = a->w + a->params[i].offset;
        for (int k = 0; k < a->params[i].rows * a->params[i].cols; k++) B[k] = 0.6f * (rosa_rng_uniform(&rng) - 0.5f);
    }
    rosa_train_ctx *t = rosa_train_ctx_new(m, a, 2, 9, 0);
    REQUIRE(t);
    int32_t ids[18], labels[18];
    uint8_t mask[18];
    rosa_batch b;
    make_batch(&b, m->cfg.vocab_size, ids, labels, mask);
    memset(a->g, 0, sizeof(float) * a->n_floats);
    double loss;
    int n_tok;
    REQUIRE(rosa_train_microbatch(t, &b, 0.25f, &(rosa_step_plan){.backward = 1, .stop_layer = 0}, NULL, &loss, &n_tok, NULL) == 0);
    if (train_norms) { /* the trainer copies norm gradients into the adapter's */
        int D = m->cfg.hidden_size;
        for (int l = 0; l < a->L; l++)
            memcpy(a->g + a->params[rosa_roae_state_of(a)->norm_idx[l]].offset, t->norm_grad + (size_t)l * 2 * D, sizeof(float) * 2 * D);
    }
    for (int i = 0; i < a->n_params; i++) {
        const rosa_param *p = &a->params[i];
        double e = check_entries(t, &b, a->w + p->offset, a->g + p->offset, (size_t)p->rows * p->cols, 1e-2f);
        CHECK_MSG(e < 2e-2, "%s %s%s: %s gradient off by %g", name, pre_rope ? "pre-rope" : "post-rope",
                  add_form ? " add" : " gate", p->name, e);
    }
    rosa_train_ctx_free(t);
    rosa_adapter_free(a);
    rosa_model_free(m);
}

TEST(grad_roae_post_rope_gate) { check_roae("llama_gqa", 0, 0, 1, 1, 0); }
TEST(grad_roae_post_rope_add) { check_roae("llama_gqa", 0, 1, 1, 1, 0); }
TEST(grad_roae_pre_rope_gate) { check_roae("qwen2_bias", 1, 0, 1, 1, 0); }
TEST(grad_roae_pre_rope_add) { check_roae("qwen2_bias", 1, 1, 1, 1, 0); }
TEST(grad_roae_k_only_with_trained_norms) { check_roae("llama_gqa", 0, 0, 0, 1, 1); }
/* After QK-norm and the layer's own RoPE (Gemma 3: local and global bases). */
TEST(grad_roae_post_rope_qwen3) { check_roae("qwen3-tiny", 0, 0, 1, 1, 0); }
TEST(grad_roae_pre_rope_add_gemma3_trained_norms) { check_roae("gemma3-tiny", 1, 1, 1, 1, 1); }
TEST(grad_roae_post_rope_gate_gemma3) { check_roae("gemma3-tiny", 0, 0, 1, 1, 0); }

/* At initialisation (B = 0) the adapted model is the base model, exactly. */
TEST(roae_at_init_equals_base_model) {
    rosa_model *m = rosa_model_load(testdata_path("qwen2_bias"));
    REQUIRE(m);
    rosa_roae_options o;
    rosa_roae_options_default(&o);
    o.rank = 4;
    rosa_adapter *a = rosa_adapter_new_roae(m, &o, 1);
    rosa_lora_options lo;
    rosa_lora_options_default(&lo);
    lo.dropout = 0;
    rosa_adapter *none = rosa_adapter_new_lora(&m->cfg, &lo, 1); /* B = 0 too */
    REQUIRE(a && none);
    rosa_train_ctx *t1 = rosa_train_ctx_new(m, a, 2, 9, 0), *t2 = rosa_train_ctx_new(m, none, 2, 9, 0);
    REQUIRE(t1 && t2);
    int32_t ids[18], labels[18];
    uint8_t mask[18];
    rosa_batch b;
    make_batch(&b, m->cfg.vocab_size, ids, labels, mask);
    float ce1[18], ce2[18];
    double l1, l2;
    int n;
    REQUIRE(rosa_train_microbatch(t1, &b, 1.0f, &(rosa_step_plan){.backward = 0, .stop_layer = 0}, NULL, &l1, &n, ce1) == 0);
    REQUIRE(rosa_train_microbatch(t2, &b, 1.0f, &(rosa_step_plan){.backward = 0, .stop_layer = 0}, NULL, &l2, &n, ce2) == 0);
    CHECK(l1 == l2 && memcmp(ce1, ce2, sizeof ce1) == 0);
    rosa_train_ctx_free(t1);
    rosa_train_ctx_free(t2);
    rosa_adapter_free(a);
    rosa_adapter_free(none);
    rosa_model_free(m);
}

/* --recompute (activation checkpointing) rebuilds each layer's activations
 * from its input: the gradients must equal those of the stored-activation
 * pass bit for bit, with dropout (the rerun draws the same masks), a LoRA on
 * a subset of layers (the shared set must still hold every branch), RoAE, and
 * a truncated backward. */
static void same_grads_with_recompute(rosa_model *m, rosa_adapter *a, int dropout_seed, int stop) {
    rosa_train_ctx *t1 = rosa_train_ctx_new(m, a, 2, 9, 0), *t2 = rosa_train_ctx_new(m, a, 2, 9, 1);
    REQUIRE(t1 && t2);
    CHECK(rosa_train_ctx_bytes(m, a, 2, 9, 1) < rosa_train_ctx_bytes(m, a, 2, 9, 0));
    int32_t ids[18], labels[18];
    uint8_t mask[18];
    rosa_batch b;
    make_batch(&b, m->cfg.vocab_size, ids, labels, mask);
    float *g1 = malloc(sizeof(float) * a->n_floats);
    size_t nn = (size_t)m->cfg.num_layers * 2 * m->cfg.hidden_size;
    double l1, l2;
    int n;
    rosa_rng r1, r2;
    rosa_rng_seed(&r1, (uint64_t)dropout_seed);
    r2 = r1;
    memset(a->g, 0, sizeof(float) * a->n_floats);
    REQUIRE(rosa_train_microbatch(t1, &b, 0.25f, &(rosa_step_plan){.backward = 1, .stop_layer = stop}, dropout_seed ? &r1 : NULL, &l1, &n, NULL) == 0);
    memcpy(g1, a->g, sizeof(float) * a->n_floats);
    memset(a->g, 0, sizeof(float) * a->n_floats);
    REQUIRE(rosa_train_microbatch(t2, &b, 0.25f, &(rosa_step_plan){.backward = 1, .stop_layer = stop}, dropout_seed ? &r2 : NULL, &l2, &n, NULL) == 0);
    CHECK(l1 == l2);
    CHECK(memcmp(g1, a->g, sizeof(float) * a->n_floats) == 0);
    CHECK(memcmp(t1->norm_grad, t2->norm_grad, sizeof(float) * nn) == 0);
    free(g1);
    rosa_train_ctx_free(t1);
    rosa_train_ctx_free(t2);
}

TEST(recompute_gives_identical_gradients_gemma3) {
    rosa_model *m = rosa_model_load(testdata_path("gemma3-tiny"));
    REQUIRE(m);
    rosa_lora_options o;
    rosa_lora_options_default(&o);
    o.rank = 3;
    o.dropout = 0.1f;
    o.targets = (1u << N_PROJ) - 1;
    rosa_adapter *a = rosa_adapter_new_lora(&m->cfg, &o, 11);
    REQUIRE(a);
    for (size_t i = 0; i < a->n_floats; i++)
        if (a->w[i] == 0.0f) a->w[i] = 0.01f * (float)(i % 7);
    same_grads_with_recompute(m, a, 5, 0);
    same_grads_with_recompute(m, a, 0, 2);
    rosa_adapter_free(a);
    rosa_model_free(m);
}

TEST(recompute_gives_identical_gradients) {
    rosa_model *m = rosa_model_load(testdata_path("llama_gqa"));
    REQUIRE(m);
    rosa_lora_options o;
    rosa_lora_options_default(&o);
    o.rank = 3;
    o.dropout = 0.1f;
    o.targets = (1u << N_PROJ) - 1;
    rosa_adapter *a = rosa_adapter_new_lora(&m->cfg, &o, 11);
    REQUIRE(a);
    for (size_t i = 0; i < a->n_floats; i++)
        if (a->w[i] == 0.0f) a->w[i] = 0.01f * (float)(i % 7);
    same_grads_with_recompute(m, a, 5, 0);
    same_grads_with_recompute(m, a, 0, 1);
    rosa_adapter_free(a);
    static int one_layer[] = {1}; /* layer 0's shared set must still hold layer 1's branches */
    o.layers = one_layer;
    o.n_layers = 1;
    a = rosa_adapter_new_lora(&m->cfg, &o, 11);
    REQUIRE(a);
    for (size_t i = 0; i < a->n_floats; i++)
        if (a->w[i] == 0.0f) a->w[i] = 0.01f * (float)(i % 5);
    same_grads_with_recompute(m, a, 7, 0);
    rosa_adapter_free(a);
    o.layers = NULL, o.n_layers = 0;
    o.dora = 1; /* its base term is a product of its own under dropout */
    a = rosa_adapter_new(&rosa_peft_lora, &o, &m->cfg, m, 11);
    REQUIRE(a);
    for (size_t i = 0; i < a->n_floats; i++)
        if (a->w[i] == 0.0f) a->w[i] = 0.01f * (float)(i % 7);
    same_grads_with_recompute(m, a, 5, 0);
    same_grads_with_recompute(m, a, 0, 1);
    rosa_adapter_free(a);
    rosa_roae_options ro;
    rosa_roae_options_default(&ro);
    ro.rank = 4;
    ro.dropout = 0.1f;
    a = rosa_adapter_new_roae(m, &ro, 21);
    REQUIRE(a);
    for (size_t i = 0; i < a->n_floats; i++)
        if (a->w[i] == 0.0f) a->w[i] = 0.02f * (float)(i % 3);
    same_grads_with_recompute(m, a, 9, 0);
    rosa_adapter_free(a);
    rosa_model_free(m);
}

/* DoRA: the gradients of A, B and the magnitude, with B != 0 and magnitudes
 * away from ||W||, on q, v (GQA; Qwen2's biases, which the base
 * term leaves out), o and down, and with dropout (one mask in forward and backward, the
 * base term a product of its own).  The norms ||W + s B A|| are held at the
 * values of the first forward while differencing: PEFT's gradient treats them
 * as constants (the DoRA paper's section 4.3). */
static void check_dora(const char *name, float dropout) {
    rosa_model *m = rosa_model_load(testdata_path(name));
    REQUIRE(m);
    rosa_lora_options o;
    rosa_lora_options_default(&o);
    o.rank = 3;
    o.alpha = 6.0f;
    o.dropout = dropout;
    o.dora = 1;
    o.targets = (1u << PROJ_Q) | (1u << PROJ_V) | (1u << PROJ_O) | (1u << PROJ_DOWN);
    rosa_adapter *a = rosa_adapter_new(&rosa_peft_lora, &o, &m->cfg, m, 11);
    REQUIRE(a);
    rosa_rng rng;
    rosa_rng_seed(&rng, 12);
    for (int i = 0; i < a->n_params; i++) {
        const rosa_param *p = &a->params[i];
        float *v = a->w + p->offset;
        int is_b = strstr(p->name, "lora_B") != NULL, is_m = p->ndim == 1;
        for (int k = 0; (is_b || is_m) && k < p->rows * p->cols; k++)
            v[k] = is_b ? 0.2f * (rosa_rng_uniform(&rng) - 0.5f) : v[k] * (1.0f + 0.3f * (rosa_rng_uniform(&rng) - 0.5f));
    }
    rosa_train_ctx *t = rosa_train_ctx_new(m, a, 2, 9, 0);
    REQUIRE(t);
    int32_t ids[18], labels[18];
    uint8_t mask[18];
    rosa_batch b;
    make_batch(&b, m->cfg.vocab_size, ids, labels, mask);
    memset(a->g, 0, sizeof(float) * a->n_floats);
    double loss, l2;
    int n;
    rosa_rng r;
    rosa_rng_seed(&r, 99);
    rosa_rng *drop = dropout > 0 ? &r : NULL;
    REQUIRE(rosa_train_microbatch(t, &b, 0.25f, &(rosa_step_plan){.backward = 1, .stop_layer = 0}, drop, &loss, &n, NULL) == 0);
    ((rosa_lora_state *)a->state)->hold_norms = 1;
    for (int i = 0; i < a->n_params; i++) {
        const rosa_param *p = &a->params[i];
        size_t cnt = (size_t)p->rows * p->cols, stride = cnt > 5 ? cnt / 5 : 1;
        double worst = 0.0, gmax = 1e-3;
        for (size_t k = 0; k < cnt; k++)
            if (fabs(a->g[p->offset + k]) > gmax) gmax = fabs(a->g[p->offset + k]);
        for (size_t k = 0; k < cnt; k += stride) {
            float *x = &a->w[p->offset + k], keep = *x;
            *x = keep + 1e-2f;
            rosa_rng_seed(&r, 99);
            rosa_train_microbatch(t, &b, 0.25f, &(rosa_step_plan){.backward = 0, .stop_layer = 0}, drop, &loss, &n, NULL);
            *x = keep - 1e-2f;
            rosa_rng_seed(&r, 99);
            rosa_train_microbatch(t, &b, 0.25f, &(rosa_step_plan){.backward = 0, .stop_layer = 0}, drop, &l2, &n, NULL);
            *x = keep;
            double e = fabs((loss - l2) / 2e-2 - a->g[p->offset + k]) / gmax;
            if (e > worst) worst = e;
        }
        CHECK_MSG(worst < 2e-2, "%s (dropout %g): %s gradient off by %g", name, (double)dropout, p->name, worst);
    }
    rosa_train_ctx_free(t);
    rosa_adapter_free(a);
    rosa_model_free(m);
}

TEST(grad_dora_llama_gqa) { check_dora("llama_gqa", 0.0f); }
TEST(grad_dora_qwen2_bias) { check_dora("qwen2_bias", 0.0f); }
TEST(grad_dora_with_dropout) { check_dora("llama_gqa", 0.3f); }

/* A fresh DoRA adapter is the base model: B = 0 and m = ||W||, so g = 1;
 * on F32 rows and on a BF16 checkpoint's mapped rows alike. */
static void dora_at_init(const char *name) {
    rosa_model *m = rosa_model_load(testdata_path(name));
    REQUIRE(m);
    rosa_lora_options o;
    rosa_lora_options_default(&o);
    o.dora = 1;
    o.dropout = 0.0f;
    o.targets = (1u << N_PROJ) - 1;
    rosa_adapter *a = rosa_adapter_new(&rosa_peft_lora, &o, &m->cfg, m, 5);
    REQUIRE(a);
    const rosa_param *M = &a->params[2]; /* layer 0 q_proj's magnitude */
    int D = m->cfg.hidden_size;
    float *W = malloc(sizeof(float) * (size_t)M->cols * D);
    REQUIRE(W && rosa_weight_copy_f32(&m->layers[0].proj[PROJ_Q], W) == 0);
    double worst = 0;
    for (int k = 0; k < M->cols; k++) {
        double n2 = 0;
        for (int i = 0; i < D; i++) n2 += (double)W[(size_t)k * D + i] * W[(size_t)k * D + i];
        worst = fmax(worst, fabs(a->w[M->offset + k] - sqrt(n2)) / sqrt(n2));
    }
    free(W);
    CHECK_MSG(worst < 1e-6, "%s: magnitude differs from ||W|| by %g", name, worst);
    rosa_train_ctx *with = rosa_train_ctx_new(m, a, 2, 9, 0), *without = rosa_train_ctx_new(m, NULL, 2, 9, 0);
    REQUIRE(with && without);
    int32_t ids[18], labels[18];
    uint8_t mask[18];
    rosa_batch b;
    make_batch(&b, m->cfg.vocab_size, ids, labels, mask);
    double la = loss_of(with, &b), lb = loss_of(without, &b);
    /* g = m / n is 1 up to rounding: n comes from ||W||^2 + 2 s B.(A W^T) + ..., m from ||W|| */
    CHECK_MSG(fabs(la - lb) < 1e-6 * fabs(lb), "%s: a fresh DoRA adapter changes the loss: %.8f vs %.8f", name, la, lb);
    rosa_train_ctx_free(with);
    rosa_train_ctx_free(without);
    rosa_adapter_free(a);
    rosa_model_free(m);
}

TEST(dora_at_init_equals_base_model) {
    dora_at_init("qwen2_bias");
    dora_at_init("bf16");
}

/* test_rosa.c: RoSA = RoAE + DLS.  Inference with RoAE adapters (KV cache,
 * agreement with the training forward), the DLS schedule and its
 * statistics, inactive layers, truncated backward, and parity with the
 * PyTorch reference (tools/ref_train.py). */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <unistd.h>

#include "peft/lora.h"
#include "peft/roae.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "model/model.h"
#include "test.h"
#include "arch/config.h"
#include "io/safetensors.h"
#include "train/dls.h"
#include "peft/peft.h"
#include "train/train_ctx.h"
#include "core/util.h"

static rosa_adapter *roae_with_b(rosa_model *m, int pre_rope, int add_form) {
    rosa_roae_options o;
    rosa_roae_options_default(&o);
    o.rank = 4;
    o.r_low = 0.5f;
    o.pre_rope = pre_rope;
    o.add_form = add_form;
    rosa_adapter *a = rosa_adapter_new_roae(m, &o, 5);
    if (!a) return NULL;
    rosa_rng r;
    rosa_rng_seed(&r, 6);
    for (int i = 0; i < a->n_params; i++)
        if (strstr(a->params[i].name, "lora_B"))
            for (int k = 0; k < a->params[i].rows * a->params[i].cols; k++)
                a->w[a->params[i].offset + k] = 0.5f * (rosa_rng_uniform(&r) - 0.5f);
    return a;
}

/* The inference forward with a RoAE adapter: cached decoding equals a full
 * recompute, and its cross-entropies equal the training forward's. */
static void roae_inference(int pre_rope, int add_form) {
    rosa_model *m = rosa_model_load(testdata_path("llama3_rope"));
    REQUIRE(m);
    rosa_adapter *a = roae_with_b(m, pre_rope, add_form);
    REQUIRE(a);
    int V = m->cfg.vocab_size, n = 24;
    int32_t ids[24], labels[24];
    uint8_t mask[24];
    for (int i = 0; i < n; i++) ids[i] = labels[i] = 3 + (i * 41) % (V - 3), mask[i] = 1;
    /* Training forward CE first (the model is unchanged by it). */
    rosa_train_ctx *t = rosa_train_ctx_new(m, a, 1, n, 0);
    REQUIRE(t);
    rosa_batch b = {.B = 1, .T = n, .ids = ids, .labels = labels, .mask = mask};
    float ce[24];
    double loss;
    int nt;
    REQUIRE(rosa_train_microbatch(t, &b, 1.0f, &(rosa_step_plan){.backward = 0, .stop_layer = 0}, NULL, &loss, &nt, ce) == 0);
    rosa_train_ctx_free(t);
    REQUIRE(rosa_adapter_apply(m, a) == 0);
    float *full = malloc(sizeof(float) * (size_t)n * V), *step = malloc(sizeof(float) * (size_t)V);
    rosa_kv_cache *kv = rosa_kv_cache_new(m, 1, n);
    REQUIRE(kv && full && step);
    REQUIRE(rosa_forward(m, kv, n, ids, NULL, full, 1) == 0);
    double worst_ce = 0.0;
    for (int i = 0; i + 1 < n; i++) {
        const float *row = full + (size_t)i * V;
        double mx = row[0], s = 0;
        for (int k = 1; k < V; k++) mx = fmax(mx, row[k]);
        for (int k = 0; k < V; k++) s += exp(row[k] - mx);
        double c = log(s) + mx - row[ids[i + 1]];
        worst_ce = fmax(worst_ce, fabs(c - ce[i]));
    }
    CHECK_MSG(worst_ce < 1e-4, "inference and training forward disagree by %g", worst_ce);
    rosa_kv_cache_reset(kv);
    REQUIRE(rosa_forward(m, kv, 5, ids, NULL, step, 0) == 0);
    double worst = 0.0;
    for (int i = 5; i < n; i++) {
        REQUIRE(rosa_forward(m, kv, 1, &ids[i], NULL, step, 0) == 0);
        for (int k = 0; k < V; k++) worst = fmax(worst, fabs(step[k] - full[(size_t)i * V + k]));
    }
    CHECK_MSG(worst < 1e-4, "cached decoding with RoAE differs from recompute by %g", worst);
    free(full);
    free(step);
    rosa_kv_cache_free(kv);
    rosa_adapter_free(a);
    rosa_model_free(m);
}

TEST(roae_inference_post_rope_gate) { roae_inference(0, 0); }
TEST(roae_inference_pre_rope_add) { roae_inference(1, 1); }

TEST(roae_low_frequency_dimensions) {
    rosa_config c = {0};
    c.num_layers = 1;
    c.hidden_size = 8;
    c.num_heads = 1;
    c.num_kv_heads = 1;
    c.head_dim = 128;
    rosa_roae_options o;
    rosa_roae_options_default(&o);
    rosa_model fake = {0};
    fake.cfg = c;
    rosa_adapter *a = rosa_adapter_new_roae(&fake, &o, 1);
    REQUIRE(a);
    /* d_h = 128, r_low = 0.25: {48..63} u {112..127} */
    CHECK_EQ_INT(rosa_roae_state_of(a)->d_low, 32);
    CHECK(rosa_roae_state_of(a)->low_dims[0] == 48 && rosa_roae_state_of(a)->low_dims[15] == 63 && rosa_roae_state_of(a)->low_dims[16] == 112 && rosa_roae_state_of(a)->low_dims[31] == 127);
    rosa_adapter_free(a);
    fake.cfg.head_dim = 8; /* 8 * 0.25 / 2 = 1: m = 1, {3} u {7} */
    a = rosa_adapter_new_roae(&fake, &o, 1);
    REQUIRE(a);
    CHECK(rosa_roae_state_of(a)->d_low == 2 && rosa_roae_state_of(a)->low_dims[0] == 3 && rosa_roae_state_of(a)->low_dims[1] == 7);
    rosa_adapter_free(a);
    o.r_low = 0.01f; /* m = max(1, round(0.64)) = 1 */
    fake.cfg.head_dim = 64;
    a = rosa_adapter_new_roae(&fake, &o, 1);
    REQUIRE(a);
    CHECK(rosa_roae_state_of(a)->d_low == 2 && rosa_roae_state_of(a)->low_dims[0] == 31 && rosa_roae_state_of(a)->low_dims[1] == 63);
    /* Budget: L * r * (2d + (Hq + Hkv) * d_low) */
    CHECK_EQ_INT(rosa_adapter_num_params(a), 1 * 32 * (2 * 8 + 2 * 2));
    o.rank = 32;
    CHECK_EQ_INT(rosa_peft_num_params(&rosa_peft_roae, &fake.cfg, &o), 1 * 32 * (2 * 8 + 2 * 2));
    rosa_adapter_free(a);
}

/* ------------------------------------------------------------------ DLS */

static rosa_dls_options dls_opts(int interval, int warmup, float k_ratio, float p_exploit) {
    rosa_dls_options o;
    rosa_dls_options_default(&o);
    o.enabled = 1;
    o.interval = interval;
    o.warmup = warmup;
    o.k_ratio = k_ratio;
    o.p_exploit = p_exploit;
    return o;
}

TEST(dls_exploit_takes_top_k_with_ties_to_the_lower_index) {
    rosa_dls d;
    rosa_dls_options o = dls_opts(3, 2, 0.5f, 1.0f);
    REQUIRE(rosa_dls_init(&d, &o, 6) == 0);
    CHECK_EQ_INT(d.k, 3);
    int exploit;
    /* Warm-up: steps 0 and 1 train everything and select nothing. */
    for (int t = 0; t < 2; t++) {
        CHECK(rosa_dls_begin_step(&d, t, &exploit) == 0);
        for (int l = 0; l < 6; l++) CHECK(d.active[l]);
    }
    /* Scores of step 1 decide the selection at step 2. */
    CHECK(rosa_dls_scores_needed(&d, 1) && !rosa_dls_scores_needed(&d, 0) && !rosa_dls_scores_needed(&d, 2));
    float scores[6] = {0.1f, 0.5f, 0.3f, 0.5f, 0.2f, 0.3f};
    memcpy(d.scores, scores, sizeof scores);
    CHECK(rosa_dls_begin_step(&d, 2, &exploit) == 1 && exploit);
    uint8_t want[6] = {0, 1, 1, 1, 0, 0}; /* 0.5, 0.5, then 0.3 at index 2 before index 5 */
    CHECK(memcmp(d.active, want, 6) == 0);
    /* No selection at 3 and 4; the next at 5; truncated backward on 3. */
    CHECK(rosa_dls_begin_step(&d, 3, &exploit) == 0 && memcmp(d.active, want, 6) == 0);
    CHECK_EQ_INT(rosa_dls_stop_layer(&d, 3), 1); /* truncated at the lowest active layer */
    CHECK(rosa_dls_begin_step(&d, 4, &exploit) == 0);
    CHECK_EQ_INT(rosa_dls_stop_layer(&d, 4), 0); /* step 4's scores choose at step 5 */
    CHECK(rosa_dls_begin_step(&d, 5, &exploit) == 1);
    CHECK_EQ_INT(d.counts[1], 2);
    rosa_dls_free(&d);
}

TEST(dls_truncates_the_backward_except_before_a_selection) {
    rosa_dls d;
    rosa_dls_options o = dls_opts(4, 1, 0.34f, 1.0f);
    REQUIRE(rosa_dls_init(&d, &o, 6) == 0);
    CHECK_EQ_INT(d.k, 2);
    int exploit;
    rosa_dls_begin_step(&d, 0, &exploit);
    CHECK_EQ_INT(rosa_dls_stop_layer(&d, 0), 0); /* step 0 precedes the selection at 1 */
    float scores[6] = {0, 0, 0, 0.9f, 0.8f, 0};
    memcpy(d.scores, scores, sizeof scores);
    CHECK(rosa_dls_begin_step(&d, 1, &exploit) == 1);
    CHECK_EQ_INT(rosa_dls_stop_layer(&d, 1), 3);
    CHECK_EQ_INT(rosa_dls_stop_layer(&d, 3), 3);
    CHECK_EQ_INT(rosa_dls_stop_layer(&d, 4), 0); /* 5 is a selection step */
    d.o.full_backward = 1;
    CHECK_EQ_INT(rosa_dls_stop_layer(&d, 2), 0);
    d.o.full_backward = 0;
    d.o.score_ema = 0.5f; /* with an EMA every step scores */
    CHECK_EQ_INT(rosa_dls_stop_layer(&d, 2), 0);
    rosa_dls_free(&d);
}

/* p_exploit = 0: every k-subset is equally likely (chi-square over the
 * C(5,2) = 10 subsets, 20000 draws; 27.9 is the 0.999 quantile for 9 dof). */
TEST(dls_explore_draws_subsets_uniformly) {
    rosa_dls d;
    rosa_dls_options o = dls_opts(1, 1, 0.4f, 0.0f);
    REQUIRE(rosa_dls_init(&d, &o, 5) == 0);
    CHECK_EQ_INT(d.k, 2);
    int counts[32] = {0}, draws = 20000, exploit;
    for (int t = 1; t <= draws; t++) {
        CHECK(rosa_dls_begin_step(&d, t, &exploit) == 1 && !exploit);
        int mask = 0, n = 0;
        for (int l = 0; l < 5; l++) {
            mask |= d.active[l] << l;
            n += d.active[l];
        }
        CHECK(n == 2);
        counts[mask]++;
    }
    double chi = 0.0, expect = draws / 10.0;
    int subsets = 0;
    for (int mask = 0; mask < 32; mask++) {
        if (__builtin_popcount(mask) != 2) continue;
        subsets++;
        chi += (counts[mask] - expect) * (counts[mask] - expect) / expect;
    }
    CHECK_EQ_INT(subsets, 10);
    CHECK_MSG(chi < 27.9, "chi-square %g: the draws are not uniform", chi);
    /* p_exploit 0.8: about 80% of selections exploit. */
    d.o.p_exploit = 0.8f;
    int ex = 0;
    for (int t = 1; t <= 5000; t++) {
        rosa_dls_begin_step(&d, t, &exploit);
        ex += exploit;
    }
    CHECK_MSG(ex > 3850 && ex < 4150, "%d of 5000 exploited", ex);
    rosa_dls_free(&d);
}

/* ------------------------------------------------- end-to-end through the CLI */

static int sh(const char *cmd, char **out) { return run_capture(cmd, 1, out); }

/* Loads an adapter directory's values. */
static rosa_adapter *load_adapter(const char *dir) {
    rosa_config c;
    if (rosa_config_load(shared_path("models/stories260K"), &c) < 0) return NULL;
    return rosa_adapter_load(dir, &c);
}

static void parity(const char *label, const char *roae_flags, const char *dls_flags, const char *ref_dls) {
    const char *model = shared_path("models/stories260K");
    char data[512], dump[512], init[512], ref[512], out[512];
    snprintf(data, sizeof data, "%s", test_tmp_path("p.jsonl"));
    snprintf(dump, sizeof dump, "%s", test_tmp_path("p-dump.json"));
    snprintf(init, sizeof init, "%s-%s", test_tmp_path("init"), label);
    snprintf(ref, sizeof ref, "%s-%s.json", test_tmp_path("ref"), label);
    snprintf(out, sizeof out, "%s-%s", test_tmp_path("out"), label);
    write_toy_records(data, 16);
    char cmd[4096], *o = NULL;
    snprintf(cmd, sizeof cmd, "%s tokenize --model %s --data %s --template train --cutoff-len 48 --json > %s", rosa_bin(),
             model, data, dump);
    REQUIRE(sh(cmd, &o) == 0);
    free(o);
    snprintf(cmd, sizeof cmd, REF " tools/ref_train.py make-adapter --model %s --method roae --rank 4 --alpha 1.5 "
             "--r-low 0.5 %s --b-std 0.3 --seed 8 --out %s", model, roae_flags, init);
    REQUIRE(sh(cmd, &o) == 0);
    free(o);
    const char *hyper = "--max-steps 10 --batch-size 4 --micro-batch-size 2 --lr 1e-2 --warmup-steps 2 "
                        "--max-grad-norm 0.5 --lr-scheduler linear";
    snprintf(cmd, sizeof cmd, REF " tools/ref_train.py train --model %s --data %s --init-adapter %s --out %s %s %s -q",
             model, dump, init, ref, hyper, ref_dls);
    int rc = sh(cmd, &o);
    CHECK_MSG(rc == 0, "reference failed: %s", o);
    free(o);
    REQUIRE(rc == 0);
    snprintf(cmd, sizeof cmd, "%s train --model %s --data %s --init-adapter %s --output %s %s %s --cutoff-len 48 "
             "--no-shuffle --quiet --overwrite --save-steps 0", rosa_bin(), model, data, init, out, hyper, dls_flags);
    rc = sh(cmd, &o);
    CHECK_MSG(rc == 0, "rosa train failed: %s", o);
    free(o);
    REQUIRE(rc == 0);
    cJSON *r = rosa_json_load(ref);
    REQUIRE(r);
    char mp[600];
    snprintf(mp, sizeof mp, "%s/metrics.jsonl", out);
    size_t len;
    char *metrics = rosa_read_file(mp, &len);
    REQUIRE(metrics);
    float losses[10];
    int n = 0;
    cJSON *sel = cJSON_CreateArray();
    for (char *line = strtok(metrics, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *j = cJSON_Parse(line);
        if (j && cJSON_GetObjectItem(j, "loss") && n < 10) losses[n++] = (float)cJSON_GetObjectItem(j, "loss")->valuedouble;
        const cJSON *s = j ? cJSON_GetObjectItem(j, "dls_selection") : NULL;
        if (s) {
            cJSON *pair = cJSON_CreateArray();
            cJSON_AddItemToArray(pair, cJSON_CreateNumber(cJSON_GetObjectItem(j, "step")->valuedouble - 1));
            cJSON_AddItemToArray(pair, cJSON_Duplicate(cJSON_GetObjectItem(s, "layers"), 1));
            cJSON_AddItemToArray(sel, pair);
        }
        cJSON_Delete(j);
    }
    free(metrics);
    CHECK_EQ_INT(n, 10);
    double el = max_rel_json(losses, cJSON_GetObjectItem(r, "losses"), n);
    CHECK_MSG(el <= 1e-4, "%s: step losses differ by %g", label, el);
    if (*ref_dls) {
        CHECK_MSG(cJSON_Compare(sel, cJSON_GetObjectItem(r, "dls_selections"), 1), "%s: DLS selections differ", label);
        CHECK(cJSON_GetArraySize(sel) >= 2);
    }
    cJSON_Delete(sel);
    rosa_adapter *a = load_adapter(out);
    REQUIRE(a);
    double worst = 0.0;
    for (int i = 0; i < a->n_params; i++) {
        const cJSON *want = cJSON_GetObjectItem(cJSON_GetObjectItem(r, "adapter"), a->params[i].name);
        if (!want) {
            CHECK_MSG(0, "reference lacks %s", a->params[i].name);
            continue;
        }
        worst = fmax(worst, max_rel_json(a->w + a->params[i].offset, want, a->params[i].rows * a->params[i].cols));
    }
    CHECK_MSG(worst <= 1e-4, "%s: adapter differs from the reference by %g", label, worst);
    rosa_adapter_free(a);
    cJSON_Delete(r);
}

TEST(rosa_matches_pytorch_reference_with_dls) {
    parity("rosa", "--targets q,k", "--method rosa --dls-interval 3 --dls-warmup 2 --dls-p-exploit 1 --dls-k-ratio 0.4",
           "--dls on --dls-interval 3 --dls-warmup 2 --dls-p-exploit 1 --dls-k-ratio 0.4");
}

TEST(roae_pre_rope_add_matches_pytorch_reference) {
    parity("roae-pre-add", "--targets q,k --placement pre-rope --form add", "--method roae --roae-placement pre-rope --roae-form add", "");
}

TEST(rosa_zero_grad_mode_matches_pytorch_reference) {
    parity("rosa-zg", "--targets q", "--method rosa --roae-targets q --dls-interval 4 --dls-warmup 1 --dls-p-exploit 1 "
           "--dls-inactive zero-grad", "--dls on --dls-interval 4 --dls-warmup 1 --dls-p-exploit 1 --dls-inactive zero-grad");
}

/* Reads a checkpoint's adapter values, AdamW moments and step counts. */
typedef struct {
    rosa_adapter *a;
    st_set opt;
} ckpt;

static int ckpt_open(ckpt *c, const char *out, int step) {
    char dir[600], path[700];
    snprintf(dir, sizeof dir, "%s/checkpoint-%d", out, step);
    c->a = load_adapter(dir);
    snprintf(path, sizeof path, "%s/optimizer.safetensors", dir);
    memset(&c->opt, 0, sizeof c->opt);
    return c->a && st_set_add_file(&c->opt, path) == 0 ? 0 : -1;
}

static void ckpt_close(ckpt *c) {
    rosa_adapter_free(c->a);
    st_set_close(&c->opt);
}

/* Whether tensor i is bit-identical between two checkpoints: values, both
 * moments and its AdamW step count. */
static int tensor_unchanged(const ckpt *x, const ckpt *y, int i) {
    const rosa_param *p = &x->a->params[i];
    size_t n = (size_t)p->rows * p->cols;
    if (memcmp(x->a->w + p->offset, y->a->w + p->offset, sizeof(float) * n) != 0) return 0;
    for (int k = 0; k < 2; k++) {
        char name[200];
        snprintf(name, sizeof name, "%s.%s", p->name, k ? "exp_avg_sq" : "exp_avg");
        const st_tensor *a = st_set_find(&x->opt, name), *b = st_set_find(&y->opt, name);
        if (!a || !b || memcmp(a->data, b->data, a->nbytes) != 0) return 0;
    }
    const int64_t *sa = st_set_find(&x->opt, "step")->data, *sb = st_set_find(&y->opt, "step")->data;
    return sa[i] == sb[i];
}

/* The active set of each step from metrics.jsonl (the selection persists). */
static int read_active(const char *out, int L, int steps, uint8_t active[][8]) {
    char mp[600];
    snprintf(mp, sizeof mp, "%s/metrics.jsonl", out);
    size_t len;
    char *m = rosa_read_file(mp, &len);
    if (!m) return -1;
    uint8_t cur[8];
    memset(cur, 1, sizeof cur);
    for (int s = 0; s < steps; s++) memset(active[s], 1, 8);
    for (char *line = strtok(m, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *j = cJSON_Parse(line);
        const cJSON *sel = j ? cJSON_GetObjectItem(j, "dls_selection") : NULL;
        if (sel) {
            int s = (int)cJSON_GetObjectItem(j, "step")->valuedouble - 1;
            memset(cur, 0, sizeof cur);
            const cJSON *l;
            cJSON_ArrayForEach(l, cJSON_GetObjectItem(sel, "layers")) cur[l->valueint] = 1;
            for (int t = s; t < steps; t++) memcpy(active[t], cur, (size_t)L);
        }
        cJSON_Delete(j);
    }
    free(m);
    return 0;
}

static void inactive_layers(int zero_grad) {
    const char *model = shared_path("models/stories260K");
    char data[512], out[512], cmd[4096], *o = NULL;
    snprintf(data, sizeof data, "%s", test_tmp_path("inactive.jsonl"));
    snprintf(out, sizeof out, "%s-%d", test_tmp_path("inactive"), zero_grad);
    write_toy_records(data, 32);
    snprintf(cmd, sizeof cmd, "%s train --model %s --data %s --output %s --method rosa --rank 4 --r-low 0.5 "
             "--max-steps 8 --batch-size 4 --micro-batch-size 2 --cutoff-len 48 --lr 1e-2 --warmup-steps 0 "
             "--dls-interval 3 --dls-warmup 2 --dls-k-ratio 0.4 --dls-p-exploit 0.5 --save-steps 1 --quiet "
             "--overwrite %s", rosa_bin(), model, data, out, zero_grad ? "--dls-inactive zero-grad" : "");
    REQUIRE(sh(cmd, &o) == 0);
    free(o);
    uint8_t active[8][8];
    REQUIRE(read_active(out, 5, 8, active) == 0);
    int frozen_checked = 0, moved = 0;
    for (int s = 3; s < 8; s++) { /* checkpoint-s holds the state after s steps; step s runs next */
        ckpt x, y;
        REQUIRE(ckpt_open(&x, out, s) == 0 && ckpt_open(&y, out, s + 1) == 0);
        for (int i = 0; i < x.a->n_params; i++) {
            int l = x.a->params[i].layer, same = tensor_unchanged(&x, &y, i);
            if (active[s][l]) {
                CHECK_MSG(!same, "step %d: active layer %d's %s did not move", s, l, x.a->params[i].name);
            } else if (!zero_grad) {
                CHECK_MSG(same, "step %d: inactive layer %d's %s changed", s, l, x.a->params[i].name);
                frozen_checked++;
            } else {
                moved += !same; /* zero-grad: AdamW still steps them (momentum, step count) */
            }
        }
        ckpt_close(&x);
        ckpt_close(&y);
    }
    if (zero_grad) CHECK(moved > 0);
    else CHECK(frozen_checked > 0);
}

TEST(dls_inactive_layers_stay_bit_identical) { inactive_layers(0); }
TEST(dls_zero_grad_mode_still_steps_inactive_layers) { inactive_layers(1); }

/* Truncated backward (stop at the lowest active layer) and the full backward
 * give the same adapter after 20 steps, bit for bit; and so does a resumed run. */
TEST(dls_truncated_backward_and_resume_are_exact) {
    const char *model = shared_path("models/stories260K");
    char data[512], a_dir[512], b_dir[512], c_dir[512], cmd[4096], *o = NULL;
    snprintf(data, sizeof data, "%s", test_tmp_path("trunc.jsonl"));
    snprintf(a_dir, sizeof a_dir, "%s", test_tmp_path("trunc-a"));
    snprintf(b_dir, sizeof b_dir, "%s", test_tmp_path("trunc-b"));
    snprintf(c_dir, sizeof c_dir, "%s", test_tmp_path("trunc-c"));
    write_toy_records(data, 40);
    const char *common = "--method rosa --rank 4 --r-low 0.5 --max-steps 20 --batch-size 4 --micro-batch-size 2 "
                         "--cutoff-len 48 --lr 5e-3 --warmup-steps 2 --dls-interval 4 --dls-warmup 3 --dls-k-ratio 0.4 "
                         "--quiet --overwrite";
    snprintf(cmd, sizeof cmd, "%s train --model %s --data %s --output %s %s --save-steps 0", rosa_bin(), model, data,
             a_dir, common);
    REQUIRE(sh(cmd, &o) == 0);
    free(o);
    snprintf(cmd, sizeof cmd, "%s train --model %s --data %s --output %s %s --save-steps 0 --dls-full-backward",
             rosa_bin(), model, data, b_dir, common);
    REQUIRE(sh(cmd, &o) == 0);
    free(o);
    snprintf(cmd, sizeof cmd, "%s train --model %s --data %s --output %s %s --save-steps 9 && rm -rf %s/checkpoint-18 "
             "%s/checkpoint-20 && %s train --model %s --data %s --output %s %s --save-steps 9 --resume", rosa_bin(), model,
             data, c_dir, common, c_dir, c_dir, rosa_bin(), model, data, c_dir, common);
    int rc = sh(cmd, &o);
    CHECK_MSG(rc == 0, "resume failed: %s", o);
    free(o);
    char pa[600], pb[600], pc[600];
    snprintf(pa, sizeof pa, "%s/adapter_model.safetensors", a_dir);
    snprintf(pb, sizeof pb, "%s/adapter_model.safetensors", b_dir);
    snprintf(pc, sizeof pc, "%s/adapter_model.safetensors", c_dir);
    size_t la, lb, lc;
    char *x = rosa_read_file(pa, &la), *y = rosa_read_file(pb, &lb), *z = rosa_read_file(pc, &lc);
    REQUIRE(x && y && z);
    CHECK_MSG(la == lb && memcmp(x, y, la) == 0, "truncated and full backward differ");
    CHECK_MSG(la == lc && memcmp(x, z, la) == 0, "the resumed run differs");
    free(x);
    free(y);
    free(z);
}
